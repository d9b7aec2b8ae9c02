//! Server-side health checks of persistent instances (Nacos checks them from
//! the server because no client beats for them).
//!
//! Only the Raft leader checks, every `--health-check-interval`; a verdict that
//! changes an instance's health is committed through Raft ([`Command::SetHealth`]),
//! so every member applies it and pushes it to its subscribers.
//!
//! The check is a TCP connect by default. An instance chooses another with
//! its metadata: `preserved.health.checker` = `TCP`, `HTTP` (a `GET` of
//! `preserved.health.check.path`, default `/`, answered 2xx or 3xx) or `NONE`.
//! An instance turns unhealthy after [`FAILURES_TO_UNHEALTHY`] failed checks
//! in a row and healthy again after one passed check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use openraft::ServerState;
use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info};

use super::command::Command;
use super::metrics::RaftMetricSet;
use super::state_machine::SmState;
use super::types::{NodeId, Raft};
use crate::naming::{Instance, InstanceKey, ServiceKey};

/// Metadata key choosing the check: `TCP` (default), `HTTP` or `NONE`.
pub const META_HEALTH_CHECKER: &str = "preserved.health.checker";
/// Metadata key with the path of an `HTTP` check (default `/`).
pub const META_HEALTH_CHECK_PATH: &str = "preserved.health.check.path";
/// Failed checks in a row that make an instance unhealthy.
pub const FAILURES_TO_UNHEALTHY: u32 = 2;
/// Checks running at once.
const CONCURRENCY: usize = 32;

/// How an instance is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Connect to ip:port.
    Tcp,
    /// `GET path` on ip:port; healthy on 2xx or 3xx.
    Http(String),
    /// Not checked.
    None,
}

/// The check an instance asks for.
pub fn check_for(instance: &Instance) -> Check {
    match instance.metadata.get(META_HEALTH_CHECKER).map(|s| s.trim().to_ascii_uppercase()).as_deref() {
        Some("HTTP") => {
            let path = instance.metadata.get(META_HEALTH_CHECK_PATH).map(|p| p.trim()).unwrap_or("/");
            Check::Http(if path.starts_with('/') { path.to_string() } else { format!("/{path}") })
        }
        Some("NONE") => Check::None,
        _ => Check::Tcp,
    }
}

/// The health to commit after a check, if it changes: `failures` is the count
/// of failed checks in a row *including* this one when `passed` is false.
pub fn verdict(healthy: bool, passed: bool, failures: u32) -> Option<bool> {
    match (healthy, passed) {
        (false, true) => Some(true),
        (true, false) if failures >= FAILURES_TO_UNHEALTHY => Some(false),
        _ => None,
    }
}

fn socket_address(ip: &str, port: u16) -> String {
    if ip.contains(':') && !ip.starts_with('[') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Runs one check within `timeout`.
pub async fn probe(ip: &str, port: u16, check: &Check, timeout: Duration) -> bool {
    let address = socket_address(ip, port);
    let attempt = async {
        match check {
            Check::None => true,
            Check::Tcp => TcpStream::connect(&address).await.is_ok(),
            Check::Http(path) => http_ok(&address, path).await.unwrap_or(false),
        }
    };
    tokio::time::timeout(timeout, attempt).await.unwrap_or(false)
}

async fn http_ok(address: &str, path: &str) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: Roster-Health-Check\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = [0u8; 64];
    let mut len = 0;
    while len < buf.len() {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&buf[..len]);
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    Ok(line.starts_with("HTTP/") && code.is_some_and(|c| (200..400).contains(&c)))
}

/// Whether member `id` leads now (its own view): the leader's jobs (health
/// checks, clearing overrides) run only there.
pub(super) fn leads(raft: &Raft, id: NodeId) -> bool {
    let m = raft.metrics();
    let m = m.borrow();
    m.state == ServerState::Leader && m.current_leader == Some(id)
}

/// The checker task.
pub struct HealthChecker {
    /// The local Raft (verdicts are written through it, as leader).
    pub raft: Raft,
    /// Its id.
    pub id: NodeId,
    /// The replicated data (the instances to check).
    pub state: Arc<RwLock<SmState>>,
    /// Time between rounds.
    pub interval: Duration,
    /// Timeout of one check.
    pub timeout: Duration,
    /// Where to count verdicts.
    pub metrics: Arc<RaftMetricSet>,
}

impl HealthChecker {
    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures: HashMap<(ServiceKey, InstanceKey), u32> = HashMap::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if !leads(&self.raft, self.id) {
                failures.clear();
                continue;
            }
            let instances = self.state.read().data.instances();
            let timeout = self.timeout;
            let results: Vec<(ServiceKey, Instance, bool)> = stream::iter(instances)
                .map(|(service, instance)| async move {
                    let passed = probe(&instance.ip, instance.port, &check_for(&instance), timeout).await;
                    (service, instance, passed)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let mut seen = HashMap::new();
            for (service, instance, passed) in results {
                let key = (service.clone(), instance.key());
                let count = if passed { 0 } else { failures.get(&key).copied().unwrap_or(0) + 1 };
                seen.insert(key.clone(), count);
                let Some(healthy) = verdict(instance.healthy, passed, count) else { continue };
                info!(service = %service, instance = %key.1, healthy, "persistent instance health changed");
                let cmd = Command::SetHealth { service, instance: key.1, healthy };
                match self.raft.client_write(cmd).await {
                    Ok(_) => self.metrics.health_verdict(healthy),
                    Err(e) => debug!(error = %e, "health verdict not committed (no longer leader?)"),
                }
            }
            failures = seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn inst(meta: &[(&str, &str)]) -> Instance {
        Instance {
            ip: "127.0.0.1".into(),
            port: 1,
            weight: 1.0,
            healthy: true,
            enabled: true,
            ephemeral: false,
            cluster: "DEFAULT".into(),
            metadata: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn metadata_chooses_the_check() {
        assert_eq!(check_for(&inst(&[])), Check::Tcp);
        assert_eq!(check_for(&inst(&[(META_HEALTH_CHECKER, "http")])), Check::Http("/".into()));
        assert_eq!(
            check_for(&inst(&[(META_HEALTH_CHECKER, "HTTP"), (META_HEALTH_CHECK_PATH, "health")])),
            Check::Http("/health".into())
        );
        assert_eq!(check_for(&inst(&[(META_HEALTH_CHECKER, "none")])), Check::None);
        assert_eq!(check_for(&inst(&[(META_HEALTH_CHECKER, "carrier pigeon")])), Check::Tcp);
    }

    #[test]
    fn verdicts_need_two_failures_and_one_success() {
        assert_eq!(verdict(true, true, 0), None);
        assert_eq!(verdict(true, false, 1), None);
        assert_eq!(verdict(true, false, 2), Some(false));
        assert_eq!(verdict(false, false, 5), None);
        assert_eq!(verdict(false, true, 0), Some(true));
        assert_eq!(socket_address("::1", 80), "[::1]:80");
        assert_eq!(socket_address("127.0.0.1", 80), "127.0.0.1:80");
    }

    #[tokio::test]
    async fn tcp_and_http_probes_on_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let Ok((mut s, _)) = listener.accept().await else { return };
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
            }
        });
        let t = Duration::from_secs(2);
        assert!(probe("127.0.0.1", port, &Check::Http("/".into()), t).await);
        assert!(!probe("127.0.0.1", port, &Check::Http("/".into()), t).await);
        server.await.expect("server");
        // Nothing listens any more.
        assert!(!probe("127.0.0.1", port, &Check::Tcp, t).await);
        assert!(probe("127.0.0.1", port, &Check::None, t).await);
    }
}
