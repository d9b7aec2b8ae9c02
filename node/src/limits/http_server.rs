//! Serving HTTP/1.1 connections with a deadline on every request head.
//!
//! A client that opens a connection and sends its request head slowly, or
//! never (slowloris), would otherwise hold a connection for as long as it
//! likes; enough of them take every connection the port allows. Each
//! connection here runs on hyper's HTTP/1 server with its timer: the
//! request head must be complete within `--http-header-read-timeout`,
//! counted from the moment the connection opens or the previous response
//! was sent. So a silent or slow-talking connection is closed after that
//! time, and so is a keep-alive connection that stays idle that long
//! (Tomcat, which Nacos runs on, closes idle connections after its
//! connection timeout in the same way). A connection closed this way before
//! it completed any request is counted in
//! `roster_limit_rejections_total{limit="http_header_timeout"}`.
//!
//! HTTP/2 is not served on this port (Nacos clients speak HTTP/1.1), so
//! there is no protocol detection that could wait for bytes without a
//! deadline. On shutdown the listener stops accepting, every connection
//! finishes its request in flight and closes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_service::Service;
use tracing::debug;

use super::{Limit, LimitMetrics};

/// How one HTTP port serves its connections.
#[derive(Debug, Clone)]
pub struct HttpServing {
    /// Time allowed for each request head (and for an idle keep-alive
    /// connection to send the next one).
    pub header_read_timeout: Duration,
    /// Where header timeouts are counted.
    pub metrics: Arc<LimitMetrics>,
}

/// Serves `app` on the connections of `listener` until `shutdown` turns
/// true; each request carries `ConnectInfo<SocketAddr>` of its connection.
pub async fn serve<L>(mut listener: L, app: Router, serving: HttpServing, mut shutdown: watch::Receiver<bool>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set holds only open ones.
        while connections.try_join_next().is_some() {}
        let (io, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => break,
        };
        connections.spawn(serve_connection(io, remote, app.clone(), serving.clone(), shutdown.clone()));
    }
    while connections.join_next().await.is_some() {}
}

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection<Io>(
    io: Io,
    remote: SocketAddr,
    app: Router,
    serving: HttpServing,
    mut shutdown: watch::Receiver<bool>,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let answered = Arc::new(AtomicBool::new(false));
    let seen = answered.clone();
    let service = hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
        seen.store(true, Ordering::Relaxed);
        request.extensions_mut().insert(ConnectInfo(remote));
        let mut app = app.clone();
        async move { app.call(request.map(axum::body::Body::new)).await }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(serving.header_read_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() && !answered.load(Ordering::Relaxed) {
            serving.metrics.rejected(Limit::HttpHeaderTimeout);
        }
        debug!(%remote, error = %e, "HTTP connection ended");
    }
}
