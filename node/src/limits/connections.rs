//! Connection limits of the client ports and the peer port.
//!
//! Each listener accepts every TCP connection and asks its
//! [`ConnectionGate`] for a permit: within the port's limit of open
//! connections, and within its limit per client IP, so that one address
//! cannot take the slots every client shares. An admitted connection
//! carries its permit in [`Admitted`] and frees it when it closes; on the
//! gRPC ports it also carries its set-up deadline ([`super::setup`]). A
//! connection over a limit never reaches the server: a small task answers
//! it in its own protocol (gRPC: status `RESOURCE_EXHAUSTED` on every call;
//! HTTP: 503 with a `caused: ...;` body) and closes it, so a client learns
//! why instead of seeing a reset. Connections already open are not
//! disturbed. On the HTTP port the refusing task still serves the admin
//! plane's routes (status, probes, metrics): the connection limits are
//! client limits, and the operator and Kubernetes must reach a node that
//! refuses its clients.
//!
//! At most [`MAX_REFUSING`] refusals run at once per port, and at most
//! [`MAX_REFUSING_PER_IP`] for one client IP; past that, connections over
//! the limit are closed at once without an answer, so a connection flood
//! cannot grow the refusal tasks without bound, and one flooding address
//! cannot take every refusal slot. A refused HTTP connection must send its
//! request head within the refusal grace (2 s).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, warn};

use super::per_ip::{IpPermit, PerIp};
use super::setup::{SetupTracker, SetupWatch};
use super::{Limit, LimitMetrics};

/// Most refusals answered at once (per port).
pub const MAX_REFUSING: usize = 64;
/// Most refusals answered at once to one client IP, so that one address
/// cannot take every refusal slot (a probe from another address that the
/// connection limit refuses is still answered on the admin routes).
pub const MAX_REFUSING_PER_IP: usize = 4;
/// How long a refused connection is kept open to answer its requests.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

/// The limits of one port's gate.
#[derive(Debug, Clone, Copy)]
pub struct GateLimits {
    /// Open connections on the port (0: any number).
    pub total: usize,
    /// Open connections from one client IP (0: any number).
    pub per_ip: usize,
    /// The label refusals by `total` are counted under.
    pub which: Limit,
    /// The label refusals by `per_ip` are counted under.
    pub which_per_ip: Limit,
}

/// Counts the open connections of one port against its limits: all of
/// them, and those of each client IP.
#[derive(Debug)]
pub struct ConnectionGate {
    limits: GateLimits,
    permits: Option<Arc<Semaphore>>,
    per_ip: Arc<PerIp>,
    refusing: Arc<Semaphore>,
    refusing_per_ip: Arc<PerIp>,
    metrics: Arc<LimitMetrics>,
}

/// A permit to stay connected, freed when the connection closes.
#[derive(Debug)]
pub struct ConnectionPermit {
    _total: Option<OwnedSemaphorePermit>,
    _ip: IpPermit,
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The limit that refused it.
    pub limit: Limit,
    /// What the client is told.
    pub reason: String,
}

impl ConnectionGate {
    /// A gate admitting `limits.total` connections at once, at most
    /// `limits.per_ip` of them from one client IP.
    pub fn new(limits: GateLimits, metrics: Arc<LimitMetrics>) -> Self {
        let permits = (limits.total > 0).then(|| Arc::new(Semaphore::new(limits.total.min(Semaphore::MAX_PERMITS))));
        ConnectionGate {
            limits,
            permits,
            per_ip: PerIp::new(limits.per_ip),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            refusing_per_ip: PerIp::new(MAX_REFUSING_PER_IP),
            metrics,
        }
    }

    /// A permit for a new connection from `remote`, or why not.
    pub fn admit(&self, remote: SocketAddr) -> Result<ConnectionPermit, Refused> {
        let ip = remote.ip();
        let Some(ip_permit) = self.per_ip.acquire(ip) else {
            return Err(Refused {
                limit: self.limits.which_per_ip,
                reason: format!(
                    "Too many connections from {ip}: this node accepts at most {} from one address on this port; \
                     close some or try again later.",
                    self.limits.per_ip
                ),
            });
        };
        let total = match &self.permits {
            None => None,
            Some(sem) => Some(sem.clone().try_acquire_owned().map_err(|_| Refused {
                limit: self.limits.which,
                reason: format!(
                    "Too many connections: this node accepts at most {} on this port; try again later or another node.",
                    self.limits.total
                ),
            })?),
        };
        Ok(ConnectionPermit { _total: total, _ip: ip_permit })
    }

