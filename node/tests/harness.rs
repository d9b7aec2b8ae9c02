//! An in-process cluster of Distro and membership, wired through the peer
//! plane's traits instead of gRPC, after tikv/raft-rs's test network: each
//! node's outbound [`PeerTransport`] is a [`Link`] into one [`Network`],
//! which hands every message to the target node's handlers
//! ([`MemberHandler`], [`DistroHandler`]) unless the test cut the pair,
//! asked to drop it, or delays it. Run on paused tokio time, every timer
//! (report rounds, merge windows, retries, verify rounds, copy expiry)
//! fires at its virtual time, so the tests are exact and take no real time.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use roster_node::cluster::{ClusterMetrics, MemberState, Membership, Reporter};
use roster_node::distro::metrics::DistroMetrics;
use roster_node::distro::{Distro, DistroPeer, DistroSettings};
use roster_node::naming::model::BeatTimeouts;
use roster_node::naming::validate::Limits;
use roster_node::naming::{ip_port_client_id, ClientKind, Instance, NamingStore, Selection, ServiceKey};
use roster_node::peer::{DistroHandler, MemberHandler, PeerError, PeerTransport, RaftCall, SnapshotStream};
use roster_proto::peer::{
    DistroAck, DistroSyncRequest, DistroVerifyReply, DistroVerifyRequest, MemberReport, MemberReportReply, RaftMessage,
    SnapshotRequest,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Status;

/// The kinds of message the network carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A member report.
    Report,
    /// A Distro sync.
    Sync,
    /// A Distro verify.
    Verify,
    /// A Distro snapshot request.
    Snapshot,
}

/// One message the network saw.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// What it was.
    pub kind: Kind,
    /// When, on the (paused) tokio clock.
    pub at: tokio::time::Instant,
    /// Whether it reached the receiver's handler.
    pub delivered: bool,
    /// Clients it carried (syncs), or client pairs (verifies).
    pub clients: usize,
}

struct Handlers {
    members: Arc<dyn MemberHandler>,
    distro: Arc<dyn DistroHandler>,
}

/// The network between the harness's nodes.
#[derive(Default)]
pub struct Network {
    nodes: Mutex<HashMap<String, Handlers>>,
    /// Directed pairs whose messages are lost (the sender sees a failure).
    cut: Mutex<BTreeSet<(String, String)>>,
    /// Messages still to swallow, per (from, to, kind): they vanish after
    /// the receiver would have accepted them, so the sender believes they
    /// arrived (only verify can repair that).
    swallow: Mutex<HashMap<(String, String, Kind), u32>>,
    /// Extra latency per directed pair.
    delay: Mutex<HashMap<(String, String), Duration>>,
    log: Mutex<Vec<Sent>>,
}

impl Network {
    /// An empty network.
    pub fn new() -> Arc<Network> {
        Arc::new(Network::default())
    }

    /// The transport of `member`.
    pub fn link(self: &Arc<Self>, member: &str) -> Arc<Link> {
        Arc::new(Link { from: member.to_owned(), net: self.clone() })
    }

    fn attach(&self, member: &str, members: Arc<dyn MemberHandler>, distro: Arc<dyn DistroHandler>) {
        self.nodes.lock().insert(member.to_owned(), Handlers { members, distro });
    }

    /// Cuts both directions between every member of `a` and every member of `b`.
    pub fn partition(&self, a: &[&str], b: &[&str]) {
        let mut cut = self.cut.lock();
        for x in a {
            for y in b {
                cut.insert((x.to_string(), y.to_string()));
                cut.insert((y.to_string(), x.to_string()));
            }
        }
    }

    /// Cuts `from` → `to` only.
    pub fn cut_one_way(&self, from: &str, to: &str) {
        self.cut.lock().insert((from.to_owned(), to.to_owned()));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.lock().clear();
    }

    /// Swallows the next `n` messages of `kind` from `from` to `to`.
    pub fn swallow(&self, from: &str, to: &str, kind: Kind, n: u32) {
        self.swallow.lock().insert((from.to_owned(), to.to_owned(), kind), n);
    }

    /// Delays every message from `from` to `to` by `by`.
    pub fn delay(&self, from: &str, to: &str, by: Duration) {
        self.delay.lock().insert((from.to_owned(), to.to_owned()), by);
    }

    /// Every message sent so far.
    pub fn log(&self) -> Vec<Sent> {
        self.log.lock().clone()
    }

    /// The messages of `kind` from `from` to `to`.
    pub fn sent(&self, from: &str, to: &str, kind: Kind) -> Vec<Sent> {
        self.log().into_iter().filter(|s| s.from == from && s.to == to && s.kind == kind).collect()
    }

