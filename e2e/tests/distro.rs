//! Distro with real `roster-node` processes on loopback (DESIGN §5):
//! replication of gRPC and HTTP registrations, pushes across nodes,
//! scale-up with snapshot bootstrap (file and address-server lookups),
//! `kill -9`, a partition made with the peer fault switch, a dropped
//! sync repaired by verify, and a SIGTERM that drains: the official SDK's
//! client attached to the stopping member moves to another one without its
//! instance ever vanishing.
//!
//! Timers are shortened so that every scenario takes seconds; every wait
//! polls for a condition with a bound.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nacos_sdk::api::naming::{NamingChangeEvent, NamingEventListener, NamingServiceBuilder};
use nacos_sdk::api::props::ClientProps;
use roster_e2e::cluster::{
    beat, blocking, deregister_http, instances, is_ready, node_args, register_http, set_faults, status,
    wait_member_states, write_member_file, Lookup, SdkClient,
};
use roster_e2e::{eventually, loopback_ips, NodeProcess};
use roster_node::cluster::responsible_member;
use roster_node::peer::FaultSettings;
use roster_operator::address_server::{AddressServer, ServerLists};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Starts a node on `ip` (standard ports) with short membership and Distro
/// timers and the fault switch enabled. `extra` flags come last and win.
fn start_node(ip: &str, lookup: Lookup<'_>, extra: &[&str]) -> NodeProcess {
    let mut args = node_args(ip, lookup);
    let timers = [
        ("--distro-sync-delay", "50ms"),
        ("--distro-sync-retry-delay", "200ms"),
        ("--distro-sync-timeout", "1s"),
        ("--distro-verify-interval", "300ms"),
        ("--distro-copy-expiry", "2s"),
        ("--distro-load-retry-delay", "300ms"),
        ("--beat-check-interval", "200ms"),
        ("--push-delay", "20ms"),
    ];
    args.extend(timers.iter().flat_map(|(flag, value)| [flag.to_string(), value.to_string()]));
    args.push("--fault-injection".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    NodeProcess::start(&args, &[]).expect("node starts")
}

fn member(ip: &str) -> String {
    format!("{ip}:8848")
}

/// Waits until every node is ready and sees every member `UP`.
async fn wait_formed(nodes: &[&NodeProcess], members: &[String]) {
    let all_up: Vec<(String, &str)> = members.iter().map(|m| (m.clone(), "UP")).collect();
    for node in nodes {
        wait_member_states(node.http, &all_up, "every member UP", WAIT).await;
        eventually(&format!("{} ready", node.http), WAIT, || async { is_ready(node.http).await.then_some(()) }).await;
    }
}

/// Three nodes listed in one `cluster.conf`, formed and ready.
struct ThreeNodes {
    /// Holds the member file.
    _dir: tempfile::TempDir,
    members: Vec<String>,
    nodes: Vec<NodeProcess>,
}

async fn three_nodes(extra: &[&str]) -> ThreeNodes {
    let ips = loopback_ips(3);
    let members: Vec<String> = ips.iter().map(|ip| member(ip)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("cluster.conf");
    write_member_file(&conf, &members);
    let nodes: Vec<NodeProcess> = ips.iter().map(|ip| start_node(ip, Lookup::File(&conf), extra)).collect();
    wait_formed(&nodes.iter().collect::<Vec<_>>(), &members).await;
    ThreeNodes { _dir: dir, members, nodes }
}

/// Waits until every node answers `expected` for `service`.
async fn wait_instances(nodes: &[&NodeProcess], service: &str, expected: &[String]) {
    let mut expected = expected.to_vec();
    expected.sort();
    for node in nodes {
        let what = format!("{service} on {} to be {expected:?}", node.http);
        eventually(&what, WAIT, || async { (instances(node.http, service).await? == expected).then_some(()) }).await;
    }
}

/// Waits until every node answers the same (non-empty) list for `service`
/// and returns it.
async fn wait_agreement(nodes: &[&NodeProcess], service: &str) -> Vec<String> {
    let what = format!("every node to agree on {service}");
    eventually(&what, WAIT, || async {
        let mut lists = Vec::new();
        for node in nodes {
            lists.push(instances(node.http, service).await?);
        }
        let first = lists[0].clone();
        (!first.is_empty() && lists.iter().all(|l| *l == first)).then_some(first)
    })
    .await
}

/// A port whose ip:port tag `members` (sorted) hand to `owner`.
fn port_owned_by(ip: &str, members: &[String], owner: &str, from: u16) -> u16 {
    let mut sorted = members.to_vec();
    sorted.sort();
    (from..from + 1000)
        .find(|p| responsible_member(&format!("{ip}:{p}"), &sorted) == Some(owner))
        .expect("some port maps to every member")
}

/// The node's count of one Distro event, from `/metrics`.
async fn distro_event(http: SocketAddr, event: &str) -> u64 {
    let text = reqwest::get(format!("http://{http}/metrics")).await.expect("metrics").text().await.expect("text");
    let prefix = format!("roster_distro_events_total{{event=\"{event}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |n| n.trim().parse().expect("a count"))
}

fn up(i: &str, p: u16) -> String {
    format!("{i}:{p}:true")
}

/// Subscribes to `service` on the node at `http` with the official SDK and
/// returns the host lists pushed to it.
async fn subscribe(http: SocketAddr, grpc: u16, service: &str) -> tokio::sync::mpsc::UnboundedReceiver<Vec<String>> {
    #[derive(Debug)]
    struct Forward(tokio::sync::mpsc::UnboundedSender<Vec<String>>);
    impl NamingEventListener for Forward {
        fn event(&self, event: Arc<NamingChangeEvent>) {
            let hosts = event.instances.as_ref().map_or_else(Vec::new, |list| {
                let mut hosts: Vec<String> = list.iter().map(|i| format!("{}:{}", i.ip, i.port)).collect();
                hosts.sort();
                hosts
            });
            let _ = self.0.send(hosts);
        }
    }
    let props = ClientProps::new()
        .server_addr(http.to_string())
        .remote_grpc_port(grpc)
        .env_first(false)
        .load_cache_at_start(false)
        .naming_push_empty_protection(false)
        .app_name("distro-subscriber");
    let naming = NamingServiceBuilder::new(props).build().await.expect("naming client");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    naming.subscribe(service.to_owned(), None, Vec::new(), Arc::new(Forward(tx))).await.expect("subscribe");
    // The SDK's runtime is process-global: leak the client so its connection
    // lives for the rest of the test (the node process is killed at the end).
    std::mem::forget(naming);
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_grpc_and_http_writes_and_push_across_nodes() {
    let ThreeNodes { _dir, members, nodes } = three_nodes(&[]).await;
    let all: Vec<&NodeProcess> = nodes.iter().collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // A subscriber on C, before anything exists.
    let mut pushed = subscribe(c.http, c.grpc.port(), "svc-push").await;

    // A gRPC registration on A, and HTTP registrations on B of an instance
    // B is responsible for and of one C is (which B forwards to C).
    let mut grpc_client = SdkClient::register(a.http, a.grpc.port(), "svc-grpc", "10.1.0.1", 7001).expect("sdk client");
    let (p2, p3) = (
        port_owned_by("10.1.0.2", &members, &members[1], 7002),
        port_owned_by("10.1.0.3", &members, &members[2], 7003),
    );
    register_http(b.http, "svc-http", "10.1.0.2", p2).await.expect("register");
    register_http(b.http, "svc-http", "10.1.0.3", p3).await.expect("register");
    wait_instances(&all, "svc-grpc", &[up("10.1.0.1", 7001)]).await;
    wait_instances(&all, "svc-http", &[up("10.1.0.2", p2), up("10.1.0.3", p3)]).await;
    assert_eq!(distro_event(b.http, "http_forwarded").await, 1, "B forwarded the write C is responsible for");
    assert_eq!(distro_event(c.http, "http_forwarded").await, 0);

    // A change made on A is pushed to the subscriber on C.
    let _pushed_client = SdkClient::register(a.http, a.grpc.port(), "svc-push", "10.1.0.9", 7009).expect("sdk client");
    let seen = eventually("the subscriber on C to be pushed A's instance", WAIT, || {
        let got = pushed.try_recv().ok();
        async move { got.filter(|hosts| hosts.contains(&"10.1.0.9:7009".to_string())) }
    })
    .await;
    assert_eq!(seen, ["10.1.0.9:7009"]);

    // An HTTP deregistration on C (forwarded to B, responsible) removes the
    // instance everywhere.
    deregister_http(c.http, "svc-http", "10.1.0.2", p2).await.expect("deregister");
    wait_instances(&all, "svc-http", &[up("10.1.0.3", p3)]).await;
    assert_eq!(distro_event(c.http, "http_forwarded").await, 1);

    // A client that dies (SIGKILL) is removed from every node.
    grpc_client.kill();
    wait_instances(&all, "svc-grpc", &[]).await;

    // Every node holds the same data and says where its snapshot came from.
    for node in &all {
        let s = status(node.http).await.expect("status");
        assert_eq!(s["distro"]["initialized"], true, "{s}");
        assert_eq!(s["ready"], true);
    }
}

/// Scale-up 3 → 5: the new members load the snapshot from a loaded peer,
/// hold every instance, and only then report ready.
async fn scale_up(use_address_server: bool) {
    let ips = loopback_ips(5);
    let members: Vec<String> = ips.iter().map(|ip| member(ip)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("cluster.conf");
    write_member_file(&conf, &members[..3]);
    // The operator's own address server, serving the first three members.
    let lists = ServerLists::new();
    lists.set("test", "demo", members[..3].to_vec());
    let bind = format!("{}:0", ips[0]).parse().expect("address");
    let (server, _task) =
        AddressServer::new(lists.clone()).spawn(bind, std::future::pending()).await.expect("address server");
    let url = format!("http://{server}/v1/clusters/test/demo/serverlist");
    let lookup = if use_address_server { Lookup::AddressServer(&url) } else { Lookup::File(&conf) };
    // Long beat timeouts: the HTTP instances must outlive the test without beats.
    let extra = ["--beat-timeout", "120s", "--beat-delete-timeout", "240s", "--distro-snapshot-chunk", "4"];
    let mut nodes: Vec<NodeProcess> = ips[..3].iter().map(|ip| start_node(ip, lookup, &extra)).collect();
    let first: Vec<&NodeProcess> = nodes.iter().collect();
    wait_formed(&first, &members[..3]).await;

    // 30 HTTP instances spread over the three nodes, and one gRPC client.
    let mut expected = Vec::new();
    for i in 0..30u16 {
        let ip = format!("10.2.0.{}", i + 1);
        register_http(nodes[usize::from(i) % 3].http, "svc-scale", &ip, 8000 + i).await.expect("register");
        expected.push(up(&ip, 8000 + i));
    }
    let _client =
        SdkClient::register(nodes[1].http, nodes[1].grpc.port(), "svc-scale", "10.2.1.1", 9000).expect("sdk client");
    expected.push(up("10.2.1.1", 9000));
    expected.sort();
    wait_instances(&first, "svc-scale", &expected).await;

    // Grow the list, then start the two new members with it.
    if use_address_server {
        lists.set("test", "demo", members.clone());
    } else {
        write_member_file(&conf, &members);
    }
    for ip in &ips[3..] {
        nodes.push(start_node(ip, lookup, &extra));
    }
    let source_set: BTreeSet<String> = members[..3].iter().cloned().collect();
    for node in &nodes[3..] {
        // Watch the node until it is ready: it must never be ready without
        // every instance and a named snapshot source.
        let observed = eventually(&format!("{} to turn ready", node.http), WAIT, || async {
            let s = status(node.http).await?;
            let ready = s["ready"] == Value::Bool(true);
            if ready {
                let held = instances(node.http, "svc-scale").await?;
                assert_eq!(held, expected, "{} is ready without every instance", node.http);
                return Some(s);
            }
            None
        })
        .await;
        let distro = &observed["distro"];
        assert_eq!(distro["initialized"], true);
        let source = distro["snapshotSource"].as_str().expect("a snapshot source").to_owned();
        assert!(source_set.contains(&source), "snapshot from {source}, not an original member");
        assert!(distro["snapshotLoadedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    let everyone: Vec<&NodeProcess> = nodes.iter().collect();
    wait_formed(&everyone, &members).await;
    wait_instances(&everyone, "svc-scale", &expected).await;

    // A write on a new member reaches the old ones.
    register_http(nodes[4].http, "svc-scale", "10.2.2.1", 9100).await.expect("register");
    expected.push(up("10.2.2.1", 9100));
    wait_instances(&everyone, "svc-scale", &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_up_by_file_loads_the_snapshot_before_ready() {
    scale_up(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_up_by_address_server_loads_the_snapshot_before_ready() {
    scale_up(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_node_loses_its_connections_but_its_ip_port_clients_live_on() {
    let extra = ["--beat-timeout", "1500ms", "--beat-delete-timeout", "3s"];
    let ThreeNodes { _dir, members, mut nodes } = three_nodes(&extra).await;
    let all: Vec<&NodeProcess> = nodes.iter().collect();
    let victim = members[2].clone();

    // A gRPC client of the victim, and HTTP clients the victim is responsible for.
    let mut grpc_client =
        SdkClient::register(nodes[2].http, nodes[2].grpc.port(), "svc-kill", "10.3.0.1", 7100).expect("sdk client");
    let ports: Vec<u16> = {
        let first = port_owned_by("10.3.1.1", &members, &victim, 8000);
        let second = port_owned_by("10.3.1.1", &members, &victim, first + 1);
        vec![first, second]
    };
    for port in &ports {
        register_http(nodes[0].http, "svc-kill", "10.3.1.1", *port).await.expect("register");
    }
    let mut expected: Vec<String> = ports.iter().map(|p| up("10.3.1.1", *p)).collect();
    expected.push(up("10.3.0.1", 7100));
    wait_instances(&all, "svc-kill", &expected).await;

    // The HTTP clients keep beating through A for the rest of the test.
    let beating = {
        let (a, ports) = (nodes[0].http, ports.clone());
        tokio::spawn(async move {
            loop {
                for port in &ports {
                    let _ = beat(a, "svc-kill", "10.3.1.1", *port).await;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let killed_at = Instant::now();
    nodes[2].kill();
    let survivors: Vec<&NodeProcess> = nodes[..2].iter().collect();
    let want = [(members[0].clone(), "UP"), (members[1].clone(), "UP"), (victim.clone(), "DOWN")];
    for node in &survivors {
        wait_member_states(node.http, &want, "the victim to be DOWN", WAIT).await;
    }
    // The victim's gRPC client goes with it (its copies expire) ...
    let http_only: Vec<String> = ports.iter().map(|p| up("10.3.1.1", *p)).collect();
    wait_instances(&survivors, "svc-kill", &http_only).await;
    // ... while its ip:port clients stay registered and healthy on every
    // survivor for longer than a delete timeout after the kill.
    let hold = Duration::from_secs(5);
    while killed_at.elapsed() < hold {
        for node in &survivors {
            let held = instances(node.http, "svc-kill").await.expect("list");
            assert_eq!(held, http_only, "{} after {:?}", node.http, killed_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // They are now judged by a survivor: once the beats stop, they expire.
    beating.abort();
    wait_instances(&survivors, "svc-kill", &[]).await;
    grpc_client.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioned_nodes_keep_writing_and_converge_after_healing() {
    let extra = ["--beat-timeout", "120s", "--beat-delete-timeout", "240s", "--distro-tombstone-ttl", "60s"];
    let ThreeNodes { _dir, members, nodes } = three_nodes(&extra).await;
    let all: Vec<&NodeProcess> = nodes.iter().collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // Before: one HTTP instance A is responsible for (so A keeps vouching
    // for it through the partition), and one gRPC client on B.
    let owned = port_owned_by("10.4.0.1", &members, &members[0], 7200);
    register_http(a.http, "svc-part", "10.4.0.1", owned).await.expect("register");
    let _client = SdkClient::register(b.http, b.grpc.port(), "svc-part", "10.4.0.2", 7201).expect("sdk client");
    wait_instances(&all, "svc-part", &[up("10.4.0.1", owned), up("10.4.0.2", 7201)]).await;

    // Cut A from B and C, both ways, and wait until each side sees it.
    set_faults(a.http, &blocking(&[&members[1], &members[2]])).await.expect("faults");
    set_faults(b.http, &blocking(&[&members[0]])).await.expect("faults");
    set_faults(c.http, &blocking(&[&members[0]])).await.expect("faults");
    let a_view = [(members[0].clone(), "UP"), (members[1].clone(), "DOWN"), (members[2].clone(), "DOWN")];
    wait_member_states(a.http, &a_view, "A to see B and C DOWN", WAIT).await;
    let other_view = [(members[0].clone(), "DOWN"), (members[1].clone(), "UP"), (members[2].clone(), "UP")];
    for node in [b, c] {
        wait_member_states(node.http, &other_view, "B and C to see A DOWN", WAIT).await;
    }

    // Writes succeed on both sides.
    register_http(a.http, "svc-part", "10.4.1.1", 7300).await.expect("write on A's side");
    register_http(c.http, "svc-part", "10.4.1.2", 7301).await.expect("write on B and C's side");
    deregister_http(b.http, "svc-part", "10.4.0.1", owned).await.expect("delete on B and C's side");
    wait_instances(&[b, c], "svc-part", &[up("10.4.0.2", 7201), up("10.4.1.2", 7301)]).await;
    // A cannot confirm B's connection any more: its copy expires there.
    wait_instances(&[a], "svc-part", &[up("10.4.0.1", owned), up("10.4.1.1", 7300)]).await;

    // Heal. Every node converges on the same data: both sides' writes, the
    // gRPC client again on A, and the deletion made on B's side.
    for node in &all {
        set_faults(node.http, &FaultSettings::default()).await.expect("heal");
    }
    wait_formed(&all, &members).await;
    let agreed = wait_agreement(&all, "svc-part").await;
    assert!(agreed.contains(&up("10.4.1.1", 7300)), "A's write survives: {agreed:?}");
    assert!(agreed.contains(&up("10.4.1.2", 7301)), "C's write survives: {agreed:?}");
    assert!(agreed.contains(&up("10.4.0.2", 7201)), "B's connection is back on A: {agreed:?}");
    // The deletion made on B's side wins although A, responsible for the
    // instance, held it and vouched for it all along: the removal record is
    // newer than A's data, so B and C send it back instead of asking for
    // the instance.
    assert!(!agreed.contains(&up("10.4.0.1", owned)), "the deletion made during the partition holds: {agreed:?}");
    assert_eq!(agreed.len(), 3, "{agreed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_sync_is_repaired_by_verify() {
    let ThreeNodes { _dir, nodes, .. } = three_nodes(&[]).await;
    let all: Vec<&NodeProcess> = nodes.iter().collect();
    let a = &nodes[0];

    // A drops its next two syncs: the ones to B and C for this client.
    set_faults(a.http, &FaultSettings { drop_syncs: 2, ..FaultSettings::default() }).await.expect("faults");
    let _client = SdkClient::register(a.http, a.grpc.port(), "svc-drop", "10.5.0.1", 7400).expect("sdk client");
    wait_instances(&all, "svc-drop", &[up("10.5.0.1", 7400)]).await;

    let s = status(a.http).await.expect("status");
    assert_eq!(s["distro"]["droppedSyncs"], 2, "both syncs were dropped: {s}");
    let repairs = s["distro"]["verifyRepairs"].as_u64().expect("verifyRepairs");
    assert!(repairs >= 2, "B and C got the client through verify (repairs: {repairs})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removal_whose_sync_was_dropped_reaches_the_member_that_missed_it() {
    // Found by the chaos run: the responsible member's sync of a
    // deregistration was lost to one peer. That peer kept its copy (no one
    // vouches for it, so it would expire only after half the removal
    // records' retention, minutes) and handed it to the responsible member
    // at every verify; the responsible member, holding the removal, took
    // nothing and said nothing. A member that receives a copy older than
    // what it holds now sends back what it holds.
    let ThreeNodes { _dir, members, nodes } = three_nodes(&[]).await;
    let all: Vec<&NodeProcess> = nodes.iter().collect();
    let b = &nodes[1];
    let port = port_owned_by("10.5.0.2", &members, &members[1], 7410);
    register_http(b.http, "svc-lost-removal", "10.5.0.2", port).await.expect("register");
    wait_instances(&all, "svc-lost-removal", &[up("10.5.0.2", port)]).await;

    // B, responsible, drops its next sync: one of the two peers misses the
    // deregistration.
    set_faults(b.http, &FaultSettings { drop_syncs: 1, ..FaultSettings::default() }).await.expect("faults");
    deregister_http(b.http, "svc-lost-removal", "10.5.0.2", port).await.expect("deregister");
    wait_instances(&all, "svc-lost-removal", &[]).await;
    let s = status(b.http).await.expect("status");
    assert_eq!(s["distro"]["droppedSyncs"], 1, "the removal's sync to one peer was dropped: {s}");
    assert!(distro_event(b.http, "sent_back").await >= 1, "B answered the stale copy with its removal");
}

/// Open gRPC connections of the node at `http` (0 when it does not answer).
async fn connections(http: SocketAddr) -> u64 {
    status(http).await.and_then(|s| s["store"]["connections"].as_u64()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_an_sdk_client_to_another_member_and_its_instance_never_vanishes() {
    // The default drain settings: they must cover the SDK's reconnect.
    let ThreeNodes { _dir, mut nodes, .. } = three_nodes(&[]).await;
    let servers: Vec<String> = nodes.iter().map(|n| n.http.to_string()).collect();
    let grpc = nodes[0].grpc.port();
    assert!(nodes.iter().all(|n| n.grpc.port() == grpc), "standard ports: one gRPC port for all");
    let mut client =
        SdkClient::register_to(&servers.join(","), grpc, "svc-drain", "10.6.0.1", 7500).expect("sdk client");
    let all: Vec<&NodeProcess> = nodes.iter().collect();
    wait_instances(&all, "svc-drain", &[up("10.6.0.1", 7500)]).await;
    // The SDK picked one server of its list: that member is stopped.
    let holder = eventually("the member holding the client's connection", WAIT, || async {
        for (i, node) in nodes.iter().enumerate() {
            if connections(node.http).await == 1 {
                return Some(i);
            }
        }
        None
    })
    .await;
    let leaving = nodes.remove(holder);
    let survivors: Vec<SocketAddr> = nodes.iter().map(|n| n.http).collect();

    // Watch the survivors every 10 ms from before the SIGTERM until well
    // after the member is gone.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, survivors) = (stop.clone(), survivors.clone());
        tokio::spawn(async move {
            // How many looks missed it, and the first one that did.
            let (mut missed, mut first) = (0usize, None);
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                for http in &survivors {
                    if let Some(list) = instances(*http, "svc-drain").await {
                        if list != [up("10.6.0.1", 7500)] {
                            missed += 1;
                            first.get_or_insert((*http, list));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (missed, first)
        })
    };
    let started = Instant::now();
    leaving.terminate().expect("SIGTERM");
    // Told to stop, it drains: not ready, still answering.
    eventually("the member to report draining, not ready", WAIT, || async {
        let s = status(leaving.http).await?;
        (s["draining"] == true && s["ready"] == false).then_some(())
    })
    .await;
    let mut leaving = leaving;
    let exit = loop {
        if let Some(exit) = leaving.try_wait().expect("wait") {
            break exit;
        }
        assert!(started.elapsed() < WAIT, "the drained member did not exit within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    assert!(exit.success(), "a drained member exits cleanly: {exit}");
    assert!(took < Duration::from_secs(25), "within a pod's termination grace: {took:?}");
    eventually("the client connected to a survivor", WAIT, || async {
        (connections(survivors[0]).await + connections(survivors[1]).await == 1).then_some(())
    })
    .await;
    // Until the old connection's client is gone from every survivor: one
    // client left, the new connection.
    eventually("the old connection's client removed everywhere", WAIT, || async {
        for http in &survivors {
            (status(*http).await?["store"]["clients"].as_u64()? == 1).then_some(())?;
        }
        Some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let (missed, first) = watcher.await.expect("watcher");
    assert_eq!(missed, 0, "the instance was not visible on every survivor all along; first: {first:?}");
    let remaining: Vec<&NodeProcess> = nodes.iter().collect();
    wait_instances(&remaining, "svc-drain", &[up("10.6.0.1", 7500)]).await;
    client.kill();
}
