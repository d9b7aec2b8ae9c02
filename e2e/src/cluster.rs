//! Helpers for tests of several nodes: reading a node's status and
//! instances over HTTP, the fault switch, a killable SDK client process and
//! a small address server.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::binary;

/// A node's `/roster/v1/status`, or `None` when it does not answer.
pub async fn status(http: SocketAddr) -> Option<Value> {
    reqwest::get(format!("http://{http}/roster/v1/status")).await.ok()?.json().await.ok()
}

/// Whether the node's readiness endpoint answers 200.
pub async fn is_ready(http: SocketAddr) -> bool {
    match reqwest::get(format!("http://{http}/nacos/v1/console/health/readiness")).await {
        Ok(r) => r.status() == 200,
        Err(_) => false,
    }
}

/// Members (address, state) as the node sees them, sorted.
pub async fn member_states(http: SocketAddr) -> Option<Vec<(String, String)>> {
    let status = status(http).await?;
    let mut out: Vec<(String, String)> = status["members"]
        .as_array()?
        .iter()
        .map(|m| (m["address"].as_str().unwrap_or("").to_owned(), m["state"].as_str().unwrap_or("").to_owned()))
        .collect();
    out.sort();
    Some(out)
}

/// The instances of `service` (default namespace and group) as the node
/// answers `GET /nacos/v1/ns/instance/list`: sorted `ip:port:healthy`.
pub async fn instances(http: SocketAddr, service: &str) -> Option<Vec<String>> {
    let url = format!("http://{http}/nacos/v1/ns/instance/list");
    let list: Value =
        reqwest::Client::new().get(url).query(&[("serviceName", service)]).send().await.ok()?.json().await.ok()?;
    let mut out: Vec<String> = list["hosts"]
        .as_array()?
        .iter()
        .map(|h| format!("{}:{}:{}", h["ip"].as_str().unwrap_or(""), h["port"], h["healthy"]))
        .collect();
    out.sort();
    Some(out)
}

/// Sends a v1 instance write (`POST`, `DELETE`, `PUT`) with form
/// parameters; returns the status and body.
pub async fn instance_write(
    http: SocketAddr,
    method: reqwest::Method,
    path: &str,
    params: &[(&str, &str)],
) -> Result<(u16, String)> {
    let resp = reqwest::Client::new()
        .request(method, format!("http://{http}{path}"))
        .form(params)
        .send()
        .await
        .with_context(|| format!("{path} on {http}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Registers an ephemeral instance of `service` over HTTP.
pub async fn register_http(http: SocketAddr, service: &str, ip: &str, port: u16) -> Result<()> {
    let port = port.to_string();
    let params = [("serviceName", service), ("ip", ip), ("port", port.as_str())];
    let (status, body) = instance_write(http, reqwest::Method::POST, "/nacos/v1/ns/instance", &params).await?;
    if status != 200 || body != "ok" {
        bail!("register {service} {ip}:{port} on {http}: {status} {body}");
    }
    Ok(())
}

/// Deregisters an ephemeral instance of `service` over HTTP.
pub async fn deregister_http(http: SocketAddr, service: &str, ip: &str, port: u16) -> Result<()> {
    let port = port.to_string();
    let params = [("serviceName", service), ("ip", ip), ("port", port.as_str())];
    let (status, body) = instance_write(http, reqwest::Method::DELETE, "/nacos/v1/ns/instance", &params).await?;
    if status != 200 || body != "ok" {
        bail!("deregister {service} {ip}:{port} on {http}: {status} {body}");
    }
    Ok(())
}

/// Sends a light beat for an HTTP-registered instance; returns the `code`.
pub async fn beat(http: SocketAddr, service: &str, ip: &str, port: u16) -> Result<i64> {
    let port = port.to_string();
    let params = [("serviceName", service), ("ip", ip), ("port", port.as_str())];
    let (status, body) = instance_write(http, reqwest::Method::PUT, "/nacos/v1/ns/instance/beat", &params).await?;
    if status != 200 {
        bail!("beat {service} {ip}:{port} on {http}: {status} {body}");
    }
    let v: Value = serde_json::from_str(&body)?;
    v["code"].as_i64().ok_or_else(|| anyhow!("beat answer without code: {body}"))
}

/// Sets a node's fault switch (the node runs with `--fault-injection`).
pub async fn set_faults(http: SocketAddr, blocked: &[&str], drop_syncs: u64) -> Result<()> {
    let resp = reqwest::Client::new()
        .put(format!("http://{http}/roster/v1/faults"))
        .json(&json!({ "blockedMembers": blocked, "dropSyncs": drop_syncs }))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("set faults on {http}: {}", resp.status());
    }
    Ok(())
}

/// A `sdk-client` process (the official Rust Nacos client) holding one
/// registered instance over gRPC until it is killed.
#[derive(Debug)]
pub struct SdkClient {
    child: Child,
}

impl SdkClient {
    /// Starts a client connected to the node at `http` (gRPC port `grpc`)
    /// and waits until it has registered `ip:port` in `service`.
    pub fn register(http: SocketAddr, grpc: u16, service: &str, ip: &str, port: u16) -> Result<SdkClient> {
        let bin = binary("roster-e2e", "sdk-client")?;
        let mut child = Command::new(bin)
            .args(["--server", &http.to_string(), "--grpc-port", &grpc.to_string()])
            .args(["--service", service, "--ip", ip, "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning sdk-client")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let client = SdkClient { child };
        match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(line) if line.trim() == "registered" => Ok(client),
            Ok(line) => bail!("sdk-client said {line:?} instead of registering"),
            Err(_) => bail!("sdk-client did not register within 30 s"),
        }
    }

    /// Kills the client (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SdkClient {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal address server: answers every `GET` with the current member
/// list, one `host:port` per line, as DESIGN §8's server list does.
#[derive(Debug)]
pub struct AddressServer {
    /// Where it listens.
    pub addr: SocketAddr,
    members: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl AddressServer {
    /// Starts serving `members` on an ephemeral port of `ip`.
    pub async fn start(ip: &str, members: &[String]) -> Result<AddressServer> {
        let listener = TcpListener::bind((ip, 0)).await.context("binding the address server")?;
        let addr = listener.local_addr()?;
        let list = Arc::new(Mutex::new(members.to_vec()));
        let served = list.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let body = served.lock().map(|m| m.iter().map(|a| format!("{a}\n")).collect::<String>());
                let body = body.unwrap_or_default();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut reader = BufReader::new(read);
                    // Read the request head; the answer does not depend on it.
                    let mut line = String::new();
                    while reader.read_line(&mut line).await.is_ok_and(|n| n > 0) {
                        if line == "\r\n" || line == "\n" {
                            break;
                        }
                        line.clear();
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = write.write_all(head.as_bytes()).await;
                    let _ = write.write_all(body.as_bytes()).await;
                    let _ = write.shutdown().await;
                    let mut rest = Vec::new();
                    let _ = reader.read_to_end(&mut rest).await;
                });
            }
        });
        Ok(AddressServer { addr, members: list, task })
    }

    /// The URL nodes poll.
    pub fn url(&self) -> String {
        format!("http://{}/v1/clusters/test/demo/serverlist", self.addr)
    }

    /// Replaces the member list.
    pub fn set(&self, members: &[String]) {
        if let Ok(mut m) = self.members.lock() {
            *m = members.to_vec();
        }
    }
}

impl Drop for AddressServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