    /// Decides the fate of one message: `Err` when it is lost, `Ok(false)`
    /// when it is swallowed after "arriving", `Ok(true)` when it is delivered.
    async fn route(
        &self,
        from: &str,
        to: &str,
        kind: Kind,
        clients: usize,
        timeout: Duration,
    ) -> Result<bool, PeerError> {
        let pair = (from.to_owned(), to.to_owned());
        let lost = self.cut.lock().contains(&pair) || !self.nodes.lock().contains_key(to);
        let swallowed = !lost && {
            let mut swallow = self.swallow.lock();
            match swallow.get_mut(&(from.to_owned(), to.to_owned(), kind)) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            }
        };
        let at = tokio::time::Instant::now();
        self.log.lock().push(Sent {
            from: from.into(),
            to: to.into(),
            kind,
            at,
            delivered: !lost && !swallowed,
            clients,
        });
        if lost {
            return Err(PeerError::Status(Status::unavailable(format!("{from} cannot reach {to}"))));
        }
        let latency = self.delay.lock().get(&pair).copied().unwrap_or_default();
        if latency >= timeout {
            tokio::time::sleep(timeout).await;
            return Err(PeerError::Timeout);
        }
        tokio::time::sleep(latency).await;
        Ok(!swallowed)
    }

    fn members_of(&self, to: &str) -> Option<Arc<dyn MemberHandler>> {
        self.nodes.lock().get(to).map(|h| h.members.clone())
    }

    fn distro_of(&self, to: &str) -> Option<Arc<dyn DistroHandler>> {
        self.nodes.lock().get(to).map(|h| h.distro.clone())
    }
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("nodes", &self.nodes.lock().len()).finish()
    }
}

/// One node's way into the [`Network`].
#[derive(Debug)]
pub struct Link {
    from: String,
    net: Arc<Network>,
}

fn gone(to: &str) -> PeerError {
    PeerError::Unreachable(to.to_owned())
}

#[tonic::async_trait]
impl PeerTransport for Link {
    async fn report(&self, to: &str, report: MemberReport, timeout: Duration) -> Result<MemberReportReply, PeerError> {
        let delivered = self.net.route(&self.from, to, Kind::Report, 0, timeout).await?;
        let handler = self.net.members_of(to).ok_or_else(|| gone(to))?;
        let own = handler.report(report);
        if !delivered {
            return Err(PeerError::Timeout);
        }
        Ok(MemberReportReply { self_report: Some(own) })
    }

    async fn distro_sync(
        &self,
        to: &str,
        request: DistroSyncRequest,
        timeout: Duration,
    ) -> Result<DistroAck, PeerError> {
        if !self.net.route(&self.from, to, Kind::Sync, request.upserts.len(), timeout).await? {
            return Ok(DistroAck { accepted: true, message: String::new() });
        }
        let handler = self.net.distro_of(to).ok_or_else(|| gone(to))?;
        handler.sync(request).map_err(PeerError::Status)
    }

    async fn distro_verify(
        &self,
        to: &str,
        request: DistroVerifyRequest,
        timeout: Duration,
    ) -> Result<DistroVerifyReply, PeerError> {
        if !self.net.route(&self.from, to, Kind::Verify, request.clients.len(), timeout).await? {
            return Ok(DistroVerifyReply { missing_client_ids: Vec::new() });
        }
        let handler = self.net.distro_of(to).ok_or_else(|| gone(to))?;
        handler.verify(request).map_err(PeerError::Status)
    }

    async fn distro_snapshot(
        &self,
        to: &str,
        request: SnapshotRequest,
        timeout: Duration,
    ) -> Result<SnapshotStream, PeerError> {
        if !self.net.route(&self.from, to, Kind::Snapshot, 0, timeout).await? {
            return Err(PeerError::Timeout);
        }
        let handler = self.net.distro_of(to).ok_or_else(|| gone(to))?;
        handler.snapshot(request).map_err(PeerError::Status)
    }

    async fn raft(&self, to: &str, _: RaftCall, _: RaftMessage, _: Duration) -> Result<RaftMessage, PeerError> {
        // The harness runs no Raft.
        Err(gone(to))
    }
}

/// Timings of the harness's nodes: Roster's defaults, except a quicker
/// report round, so that tests read in round numbers.
pub fn settings() -> DistroSettings {
    DistroSettings::default()
}

/// How often nodes report to each other.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(2);
/// Timeout of one report.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(1);

/// One node: its store, membership, Distro and report task.
pub struct Node {
    /// `host:port`.
    pub name: String,
    /// The store.
    pub store: Arc<NamingStore>,
    /// Members and their states.
    pub membership: Arc<Membership>,
    /// Distro.
    pub distro: Arc<Distro>,
    /// Distro's events.
    pub metrics: Arc<DistroMetrics>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Publishes one ephemeral instance of `service` for the connection
    /// `client` of this node (as a gRPC registration does).
    pub fn register(&self, client: &str, service: &str, ip: &str) {
        self.store.ensure_client(client, ClientKind::Connection);
        self.store.register_ephemeral(client, ClientKind::Connection, &service_key(service), Instance::new(ip, 80));
    }

