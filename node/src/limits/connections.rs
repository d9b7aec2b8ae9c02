//! Connection limits of the client ports.
//!
//! Each listener accepts every TCP connection and asks its
//! [`ConnectionGate`] for a permit. An admitted connection carries its
//! permit in [`Admitted`] and frees it when it closes. A connection over
//! the limit never reaches the server: a small task answers it in its own
//! protocol (gRPC: status `RESOURCE_EXHAUSTED` on every call; HTTP: 503 with
//! a `caused: ...;` body) and closes it, so a client learns why instead of
//! seeing a reset. Connections already open are not disturbed. On the HTTP
//! port the refusing task still serves the admin plane's routes (status,
//! probes, metrics): the connection limit is a client limit, and the
//! operator and Kubernetes must reach a node that refuses its clients.
//!
//! At most [`MAX_REFUSING`] refusals run at once; past that, connections
//! over the limit are closed at once without an answer, so a connection
//! flood cannot grow the refusal tasks without bound.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, warn};

use super::{KeyedBuckets, Limit, LimitMetrics};

/// Most refusals answered at once (per port).
pub const MAX_REFUSING: usize = 64;
/// How long a refused connection is kept open to answer its requests.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

/// Counts the open connections of one port against its limit.
#[derive(Debug)]
pub struct ConnectionGate {
    limit: usize,
    permits: Option<Arc<Semaphore>>,
    refusing: Arc<Semaphore>,
    which: Limit,
    metrics: Arc<LimitMetrics>,
}

/// A permit to stay connected; `None` when the port has no limit.
pub type ConnectionPermit = Option<OwnedSemaphorePermit>;

impl ConnectionGate {
    /// A gate admitting `limit` connections at once (0: any number).
    pub fn new(limit: usize, which: Limit, metrics: Arc<LimitMetrics>) -> Self {
        let permits = (limit > 0).then(|| Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))));
        ConnectionGate { limit, permits, refusing: Arc::new(Semaphore::new(MAX_REFUSING)), which, metrics }
    }

    /// A permit for a new connection, or `None` when the port is full.
    pub fn admit(&self) -> Option<ConnectionPermit> {
        match &self.permits {
            None => Some(None),
            Some(sem) => sem.clone().try_acquire_owned().ok().map(Some),
        }
    }

    /// Connections open now (0 when there is no limit).
    pub fn open(&self) -> usize {
        self.permits.as_ref().map_or(0, |sem| self.limit.saturating_sub(sem.available_permits()))
    }

    /// The client-facing reason of a refusal.
    pub fn reason(&self) -> String {
        format!(
            "Too many connections: this node accepts at most {} on this port; try again later or another node.",
            self.limit
        )
    }

    /// Counts a refused connection and answers it with `refuse` if a
    /// refusal slot is free, else closes it at once.
    fn refuse<F, Fut>(&self, stream: TcpStream, remote: SocketAddr, refuse: F)
    where
        F: FnOnce(TcpStream, String) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.metrics.rejected(self.which);
        debug!(%remote, limit = self.limit, which = self.which.label(), "connection refused: over the limit");
        match self.refusing.clone().try_acquire_owned() {
            Ok(slot) => {
                let answer = refuse(stream, self.reason());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REFUSAL_GRACE, answer).await;
                    drop(slot);
                });
            }
            Err(_) => drop(stream),
        }
    }
}

/// An admitted connection: the stream, its permit (freed on close) and,
/// for gRPC, the rate bucket to forget on close.
#[derive(Debug)]
pub struct Admitted<S> {
    io: S,
    _permit: ConnectionPermit,
    bucket: Option<(Arc<KeyedBuckets<SocketAddr>>, SocketAddr)>,
}

impl<S> Admitted<S> {
    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S> Drop for Admitted<S> {
    fn drop(&mut self) {
        if let Some((buckets, remote)) = self.bucket.take() {
            buckets.remove(&remote);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl Connected for Admitted<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

/// Waits after a failed `accept`, as servers do: at once for errors of one
/// connection, a moment for errors of the process (out of descriptors).
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The admitted connections of the client gRPC port, for tonic's
/// `serve_with_incoming_shutdown`. Each carries its rate bucket's key, so
/// the bucket goes when the connection does.
pub fn grpc_incoming(
    listener: TcpListener,
    gate: Arc<ConnectionGate>,
    buckets: Arc<KeyedBuckets<SocketAddr>>,
) -> impl futures::Stream<Item = io::Result<Admitted<TcpStream>>> + Send + 'static {
    futures::stream::unfold((listener, gate, buckets), |(listener, gate, buckets)| async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            match gate.admit() {
                Some(permit) => {
                    let admitted = Admitted { io: stream, _permit: permit, bucket: Some((buckets.clone(), remote)) };
                    return Some((Ok(admitted), (listener, gate, buckets)));
                }
                None => gate.refuse(stream, remote, refuse_grpc),
            }
        }
    })
}

/// Answers every gRPC call on a refused connection with
/// `RESOURCE_EXHAUSTED` until the connection closes or the grace ends.
async fn refuse_grpc(stream: TcpStream, reason: String) {
    let service = hyper::service::service_fn(move |_request: http::Request<hyper::body::Incoming>| {
        let status = tonic::Status::resource_exhausted(reason.clone());
        async move { Ok::<_, Infallible>(status.into_http::<tonic::body::Body>()) }
    });
    let served =
        hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service);
    if let Err(e) = served.await {
        debug!(error = %e, "refused gRPC connection ended");
    }
}

/// Answers one HTTP request on a refused connection and closes it: a route
/// of `unlimited` (the admin plane) is served as usual, anything else gets
/// 503 with the reason.
async fn refuse_http(stream: TcpStream, reason: String, unlimited: axum::Router) {
    let refusal = move || {
        let body = format!("caused: {reason};");
        async move {
            (
                http::StatusCode::SERVICE_UNAVAILABLE,
                [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8"), (http::header::RETRY_AFTER, "1")],
                body,
            )
        }
    };
    let service = hyper_util::service::TowerToHyperService::new(unlimited.fallback(refusal));
    let served =
        hyper::server::conn::http1::Builder::new().keep_alive(false).serve_connection(TokioIo::new(stream), service);
    if let Err(e) = served.await {
        debug!(error = %e, "refused HTTP connection ended");
    }
}

/// The main HTTP port's listener for `axum::serve`: admits connections
/// through its gate and refuses the rest with 503, except on the routes of
/// the router given to [`LimitedListener::new`] (the admin plane).
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    gate: Arc<ConnectionGate>,
    unlimited: axum::Router,
}

impl LimitedListener {
    /// Wraps `inner`, admitting connections through `gate`; refused
    /// connections are still answered on the routes of `unlimited`, which
    /// must have no fallback of its own.
    pub fn new(inner: TcpListener, gate: Arc<ConnectionGate>, unlimited: axum::Router) -> Self {
        LimitedListener { inner, gate, unlimited }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Admitted<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, remote) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            };
            match self.gate.admit() {
                Some(permit) => return (Admitted { io: stream, _permit: permit, bucket: None }, remote),
                None => {
                    let unlimited = self.unlimited.clone();
                    self.gate.refuse(stream, remote, move |stream, reason| refuse_http(stream, reason, unlimited))
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
