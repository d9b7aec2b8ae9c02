//! Starting and stopping a node: binds the three listeners, wires the
//! planes together and runs them, and shuts them down in order.
//!
//! * **Client plane** ([`crate::api`]): gRPC on main + 1000, HTTP on the
//!   main port, behind the client limits ([`crate::limits`]).
//! * **Peer plane** ([`crate::peer`]): gRPC on main + 1001, behind the
//!   peer identity check ([`crate::security`]), answering member reports,
//!   Distro and Raft through their handlers.
//! * **Admin plane** ([`crate::admin`]): status, the cluster view, probes,
//!   metrics and faults on the main port, merged into the same HTTP
//!   application after the client limits, so that they never apply to it;
//!   with `--admin-port` also on a listener of its own.
//! * **Console** ([`crate::console`]): the UI and its registry views on the
//!   main port, over the client plane's state, beside its per-IP rate
//!   (the console bounds its own cost) but behind its body and connection
//!   limits.
//!
//! How each listener admits and serves its connections (the connection
//! limits, deadlines and HTTP/2 settings) is [`crate::listeners`]'.
//!
//! This module and the binary are the only users of the whole
//! [`Config`]; each subsystem is handed its own settings.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::admin::{AdminParts, AdminState};
use crate::api::grpc::connection::Connections;
use crate::api::grpc::drain::{DrainSettings, Drained};
use crate::api::{grpc, http, ClientState};
use crate::auth::{Auth, AuthMetrics};
use crate::cluster::{Cluster, ClusterMetrics, Membership};
use crate::config::Config;
use crate::distro::metrics::DistroMetrics;
use crate::distro::{Distro, DistroPeer};
use crate::error::{Error, Result};
use crate::limits::{ClientLimits, LimitMetrics};
use crate::listeners;
use crate::metrics::Metrics;
use crate::naming::cleaner::{self, CleanerMetrics};
use crate::naming::NamingStore;
use crate::peer::{Faults, PeerAddressResolver, PeerChannels, PeerService, PeerTransport};
use crate::push::{PushService, PushTimings, Subscribers};
use crate::push_udp::{UdpPush, UdpPushMetrics};
use crate::raft::metrics::RaftMetricSet;
use crate::raft::{RaftContext, RaftNode};
use crate::security::{PeerSecurity, SecurityMetrics};

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a drain waits, at its end, for Distro to deliver the removals
/// of the clients it handed over.
const DRAIN_FLUSH: Duration = Duration::from_secs(2);

/// Every subsystem's metrics, each registered on the node's registry.
#[derive(Debug, Default, Clone)]
pub struct NodeMetrics {
    /// Client-plane requests, connections and pushes.
    pub api: Arc<Metrics>,
    /// Refusals by the client limits.
    pub limits: Arc<LimitMetrics>,
    /// Distro events.
    pub distro: Arc<DistroMetrics>,
    /// Lookups, reports and member states.
    pub cluster: Arc<ClusterMetrics>,
    /// Raft writes, changes and gauges.
    pub raft: Arc<RaftMetricSet>,
    /// Client authentication.
    pub auth: Arc<AuthMetrics>,
    /// Refused peer requests.
    pub security: Arc<SecurityMetrics>,
    /// UDP pushes to 1.x HTTP clients.
    pub udp_push: Arc<UdpPushMetrics>,
    /// The empty-service cleaner.
    pub cleaner: Arc<CleanerMetrics>,
}

impl NodeMetrics {
    /// Registers every subsystem's metrics under the `roster_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        self.api.register(registry);
        self.limits.register(registry);
        self.distro.register(registry);
        self.cluster.register(registry);
        self.raft.register(registry);
        self.auth.register(registry);
        self.security.register(registry);
        self.udp_push.register(registry);
        self.cleaner.register(registry);
    }
}

