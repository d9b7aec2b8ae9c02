//! The clients that stay connected through the whole story, and the model
//! of what they were told succeeded.
//!
//! * official-SDK gRPC publishers (`sdk-client`, nacos-sdk): each holds one
//!   instance of [`GRPC_SERVICE`] for as long as it lives;
//! * an official-SDK subscriber watching the three services, whose last
//!   pushed view must match the model;
//! * HTTP clients that register an instance of [`HTTP_SERVICE`] and beat
//!   for it (re-registering on `20404`, as Nacos clients do);
//! * persistent writers that keep re-registering the persistent instances
//!   of [`PERSISTENT_SERVICE`] with a new `seq` in their metadata: every
//!   acknowledged `seq` must be on every member, never rolled back.
//!
//! HTTP requests go to members that serve (their status says ready), as
//! the client Service would route them; the gRPC clients are given member
//! names and pick among them as the SDK does.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use tokio::task::JoinHandle;

use crate::binary;

/// The service the SDK publishers register in.
pub const GRPC_SERVICE: &str = "kube-e2e-grpc";
/// The service of the HTTP clients that beat.
pub const HTTP_SERVICE: &str = "kube-e2e-http";
/// A second service every HTTP client publishes in at the same ip:port, as
/// a Dubbo provider publishes each interface: one ip:port client with two
/// instances, whose registrations may reach two members.
pub const HTTP_SERVICE_ALSO: &str = "kube-e2e-http-also";
/// The services of the HTTP clients.
pub const HTTP_SERVICES: [&str; 2] = [HTTP_SERVICE, HTTP_SERVICE_ALSO];
/// The service the persistent writers write.
pub const PERSISTENT_SERVICE: &str = "kube-e2e-persistent";
/// The services, in the order the checks report them.
pub const SERVICES: [&str; 4] = [GRPC_SERVICE, HTTP_SERVICE, HTTP_SERVICE_ALSO, PERSISTENT_SERVICE];

/// How often each HTTP client beats (Nacos clients: 5 s; the node marks an
/// instance unhealthy after 15 s without a beat).
pub const BEAT_EVERY: Duration = Duration::from_secs(2);
/// Pause between two writes of one persistent writer.
const WRITE_EVERY: Duration = Duration::from_millis(300);
/// How long one HTTP request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// An instance as `ip:port`.
pub type Address = String;

/// One SDK publisher.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// Its instance of [`GRPC_SERVICE`].
    pub address: Address,
    /// Still running (a killed one's instance must go).
    pub alive: bool,
    /// The member names it was given.
    pub servers: Vec<String>,
    /// When its registration was acknowledged.
    pub since: Instant,
}

/// One persistent instance and the `seq` values written to it.
#[derive(Debug, Clone, Default)]
pub struct Persisted {
    /// The highest `seq` a write acknowledged (every member must hold it or
    /// a later one).
    pub acked: u64,
    /// The highest `seq` ever sent (a member may hold it: the write may have
    /// committed without its answer reaching us).
    pub sent: u64,
}

/// What the clients were told succeeded.
#[derive(Debug, Default)]
pub struct Model {
    /// SDK publishers by name.
    pub publishers: BTreeMap<String, Publisher>,
    /// HTTP instances that registered and keep beating, with when the
    /// registration was acknowledged.
    pub http: BTreeMap<Address, Instant>,
    /// Re-registrations after a beat found the instance gone (`20404`), by
    /// the step during which they happened.
    pub http_lost: Vec<(String, Address)>,
    /// Persistent instances.
    pub persistent: BTreeMap<Address, Persisted>,
    /// Acknowledged persistent writes, total.
    pub persistent_acks: u64,
    /// Persistent writes without an acknowledgement (refused, timed out).
    pub persistent_unacked: u64,
    /// When the last persistent write was acknowledged.
    pub last_persistent_ack: Option<Instant>,
}

impl Model {
    /// The instances of `service` every serving member must hold.
    pub fn expected(&self, service: &str) -> Vec<Address> {
        self.expected_since(service, None)
    }

    /// The live instances of an ephemeral `service` acknowledged before
    /// `before` (all of them when `None`); for the persistent service,
    /// every instance written.
    pub fn expected_since(&self, service: &str, before: Option<Instant>) -> Vec<Address> {
        let old_enough = |since: &Instant| before.is_none_or(|b| *since <= b);
        let mut out: Vec<Address> = match service {
            GRPC_SERVICE => self
                .publishers
                .values()
                .filter(|p| p.alive && old_enough(&p.since))
                .map(|p| p.address.clone())
                .collect(),
            HTTP_SERVICE | HTTP_SERVICE_ALSO => {
                self.http.iter().filter(|(_, since)| old_enough(since)).map(|(a, _)| a.clone()).collect()
            }
            _ => self.persistent.keys().cloned().collect(),
        };
        out.sort();
        out
    }
}

