//! gRPC client connections: identity, liveness and server-to-client requests.
//!
//! As in Nacos, a connection id is assigned per TCP connection (the client's
//! `ServerCheckRequest` learns it) and the connection is *registered* once
//! the client opens its bi-directional stream with a
//! `ConnectionSetupRequest`. Unary requests are matched to their connection
//! by the TCP peer address, which the unary calls and the stream share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use roster_proto::nacos::Payload;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Notify};
use tonic::Status;

use super::payload;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::naming::store::now_millis;

/// How long an id assigned by `ServerCheckRequest` waits for its stream
/// (the id also goes when its TCP connection closes).
const UNREGISTERED_ID_TTL: Duration = Duration::from_secs(60);

/// Most labels a `ConnectionSetupRequest` may carry (SDKs send a handful:
/// `module`, `source`, `AppName`, `taskId`, ...).
pub const MAX_LABELS: usize = 64;
/// Longest label key, in bytes.
pub const MAX_LABEL_KEY_BYTES: usize = 256;
/// Longest label value, client version or tenant, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;
/// Longest client IP a client may state about itself, in bytes.
pub const MAX_CLIENT_IP_BYTES: usize = 64;

/// Facts a client states in its `ConnectionSetupRequest`.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client version string, e.g. `Nacos-Rust-Client:0.8.3`.
    pub version: String,
    /// Namespace (tenant) the client works in.
    pub tenant: String,
    /// Labels such as `module=naming`, `source=sdk`, `AppName`.
    pub labels: HashMap<String, String>,
    /// The client's own IP as it reports it.
    pub client_ip: String,
}

/// One registered client connection.
#[derive(Debug)]
pub struct Connection {
    /// `<epochMillis>_<remoteIp>_<remotePort>`, as Nacos names connections.
    pub id: String,
    /// TCP peer address.
    pub remote: SocketAddr,
    /// What the client said about itself.
    pub info: ClientInfo,
    sender: mpsc::Sender<std::result::Result<Payload, Status>>,
    last_active_ms: AtomicI64,
    pending: Mutex<HashMap<String, oneshot::Sender<Payload>>>,
    next_request_id: AtomicU64,
    closed: AtomicBool,
    close_signal: Notify,
    probing: AtomicBool,
}

impl ClientInfo {
    /// Refuses what no SDK sends and would otherwise be kept for the
    /// connection's life (and shown by the client introspection API): more
    /// than [`MAX_LABELS`] labels, or a key, value, version, tenant or
    /// client IP longer than its limit.
    pub fn check(&self) -> Result<()> {
        if self.labels.len() > MAX_LABELS {
            return Err(Error::invalid(format!(
                "ConnectionSetupRequest has {} labels (limit {MAX_LABELS}).",
                self.labels.len()
            )));
        }
        for (key, value) in &self.labels {
            if key.len() > MAX_LABEL_KEY_BYTES || value.len() > MAX_LABEL_VALUE_BYTES {
                return Err(Error::invalid(format!(
                    "ConnectionSetupRequest label '{}' is too long (limits: key {MAX_LABEL_KEY_BYTES} bytes, \
                     value {MAX_LABEL_VALUE_BYTES} bytes).",
                    crate::telemetry::clip(key)
                )));
            }
        }
        for (what, value, limit) in [
            ("clientVersion", &self.version, MAX_LABEL_VALUE_BYTES),
            ("tenant", &self.tenant, MAX_LABEL_VALUE_BYTES),
            ("clientIp", &self.client_ip, MAX_CLIENT_IP_BYTES),
        ] {
            if value.len() > limit {
                return Err(Error::invalid(format!(
                    "ConnectionSetupRequest '{what}' has {} bytes (limit {limit}).",
                    value.len()
                )));
            }
        }
        Ok(())
    }
}

impl Connection {
    /// A connection that sends server requests through `sender` (the
    /// outbound half of its stream).
    pub fn new(
        id: String,
        remote: SocketAddr,
        info: ClientInfo,
        sender: mpsc::Sender<std::result::Result<Payload, Status>>,
    ) -> Self {
        Connection {
            id,
            remote,
            info,
            sender,
            last_active_ms: AtomicI64::new(now_millis()),
            pending: Mutex::new(HashMap::new()),
            next_request_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            close_signal: Notify::new(),
            probing: AtomicBool::new(false),
        }
    }

    /// Records activity from the client (any request or stream message).
    pub fn touch(&self) {
        self.last_active_ms.store(now_millis(), Ordering::Relaxed);
    }

    /// Milliseconds since the client was last heard from.
    pub fn idle_ms(&self) -> i64 {
        now_millis().saturating_sub(self.last_active_ms.load(Ordering::Relaxed))
    }

    /// Claims the right to probe this connection; false if a probe runs already.
    pub fn start_probe(&self) -> bool {
        !self.probing.swap(true, Ordering::AcqRel)
    }

