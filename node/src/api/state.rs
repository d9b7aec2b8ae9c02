//! What the client planes (gRPC and HTTP) share: the store, the
//! connections and subscriptions, limits, authentication, and the handles
//! through which they reach Raft (persistent writes) and other members
//! (forwarded HTTP writes). The peer and admin planes have their own narrow
//! handles, built by [`crate::server`].

use std::sync::Arc;

use crate::api::grpc::connection::Connections;
use crate::api::grpc::settings::ConnectionSettings;
use crate::auth::Auth;
use crate::cluster::{LookupMode, Membership};
use crate::distro::metrics::DistroMetrics;
use crate::limits::ClientLimits;
use crate::metrics::Metrics;
use crate::naming::validate::Limits;
use crate::naming::NamingStore;
use crate::peer::Faults;
use crate::push::Subscribers;
use crate::push_udp::UdpPush;
use crate::raft::RaftNode;
use crate::security::{PeerSecurity, SecurityMetrics};

/// The shared state of the client planes.
#[derive(Debug)]
pub struct ClientState {
    /// This member's address, `host:mainPort`.
    pub(crate) member: String,
    /// How members are found (the v1 summary reports standalone nodes).
    pub(crate) lookup: LookupMode,
    /// The members and their states (forwarding to the responsible member).
    pub(crate) membership: Arc<Membership>,
    /// The naming store.
    pub(crate) store: Arc<NamingStore>,
    /// Open gRPC client connections.
    pub(crate) connections: Arc<Connections>,
    /// Which connection watches which service.
    pub(crate) subscribers: Arc<Subscribers>,
    /// Which HTTP client address watches which service over UDP.
    pub(crate) udp_push: Arc<UdpPush>,
    /// Input limits of names, metadata and batches.
    pub(crate) limits: Limits,
    /// Connection gates and rate buckets of the client planes.
    pub(crate) client_limits: Arc<ClientLimits>,
    /// Largest HTTP body (for the error text; axum's body limit enforces it).
    pub(crate) max_body_bytes: usize,
    /// Largest gRPC message.
    pub(crate) max_grpc_message_bytes: usize,
    /// How silent gRPC connections are probed and closed.
    pub(crate) connection_settings: ConnectionSettings,
    /// Client authentication; `None` unless `--auth-enabled`.
    pub(crate) auth: Option<Arc<Auth>>,
    /// The Raft member (persistent writes), started before any client is served.
    pub(crate) raft: Arc<RaftNode>,
    /// HTTP client for forwarding writes to the responsible member.
    pub(crate) http_client: reqwest::Client,
    /// The cluster secret's signer and the TLS settings ([`crate::security`]).
    pub(crate) security: Arc<PeerSecurity>,
    /// The peer-plane fault switch (forwarding honours blocked members).
    pub(crate) faults: Arc<Faults>,
    /// Request, connection and push metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Distro's events (forwarded writes are counted there).
    pub(crate) distro_metrics: Arc<DistroMetrics>,
    /// Refused forged forwards are counted there.
    pub(crate) security_metrics: Arc<SecurityMetrics>,
}
