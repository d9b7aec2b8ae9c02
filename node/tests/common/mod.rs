//! Shared helpers for the node's integration tests: an in-process node on
//! ephemeral loopback ports and bounded polling.
#![allow(dead_code)]

pub mod address_server;
pub mod grpc;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use roster_node::{Config, RunningNode};

/// A fresh data directory for one node of this test process, under
/// cargo's per-target temporary directory (`target/tmp`).
pub fn data_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("node-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The cluster secret every node of this test process shares: random,
/// made once per process.
pub fn cluster_secret() -> String {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| roster_node::security::ClusterSecret::generate_hex().expect("random secret")).clone()
}

/// A config for tests: loopback, ephemeral ports, short timers, its own
/// data directory, the process's cluster secret, and no health checks of
/// persistent instances (tests register them at addresses that must never
/// be contacted).
pub fn test_config() -> Config {
    let mut config =
        Config { bind: "127.0.0.1".parse().expect("loopback"), port: 0, data_dir: data_dir(), ..Config::default() };
    config.push.delay = Duration::from_millis(20);
    config.push.retry_delay = Duration::from_millis(200);
    config.beats.check_interval = Duration::from_millis(100);
    config.raft.election_timeout_min = Duration::from_millis(150);
    config.raft.election_timeout_max = Duration::from_millis(300);
    config.raft.heartbeat_interval = Duration::from_millis(50);
    config.raft.health_check_interval = Duration::ZERO;
    config.security.cluster_secret = Some(cluster_secret());
    config
}

/// A random cluster secret that no node of this test process holds.
pub fn other_secret() -> roster_node::security::ClusterSecret {
    let hex = roster_node::security::ClusterSecret::generate_hex().expect("random secret");
    roster_node::security::ClusterSecret::new(hex.as_bytes()).expect("a random secret is strong")
}

/// A form request to `url` with `x-roster-forwarded-by: by`, signed over
/// its method, path and body by `signer` (a secret and the member name it
/// signs as), as a member forwarding a client's write sends it.
pub fn forwarded_request(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    params: &[(&str, String)],
    by: &str,
    signer: Option<(&roster_node::security::ClusterSecret, &str)>,
) -> reqwest::Request {
    let mut request = client
        .request(method.clone(), url)
        .header("x-roster-forwarded-by", by)
        .form(params)
        .build()
        .expect("a request");
    if let Some((secret, name)) = signer {
        let body = request.body().and_then(reqwest::Body::as_bytes).unwrap_or_default().to_vec();
        let path = request.url().path().to_owned();
        roster_node::security::PeerAuth::new(secret, name).sign(request.headers_mut(), method.as_str(), &path, &body);
    }
    request
}

/// The value of the Prometheus line that starts with `series` (the metric
/// name and its labels) in `text`, 0 if absent.
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// A TCP connection to `to` from the local (loopback) address `from`.
pub async fn connect_from(from: std::net::IpAddr, to: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// The token signing key [`auth_dir`] writes.
pub const AUTH_KEY: &[u8] = b"test-signing-key-0123456789-abcdefghijklmnop";

/// Writes `token-key` ([`AUTH_KEY`]) and `users.json` into a fresh
/// directory for `--auth-dir`: `admin` (admin role), `viewer` (read-only
/// role) and `team` (read-write in namespace `team-a` only). Each password
/// is the user name + `-pw`.
pub fn auth_dir() -> PathBuf {
    use roster_node::auth::password::{PasswordHash, MIN_ITERATIONS};
    let dir = data_dir().with_extension("auth");
    std::fs::create_dir_all(&dir).expect("auth dir");
    std::fs::write(dir.join("token-key"), [AUTH_KEY, b"\n"].concat()).expect("key");
    let hash = |pw: &str| PasswordHash::new(pw, MIN_ITERATIONS).expect("hash").encode();
    let users = serde_json::json!({"users": [
        {"username": "admin", "password": hash("admin-pw"), "role": "admin"},
        {"username": "viewer", "password": hash("viewer-pw"), "role": "read-only"},
        {"username": "team", "password": hash("team-pw"), "permissions": {"team-a": "read-write"}},
    ]});
    std::fs::write(dir.join("users.json"), users.to_string()).expect("users");
    dir
}

/// Starts a node with `config`.
pub async fn start(config: Config) -> RunningNode {
    roster_node::start(config).await.expect("node starts")
}

/// Polls `check` every 50 ms until it returns `Some`, failing after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every node of a cluster is ready (its Distro snapshot
/// loaded) and sees every one of `members` as sharing the Distro tags. Only
/// then is responsibility split, and it stays split: before, a node that
/// has loaded but not yet heard that its peers have keeps every tag itself.
pub async fn responsibility_split(nodes: &[RunningNode], members: &[String]) {
    let mut members = members.to_vec();
    members.sort();
    eventually("every member ready and sharing the Distro tags", Duration::from_secs(30), || async {
        for node in nodes {
            let url = format!("{}/nacos/v1/console/health/readiness", http_base(node));
            let ready = reqwest::get(url).await.ok()?;
            (ready.status() == 200).then_some(())?;
            (node.membership().responsibility().candidates() == members.as_slice()).then_some(())?;
        }
        Some(())
    })
    .await;
}

/// Base URL of a node's main HTTP port, e.g. `http://127.0.0.1:40123`.
pub fn http_base(node: &RunningNode) -> String {
    format!("http://{}", node.http_addr)
}

/// Sends a v1 API request with `params` in the query string, as Nacos SDKs
/// do for GET and DELETE; returns the status and the body text.
pub async fn http_query(method: reqwest::Method, url: &str, params: &[(&str, &str)]) -> (u16, String) {
    let resp = reqwest::Client::new().request(method, url).query(params).send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("HTTP body"))
}