/// The shared state of the workload.
#[derive(Clone, Default)]
pub struct Shared {
    /// The model.
    pub model: Arc<Mutex<Model>>,
    /// Members that serve now (their status says ready), as `host:port`.
    pub serving: Arc<Mutex<Vec<String>>>,
    /// The step running now, for attributing what happens.
    pub step: Arc<Mutex<String>>,
}

impl Shared {
    /// A member that serves, chosen at random, if any.
    pub fn pick(&self) -> Option<String> {
        let serving = self.serving.lock().ok()?;
        (!serving.is_empty()).then(|| serving[fastrand::usize(..serving.len())].clone())
    }

    /// The step running now.
    pub fn step(&self) -> String {
        self.step.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Locks the model.
    pub fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The HTTP client every request of the workload and the checks uses.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().unwrap_or_default()
}

async fn form(
    http: &reqwest::Client,
    method: reqwest::Method,
    member: &str,
    path: &str,
    params: &[(&str, &str)],
) -> Result<(u16, String)> {
    let resp = http.request(method, format!("http://{member}{path}")).form(params).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Registers an ephemeral instance of `service` over HTTP through a
/// serving member.
async fn register_http(shared: &Shared, http: &reqwest::Client, address: &str, service: &str) -> Result<()> {
    let member = shared.pick().ok_or_else(|| anyhow!("no member serves"))?;
    let (ip, port) = address.split_once(':').ok_or_else(|| anyhow!("bad address {address}"))?;
    let params = [("serviceName", service), ("ip", ip), ("port", port)];
    match form(http, reqwest::Method::POST, &member, "/nacos/v1/ns/instance", &params).await? {
        (200, body) if body == "ok" => Ok(()),
        (status, body) => bail!("register {address} on {member}: {status} {body}"),
    }
}

/// Registers `addresses` over HTTP in both [`HTTP_SERVICES`] (each
/// registration through a member picked anew, retrying each until
/// acknowledged, for up to `within`), then beats for each of them until the
/// task is aborted.
pub async fn start_http_clients(shared: Shared, addresses: Vec<Address>, within: Duration) -> Result<JoinHandle<()>> {
    let http = http_client();
    let deadline = Instant::now() + within;
    for address in &addresses {
        for service in HTTP_SERVICES {
            loop {
                match register_http(&shared, &http, address, service).await {
                    Ok(()) => break,
                    Err(e) if Instant::now() > deadline => return Err(e.context("registering the HTTP clients")),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
        shared.model().http.insert(address.clone(), Instant::now());
    }
    Ok(tokio::spawn(async move {
        loop {
            for address in &addresses {
                tokio::time::sleep(BEAT_EVERY / addresses.len().max(1) as u32).await;
                for service in HTTP_SERVICES {
                    beat(&shared, &http, address, service).await;
                }
            }
        }
    }))
}

/// One light beat; on `20404` (the member does not know the instance) the
/// client registers it again, and the loss is recorded.
async fn beat(shared: &Shared, http: &reqwest::Client, address: &str, service: &str) {
    let Some(member) = shared.pick() else { return };
    let Some((ip, port)) = address.split_once(':') else { return };
    let params = [("serviceName", service), ("ip", ip), ("port", port)];
    let Ok((200, body)) = form(http, reqwest::Method::PUT, &member, "/nacos/v1/ns/instance/beat", &params).await else {
        return;
    };
    let code = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["code"].as_i64());
    if code == Some(20404) {
        let step = shared.step();
        shared.model().http_lost.push((step, format!("{address} in {service} (unknown to {member})")));
        let _ = register_http(shared, http, address, service).await;
    }
}

/// Keeps writing the persistent instances `addresses` (each write a new
/// `seq` in the metadata) through serving members until aborted.
pub fn start_persistent_writer(shared: Shared, addresses: Vec<Address>, first_seq: u64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let http = http_client();
        let mut seq = first_seq;
        loop {
            for address in &addresses {
                tokio::time::sleep(WRITE_EVERY).await;
                let Some(member) = shared.pick() else { continue };
                let Some((ip, port)) = address.split_once(':') else { continue };
                seq += 1;
                shared.model().persistent.entry(address.clone()).or_default().sent = seq;
                let metadata = format!("{{\"seq\":\"{seq}\"}}");
                let params = [
                    ("serviceName", PERSISTENT_SERVICE),
                    ("ip", ip),
                    ("port", port),
                    ("ephemeral", "false"),
                    ("metadata", metadata.as_str()),
                ];
                let outcome = form(&http, reqwest::Method::POST, &member, "/nacos/v1/ns/instance", &params).await;
                let mut model = shared.model();
                match outcome {
                    Ok((200, body)) if body == "ok" => {
                        let entry = model.persistent.entry(address.clone()).or_default();
                        entry.acked = entry.acked.max(seq);
                        model.persistent_acks += 1;
                        model.last_persistent_ack = Some(Instant::now());
                    }
                    _ => model.persistent_unacked += 1,
                }
            }
        }
    })
}

/// TCP listeners on `ip` that answer the leader's health checks of the
/// persistent instances (a closed port would flip them unhealthy through
/// Raft, adding writes the story does not make). Returns their addresses.
pub async fn health_listeners(ip: &str, n: usize) -> Result<(Vec<Address>, JoinHandle<()>)> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(tokio::net::TcpListener::bind((ip, 0)).await.with_context(|| format!("binding {ip}"))?);
    }
    let addresses = listeners
        .iter()
        .map(|l| l.local_addr().map(|a: SocketAddr| a.to_string()))
        .collect::<std::io::Result<Vec<_>>>()?;
    let task = tokio::spawn(async move {
        let accepts = listeners.into_iter().map(|l| async move {
            while let Ok((socket, _)) = l.accept().await {
                drop(socket);
            }
        });
        futures::future::join_all(accepts).await;
    });
    Ok((addresses, task))
}