/// A node that is serving.
#[derive(Debug)]
pub struct RunningNode {
    /// Bound main HTTP address.
    pub http_addr: SocketAddr,
    /// Bound client gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound peer gRPC address.
    pub peer_addr: SocketAddr,
    /// Bound admin address (`--admin-port`), if any.
    pub admin_addr: Option<SocketAddr>,
    client: Arc<ClientState>,
    admin: Arc<AdminState>,
    distro: Arc<Distro>,
    metrics: NodeMetrics,
    cluster: Cluster,
    drainer: Arc<Drainer>,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

/// Runs drains one at a time: on removal from the member list (the node
/// stays up, not ready) and on SIGTERM (the node stops after it).
#[derive(Debug)]
struct Drainer {
    client: Arc<ClientState>,
    distro: Arc<Distro>,
    settings: DrainSettings,
    /// Held while a drain runs.
    running: tokio::sync::Mutex<()>,
    /// Set once the node is stopping: it never stops draining then.
    stopping: std::sync::atomic::AtomicBool,
}

impl Drainer {
    /// Drains (see [`crate::api::grpc::drain`]) and waits, bounded, until
    /// Distro has delivered what the drain changed.
    async fn drain(&self) -> Drained {
        let _one = self.running.lock().await;
        self.client.membership.set_draining(true);
        let done = crate::api::grpc::drain::drain(&self.client, &self.settings).await;
        let deadline = tokio::time::Instant::now() + DRAIN_FLUSH;
        while self.distro.unsent() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done
    }

