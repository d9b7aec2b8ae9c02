//! What the three planes of a node share: the store, metrics, limits and
//! who this member is. Each plane takes the parts it needs from here.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::api::grpc::connection::Connections;
use crate::cluster::{Cluster, Faults, Membership};
use crate::config::Config;
use crate::distro::{Distro, DistroSettings};
use crate::metrics::Metrics;
use crate::naming::model::BeatTimeouts;
use crate::naming::validate::Limits;
use crate::naming::NamingStore;
use crate::push::Subscribers;
use crate::security::PeerSecurity;

/// Shared state of a running node.
#[derive(Debug)]
pub struct NodeState {
    /// The configuration the node started with.
    pub config: Config,
    /// This member's address, `host:mainPort`.
    pub member: String,
    /// The members and their states.
    pub membership: Arc<Membership>,
    /// Distro replication of ephemeral clients.
    pub distro: Arc<Distro>,
    /// The peer-plane fault switch (inert unless `--fault-injection`).
    pub faults: Arc<Faults>,
    /// HTTP client for forwarding writes to the responsible member.
    pub http_client: reqwest::Client,
    /// The cluster secret's signer and the TLS settings ([`crate::security`]).
    pub security: Arc<PeerSecurity>,
    /// The naming store.
    pub store: Arc<NamingStore>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Input limits.
    pub limits: Limits,
    /// Connection gates and rate buckets of the client planes.
    pub client_limits: crate::limits::ClientLimits,
    /// Open gRPC client connections.
    pub connections: Arc<Connections>,
    /// Which connection watches which service.
    pub subscribers: Arc<Subscribers>,
    /// Which HTTP client address watches which service over UDP.
    pub udp_subscribers: Arc<crate::push_udp::UdpSubscribers>,
    /// When the node started (for uptime).
    pub started: Instant,
    /// Client authentication; `None` unless `--auth-enabled`.
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// The Raft member, set once at start-up before any client is served.
    pub raft: OnceLock<Arc<crate::raft::RaftNode>>,
}

impl NodeState {
    /// The Raft member; an error until it is set (never the case once serving).
    pub fn raft(&self) -> crate::error::Result<&Arc<crate::raft::RaftNode>> {
        self.raft.get().ok_or_else(|| crate::error::Error::NotReady("Raft is not started yet".into()))
    }

    /// Builds the shared state for `config`, with `cluster` naming this
    /// member and its peers, and `metrics` already registered. Distro is
    /// created but not started; Raft is set by the server once started.
    /// `auth` is the loaded authenticator when `--auth-enabled`.
    /// Forwarded writes are signed with, and use the TLS of, `security`.
    pub fn new(
        config: Config,
        cluster: &Cluster,
        metrics: Arc<Metrics>,
        auth: Option<Arc<crate::auth::Auth>>,
        security: Arc<PeerSecurity>,
    ) -> crate::error::Result<Arc<Self>> {
        let membership = cluster.membership().clone();
        let timeouts = BeatTimeouts {
            unhealthy_ms: u64::try_from(config.beat_timeout.as_millis()).unwrap_or(u64::MAX),
            delete_ms: u64::try_from(config.beat_delete_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let limits =
            Limits { max_metadata_bytes: config.max_metadata_bytes, max_batch_instances: config.max_batch_instances };
        let store = Arc::new(NamingStore::new(timeouts));
        let distro = Distro::new(
            store.clone(),
            membership.clone(),
            cluster.channels().clone(),
            metrics.clone(),
            limits,
            DistroSettings::from_config(&config),
        );
        let http_client = security.http_client(config.distro_sync_timeout)?;
        let udp_subscribers =
            crate::push_udp::UdpSubscribers::for_node(&config.udp_push, security.client_tls().is_some());
        Ok(Arc::new(NodeState {
            member: membership.local().to_owned(),
            membership,
            distro,
            faults: cluster.faults().clone(),
            http_client,
            security,
            store,
            connections: Arc::new(Connections::new(metrics.clone())),
            client_limits: crate::limits::ClientLimits::new(&config, metrics.clone()),
            subscribers: Arc::new(Subscribers::default()),
            udp_subscribers: Arc::new(udp_subscribers),
            metrics,
            limits,
            config,
            started: Instant::now(),
            auth,
            raft: OnceLock::new(),
        }))
    }
}
