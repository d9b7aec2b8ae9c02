//! Starting and stopping a node: binds the listeners, spawns the background
//! tasks (push, beat expiry, connection ejector) and shuts them down in order.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::{Connected, TcpIncoming};
use tower_layer::{Identity, Stack};
use tracing::{info, warn};

use crate::api::{grpc, http};
use crate::auth::Auth;
use crate::cluster::{Cluster, LookupSource, PeerAddressResolver};
use crate::config::Config;
use crate::distro::{DistroPeer, MAX_PEER_MESSAGE_BYTES};
use crate::error::{Error, Result};
use crate::limits::{self, Limit};
use crate::metrics::Metrics;
use crate::push::{PushService, PushTimings};
use crate::raft::{RaftContext, RaftNode};
use crate::security::{Authenticated, PeerSecurity, TlsListener};
use crate::state::NodeState;
use crate::status;

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A node that is serving.
#[derive(Debug)]
pub struct RunningNode {
    /// Bound main HTTP address.
    pub http_addr: SocketAddr,
    /// Bound client gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound peer gRPC address.
    pub peer_addr: SocketAddr,
    /// Shared state, for inspection by tests and the admin plane.
    pub state: Arc<NodeState>,
    cluster: Cluster,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
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
    TcpListener::bind((ip, port))
        .await
        .map_err(|e| Error::Config(format!("cannot bind the {what} port {ip}:{port}: {e}")))
}

/// Starts a node with `config` and returns once every listener is bound.
pub async fn start(config: Config) -> Result<RunningNode> {
    config.validate()?;
    // Auth files are read before any port is bound: a node told to protect
    // its clients never serves unprotected, not even briefly.
    let metrics = Arc::new(Metrics::new());
    let auth = Auth::from_config(&config, metrics.auth.clone())?;
    let http_listener = bind(config.bind, config.port, "HTTP").await?;
    let http_addr = http_listener.local_addr()?;
    let grpc_listener = bind(config.bind, config.grpc_port(), "client gRPC").await?;
    let grpc_addr = grpc_listener.local_addr()?;
    let peer_listener = bind(config.bind, config.peer_port(), "peer gRPC").await?;
    let peer_addr = peer_listener.local_addr()?;
    let member = advertised_member(&config, http_addr.port());
    let security = Arc::new(PeerSecurity::load(&config.security, &member)?);
    if security.auth().is_none() {
        info!("no cluster secret: the peer port refuses every request (standalone)");
    }
    let cluster = Cluster::start_secured(
        member,
        LookupSource::from_config(&config)?,
        config.cluster_settings(),
        PeerAddressResolver::with_offset(config.peer_port_offset()),
        metrics.cluster.clone(),
        security.clone(),
    )
    .await?;
    let state = NodeState::new(config, &cluster, metrics, auth, security.clone())?;
    let raft = start_raft(&state, &cluster).await?;
    let (shutdown, shutdown_rx) = watch::channel(false);

    let push = PushService::new(
        state.store.clone(),
        state.connections.clone(),
        state.subscribers.clone(),
        state.metrics.clone(),
        PushTimings {
            delay: state.config.push_delay,
            timeout: state.config.push_timeout,
            retry_delay: state.config.push_retry_delay,
        },
    );
    let mut background = vec![
        tokio::spawn(push.run()),
        tokio::spawn(grpc::run_ejector(state.clone())),
        tokio::spawn(run_beat_expiry(state.clone())),
    ];
    background.extend(state.distro.start());
    background.extend(crate::push_udp::start(&state).await?);

    let (unary, stream) = grpc::services(state.clone());
    let mut client_api = tonic::transport::Server::builder();
    if let Some(tls) = security.client_tls() {
        client_api =
            client_api.tls_config(tls.grpc.clone()).map_err(|e| Error::Config(format!("client gRPC TLS: {e}")))?;
    }
    let client_api = client_api
        .layer(limits::MessageLimitLayer::new(Limit::GrpcMessageBytes, state.metrics.clone()))
        .add_service(unary)
        .add_service(stream);
    let grpc_incoming = limits::grpc_incoming(
        grpc_listener,
        state.client_limits.grpc_connections.clone(),
        state.client_limits.grpc_rate.clone(),
    );
    let grpc_server = spawn_grpc(client_api, grpc_incoming, shutdown_rx.clone(), "client gRPC");
    let peer_service =
        cluster.peer_service().with_distro(Arc::new(DistroPeer(state.distro.clone()))).with_raft(raft.rpc());
    let mut peer_api = tonic::transport::Server::builder();
    if let Some(tls) = security.peer_tls() {
        peer_api = peer_api.tls_config(tls.server.clone()).map_err(|e| Error::Config(format!("peer TLS: {e}")))?;
    }
    // Every peer RPC passes the signature check first (crate::security).
    let peer_api = peer_api
        .layer(limits::MessageLimitLayer::new(Limit::PeerMessageBytes, state.metrics.clone()))
        .add_service(Authenticated::new(
            peer_service
                .into_server()
                .max_decoding_message_size(state.config.max_peer_message_bytes)
                .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES),
            security.auth().cloned(),
            state.metrics.cluster.clone(),
        ));
    let peer_incoming = TcpIncoming::from(peer_listener).with_nodelay(Some(true));
    let peer_server = spawn_grpc(peer_api, peer_incoming, shutdown_rx.clone(), "peer gRPC");

    let app = http::router(state.clone())
        .merge(status::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::http_guard))
        .layer(axum::middleware::from_fn_with_state(state.clone(), http::count_requests))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let http_listener = limits::LimitedListener::new(http_listener, state.client_limits.http_connections.clone())
        .tap_io(|io| {
            let _ = io.get_ref().set_nodelay(true);
        });
    let mut http_shutdown = shutdown_rx;
    let stop = async move {
        let _ = http_shutdown.wait_for(|stop| *stop).await;
    };
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let http_server = match security.client_tls() {
        None => tokio::spawn(async move {
            if let Err(e) = axum::serve(http_listener, app).with_graceful_shutdown(stop).await {
                warn!(error = %e, "HTTP server stopped with an error");
            }
        }),
        Some(tls) => {
            // `tap_io` only lends the listener axum's connect-info support.
            use axum::serve::ListenerExt;
            let listener = TlsListener::new(http_listener, tls.http.clone())?.tap_io(|_| {});
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
                    warn!(error = %e, "HTTPS server stopped with an error");
                }
            })
        }
    };

    info!(
        member = %state.member,
        lookup = state.config.lookup.as_str(),
        http = %http_addr,
        grpc = %grpc_addr,
        peer = %peer_addr,
        client_tls = security.client_tls().is_some(),
        peer_tls = security.peer_tls().is_some(),
        "roster node serving"
    );
    Ok(RunningNode {
        http_addr,
        grpc_addr,
        peer_addr,
        state,
        cluster,
        shutdown,
        servers: vec![grpc_server, http_server, peer_server],
        background,
    })
}