    /// Publishes `ip:port` in `service` for its ip:port client, here (as an
    /// HTTP registration applied on this member does).
    pub fn register_http(&self, service: &str, ip: &str, port: u16) {
        let client = ip_port_client_id(ip, port);
        self.store.register_ephemeral(&client, ClientKind::IpPort, &service_key(service), Instance::new(ip, port));
    }

    /// Whether this node holds `client`.
    pub fn holds(&self, client: &str) -> bool {
        self.store.has_client(client)
    }

    /// `ip:port` of every instance of `service` this node shows, sorted.
    pub fn hosts(&self, service: &str) -> Vec<String> {
        let info = self.store.query(&service_key(service), &Selection::default());
        let mut hosts: Vec<String> = info.hosts.iter().map(|h| format!("{}:{}", h.ip, h.port)).collect();
        hosts.sort();
        hosts
    }

    /// `(revision, digest)` of `client` here.
    pub fn version_of(&self, client: &str) -> Option<(u64, u64)> {
        self.store.client(client).map(|c| (c.revision(), c.digest()))
    }

    /// The state this node sees `member` in.
    pub fn sees(&self, member: &str) -> Option<MemberState> {
        self.membership.member(member).map(|m| m.state)
    }
}

impl Node {
    /// Starts the node `name` on `net`, with the member `list` (`None`: the
    /// lookup has produced none yet) and a membership of `incarnation`
    /// (its start time; a later one is a later run).
    fn start(
        net: &Arc<Network>,
        name: &str,
        list: Option<&[String]>,
        settings: DistroSettings,
        incarnation: u64,
    ) -> Node {
        let metrics = Arc::new(ClusterMetrics::new());
        let membership = Arc::new(Membership::new(name, false, 3, metrics.clone()).with_incarnation(incarnation));
        if let Some(list) = list {
            membership.apply_member_list(list);
        }
        let store = Arc::new(NamingStore::new(BeatTimeouts::default()));
        let link = net.link(name);
        let distro_metrics = Arc::new(DistroMetrics::default());
        let distro = Distro::new(
            store.clone(),
            membership.clone(),
            link.clone(),
            Arc::default(),
            distro_metrics.clone(),
            Limits { max_metadata_bytes: 16 * 1024, max_batch_instances: 1000 },
            settings,
        );
        net.attach(name, membership.clone(), Arc::new(DistroPeer(distro.clone())));
        let (stop, stop_rx) = watch::channel(false);
        let reporter = Reporter::new(membership.clone(), link, REPORT_TIMEOUT, metrics);
        let mut tasks = vec![tokio::spawn(reporter.run(REPORT_INTERVAL, stop_rx))];
        tasks.extend(distro.start());
        Node { name: name.to_string(), store, membership, distro, metrics: distro_metrics, stop, tasks }
    }

    /// Stops the node's tasks.
    async fn stop(self) {
        self.distro.stop();
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// The key of `service` in the default namespace and group.
pub fn service_key(service: &str) -> ServiceKey {
    ServiceKey::new("public", "DEFAULT_GROUP", service)
}

/// A cluster of [`Node`]s on one [`Network`].
pub struct Cluster {
    /// The network.
    pub net: Arc<Network>,
    /// The nodes, in the order given.
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `names` as one cluster (every node lists every other) with
    /// Distro `settings`, all on the network.
    pub fn start(names: &[&str], settings: DistroSettings) -> Cluster {
        let net = Network::new();
        let list: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let nodes = names.iter().map(|name| Node::start(&net, name, Some(&list), settings, 1)).collect();
        Cluster { net, nodes }
    }

    /// Replaces the node `name` by a new run of it (an empty store, a later
    /// incarnation), as a restarted process: the old one's tasks stop.
    pub async fn restart(&mut self, name: &str, settings: DistroSettings) {
        let i = self.nodes.iter().position(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"));
        let list: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let incarnation = self.nodes[i].membership.incarnation() + 1;
        let old =
            std::mem::replace(&mut self.nodes[i], Node::start(&self.net, name, Some(&list), settings, incarnation));
        old.stop().await;
    }

    /// Adds a node `name` that knows no member list yet (its lookup has
    /// produced none): the others do not list it.
    pub fn add_without_list(&mut self, name: &str, settings: DistroSettings) {
        self.nodes.push(Node::start(&self.net, name, None, settings, 1));
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Lets `d` of virtual time pass (every task runs what falls due).
    pub async fn run_for(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Stops every node's tasks.
    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}
