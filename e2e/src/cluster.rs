//! Helpers for tests of several nodes: reading a node's status and
//! instances over HTTP, the fault switch, node flags and member files, and
//! a killable SDK client process.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use roster_node::peer::FaultSettings;
use serde_json::Value;

use crate::binary;

/// Writes a member list file atomically (temporary file, then rename), as
/// operators and ConfigMap updates do, so a node never reads half of it.
pub fn write_member_file(path: &Path, members: &[String]) {
    let tmp = path.with_extension("tmp");
    let text: String = members.iter().map(|m| format!("{m}\n")).collect();
    std::fs::write(&tmp, text).expect("write the member file");
    std::fs::rename(&tmp, path).expect("rename the member file");
}

/// Where a node finds its members.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// A `cluster.conf` file.
    File(&'a Path),
    /// An address-server URL.
    AddressServer(&'a str),
}

/// The cluster secret every node started by this test process shares
/// (random, made once per process).
pub fn cluster_secret() -> String {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET
        .get_or_init(|| roster_node::security::ClusterSecret::generate_hex().unwrap_or_else(|e| panic!("{e}")))
        .clone()
}

/// Flags of a node on `ip` (standard ports) that finds its members through
/// `lookup`, with membership timers short enough for tests: the list is
/// re-read every 100 ms, members report every 200 ms and are `DOWN` after
/// two failed reports; with this process's [`cluster_secret`].
pub fn node_args(ip: &str, lookup: Lookup<'_>) -> Vec<String> {
    let mut args: Vec<String> =
        ["--bind", ip, "--advertise", &format!("{ip}:8848")].iter().map(|s| s.to_string()).collect();
    let source = match lookup {
        Lookup::File(conf) => [
            ("--lookup", "file".to_string()),
            ("--cluster-conf", conf.to_string_lossy().into_owned()),
            ("--cluster-conf-poll-interval", "100ms".to_string()),
        ],
        Lookup::AddressServer(url) => [
            ("--lookup", "address-server".to_string()),
            ("--address-server-url", url.to_string()),
            ("--address-server-poll-interval", "100ms".to_string()),
        ],
    };
    let timers = [
        ("--cluster-secret", cluster_secret()),
        ("--member-report-interval", "200ms".to_string()),
        ("--member-report-timeout", "300ms".to_string()),
        ("--member-down-after-failures", "2".to_string()),
    ];
    args.extend(source.into_iter().chain(timers).flat_map(|(flag, value)| [flag.to_string(), value]));
    args
}

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

/// Waits until the node at `http` sees exactly `expected` (address, state),
/// in any order, failing after `limit` with the last states it saw.
pub async fn wait_member_states(http: SocketAddr, expected: &[(String, &str)], what: &str, limit: Duration) {
    let mut expected: Vec<(String, String)> = expected.iter().map(|(a, s)| (a.clone(), (*s).to_owned())).collect();
    expected.sort();
    let deadline = Instant::now() + limit;
    loop {
        let seen = member_states(http).await;
        if seen.as_ref() == Some(&expected) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: expected {expected:?} on {http}, last seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /nacos/v1/ns/instance/list` of `service` (default namespace and
/// group) from the node at `base` (`http://host:port`), as JSON; `None`
/// when it does not answer with JSON within 10 s.
pub async fn instance_list(base: &str, service: &str) -> Option<Value> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().ok()?;
    let url = format!("{base}/nacos/v1/ns/instance/list");
    client.get(url).query(&[("serviceName", service)]).send().await.ok()?.json().await.ok()
}

/// The instances of `service` (default namespace and group) as the node
/// answers `GET /nacos/v1/ns/instance/list`: sorted `ip:port:healthy`.
pub async fn instances(http: SocketAddr, service: &str) -> Option<Vec<String>> {
    let list = instance_list(&format!("http://{http}"), service).await?;
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

/// The fault switch settings that cut peer traffic with `members`
/// (`host:port`) and drop nothing.
pub fn blocking(members: &[&str]) -> FaultSettings {
    FaultSettings { blocked_members: members.iter().map(|m| m.to_string()).collect(), ..FaultSettings::default() }
}

/// Sets a node's fault switch (the node runs with `--fault-injection`).
pub async fn set_faults(http: SocketAddr, settings: &FaultSettings) -> Result<()> {
    let resp = reqwest::Client::new().put(format!("http://{http}/roster/v1/faults")).json(settings).send().await?;
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
        SdkClient::register_to(&http.to_string(), grpc, service, ip, port)
    }

    /// As [`SdkClient::register`], with a server list (`host:port,...`,
    /// each server's gRPC port `grpc`): the client connects to one of them
    /// and moves to another when that one goes away.
    pub fn register_to(servers: &str, grpc: u16, service: &str, ip: &str, port: u16) -> Result<SdkClient> {
        let bin = binary("roster-e2e", "sdk-client")?;
        let mut child = Command::new(bin)
            .args(["--server", servers, "--grpc-port", &grpc.to_string()])
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
        match rx.recv_timeout(Duration::from_secs(30)) {
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