    /// Drains when the member list stops naming this node, and serves
    /// again (ready once loaded) when it names it again, unless stopping.
    async fn follow_listing(self: Arc<Self>) {
        let membership = self.client.membership.clone();
        if membership.is_standalone() {
            return;
        }
        let mut changes = membership.subscribe();
        let mut left = false;
        loop {
            let listed = membership.is_listed() || !membership.knows_list();
            if !listed && !left {
                left = true;
                info!(member = %membership.local(), "this member left the member list: draining, staying up not ready");
                let drainer = self.clone();
                tokio::spawn(async move { drainer.drain().await });
            } else if listed && left {
                left = false;
                if !self.stopping.load(std::sync::atomic::Ordering::Acquire) {
                    let _one = self.running.lock().await;
                    info!(member = %membership.local(), "this member is listed again: serving");
                    membership.set_draining(false);
                }
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The address this member is known by: `--advertise`, else the bind
/// address when it is specific, else the first non-loopback IP, else
/// 127.0.0.1; always with the main port.
pub fn advertised_member(config: &Config, http_port: u16) -> String {
    if let Some(a) = &config.advertise {
        return a.clone();
    }
    let ip = if !config.bind.is_unspecified() {
        config.bind
    } else {
        if_addrs::get_if_addrs()
            .ok()
            .and_then(|ifs| ifs.into_iter().map(|i| i.ip()).find(|ip| ip.is_ipv4() && !ip.is_loopback()))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    };
    format!("{ip}:{http_port}")
}

async fn bind(ip: IpAddr, port: u16, what: &str) -> Result<TcpListener> {
    TcpListener::bind((ip, port)).await.map_err(|e| Error::Bind(format!("the {what} port {ip}:{port}"), e))
}

/// Starts a node with `config` and returns once every listener is bound.
pub async fn start(config: Config) -> Result<RunningNode> {
    config.validate()?;
    let metrics = NodeMetrics::default();
    let mut registry = Registry::with_prefix("roster");
    metrics.register(&mut registry);
    // Auth files are read before any port is bound: a node told to protect
    // its clients never serves unprotected, not even briefly.
    let auth = Auth::from_settings(&config.auth, metrics.auth.clone())?;
    // So is the cluster secret: a weak one is refused before any port opens.
    config.security.load_secret()?;
    let http_listener = bind(config.bind, config.port, "HTTP").await?;
    let http_addr = http_listener.local_addr()?;
    let grpc_listener = bind(config.bind, config.grpc_port(), "client gRPC").await?;
    let grpc_addr = grpc_listener.local_addr()?;
    let peer_listener = bind(config.bind, config.peer_port(), "peer gRPC").await?;
    let peer_addr = peer_listener.local_addr()?;
    let admin_listener = match config.admin.admin_port {
        Some(port) => Some(bind(config.bind, port, "admin").await?),
        None => None,
    };
    let admin_addr = admin_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    let member = advertised_member(&config, http_addr.port());
    let security = Arc::new(PeerSecurity::load(&config.security, &member)?);
    if security.auth().is_none() {
        info!("no cluster secret: the peer port refuses every request (standalone)");
    }

    // The peer plane's outbound side, shared by reports, Distro and Raft.
    let faults = Arc::new(Faults::new(config.peer.fault_injection));
    let transport = Arc::new(
        PeerChannels::new(PeerAddressResolver::with_offset(config.peer_port_offset()), config.cluster.report_timeout)
            .with_faults(faults.clone())
            .with_security(security.clone())
            .with_message_limit(config.peer.max_message_bytes),
    );
    // One HTTP client for the address server and forwarded writes; with TLS
    // it trusts the cluster CA only.
    let http_client = security.http_client(config.distro.sync_timeout)?;
    // The address-server lookup keeps the last list it was given here, to
    // start from when the server is down at a restart.
    std::fs::create_dir_all(&config.data_dir)?;
    let mut cluster_settings = config.cluster.clone();
    cluster_settings.lookup.list_cache = Some(config.data_dir.join("members"));
    let cluster =
        Cluster::start(member, &cluster_settings, transport.clone(), http_client.clone(), metrics.cluster.clone())
            .await?;
    let membership = cluster.membership().clone();
    let mut store = NamingStore::new(config.beats.timeouts());
    if config.empty_services.keeps_emptied() {
        store = store.keeping_emptied_services();
    }
    let store = Arc::new(store);
    let input_limits = config.limits.input();
    let distro = Distro::new(
        store.clone(),
        membership.clone(),
        transport.clone(),
        faults.clone(),
        metrics.distro.clone(),
        input_limits,
        config.distro,
    );
    let raft = start_raft(&config, &cluster, &store, transport.clone(), faults.clone(), &metrics).await?;
    let connections = Arc::new(Connections::new(metrics.api.clone()));
    let subscribers = Arc::new(Subscribers::default());
    let udp_push = Arc::new(UdpPush::new(config.udp_push, security.client_tls().is_some(), metrics.udp_push.clone()));
    let client = Arc::new(ClientState {
        member: membership.local().to_owned(),
        lookup: config.cluster.lookup.mode,
        membership: membership.clone(),
        store: store.clone(),
        connections: connections.clone(),
        subscribers: subscribers.clone(),
        udp_push: udp_push.clone(),
        limits: input_limits,
        client_limits: Arc::new(ClientLimits::new(&config.limits, metrics.limits.clone())),
        max_body_bytes: config.limits.max_body_bytes,
        max_grpc_message_bytes: config.limits.max_grpc_message_bytes,
        connection_settings: config.connections,
        auth,
        raft: raft.clone(),
        http_client,
        security: security.clone(),
        faults: faults.clone(),
        metrics: metrics.api.clone(),
        distro_metrics: metrics.distro.clone(),
        security_metrics: metrics.security.clone(),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);

    let push = PushService::new(
        store.clone(),
        connections.clone(),
        subscribers.clone(),
        metrics.api.clone(),
        PushTimings { delay: config.push.delay, timeout: config.push.timeout, retry_delay: config.push.retry_delay },
    );
    let mut background = vec![
        tokio::spawn(push.run()),
        tokio::spawn(grpc::run_ejector(client.clone())),
        tokio::spawn(http::beat::run_expiry(store.clone(), membership.clone(), config.beats.check_interval)),
        tokio::spawn(cleaner::run(store.clone(), config.empty_services, metrics.cleaner.clone())),
    ];
    background.extend(distro.start());
    background.extend(udp_push.start(config.bind, store.clone(), config.push.delay).await?);
    let drainer = Arc::new(Drainer {
        client: client.clone(),
        distro: distro.clone(),
        settings: config.drain,
        running: tokio::sync::Mutex::new(()),
        stopping: std::sync::atomic::AtomicBool::new(false),
    });
    background.push(tokio::spawn(drainer.clone().follow_listing()));

    let grpc_server = listeners::serve_client_grpc(&client, &config, &security, grpc_listener, shutdown_rx.clone())?;
    let peer_service = PeerService::new(membership.clone())
        .with_faults(faults.clone())
        .with_metrics(metrics.security.clone())
        .with_distro(Arc::new(DistroPeer(distro.clone())))
        .with_raft(raft.rpc());
    let peer_metrics = (&metrics.limits, &metrics.security);
    let peer_server =
        listeners::serve_peer(peer_service, &config, &security, peer_metrics, peer_listener, shutdown_rx.clone())?;

    let admin = AdminState::new(AdminParts {
        member: client.member.clone(),
        lookup: config.cluster.lookup.mode,
        membership,
        distro: distro.clone(),
        raft,
        store,
        connections,
        subscribers,
        faults,
        auth: client.auth.clone(),
        registry,
        http_client: client.http_client.clone(),
        http_scheme: security.http_scheme(),
    });
    let mut servers = vec![grpc_server, peer_server];
    if let Some(listener) = admin_listener {
        servers.push(listeners::serve_admin(&admin, &client, &security, listener, shutdown_rx.clone())?);
    }
    servers.push(listeners::serve_http(&client, &admin, &security, http_listener, shutdown_rx)?);

    info!(
        member = %client.member,
        lookup = config.cluster.lookup.mode.as_str(),
        http = %http_addr,
        grpc = %grpc_addr,
        peer = %peer_addr,
        admin = ?admin_addr,
        client_tls = security.client_tls().is_some(),
        peer_tls = security.peer_tls().is_some(),
        "roster node serving"
    );
    Ok(RunningNode {
        http_addr,
        grpc_addr,
        peer_addr,
        admin_addr,
        client,
        admin,
        distro,
        metrics,
        cluster,
        drainer,
        shutdown,
        servers,
        background,
    })
}

/// Starts this member's Raft over the data directory.
async fn start_raft(
    config: &Config,
    cluster: &Cluster,
    store: &Arc<NamingStore>,
    transport: Arc<dyn PeerTransport>,
    faults: Arc<Faults>,
    metrics: &NodeMetrics,
) -> Result<Arc<RaftNode>> {
    let membership: &Arc<Membership> = cluster.membership();
    let list = match cluster.lookup() {
        Some(lookup) => lookup.subscribe(),
        None => watch::channel(vec![membership.local().to_owned()]).1,
    };
    RaftNode::start(RaftContext {
        settings: config.raft,
        overrides: config.overrides,
        data_dir: config.data_dir.clone(),
        local: membership.local().to_owned(),
        standalone: membership.is_standalone(),
        store: store.clone(),
        membership: membership.clone(),
        transport,
        faults,
        list,
        metrics: metrics.raft.clone(),
    })
    .await
}

impl RunningNode {
    /// This member's address, `host:mainPort`.
    pub fn member(&self) -> &str {
        &self.client.member
    }

    /// The naming store.
    pub fn store(&self) -> &Arc<NamingStore> {
        &self.client.store
    }

    /// The members and their states.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.client.membership
    }

    /// Open gRPC client connections.
    pub fn connections(&self) -> &Arc<Connections> {
        &self.client.connections
    }

    /// Subscriptions of the connections.
    pub fn subscribers(&self) -> &Arc<Subscribers> {
        &self.client.subscribers
    }

    /// UDP push to 1.x HTTP clients (its subscribers).
    pub fn udp_push(&self) -> &Arc<UdpPush> {
        &self.client.udp_push
    }

    /// The connection gates and rate buckets of the client planes.
    pub fn client_limits(&self) -> &ClientLimits {
        &self.client.client_limits
    }

    /// Distro.
    pub fn distro(&self) -> &Arc<Distro> {
        &self.distro
    }

    /// The Raft member.
    pub fn raft(&self) -> &Arc<RaftNode> {
        &self.client.raft
    }

    /// Every subsystem's metrics.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }

    /// What `GET /metrics` answers now.
    pub fn metrics_text(&self) -> String {
        self.admin.metrics_text()
    }

    /// Closes the gRPC connection `id` and removes what it owned, as a
    /// client disconnecting would.
    pub fn close_connection(&self, id: &str) {
        grpc::close_connection(&self.client, id);
    }

    /// Drains the node before it stops (SIGTERM): readiness turns 503, its
    /// gRPC clients are moved to other members and their instances stay
    /// visible until registered there (bounded by the drain settings); see
    /// [`crate::api::grpc::drain`]. The node still serves afterwards; call
    /// [`RunningNode::shutdown`] to stop it.
    pub async fn drain(&self) -> Drained {
        self.drainer.stopping.store(true, std::sync::atomic::Ordering::Release);
        self.drainer.drain().await
    }

    /// Whether the node drains (it was told to stop, or left the list).
    pub fn is_draining(&self) -> bool {
        self.client.membership.is_draining()
    }

    /// Stops serving: closes client connections (their streams end), stops
    /// the listeners, waits for in-flight requests up to a grace period and
    /// ends the background tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        grpc::close_all(&self.client);
        for server in self.servers {
            let abort = server.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
                abort.abort();
            }
        }
        self.distro.stop();
        for task in self.background {
            task.abort();
        }
        self.client.raft.shutdown().await;
        self.cluster.shutdown().await;
        info!(member = %self.client.member, "roster node stopped");
    }
}
