//! r-nacos 0.8.5, the peer the benchmark measures Roster against: its
//! binary (unpacked once from the project's `shared/peers` archive into a
//! cache folder and checked against `SHA256SUMS`), a cluster of its
//! members on loopback, and the two things the scenarios need from it that
//! the Nacos protocols do not give: its instance count and when it formed.
//!
//! Every member runs with r-nacos' defaults except the addresses and Raft
//! wiring that a cluster needs (`shared/peers/README.md`) and `RUST_LOG=warn`
//! (at `info` it logs every request).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::cluster::Endpoint;
use super::process::PeerProcess;

/// The archive name under `shared/peers`.
const ARCHIVE: &str = "rnacos-0.8.5.xz";
/// The unpacked binary's name in `SHA256SUMS` and in the cache.
const BINARY: &str = "rnacos";

/// The folder holding peer binaries between runs: `$ROSTER_PEERS_CACHE`,
/// else `$XDG_CACHE_HOME/roster-peers`, else `~/.cache/roster-peers`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROSTER_PEERS_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("roster-peers")
}

/// The `shared/peers` folder: `$ROSTER_PEERS_DIR`, else the first
/// `shared/peers` holding the archive above this crate or the current folder
/// (the project keeps `shared/` beside its checkouts).
fn peers_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ROSTER_PEERS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let here = std::env::current_dir().ok();
    let starts = [Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))), here];
    starts
        .iter()
        .flatten()
        .flat_map(|s| s.ancestors().map(Path::to_path_buf).collect::<Vec<_>>())
        .map(|a| a.join("shared").join("peers"))
        .find(|p| p.join(ARCHIVE).is_file())
}

/// The r-nacos binary: `$ROSTER_RNACOS`, else the cached copy, else
/// unpacked from the archive into the cache (with `xz`) and checked.
pub fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ROSTER_RNACOS") {
        return Ok(PathBuf::from(path));
    }
    let cached = cache_dir().join(BINARY);
    if cached.is_file() {
        return Ok(cached);
    }
    let peers = peers_dir()
        .ok_or_else(|| anyhow!("{ARCHIVE} not found in any shared/peers (set ROSTER_PEERS_DIR or ROSTER_RNACOS)"))?;
    let sums = std::fs::read_to_string(peers.join("SHA256SUMS")).context("reading SHA256SUMS")?;
    let expected = sums
        .lines()
        .find_map(|l| l.strip_suffix(BINARY).map(str::trim).filter(|h| h.len() == 64))
        .ok_or_else(|| anyhow!("no {BINARY} line in SHA256SUMS"))?
        .to_owned();
    std::fs::create_dir_all(cache_dir()).context("creating the peers cache")?;
    let out = std::process::Command::new("xz")
        .arg("-dc")
        .arg(peers.join(ARCHIVE))
        .output()
        .context("running xz to unpack r-nacos")?;
    if !out.status.success() {
        bail!("xz failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &out.stdout);
    let actual: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    if actual != expected {
        bail!("unpacked r-nacos has SHA-256 {actual}, SHA256SUMS says {expected}");
    }
    // Written aside and renamed, so a concurrent run never sees half a file.
    let partial = cache_dir().join(format!("{BINARY}.{}.partial", std::process::id()));
    std::fs::write(&partial, &out.stdout).context("writing r-nacos")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&partial, &cached).context("placing r-nacos in the cache")?;
    Ok(cached)
}

/// Members of one r-nacos cluster, each on its own loopback address.
#[derive(Debug)]
pub struct Members {
    /// Data folders and logs (removed with the cluster).
    dir: tempfile::TempDir,
    binary: PathBuf,
    /// Every address reserved; the first `processes.len()` are in use.
    ips: Vec<String>,
    processes: Vec<PeerProcess>,
}

/// The main HTTP port; gRPC is 1000 above it (both Nacos' defaults).
const HTTP_PORT: u16 = 8848;

impl Members {
    /// Reserves `ips` (nothing starts yet).
    pub fn new(ips: Vec<String>) -> Result<Members> {
        Ok(Members {
            dir: tempfile::tempdir().context("temporary folder")?,
            binary: binary()?,
            ips,
            processes: Vec::new(),
        })
    }

