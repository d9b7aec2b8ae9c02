//! What an unauthenticated client can do to a node (issue #18), as an
//! attacker would do it, against the real `roster-node` binary so that the
//! node's own memory is measured (`VmRSS` of its process): a flood of 1 MB
//! request types, 1 000+ slowloris sockets, 3 000 connections that send
//! only the HTTP/2 preface. Each test fails on a node without the fix (the
//! label set grows, the sockets stay open, the probe is refused) and
//! passes with it. Replayed peer signatures, input validation and the
//! bounded tables are in `hardening_input.rs`.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roster_proto::nacos::request_client::RequestClient;
use roster_proto::nacos::{Metadata, Payload};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;

use common::{connect_from, eventually, metric};

/// A `roster-node` process on 127.0.0.1 with ephemeral ports, killed by
/// its handle when dropped.
struct NodeProcess {
    child: Child,
    http: SocketAddr,
    grpc: SocketAddr,
    admin: Option<SocketAddr>,
    _data: tempfile::TempDir,
}

impl NodeProcess {
    /// Starts the binary with `extra` flags and waits for its "serving" line.
    fn start(extra: &[&str]) -> NodeProcess {
        let data = tempfile::tempdir().expect("data dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_roster-node"))
            .args(["--bind", "127.0.0.1", "--port", "0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(data.path())
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn roster-node");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep draining the log, or the node blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                if v["fields"]["message"] == "roster node serving" {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(v["fields"].clone());
                    }
                }
            }
        });
        let fields = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(fields) => fields,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("roster-node did not start within 30 s");
            }
        };
        let addr = |name: &str| -> SocketAddr {
            fields[name].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("{name} in {fields}"))
        };
        // `admin` is logged as `Some(addr)` or `None`.
        let admin = fields["admin"].as_str().and_then(|a| a.strip_prefix("Some(")?.strip_suffix(')')?.parse().ok());
        NodeProcess { http: addr("http"), grpc: addr("grpc"), admin, child, _data: data }
    }

    /// The node's resident memory, KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.http)).await.expect("metrics").text().await.expect("text")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the server has closed `stream`: reads whatever it sent until
