//! Limits on what one client may take from a node, so that a flood from one
//! client cannot starve the others: message sizes, open connections and
//! request rate. Every refusal gives the client a clear error in its own
//! protocol, increments `roster_limit_rejections_total{limit}` and happens
//! before any handler runs, so a refused request changes nothing.
//!
//! # Layout
//! - [`bucket`]: the token bucket (sans-IO) and a map of buckets by key.
//! - [`connections`]: the connection gates of the gRPC and HTTP listeners
//!   and the refusal of connections over the limit.
//! - [`rate`]: the request-rate checks of both client planes.
//! - [`login`]: the login throttle (per-IP rate and concurrent hashes).
//! - [`size`]: the gRPC status of messages over the size limit.
//!
//! HTTP bodies over `--max-body-bytes` are refused by axum's body limit
//! (`api/http/params.rs` names the limit); this module counts them.

pub mod bucket;
pub mod connections;
pub mod login;
pub mod rate;
pub mod size;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::Config;
use crate::metrics::Metrics;

pub use self::bucket::{KeyedBuckets, RateSettings, TokenBucket};
pub use self::connections::{grpc_incoming, Admitted, ConnectionGate, LimitedListener};
pub use self::login::login_guard;
pub use self::rate::http_guard;
pub use self::size::MessageLimitLayer;

/// Smallest `--max-peer-message-bytes`: a Raft snapshot chunk (1 MiB) and
/// its header must fit.
pub const MIN_PEER_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// The limits, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `--max-body-bytes`: an HTTP body too large (413).
    HttpBodyBytes,
    /// `--max-grpc-message-bytes`: a client gRPC message too large (`RESOURCE_EXHAUSTED`).
    GrpcMessageBytes,
    /// `--max-peer-message-bytes`: a peer message too large (`RESOURCE_EXHAUSTED`).
    PeerMessageBytes,
    /// `--max-grpc-connections`: a client gRPC connection refused.
    GrpcConnections,
    /// `--max-http-connections`: an HTTP connection refused (503).
    HttpConnections,
    /// `--grpc-rate-limit`: a gRPC request over its connection's rate (error code 503).
    GrpcRate,
    /// `--http-rate-limit`: an HTTP request over its client IP's rate (429).
    HttpRate,
    /// `--login-rate-limit`: a login over its client IP's rate (429).
    LoginRate,
    /// `--max-concurrent-logins`: a login that found no free password hash
    /// within `--login-wait` (429).
    LoginConcurrency,
}

impl Limit {
    /// The `limit` label of `roster_limit_rejections_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Limit::HttpBodyBytes => "http_body_bytes",
            Limit::GrpcMessageBytes => "grpc_message_bytes",
            Limit::PeerMessageBytes => "peer_message_bytes",
            Limit::GrpcConnections => "grpc_connections",
            Limit::HttpConnections => "http_connections",
            Limit::GrpcRate => "grpc_rate",
            Limit::HttpRate => "http_rate",
            Limit::LoginRate => "login_rate",
            Limit::LoginConcurrency => "login_concurrency",
        }
    }
}

/// The connection gates and rate buckets of the client planes, shared by
/// the listeners and the request handlers.
#[derive(Debug)]
pub struct ClientLimits {
    /// Open TCP connections on the client gRPC port.
    pub grpc_connections: Arc<ConnectionGate>,
    /// Open TCP connections on the main HTTP port.
    pub http_connections: Arc<ConnectionGate>,
    /// One bucket per gRPC TCP connection (its peer address), dropped with
    /// the connection.
    pub grpc_rate: Arc<KeyedBuckets<SocketAddr>>,
    /// One bucket per HTTP client IP.
    pub http_rate: Arc<KeyedBuckets<IpAddr>>,
    /// One login bucket per HTTP client IP.
    pub login_rate: Arc<KeyedBuckets<IpAddr>>,
    /// One permit per password hash computed at once.
    pub logins: Arc<Semaphore>,
    /// How long a login waits for a permit.
    pub login_wait: Duration,
    logins_capacity: usize,
    metrics: Arc<Metrics>,
}

impl ClientLimits {
    /// The limits `config` sets, counting refusals in `metrics`.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        // `Config::validate` refuses 0; a config that skipped it gets one.
        let logins = config.max_concurrent_logins.max(1);
        ClientLimits {
            grpc_connections: Arc::new(ConnectionGate::new(
                config.max_grpc_connections,
                Limit::GrpcConnections,
                metrics.clone(),
            )),
            http_connections: Arc::new(ConnectionGate::new(
                config.max_http_connections,
                Limit::HttpConnections,
                metrics.clone(),
            )),
            grpc_rate: Arc::new(KeyedBuckets::new(RateSettings::new(config.grpc_rate_limit, config.grpc_rate_burst))),
            http_rate: Arc::new(KeyedBuckets::new(RateSettings::new(config.http_rate_limit, config.http_rate_burst))),
            login_rate: Arc::new(KeyedBuckets::new(RateSettings::new(
                config.login_rate_limit,
                config.login_rate_burst,
            ))),
            logins: Arc::new(Semaphore::new(logins)),
            login_wait: config.login_wait,
            logins_capacity: logins,
            metrics,
        }
    }

    /// Password hashes allowed at once (`--max-concurrent-logins`).
    pub fn logins_capacity(&self) -> usize {
        self.logins_capacity
    }

    /// Counts one refusal by `limit`.
    pub fn rejected(&self, limit: Limit) {
        self.metrics.limit_rejected(limit);
    }
}