    /// Ends a probe started with [`Connection::start_probe`].
    pub fn end_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// Whether the connection was closed by the server.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Asks the stream task to end the connection.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.close_signal.notify_waiters();
        self.close_signal.notify_one();
    }

    /// Resolves when [`Connection::close`] is called.
    pub async fn closed(&self) {
        while !self.is_closed() {
            self.close_signal.notified().await;
        }
    }

    /// Sends a payload on the stream without waiting for an answer.
    pub async fn send(&self, payload: Payload) -> Result<()> {
        self.sender.send(Ok(payload)).await.map_err(|_| Error::Internal(format!("connection {} is closed", self.id)))
    }

    /// Ends the outbound stream with an error status the client will see.
    pub async fn send_status(&self, status: Status) {
        let _ = self.sender.send(Err(status)).await;
    }

    /// Sends a server request (a push, a detection probe) and waits for the
    /// client's response carrying the same `requestId`.
    pub async fn request<T: Serialize>(&self, type_name: &str, body: &T, timeout: Duration) -> Result<Payload> {
        let encode = |request_id: &str| {
            serde_json::to_vec(&WithRequestId { body, request_id }).unwrap_or_else(|_| b"{}".to_vec())
        };
        self.request_with(type_name, encode, timeout).await
    }

    /// Sends a server request whose JSON body `body` writes, given the
    /// `requestId` it must carry, and waits for the client's response.
    pub async fn request_with(
        &self,
        type_name: &str,
        body: impl FnOnce(&str) -> Vec<u8>,
        timeout: Duration,
    ) -> Result<Payload> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(request_id.clone(), tx);
        let outcome = async {
            self.send(payload::encode_raw(type_name, body(&request_id))).await?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(_)) => Err(Error::Internal(format!("connection {} closed before answering", self.id))),
                Err(_) => Err(Error::Internal(format!("{type_name} to {} timed out", self.id))),
            }
        }
        .await;
        self.pending.lock().remove(&request_id);
        outcome
    }

    /// Hands a client's response to the server request that waits for it.
    /// Returns false when nothing waits (late or unknown answers).
    pub fn complete(&self, request_id: &str, answer: Payload) -> bool {
        match self.pending.lock().remove(request_id) {
            Some(tx) => tx.send(answer).is_ok(),
            None => false,
        }
    }
}

/// A server request's body with the `requestId` the client must echo.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WithRequestId<'a, T> {
    #[serde(flatten)]
    body: &'a T,
    request_id: &'a str,
}

/// Ids assigned to TCP connections and the registered connections.
#[derive(Debug)]
pub struct Connections {
    metrics: Arc<Metrics>,
    assigned: Mutex<HashMap<SocketAddr, (String, Instant)>>,
    registered: RwLock<HashMap<String, Arc<Connection>>>,
    by_addr: RwLock<HashMap<SocketAddr, String>>,
    registration: Notify,
}

impl Connections {
    /// No connections yet.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Connections {
            metrics,
            assigned: Mutex::new(HashMap::new()),
            registered: RwLock::new(HashMap::new()),
            by_addr: RwLock::new(HashMap::new()),
            registration: Notify::new(),
        }
    }

    /// The id of the TCP connection from `remote`, assigned on first use.
    pub fn id_for(&self, remote: SocketAddr) -> String {
        if let Some(id) = self.by_addr.read().get(&remote) {
            return id.clone();
        }
        let mut assigned = self.assigned.lock();
        let (id, _) = assigned
            .entry(remote)
            .or_insert_with(|| (format!("{}_{}_{}", now_millis(), remote.ip(), remote.port()), Instant::now()));
        id.clone()
    }

    /// Registers a connection whose stream is set up.
    pub fn register(&self, conn: Arc<Connection>) {
        self.assigned.lock().remove(&conn.remote);
        self.by_addr.write().insert(conn.remote, conn.id.clone());
        self.registered.write().insert(conn.id.clone(), conn);
        self.metrics.connections.set(self.count() as i64);
        self.registration.notify_waiters();
    }

    /// Forgets a connection; returns it if it was registered.
    pub fn unregister(&self, id: &str) -> Option<Arc<Connection>> {
        let conn = self.registered.write().remove(id)?;
        let mut by_addr = self.by_addr.write();
        if by_addr.get(&conn.remote).is_some_and(|v| v == id) {
            by_addr.remove(&conn.remote);
        }
        drop(by_addr);
        self.metrics.connections.set(self.count() as i64);
        Some(conn)
    }

    /// A registered connection by id.
    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.registered.read().get(id).cloned()
    }

    /// The registered connection of a TCP peer.
    pub fn by_remote(&self, remote: SocketAddr) -> Option<Arc<Connection>> {
        let id = self.by_addr.read().get(&remote).cloned()?;
        self.get(&id)
    }

    /// The registered connection of a TCP peer, waiting up to `wait` for its
    /// stream setup: clients send their first unary request right after
    /// opening the stream, so the two can cross.
    pub async fn wait_registered(&self, remote: SocketAddr, wait: Duration) -> Option<Arc<Connection>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.registration.notified();
            if let Some(conn) = self.by_remote(remote) {
                return Some(conn);
            }
            // Only a connection that asked for an id can still register.
            if !self.assigned.lock().contains_key(&remote) {
                return None;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.by_remote(remote);
            }
        }
    }

    /// Every registered connection.
    pub fn all(&self) -> Vec<Arc<Connection>> {
        self.registered.read().values().cloned().collect()
    }

    /// Number of registered connections.
    pub fn count(&self) -> usize {
        self.registered.read().len()
    }

    /// Forgets the id assigned to the TCP connection from `remote`, which
    /// closed (its registration, if any, is ended by its stream).
    pub fn forget(&self, remote: SocketAddr) {
        self.assigned.lock().remove(&remote);
    }

    /// Ids assigned to TCP connections that have not registered (yet).
    pub fn assigned(&self) -> usize {
        self.assigned.lock().len()
    }

    /// Drops ids that were assigned but never registered.
    pub fn prune_unregistered(&self) {
        self.assigned.lock().retain(|_, (_, at)| at.elapsed() < UNREGISTERED_ID_TTL);
    }
}