/// the end, an error, or nothing more for now.
fn closed_by_server(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Waits until the server closes `stream`, at most until `deadline`.
async fn wait_closed(stream: &mut TcpStream, deadline: tokio::time::Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_huge_request_types_leaves_rss_and_metrics_bounded() {
    // The flood runs on one connection that never sets up; give it longer
    // than the flood takes on a loaded machine (an attacker would reconnect).
    let node = NodeProcess::start(&["--grpc-setup-timeout", "120s"]);
    let channel = Channel::from_shared(format!("http://{}", node.grpc)).expect("uri").connect().await.expect("gRPC");
    let mut client = RequestClient::new(channel);
    let request = |type_name: String| Payload {
        metadata: Some(Metadata { r#type: type_name, client_ip: "127.0.0.1".into(), headers: HashMap::new() }),
        body: Some(prost_types::Any { type_url: String::new(), value: b"{}".to_vec() }),
    };
    // Warm up the node's allocator with a few messages of the same size.
    for i in 0..10 {
        let _ = client.request(request(format!("Warm{i}{}", "W".repeat(1024 * 1024)))).await.expect("answered");
    }
    let _ = node.metrics().await;
    let before = node.rss_kib();
    let flood = 160;
    for i in 0..flood {
        let answer = client.request(request(format!("Made{i:04}{}", "X".repeat(1024 * 1024)))).await;
        let answer = answer.expect("every request is answered");
        let body: Value = serde_json::from_slice(&answer.get_ref().body.as_ref().expect("body").value).expect("json");
        assert_eq!(body["resultCode"], 500, "{body}");
    }
    let metrics = node.metrics().await;
    let after = node.rss_kib();
    // Every made-up type is counted in the one `other` series.
    let series: Vec<&str> = metrics.lines().filter(|l| l.starts_with("roster_grpc_requests_total{")).collect();
    assert!(series.iter().all(|l| l.len() < 200), "a label carries client text: {:.300}", series.join("\n"));
    let other: u64 = series
        .iter()
        .filter(|l| l.contains("type=\"other\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(other, flood + 10);
    assert!(metrics.len() < 64 * 1024, "/metrics is {} bytes", metrics.len());
    // 160 MB went through; before the fix a third of it stayed, as labels.
    assert!(after < before + 48 * 1024, "RSS grew from {before} KiB to {after} KiB");
    println!("label flood: RSS {before} KiB -> {after} KiB, /metrics {} bytes", metrics.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_sockets_leave_the_probes_answering_and_are_closed_by_the_header_deadline() {
    let header_timeout = Duration::from_secs(2);
    let node = NodeProcess::start(&["--http-header-read-timeout", "2s", "--admin-port", "0"]);
    let ips = common::loopback_ips(2);
    let attacker: IpAddr = ips[0].parse().expect("ip");
    let kubelet: IpAddr = ips[1].parse().expect("ip");
    let started = tokio::time::Instant::now();
    let mut sockets = Vec::new();
    for _ in 0..1_050 {
        let Ok(mut socket) = connect_from(attacker, node.http).await else { continue };
        // An unfinished request head; refused sockets may be closed already.
        let _ = socket
            .write_all(b"GET /nacos/v1/ns/instance/list?serviceName=s HTTP/1.1\r\nHost: roster\r\nX-Slow: ")
            .await;
        sockets.push(socket);
    }
    let opened = started.elapsed();
    assert!(sockets.len() >= 1_000, "only {} sockets opened", sockets.len());
    // The probes answer within the kubelet's 1 s timeout while the sockets
    // hold what they can: from another address on the main port, and from
    // the attacking address itself on the admin port.
    let probe = |from: IpAddr| {
        reqwest::Client::builder().local_address(from).timeout(Duration::from_secs(1)).build().expect("client")
    };
    for (client, addr) in [(probe(kubelet), node.http), (probe(attacker), node.admin.expect("admin port"))] {
        for _ in 0..3 {
            let at = Instant::now();
            let answer = client.get(format!("http://{addr}/nacos/v1/console/health/liveness")).send().await;
            let answer = answer.unwrap_or_else(|e| panic!("liveness on {addr} not answered within 1 s: {e}"));
            assert_eq!(answer.status(), 200, "liveness on {addr}");
            assert!(at.elapsed() < Duration::from_secs(1));
        }
    }
    // Every socket is closed by the node within the header deadline
    // (counted from when the node accepted it), plus slack for a loaded
    // machine's accept queue.
    let deadline = started + opened + header_timeout + Duration::from_secs(5);
    let mut open = 0;
    for socket in &mut sockets {
        if !wait_closed(socket, deadline).await {
            open += 1;
        }
    }
    assert_eq!(open, 0, "{open} slowloris sockets still open {:?} after the first", started.elapsed());
    // Each socket was either refused by the per-IP cap or admitted and
    // closed by the header deadline; the first 256 were admitted (more if
    // the early ones timed out before the last was opened).
    let metrics = node.metrics().await;
    let per_ip = metric(&metrics, "roster_limit_rejections_total{limit=\"http_connections_per_ip\"}");
    let timeouts = metric(&metrics, "roster_limit_rejections_total{limit=\"http_header_timeout\"}");
    assert_eq!(per_ip + timeouts, sockets.len() as u64, "{per_ip} refused, {timeouts} timed out");
    assert!(timeouts >= 256 && per_ip > 0, "{per_ip} refused, {timeouts} timed out");
    println!("slowloris: {} sockets, {per_ip} refused by the per-IP cap, {timeouts} timed out", sockets.len());
}

/// The client connection preface and an empty SETTINGS frame: what an
/// HTTP/2 client sends first, and all these connections ever send.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// The value of `setting` in the first SETTINGS frame the server sends.
async fn server_setting(stream: &mut TcpStream, setting: u16) -> Option<u32> {
    let mut header = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut header)).await.ok()?.ok()?;
    let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    if header[3] != 0x4 {
        return None;
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.ok()?;
    payload
        .chunks_exact(6)
        .find(|c| u16::from_be_bytes([c[0], c[1]]) == setting)
        .map(|c| u32::from_be_bytes([c[2], c[3], c[4], c[5]]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preface_only_grpc_connections_are_capped_per_ip_and_closed_by_the_setup_deadline() {
    let setup_timeout = Duration::from_secs(4);
    let node = NodeProcess::start(&["--grpc-setup-timeout", "4s"]);
    let per_ip_cap = 512; // the default of --max-grpc-connections-per-ip
    let attacker: IpAddr = common::loopback_ips(1)[0].parse().expect("ip");
    let before = node.rss_kib();
    let started = tokio::time::Instant::now();
    let mut sockets = Vec::new();
    for _ in 0..3_000 {
        let Ok(mut socket) = connect_from(attacker, node.grpc).await else { continue };
        let _ = socket.write_all(PREFACE).await;
        sockets.push(socket);
    }
    assert!(sockets.len() >= 2_900, "only {} connections opened", sockets.len());
    // The first connection was admitted: its server announces the stream limit.
    assert_eq!(server_setting(&mut sockets[0], 0x3).await, Some(256), "SETTINGS_MAX_CONCURRENT_STREAMS");

    // Once the node has accepted what the kernel queued for it, at most the
    // cap stays open (plus the few refusals being answered).
    let mut open = sockets.len();
    let drained = tokio::time::Instant::now() + Duration::from_secs(10);
    while open > per_ip_cap + 4 && tokio::time::Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = sockets.iter().filter(|s| !closed_by_server(s)).count();
    }
    // Every connection has been accepted (admitted or refused) by now.
    let opened = started.elapsed();
    let during = node.rss_kib();
    assert!(open <= per_ip_cap + 4, "{open} preface-only connections open");
    assert!(during < before + 64 * 1024, "RSS grew from {before} KiB to {during} KiB");

    // A real SDK client from another address connects meanwhile.
    let props = nacos_sdk::api::props::ClientProps::new()
        .server_addr(format!("127.0.0.1:{}", node.http.port()))
        .remote_grpc_port(node.grpc.port())
        .namespace("")
        .app_name("after-the-flood")
        .load_cache_at_start(false);
    let naming = nacos_sdk::api::naming::NamingServiceBuilder::new(props).build().await.expect("the SDK connects");
    let instance = nacos_sdk::api::naming::ServiceInstance { ip: "10.8.0.1".into(), port: 8080, ..Default::default() };
    naming.register_instance("survivor".into(), None, instance).await.expect("the SDK registers");
    let list = format!("http://{}/nacos/v1/ns/instance/list?serviceName=survivor", node.http);
    eventually("the SDK's instance is listed", Duration::from_secs(10), || async {
        let v: Value = reqwest::get(&list).await.ok()?.json().await.ok()?;
        (v["hosts"][0]["ip"] == "10.8.0.1").then_some(())
    })
    .await;

    // After the deadline every preface-only connection is closed; the SDK's,
    // which set up, is not.
    let deadline = started + opened + setup_timeout + Duration::from_secs(3);
    let mut still_open = 0;
    for socket in &mut sockets {
        if !wait_closed(socket, deadline).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "connections that never set up outlived the deadline");
    let metrics = node.metrics().await;
    // Each was either refused by the per-IP cap or admitted and closed by
    // the set-up deadline; the first 512 were admitted (more if the early
    // ones timed out before the last was opened).
    let refused = metric(&metrics, "roster_limit_rejections_total{limit=\"grpc_connections_per_ip\"}");
    let timeouts = metric(&metrics, "roster_limit_rejections_total{limit=\"grpc_setup_timeout\"}");
    assert_eq!(refused + timeouts, sockets.len() as u64, "{refused} refused, {timeouts} timed out");
    assert!(timeouts >= per_ip_cap as u64 && refused > 0, "{refused} refused, {timeouts} timed out");
    let found = naming.get_all_instances("survivor".into(), None, vec![], false).await.expect("the SDK still works");
    assert_eq!(found.len(), 1);
    assert_eq!(metric(&metrics, "roster_connections"), 1, "only the SDK's connection is set up");
    println!("preface flood: {open} open of {}, {refused} refused, RSS {before} -> {during} KiB", sockets.len());
}