/// Starts this member's Raft over the data directory and publishes it in `state`.
async fn start_raft(state: &Arc<NodeState>, cluster: &Cluster) -> Result<Arc<RaftNode>> {
    let list = match cluster.lookup() {
        Some(lookup) => lookup.subscribe(),
        None => watch::channel(vec![state.member.clone()]).1,
    };
    let raft = RaftNode::start(RaftContext {
        settings: state.config.raft_settings(),
        data_dir: state.config.data_dir.clone(),
        local: state.member.clone(),
        standalone: state.membership.is_standalone(),
        store: state.store.clone(),
        membership: state.membership.clone(),
        channels: cluster.channels().clone(),
        list,
        metrics: state.metrics.raft.clone(),
    })
    .await?;
    if state.raft.set(raft.clone()).is_err() {
        return Err(Error::Internal("Raft was started twice".into()));
    }
    Ok(raft)
}

/// Serves a gRPC router on the connections of `incoming` until `shutdown`
/// turns true.
fn spawn_grpc<I, IO>(
    router: tonic::transport::server::Router<Stack<limits::MessageLimitLayer, Identity>>,
    incoming: I,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
) -> JoinHandle<()>
where
    I: futures::Stream<Item = std::io::Result<IO>> + Send + 'static,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
            warn!(error = %e, server = what, "gRPC server stopped with an error");
        }
    })
}

/// Expires HTTP instances that stopped beating.
async fn run_beat_expiry(state: Arc<NodeState>) {
    let mut tick = tokio::time::interval(state.config.beat_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let responsibility = state.membership.responsibility();
        let changed = state.store.expire_beats(Instant::now(), |tag| responsibility.is_local(tag));
        if !changed.is_empty() {
            tracing::debug!(services = changed.len(), "beat expiry changed services");
        }
    }
}

impl RunningNode {
    /// Stops serving: closes client connections (their streams end), stops
    /// the listeners, waits for in-flight requests up to a grace period and
    /// ends the background tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        grpc::close_all(&self.state);
        for server in self.servers {
            let abort = server.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
                abort.abort();
            }
        }
        self.state.distro.stop();
        for task in self.background {
            task.abort();
        }
        if let Some(raft) = self.state.raft.get() {
            raft.shutdown().await;
        }
        self.cluster.shutdown().await;
        info!(member = %self.state.member, "roster node stopped");
    }
}
