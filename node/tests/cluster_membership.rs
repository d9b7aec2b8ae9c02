//! Cluster membership end to end, in one process: three [`Cluster`]s with
//! their `Peer` gRPC servers on ephemeral loopback ports, a `cluster.conf` in
//! a temporary directory, and a tiny axum address server.
//!
//! Members are named `node-x:8848` (as on Kubernetes, a stable name) and a
//! [`PeerAddressResolver`] maps each name to its real ephemeral peer port.
//! Every wait is a bounded poll; every server and task is stopped at the end.

use crate::common;
use crate::common::address_server::{serve as address_server, Answer};

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use roster_node::cluster::{Cluster, ClusterMetrics, ClusterSettings, LookupSettings, LookupSource, MemberState};
use roster_node::peer::{PeerAddressResolver, PeerChannels, PeerService};
use roster_node::Error;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

const WAIT: Duration = Duration::from_secs(10);
const A: &str = "node-a:8848";
const B: &str = "node-b:8848";
const C: &str = "node-c:8848";
const D: &str = "node-d:8848";

/// Polls `check` until it returns `Some`, failing after `WAIT`.
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    common::eventually(what, WAIT, check).await
}

fn settings() -> ClusterSettings {
    ClusterSettings {
        lookup: LookupSettings {
            file_poll_interval: Duration::from_millis(50),
            address_server_poll_interval: Duration::from_millis(50),
            address_server_timeout: Duration::from_millis(500),
            ..LookupSettings::default()
        },
        report_interval: Duration::from_millis(200),
        report_timeout: Duration::from_millis(500),
        down_after_failures: 3,
    }
}

/// The peer channels of one member, connecting within the report timeout.
fn channels(resolver: PeerAddressResolver) -> Arc<PeerChannels> {
    Arc::new(PeerChannels::new(resolver, settings().report_timeout))
}

/// Starts membership for `name` over `source`, reporting through `channels`.
async fn start_cluster(
    name: &str,
    source: LookupSource,
    channels: Arc<PeerChannels>,
    metrics: Arc<ClusterMetrics>,
) -> roster_node::Result<Cluster> {
    Cluster::start_with(name, source, &settings(), channels, reqwest::Client::new(), metrics).await
}

/// A `Peer` gRPC server on a bound listener.
struct PeerServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl PeerServer {
    fn serve(listener: TcpListener, service: PeerService) -> PeerServer {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = Server::builder()
                .add_service(service.into_server())
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = result {
                eprintln!("peer server error: {e}");
            }
        });
        PeerServer { stop, task }
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(WAIT, self.task).await.is_err() {
            abort.abort();
        }
    }
}

/// Binds `addr`, retrying briefly (a just-closed port may linger).
async fn rebind(addr: SocketAddr) -> TcpListener {
    eventually("the peer port to be free again", || async move { TcpListener::bind(addr).await.ok() }).await
}

struct Node {
    name: &'static str,
    peer_addr: SocketAddr,
    cluster: Cluster,
    channels: Arc<PeerChannels>,
    metrics: Arc<ClusterMetrics>,
    server: Option<PeerServer>,
}

impl Node {
    fn state_of(&self, member: &str) -> Option<MemberState> {
        self.cluster.membership().member(member).map(|m| m.state)
    }

    fn addresses(&self) -> Vec<String> {
        self.cluster.membership().members().into_iter().map(|m| m.address).collect()
    }

    fn entered(&self, state: MemberState) -> u64 {
        self.metrics.state_change_count(state)
    }

    async fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    async fn restart_server(&mut self) {
        let listener = rebind(self.peer_addr).await;
        self.server = Some(PeerServer::serve(listener, self.cluster.peer_service()));
    }
}

/// Three nodes reading one `cluster.conf`.
struct TestCluster {
    _dir: tempfile::TempDir,
    conf: PathBuf,
    nodes: Vec<Node>,
}