/// A line an `sdk-client --commands` process prints.
enum Said {
    Ready,
    Done(u64, Result<(), String>),
}

/// An `sdk-client --commands` process: the official Rust Nacos client,
/// driven over stdin. Killed (SIGKILL) when dropped.
pub struct SdkClient {
    child: Child,
    stdin: ChildStdin,
    said: mpsc::Receiver<Said>,
    next: u64,
    /// The last view pushed per service: sorted `ip:port:healthy`.
    pub views: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    /// The member names it was given.
    pub servers: Vec<String>,
}

impl SdkClient {
    /// Starts a client of `servers` (member names, gRPC on 9848) and waits
    /// until it is connected.
    pub fn start(servers: &[String]) -> Result<SdkClient> {
        super::env::blocking(|| Self::start_blocking(servers))
    }

    fn start_blocking(servers: &[String]) -> Result<SdkClient> {
        let bin = binary("roster-e2e", "sdk-client")?;
        let mut child = Command::new(bin)
            .args(["--server", &servers.join(","), "--grpc-port", "9848", "--commands"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning sdk-client")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let views = Arc::new(Mutex::new(BTreeMap::new()));
        let (tx, said) = mpsc::channel();
        let pushed = views.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
                let mut words = line.splitn(3, ' ');
                let message = match (words.next(), words.next(), words.next()) {
                    (Some("ready"), None, None) => Said::Ready,
                    (Some("push"), Some(service), Some(hosts)) => {
                        let hosts =
                            if hosts == "-" { Vec::new() } else { hosts.split(',').map(str::to_owned).collect() };
                        if let Ok(mut views) = pushed.lock() {
                            views.insert(service.to_owned(), hosts);
                        }
                        continue;
                    }
                    (Some("done"), Some(id), Some(rest)) => {
                        let Ok(id) = id.parse() else { continue };
                        Said::Done(id, if rest == "ok" { Ok(()) } else { Err(rest.to_owned()) })
                    }
                    _ => continue,
                };
                if tx.send(message).is_err() {
                    return;
                }
            }
        });
        let mut client = SdkClient { child, stdin, said, next: 0, views, servers: servers.to_vec() };
        match client.said.recv_timeout(Duration::from_secs(30)) {
            Ok(Said::Ready) => Ok(client),
            _ => {
                client.kill();
                bail!("sdk-client of {servers:?} did not connect within 30 s")
            }
        }
    }

    /// Sends one command (`register <service> <ip> <port>`, `subscribe
    /// <service>`) and waits (bounded) for its answer.
    pub fn command(&mut self, command: &str) -> Result<()> {
        super::env::blocking(|| self.command_blocking(command))
    }

    fn command_blocking(&mut self, command: &str) -> Result<()> {
        self.next += 1;
        let id = self.next;
        writeln!(self.stdin, "{id} {command}").and_then(|()| self.stdin.flush()).context("writing to sdk-client")?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.said.recv_timeout(left) {
                Ok(Said::Done(got, result)) if got == id => return result.map_err(|e| anyhow!("{command}: {e}")),
                Ok(_) => continue,
                Err(_) => bail!("{command}: no answer within 15 s"),
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills (SIGKILL) and reaps it.
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