    /// Connections open now (0 when there is no total limit).
    pub fn open(&self) -> usize {
        self.permits.as_ref().map_or(0, |sem| self.limits.total.saturating_sub(sem.available_permits()))
    }

    /// Connections open now from `ip` (0 when there is no per-IP limit).
    pub fn open_from(&self, ip: std::net::IpAddr) -> usize {
        self.per_ip.held(ip)
    }

    /// Counts a refused connection and answers it with `answer` if a
    /// refusal slot is free (for the port and for the client's IP), else
    /// closes it at once.
    fn refuse<F, Fut>(&self, stream: TcpStream, remote: SocketAddr, refused: Refused, answer: F)
    where
        F: FnOnce(TcpStream, String) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.metrics.rejected(refused.limit);
        debug!(%remote, limit = refused.limit.label(), "connection refused");
        let Some(ip_slot) = self.refusing_per_ip.acquire(remote.ip()) else { return drop(stream) };
        match self.refusing.clone().try_acquire_owned() {
            Ok(slot) => {
                let answered = answer(stream, refused.reason);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REFUSAL_GRACE, answered).await;
                    drop((slot, ip_slot));
                });
            }
            Err(_) => drop(stream),
        }
    }
}

/// Called with a connection's remote address when it closes.
pub type CloseHook = Arc<dyn Fn(SocketAddr) + Send + Sync>;

/// An admitted connection: the stream, its permit (freed on close), its
/// set-up deadline if the port has one, and what to forget when it closes.
pub struct Admitted<S> {
    io: S,
    remote: SocketAddr,
    _permit: ConnectionPermit,
    setup: Option<SetupWatch>,
    on_close: Option<CloseHook>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Admitted<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted").field("io", &self.io).field("remote", &self.remote).finish_non_exhaustive()
    }
}

impl<S> Admitted<S> {
    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S> Drop for Admitted<S> {
    fn drop(&mut self) {
        if let Some(hook) = self.on_close.take() {
            hook(self.remote);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(watch) = &mut self.setup {
            if watch.poll_expired(cx) {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection not set up in time")));
            }
        }
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

/// How a gRPC port admits its connections: the gate, the set-up deadline
/// (if the port has one) and what to forget when a connection closes.
#[derive(Clone)]
pub struct GrpcAdmission {
    /// Open connections, in all and per client IP.
    pub gate: Arc<ConnectionGate>,
    /// Connections that must be set up within a deadline.
    pub setup: Option<Arc<SetupTracker>>,
    /// Called when a connection closes (rate buckets, connection ids).
    pub on_close: Option<CloseHook>,
}

impl std::fmt::Debug for GrpcAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcAdmission").field("gate", &self.gate).field("setup", &self.setup).finish_non_exhaustive()
    }
}

/// The admitted connections of a gRPC port, for tonic's
/// `serve_with_incoming_shutdown`; connections over a limit are answered
/// `RESOURCE_EXHAUSTED` and closed.
pub fn grpc_incoming(
    listener: TcpListener,
    admission: GrpcAdmission,
) -> impl futures::Stream<Item = io::Result<Admitted<TcpStream>>> + Send + 'static {
    futures::stream::unfold((listener, admission), |(listener, admission)| async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            match admission.gate.admit(remote) {
                Ok(permit) => {
                    let admitted = Admitted {
                        io: stream,
                        remote,
                        _permit: permit,
                        setup: admission.setup.as_ref().map(|tracker| tracker.watch(remote)),
                        on_close: admission.on_close.clone(),
                    };
                    return Some((Ok(admitted), (listener, admission)));
                }
                Err(refused) => admission.gate.refuse(stream, remote, refused, refuse_grpc),
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
/// 503 with the reason. The request head must arrive within the grace.
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
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_GRACE)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = served.await {
        debug!(error = %e, "refused HTTP connection ended");
    }
}

/// The main HTTP port's listener: admits connections through its gate and
/// refuses the rest with 503, except on the routes of the router given to
/// [`LimitedListener::new`] (the admin plane).
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
            let _ = stream.set_nodelay(true);
            match self.gate.admit(remote) {
                Ok(permit) => {
                    let admitted = Admitted { io: stream, remote, _permit: permit, setup: None, on_close: None };
                    return (admitted, remote);
                }
                Err(refused) => {
                    let unlimited = self.unlimited.clone();
                    self.gate
                        .refuse(stream, remote, refused, move |stream, reason| refuse_http(stream, reason, unlimited))
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