impl TestCluster {
    async fn start() -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("cluster.conf");
        common::write_conf(&conf, &format!("# three members\n{A}\n{B}\n\n{C}  # the third\n"));

        let mut listeners = Vec::new();
        let mut endpoints = HashMap::new();
        for name in [A, B, C] {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a peer port");
            let addr = listener.local_addr().expect("peer address");
            endpoints.insert(name.to_string(), addr.to_string());
            listeners.push((name, addr, listener));
        }
        let endpoints = Arc::new(endpoints);
        let resolver = PeerAddressResolver::new(move |member| endpoints.get(member).cloned());

        let mut nodes = Vec::new();
        for (name, peer_addr, listener) in listeners {
            let metrics = Arc::new(ClusterMetrics::new());
            let channels = channels(resolver.clone());
            let cluster = start_cluster(name, LookupSource::File(conf.clone()), channels.clone(), metrics.clone())
                .await
                .expect("cluster starts");
            let server = PeerServer::serve(listener, cluster.peer_service());
            nodes.push(Node { name, peer_addr, cluster, channels, metrics, server: Some(server) });
        }
        TestCluster { _dir: dir, conf, nodes }
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).expect("node")
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.name == name).expect("node")
    }

    /// Waits until every node lists exactly `members`, all UP and (for the
    /// others) answered at least once.
    async fn all_up(&self, members: &[&str]) {
        for node in &self.nodes {
            eventually(&format!("{} to see {members:?} UP", node.name), || async {
                let seen = node.cluster.membership().members();
                let ok = seen.len() == members.len()
                    && seen.iter().zip(members).all(|(m, want)| {
                        m.address == *want
                            && m.state == MemberState::Up
                            && (m.address == node.name || (m.last_report.is_some() && m.version.is_some()))
                    });
                ok.then_some(())
            })
            .await;
        }
    }

    async fn shutdown(self) {
        for mut node in self.nodes {
            node.stop_server().await;
            node.cluster.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_see_each_other_up() {
    let cluster = TestCluster::start().await;
    cluster.all_up(&[A, B, C]).await;
    for node in &cluster.nodes {
        let membership = node.cluster.membership();
        assert_eq!(membership.local(), node.name);
        assert_eq!(membership.healthy_members(), vec![A, B, C]);
        assert_eq!(membership.peers().len(), 2);
        assert_eq!(node.channels.members().len(), 2, "one channel per peer");
        assert_eq!(node.cluster.lookup().map(|l| l.mode().as_str()), Some("file"));
    }
    // Every node names the same owner for every client, and exactly one of
    // them claims it.
    for port in 0..50 {
        let tag = format!("192.168.0.1:{port}");
        let owners: Vec<Option<String>> =
            cluster.nodes.iter().map(|n| n.cluster.membership().responsible_member(&tag)).collect();
        assert!(owners.windows(2).all(|w| w[0] == w[1]), "{tag}: {owners:?}");
        let claims = cluster.nodes.iter().filter(|n| n.cluster.membership().responsibility().is_local(&tag)).count();
        assert_eq!(claims, 1, "{tag}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_member_turns_suspicious_then_down_and_comes_back_up() {
    let mut cluster = TestCluster::start().await;
    cluster.all_up(&[A, B, C]).await;

    cluster.node_mut(C).stop_server().await;
    // Record C's states as A and B see them, every 10 ms; SUSPICIOUS lasts
    // two report intervals (~400 ms), so it cannot be missed.
    let mut seen: HashMap<&str, Vec<MemberState>> = HashMap::new();
    eventually("A and B to see C DOWN", || {
        let mut done = true;
        for observer in [A, B] {
            let state = cluster.node(observer).state_of(C).expect("C is listed");
            let history = seen.entry(observer).or_default();
            if history.last() != Some(&state) {
                history.push(state);
            }
            done &= state == MemberState::Down;
        }
        async move { done.then_some(()) }
    })
    .await;
    for observer in [A, B] {
        let history = &seen[observer];
        assert_eq!(
            history.iter().skip_while(|s| **s == MemberState::Up).copied().collect::<Vec<_>>(),
            vec![MemberState::Suspicious, MemberState::Down],
            "{observer} saw C go {history:?}"
        );
        let node = cluster.node(observer);
        assert!(node.entered(MemberState::Suspicious) >= 1);
        assert!(node.entered(MemberState::Down) >= 1);
        let c = node.cluster.membership().member(C).expect("C");
        assert!(c.fail_count >= 3, "{c:?}");
        // A DOWN member no longer counts for responsibility...
        assert_eq!(node.cluster.membership().healthy_members(), vec![A, B]);
        // ...but stays a peer (Distro keeps retrying it while it is listed).
        assert!(node.cluster.membership().peers().contains(&C.to_string()));
    }
    // C itself still reaches the others.
    assert_eq!(cluster.node(C).state_of(A), Some(MemberState::Up));
    assert_eq!(cluster.node(C).state_of(B), Some(MemberState::Up));

    // Same address, same port: C is UP again at the next answered report.
    cluster.node_mut(C).restart_server().await;
    cluster.all_up(&[A, B, C]).await;
    for observer in [A, B] {
        let node = cluster.node(observer);
        assert_eq!(node.cluster.membership().member(C).map(|m| m.fail_count), Some(0));
        assert!(node.entered(MemberState::Up) >= 1);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn editing_cluster_conf_adds_and_removes_members() {
    let cluster = TestCluster::start().await;
    cluster.all_up(&[A, B, C]).await;

    // D is listed but has no peer endpoint: it joins UP, then fails its
    // reports and goes DOWN.
    common::write_conf(&cluster.conf, &format!("{A}\n{B}\n{C}\n{D}\nnot a member\n"));
    for node in &cluster.nodes {
        eventually(&format!("{} to list D", node.name), || async {
            (node.addresses() == vec![A, B, C, D]).then_some(())
        })
        .await;
        eventually(&format!("{} to see D DOWN", node.name), || async {
            (node.state_of(D) == Some(MemberState::Down)).then_some(())
        })
        .await;
        assert_eq!(node.cluster.membership().healthy_members(), vec![A, B, C]);
    }

    // Dropping C and D: A and B forget them and drop C's channel; C keeps
    // itself (the local member is always listed) and A and B.
    common::write_conf(&cluster.conf, &format!("{A}\n{B}\n"));
    for name in [A, B] {
        let node = cluster.node(name);
        eventually(&format!("{name} to forget C and D"), || async { (node.addresses() == vec![A, B]).then_some(()) })
            .await;
        let other = if name == A { B } else { A };
        eventually(&format!("{name} to drop C's channel"), || async {
            (node.channels.members() == vec![other.to_string()]).then_some(())
        })
        .await;
        assert_eq!(node.cluster.membership().healthy_members(), vec![A, B]);
    }
    let c = cluster.node(C);
    eventually("C to keep itself", || async { (c.addresses() == vec![A, B, C]).then_some(()) }).await;

    // A file with no valid member is ignored: the last list stays.
    let refreshes = cluster.node(A).cluster.lookup().map(|l| l.stats().failures()).unwrap_or_default();
    common::write_conf(&cluster.conf, "# emptied by mistake\n");
    let a = cluster.node(A);
    eventually("A to notice the empty file", || async {
        let failures = a.cluster.lookup().map(|l| l.stats().failures()).unwrap_or_default();
        (failures > refreshes).then_some(())
    })
    .await;
    assert_eq!(a.addresses(), vec![A, B]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn missing_cluster_conf_fails_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let result = start_cluster(
        A,
        LookupSource::File(dir.path().join("absent.conf")),
        channels(PeerAddressResolver::default()),
        Arc::new(ClusterMetrics::new()),
    )
    .await;
    assert!(matches!(result, Err(Error::Config(_))), "{result:?}");
}

#[tokio::test]
async fn standalone_is_a_cluster_of_one() {
    let cluster = start_cluster(
        A,
        LookupSource::Standalone,
        channels(PeerAddressResolver::default()),
        Arc::new(ClusterMetrics::new()),
    )
    .await
    .expect("standalone starts");
    let membership = cluster.membership();
    assert!(membership.is_standalone());
    assert_eq!(membership.healthy_members(), vec![A]);
    assert!(membership.peers().is_empty());
    assert!(membership.responsibility().is_local("10.0.0.1:1234"));
    assert!(cluster.lookup().is_some_and(|l| l.stats().loaded()));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_server_list_changes_and_is_kept_when_the_server_fails() {
    let answer = Answer::new(StatusCode::OK, &format!("{A}\n{B}\n"));
    let (addr, stop, server) = address_server(answer.clone()).await;
    let url = format!("http://{addr}/v1/clusters/ns/demo/serverlist");
    let cluster = start_cluster(
        A,
        LookupSource::AddressServer(url),
        // Nobody serves the peer port: B and C will fail their reports.
        channels(PeerAddressResolver::new(|_| None)),
        Arc::new(ClusterMetrics::new()),
    )
    .await
    .expect("cluster starts");
    let lookup = cluster.lookup().expect("lookup");
    assert_eq!(lookup.mode().as_str(), "address-server");
    assert!(lookup.stats().loaded(), "the first answer is read at start");
    let addresses = || cluster.membership().members().into_iter().map(|m| m.address).collect::<Vec<_>>();
    assert_eq!(addresses(), vec![A, B]);

    // The list changes; the local member stays even when not listed, and
    // invalid lines are skipped.
    answer.set(StatusCode::OK, &format!("{B}\n# comment\n{C}, bad entry\n"));
    eventually("the new list", || async { (addresses() == vec![A, B, C]).then_some(()) }).await;

    let wait_failures = |more: u64| {
        let start = lookup.stats().failures();
        async move {
            eventually(&format!("{more} more failed lookups"), || async {
                (lookup.stats().failures() >= start + more).then_some(())
            })
            .await
        }
    };
    // A non-200 answer and an empty list keep the last list.
    answer.set(StatusCode::INTERNAL_SERVER_ERROR, "boom");
    wait_failures(2).await;
    assert_eq!(addresses(), vec![A, B, C]);
    answer.set(StatusCode::OK, "\n# nothing\n");
    wait_failures(2).await;
    assert_eq!(addresses(), vec![A, B, C]);

    // The server goes away: the list is kept.
    answer.set(StatusCode::OK, &format!("{A}\n{B}\n{C}\n"));
    let ok = lookup.stats().refreshes();
    eventually("a good answer again", || async { (lookup.stats().refreshes() > ok).then_some(()) }).await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(WAIT, server).await;
    wait_failures(3).await;
    assert_eq!(addresses(), vec![A, B, C]);
    assert_eq!(lookup.current(), vec![A, B, C]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn unreachable_address_server_at_start_is_not_fatal() {
    // A port that was just free: connections are refused.
    let addr = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("address");
    let cluster = start_cluster(
        A,
        LookupSource::AddressServer(format!("http://{addr}/serverlist")),
        channels(PeerAddressResolver::default()),
        Arc::new(ClusterMetrics::new()),
    )
    .await
    .expect("an unreachable address server does not stop the node");
    let lookup = cluster.lookup().expect("lookup");
    assert!(!lookup.stats().loaded());
    assert!(lookup.stats().failures() >= 1);
    assert!(lookup.current().is_empty(), "no list is published before the server answers");
    assert_eq!(cluster.membership().healthy_members(), vec![A]);
    assert!(!cluster.membership().knows_list(), "the list of one is no list: Distro must not load from nobody");
    cluster.shutdown().await;
}