    /// Starts the next member: the first initialises the Raft group, the
    /// others join it through the first. Returns its endpoint once `/health`
    /// answers.
    pub async fn spawn(&mut self) -> Result<Endpoint> {
        let index = self.processes.len();
        let ip =
            self.ips.get(index).cloned().ok_or_else(|| anyhow!("no address reserved for another r-nacos member"))?;
        let data = self.dir.path().join(format!("member-{}", index + 1));
        std::fs::create_dir_all(&data)?;
        let grpc_port = HTTP_PORT + 1000;
        let mut envs: Vec<(String, String)> = [
            ("RNACOS_SDK_HOST", ip.clone()),
            ("RNACOS_CONSOLE_HOST", ip.clone()),
            ("RNACOS_HTTP_PORT", HTTP_PORT.to_string()),
            ("RNACOS_GRPC_PORT", grpc_port.to_string()),
            ("RNACOS_DATA_DIR", data.to_string_lossy().into_owned()),
            ("RNACOS_RAFT_NODE_ID", (index + 1).to_string()),
            ("RNACOS_RAFT_NODE_ADDR", format!("{ip}:{grpc_port}")),
            ("RNACOS_RAFT_AUTO_INIT", (index == 0).to_string()),
            ("RUST_LOG", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if index > 0 {
            envs.push(("RNACOS_RAFT_JOIN_ADDR".into(), format!("{}:{grpc_port}", self.ips[0])));
        }
        // It reads a `.env` from its working folder and those above: the
        // data folder (in a fresh temporary folder) has none.
        let log = data.join("rnacos.log");
        let mut process = PeerProcess::spawn(format!("r-nacos {ip}"), &self.binary, &[], &envs, &data, log)?;
        let http: SocketAddr = format!("{ip}:{HTTP_PORT}").parse()?;
        let endpoint = Endpoint { http, grpc: format!("{ip}:{grpc_port}").parse()?, pid: Some(process.pid()) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !healthy(http).await {
            process.check_running()?;
            if Instant::now() > deadline {
                bail!("{} not healthy within 30 s: {}", process.name, process.log_tail(5));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.processes.push(process);
        Ok(endpoint)
    }
}

impl Members {
    /// The end of every member's log, to explain a failure.
    pub fn log_tails(&self) -> String {
        self.processes
            .iter()
            .map(|p| {
                let panics = p.log_lines_with("panicked");
                let panics = if panics.is_empty() { String::new() } else { format!("{panics}\n   ...\n") };
                format!("[{}] {panics}{}", p.name, p.log_tail(12))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn healthy(http: SocketAddr) -> bool {
    match reqwest::get(format!("http://{http}/health")).await {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

/// The instances a member holds in the `public` namespace: the sum of
/// `ipCount` over its service catalogue (r-nacos has no status counter
/// other than a metric collected every 15 s).
pub async fn instance_count(http: SocketAddr) -> Option<u64> {
    let url = format!("http://{http}/nacos/v1/ns/catalog/services?namespaceId=public");
    let v: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    Some(v["serviceList"].as_array()?.iter().filter_map(|s| s["ipCount"].as_u64()).sum())
}

/// Waits until a probe instance registered on the first member is listed by
/// every member (their naming sync works), then removes it.
pub async fn wait_formed(nodes: &[Endpoint], limit: Duration) -> Result<()> {
    let first = nodes.first().context("no members")?.http;
    let http = reqwest::Client::new();
    let probe = [("serviceName", "bench-probe"), ("ip", "127.63.0.1"), ("port", "1")];
    let deadline = Instant::now() + limit;
    let url = |n: SocketAddr| format!("http://{n}/nacos/v1/ns/instance");
    let mut registered = false;
    for node in nodes {
        loop {
            if !registered {
                registered = http.post(url(first)).query(&probe).send().await.is_ok_and(|r| r.status().is_success());
            }
            let list = format!("http://{}/nacos/v1/ns/instance/list?serviceName=bench-probe", node.http);
            let seen = match http.get(list).send().await {
                Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["hosts"].as_array().map(Vec::len)),
                Err(_) => None,
            };
            if registered && seen == Some(1) {
                break;
            }
            if Instant::now() > deadline {
                bail!("r-nacos member {} did not list the probe instance within {limit:?}", node.http);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let removed = http.delete(url(first)).query(&probe).send().await.context("removing the probe")?;
    if !removed.status().is_success() {
        bail!("removing the probe instance: HTTP {}", removed.status());
    }
    Ok(())
}
