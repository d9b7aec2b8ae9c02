//! etcd 3.4 (Debian's `etcd-server`), the reference for persistent writes:
//! a cluster of three members on loopback with etcd's defaults (every
//! write fsync'd on a majority before it is answered), loaded with 256-byte
//! puts through its v3 HTTP/JSON gateway (`POST /v3/kv/put`), so no etcd
//! client library is needed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

use super::process::PeerProcess;
use super::scenarios::{drive, merge, replication, Settings};
use super::stats::{per_second, round3};
use crate::loopback_ips;

/// The etcd binary: `$ROSTER_ETCD`, else `etcd` on the `PATH`; `None` when
/// it is not installed.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROSTER_ETCD") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("etcd")).find(|p| p.is_file())
}

/// A running etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    /// Client URLs' addresses, in member order.
    pub members: Vec<SocketAddr>,
    _processes: Vec<PeerProcess>,
    _dir: tempfile::TempDir,
}

const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;

impl EtcdCluster {
    /// Starts `n` members (one loopback address each, standard ports) as
    /// one new cluster and waits until every member reports itself healthy
    /// (which needs a leader).
    pub async fn start(n: usize) -> Result<EtcdCluster> {
        let program = binary().ok_or_else(|| anyhow!("etcd is not installed (Debian: apt-get install etcd-server)"))?;
        let ips = loopback_ips(u8::try_from(n).context("too many members")?);
        let dir = tempfile::tempdir().context("temporary folder")?;
        let initial: Vec<String> =
            ips.iter().enumerate().map(|(i, ip)| format!("m{i}=http://{ip}:{PEER_PORT}")).collect();
        let mut processes = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            let data = dir.path().join(format!("m{i}"));
            let args: Vec<String> = [
                ("--name", format!("m{i}")),
                ("--data-dir", data.to_string_lossy().into_owned()),
                ("--listen-client-urls", format!("http://{ip}:{CLIENT_PORT}")),
                ("--advertise-client-urls", format!("http://{ip}:{CLIENT_PORT}")),
                ("--listen-peer-urls", format!("http://{ip}:{PEER_PORT}")),
                ("--initial-advertise-peer-urls", format!("http://{ip}:{PEER_PORT}")),
                ("--initial-cluster", initial.join(",")),
                ("--initial-cluster-state", "new".into()),
                ("--initial-cluster-token", format!("roster-bench-{}", std::process::id())),
                ("--log-level", "warn".into()),
            ]
            .into_iter()
            .flat_map(|(k, v)| [k.to_owned(), v])
            .collect();
            let log = dir.path().join(format!("m{i}.log"));
            processes.push(PeerProcess::spawn(format!("etcd {ip}"), &program, &args, &[], dir.path(), log)?);
        }
        let members: Vec<SocketAddr> =
            ips.iter().map(|ip| format!("{ip}:{CLIENT_PORT}").parse()).collect::<Result<_, _>>()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        for (m, p) in members.iter().zip(processes.iter_mut()) {
            loop {
                let health = reqwest::get(format!("http://{m}/health")).await;
                let ok = match health {
                    Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["health"] == "true"),
                    Err(_) => false,
                };
                if ok {
                    break;
                }
                p.check_running()?;
                if Instant::now() > deadline {
                    bail!("{} not healthy within 60 s: {}", p.name, p.log_tail(5));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(EtcdCluster { members, _processes: processes, _dir: dir })
    }

    /// Keys under `prefix` one member holds (a serializable, local read).
    async fn count(&self, http: &reqwest::Client, member: SocketAddr, prefix: &str) -> Option<u64> {
        let b64 = base64::engine::general_purpose::STANDARD;
        // The range [prefix, prefix with its last byte + 1) is every key under it.
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let body =
            json!({"key": b64.encode(prefix), "range_end": b64.encode(end), "count_only": true, "serializable": true});
        let r = http.post(format!("http://{member}/v3/kv/range")).json(&body).send().await.ok()?;
        let v: Value = r.json().await.ok()?;
        // int64 fields are strings in the gateway's JSON; a zero count is left out.
        Some(v["count"].as_str().and_then(|c| c.parse().ok()).unwrap_or(0))
    }
}

/// `persistent` against etcd: `s.operations` puts of `s.value_bytes`-byte
/// values under distinct keys from `s.workers` writers over `s.connections`
/// HTTP clients, spread over the members; then the time until every member
/// holds them all.
pub async fn persistent(etcd: &EtcdCluster, s: &Settings) -> Result<Value> {
    let clients: Vec<reqwest::Client> = (0..s.connections)
        .map(|_| reqwest::Client::builder().timeout(super::client::REQUEST_TIMEOUT).build())
        .collect::<Result<_, _>>()?;
    let value = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; s.value_bytes]);
    let prefix = format!("bench/{}/", fastrand::u64(..));
    let members = etcd.members.clone();
    let shared = Arc::new((clients.clone(), value, prefix.clone(), members));
    let (t, elapsed) = drive(s.operations, s.workers, move |_, n| {
        let shared = shared.clone();
        async move {
            let (clients, value, prefix, members) = &*shared;
            let key = base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{n:08}"));
            let url = format!("http://{}/v3/kv/put", members[n % members.len()]);
            let r = clients[n % clients.len()].post(url).json(&json!({"key": key, "value": value})).send().await?;
            let status = r.status();
            let v: Value = r.json().await?;
            if !status.is_success() || v.get("header").is_none() {
                bail!("put answered HTTP {status}: {v}");
            }
            Ok(())
        }
    })
    .await?;
    let start = Instant::now();
    let limit = Duration::from_secs(60);
    let replicated = loop {
        let mut all = true;
        for m in &etcd.members {
            all &= etcd.count(&clients[0], *m, &prefix).await == Some(t.ok);
        }
        if all {
            break Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            break Err(anyhow!("not every member holds {} keys after {limit:?}", t.ok));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut out = json!({
        "members": etcd.members.len(), "writers": s.workers, "value_bytes": s.value_bytes,
        "sent": s.operations, "acknowledged": t.ok, "errors": t.errors, "first_error": t.first_error,
        "elapsed_secs": round3(elapsed.as_secs_f64()),
        "throughput_per_sec": per_second(t.ok, elapsed), "latency": t.latency.summary(),
    });
    merge(&mut out, replication(replicated));
    Ok(out)
}
