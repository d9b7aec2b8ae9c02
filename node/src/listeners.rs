//! Serving each plane's listener behind its connection limits: what a
//! client without credentials can hold is decided here, before any
//! handler runs.
//!
//! * **Client gRPC** (main + 1000): admitted within `--max-grpc-connections`
//!   and `--max-grpc-connections-per-ip`; a connection that has not sent
//!   its `ConnectionSetupRequest` within `--grpc-setup-timeout` is closed;
//!   HTTP/2 keepalive pings and `--grpc-max-concurrent-streams` per
//!   connection; the message-size layer.
//! * **Peer gRPC** (main + 1001): admitted within `--max-peer-connections`
//!   and `--max-peer-connections-per-ip`; a connection that has carried no
//!   validly signed request within `--peer-auth-timeout` is closed; every
//!   call passes the signature check ([`crate::security`]).
//! * **Main HTTP**: admitted within `--max-http-connections` and
//!   `--max-http-connections-per-ip` (refused connections still get the
//!   admin routes); every request head within `--http-header-read-timeout`
//!   ([`crate::limits::http_server`]).
//! * **Admin HTTP** (`--admin-port`, optional): the admin routes only, on
//!   their own small gate ([`ADMIN_CONNECTIONS`]), never sharing the
//!   client port's limits.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::Connected;
use tower_layer::{Identity, Stack};
use tracing::warn;

use crate::admin::{self, AdminState};
use crate::api::{grpc, http, ClientState};
use crate::config::Config;
use crate::console;
use crate::error::{Error, Result};
use crate::limits::{self, ConnectionGate, GateLimits, GrpcAdmission, Limit, LimitMetrics, SetupTracker};
use crate::peer::PeerService;
use crate::security::{Authenticated, PeerSecurity, SecurityMetrics, TlsListener};

/// Open connections the admin port admits, in all and from one IP (a
/// kubelet probes over a new connection each time; the operator reads the
/// status now and then).
pub const ADMIN_CONNECTIONS: (usize, usize) = (128, 16);

/// The client gRPC port: the two Nacos services behind the message-size
/// layer, on connections admitted by the connection gate.
pub fn serve_client_grpc(
    client: &Arc<ClientState>,
    config: &Config,
    security: &PeerSecurity,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let settings = &config.limits;
    let (unary, stream) = grpc::services(client.clone());
    let mut server = tonic::transport::Server::builder()
        .max_concurrent_streams(
            (settings.grpc_max_concurrent_streams > 0).then_some(settings.grpc_max_concurrent_streams),
        )
        .http2_keepalive_interval(
            (!settings.grpc_keepalive_interval.is_zero()).then_some(settings.grpc_keepalive_interval),
        )
        .http2_keepalive_timeout(Some(settings.grpc_keepalive_timeout));
    if let Some(tls) = security.client_tls() {
        server = server.tls_config(tls.grpc.clone()).map_err(|e| Error::Tls(format!("client gRPC: {e}")))?;
    }
    let limits = &client.client_limits;
    let router = server
        .layer(limits::MessageLimitLayer::new(Limit::GrpcMessageBytes, limits.metrics().clone()))
        .add_service(unary)
        .add_service(stream);
    let (buckets, connections) = (limits.grpc_rate.clone(), client.connections.clone());
    let admission = GrpcAdmission {
        gate: limits.grpc_connections.clone(),
        setup: Some(limits.grpc_setup.clone()),
        // A closed connection's rate bucket and unused id go with it.
        on_close: Some(Arc::new(move |remote| {
            buckets.remove(&remote);
            connections.forget(remote);
        })),
    };
    let incoming = limits::grpc_incoming(listener, admission);
    Ok(spawn_grpc(router, incoming, shutdown, "client gRPC"))
}

/// The peer port: every RPC passes the signature check first
/// ([`crate::security`]), every message the one peer message limit, every
/// connection the peer gate and the authentication deadline.
pub fn serve_peer(
    service: PeerService,
    config: &Config,
    security: &PeerSecurity,
    metrics: (&Arc<LimitMetrics>, &Arc<SecurityMetrics>),
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let (limit_metrics, security_metrics) = metrics;
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = security.peer_tls() {
        server = server.tls_config(tls.server.clone()).map_err(|e| Error::Tls(format!("peer port: {e}")))?;
    }
    let settings = &config.security;
    let setup = SetupTracker::new(settings.peer_auth_timeout, Limit::PeerAuthTimeout, limit_metrics.clone());
    let max = config.peer.max_message_bytes;
    let router =
        server.layer(limits::MessageLimitLayer::new(Limit::PeerMessageBytes, limit_metrics.clone())).add_service(
            Authenticated::new(
                service.into_limited_server(max),
                security.auth().cloned(),
                security_metrics.clone(),
                max,
            )
            .with_setup(setup.clone()),
        );
    let gate = ConnectionGate::new(
        GateLimits {
            total: settings.max_peer_connections,
            per_ip: settings.max_peer_connections_per_ip,
            which: Limit::PeerConnections,
            which_per_ip: Limit::PeerConnectionsPerIp,
        },
        limit_metrics.clone(),
    );
    let admission = GrpcAdmission { gate: Arc::new(gate), setup: Some(setup), on_close: None };
    let incoming = limits::grpc_incoming(listener, admission);
    Ok(spawn_grpc(router, incoming, shutdown, "peer gRPC"))
}

/// The main HTTP port: the client API behind the client limits, with the
/// admin plane merged in after them (a console would be merged the same
/// way), every request counted.
pub fn serve_http(
    client: &Arc<ClientState>,
    admin: &Arc<AdminState>,
    security: &PeerSecurity,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let admin_router = admin::router(admin.clone());
    let app = http::router(client.clone())
        .merge(console::router(client.clone()))
        .layer(DefaultBodyLimit::max(client.max_body_bytes))
        .merge(admin_router.clone())
        .layer(axum::middleware::from_fn_with_state(client.metrics.clone(), http::count_requests));
    let listener = limits::LimitedListener::new(listener, client.client_limits.http_connections.clone(), admin_router);
    serve_http_on(listener, app, client.client_limits.http_serving.clone(), security, shutdown)
}

/// The admin port (`--admin-port`): the admin routes alone, behind a gate
/// of their own.
pub fn serve_admin(
    admin: &Arc<AdminState>,
    client: &Arc<ClientState>,
    security: &PeerSecurity,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let limits = &client.client_limits;
    let gate = ConnectionGate::new(
        GateLimits {
            total: ADMIN_CONNECTIONS.0,
            per_ip: ADMIN_CONNECTIONS.1,
            which: Limit::HttpConnections,
            which_per_ip: Limit::HttpConnectionsPerIp,
        },
        limits.metrics().clone(),
    );
    let app = admin::router(admin.clone())
        .layer(axum::middleware::from_fn_with_state(client.metrics.clone(), http::count_requests));
    let listener = limits::LimitedListener::new(listener, Arc::new(gate), axum::Router::new());
    serve_http_on(listener, app, limits.http_serving.clone(), security, shutdown)
}

fn serve_http_on(
    listener: limits::LimitedListener,
    app: axum::Router,
    serving: limits::HttpServing,
    security: &PeerSecurity,
    shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    Ok(match security.client_tls() {
        None => tokio::spawn(limits::http_server::serve(listener, app, serving, shutdown)),
        Some(tls) => {
            let listener = TlsListener::new(listener, tls.http.clone())?;
            tokio::spawn(limits::http_server::serve(listener, app, serving, shutdown))
        }
    })
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