/// Sends a v1 API request with `params` as an `application/x-www-form-urlencoded`
/// body, as Nacos SDKs do for POST and PUT; returns the status and the body text.
pub async fn http_form(method: reqwest::Method, url: &str, params: &[(&str, &str)]) -> (u16, String) {
    let resp = reqwest::Client::new().request(method, url).form(params).send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("HTTP body"))
}

/// `GET` with query `params` that must answer 200 with JSON.
pub async fn http_json(url: &str, params: &[(&str, &str)]) -> serde_json::Value {
    let (status, body) = http_query(reqwest::Method::GET, url, params).await;
    assert_eq!(status, 200, "GET {url} {params:?} answered {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url} answered non-JSON ({e}): {body}"))
}

/// Writes `text` atomically (write + rename), as editors and ConfigMap
/// updates do, so a node polling the file never reads half of it.
pub fn write_conf(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write cluster.conf");
    std::fs::rename(&tmp, path).expect("rename cluster.conf");
}

/// `n` loopback addresses that no other call in this test process gets (the
/// tests of every module share one process and run concurrently), in a
/// range picked by the process id so that concurrent test runs stay apart:
/// each test's members can use the standard port 8848 without colliding.
pub fn loopback_ips(n: u32) -> Vec<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let call = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let second = 180 + pid % 70;
    let third = (pid / 70).wrapping_add(call) % 250 + 2;
    (1..=n).map(|i| format!("127.{second}.{third}.{i}")).collect()
}

/// Writes a `cluster.conf` naming a member on port 8848 of each of `ips`
/// into `dir`; returns its path and the member names.
pub fn member_file(dir: &std::path::Path, ips: &[String]) -> (PathBuf, Vec<String>) {
    let conf = dir.join("cluster.conf");
    let members: Vec<String> = ips.iter().map(|ip| format!("{ip}:8848")).collect();
    std::fs::write(&conf, members.join("\n")).expect("conf");
    (conf, members)
}

/// [`test_config`] for the member on `ip`:8848 that reads its members from
/// `conf`, with member reports every 100 ms.
pub fn member_config(ip: &str, conf: &std::path::Path) -> Config {
    let mut config = test_config();
    config.bind = ip.parse().expect("ip");
    config.port = 8848;
    config.advertise = Some(format!("{ip}:8848"));
    config.cluster.lookup.mode = roster_node::cluster::LookupMode::File;
    config.cluster.lookup.cluster_conf = conf.to_path_buf();
    config.cluster.report_interval = Duration::from_millis(100);
    config
}

/// Three members of one cluster on loopback addresses of their own, each
/// with [`member_config`] changed by `tune`, started and waited for: the
/// Distro responsibility split and a Raft leader known everywhere. The
/// directory holds their `cluster.conf`.
pub async fn start_ready_cluster(tune: impl Fn(&mut Config)) -> (tempfile::TempDir, Vec<RunningNode>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ips = loopback_ips(3);
    let (conf, members) = member_file(dir.path(), &ips);
    let mut nodes = Vec::new();
    for ip in &ips {
        let mut config = member_config(ip, &conf);
        config.cluster.lookup.file_poll_interval = Duration::from_millis(100);
        config.cluster.report_timeout = Duration::from_millis(300);
        tune(&mut config);
        nodes.push(start(config).await);
    }
    responsibility_split(&nodes, &members).await;
    eventually("a Raft leader everywhere", Duration::from_secs(20), || async {
        nodes.iter().all(|n| n.raft().has_leader()).then_some(())
    })
    .await;
    (dir, nodes)
}
