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

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;

use crate::duration;
use crate::error::{Error, Result};
use crate::naming::validate::Limits;

pub use self::bucket::{KeyedBuckets, RateSettings, TokenBucket};
pub use self::connections::{grpc_incoming, Admitted, ConnectionGate, LimitedListener};
pub use self::size::MessageLimitLayer;

label_set! {
    /// The limits, as metric labels (`limit` of `roster_limit_rejections_total`).
    pub enum Limit {
        /// `--max-body-bytes`: an HTTP body too large (413).
        HttpBodyBytes => "http_body_bytes",
        /// `--max-grpc-message-bytes`: a client gRPC message too large (`RESOURCE_EXHAUSTED`).
        GrpcMessageBytes => "grpc_message_bytes",
        /// `--max-peer-message-bytes`: a peer message too large (`RESOURCE_EXHAUSTED`).
        PeerMessageBytes => "peer_message_bytes",
        /// `--max-grpc-connections`: a client gRPC connection refused.
        GrpcConnections => "grpc_connections",
        /// `--max-http-connections`: an HTTP connection refused (503).
        HttpConnections => "http_connections",
        /// `--grpc-rate-limit`: a gRPC request over its connection's rate (error code 503).
        GrpcRate => "grpc_rate",
        /// `--http-rate-limit`: an HTTP request over its client IP's rate (429).
        HttpRate => "http_rate",
        /// `--login-rate-limit`: a login over its client IP's rate (429).
        LoginRate => "login_rate",
        /// `--max-concurrent-logins`: a login that found no free password hash
        /// within `--login-wait` (429).
        LoginConcurrency => "login_concurrency",
    }
}

/// Labels of a request or connection refused by a limit.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// Which limit.
    pub limit: Limit,
}

/// `roster_limit_rejections_total{limit}`.
#[derive(Debug, Default)]
pub struct LimitMetrics {
    rejections: Family<LimitLabels, Counter>,
}

impl LimitMetrics {
    /// Registers the counter.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "limit_rejections",
            "Requests and connections refused by a size, connection or rate limit",
            self.rejections.clone(),
        );
    }

    /// Counts one request or connection refused by `limit`.
    pub fn rejected(&self, limit: Limit) {
        self.rejections.get_or_create(&LimitLabels { limit }).inc();
    }

    /// How many were refused by `limit`.
    pub fn rejections(&self, limit: Limit) -> u64 {
        self.rejections.get_or_create(&LimitLabels { limit }).get()
    }
}

/// The size, connection and rate limits of the client planes.
#[derive(Debug, Clone, PartialEq, clap::Args)]
#[command(next_help_heading = "Client limits")]
pub struct LimitSettings {
    /// Largest HTTP request body accepted, in bytes.
    #[arg(long, env = "ROSTER_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest gRPC message accepted, in bytes.
    #[arg(long, env = "ROSTER_MAX_GRPC_MESSAGE_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_grpc_message_bytes: usize,

    /// Most open TCP connections on the client gRPC port; more are answered
    /// RESOURCE_EXHAUSTED and closed. 0: no limit.
    #[arg(long, env = "ROSTER_MAX_GRPC_CONNECTIONS", default_value_t = 10_000)]
    pub max_grpc_connections: usize,

    /// Most open TCP connections on the main HTTP port; more are answered
    /// 503 and closed. 0: no limit.
    #[arg(long, env = "ROSTER_MAX_HTTP_CONNECTIONS", default_value_t = 1_024)]
    pub max_http_connections: usize,

    /// Requests per second one gRPC connection may send (token bucket
    /// refill); more are answered with error code 503. 0: no limit.
    #[arg(long, env = "ROSTER_GRPC_RATE_LIMIT", default_value_t = 200.0)]
    pub grpc_rate_limit: f64,

    /// Requests one gRPC connection may send at once (token bucket size).
    #[arg(long, env = "ROSTER_GRPC_RATE_BURST", default_value_t = 400)]
    pub grpc_rate_burst: u32,

    /// Requests per second one client IP may send to the HTTP port (token
    /// bucket refill); more are answered 429. 0: no limit.
    #[arg(long, env = "ROSTER_HTTP_RATE_LIMIT", default_value_t = 500.0)]
    pub http_rate_limit: f64,

    /// Requests one client IP may send to the HTTP port at once (token bucket size).
    #[arg(long, env = "ROSTER_HTTP_RATE_BURST", default_value_t = 1_000)]
    pub http_rate_burst: u32,

    /// Logins per second one client IP may attempt (token bucket refill);
    /// more are answered 429. Every login costs a deliberately slow password
    /// hash, so this is far below `--http-rate-limit`. 0: no limit.
    #[arg(long, env = "ROSTER_LOGIN_RATE_LIMIT", default_value_t = 1.0)]
    pub login_rate_limit: f64,

    /// Logins one client IP may attempt at once (token bucket size).
    #[arg(long, env = "ROSTER_LOGIN_RATE_BURST", default_value_t = 10)]
    pub login_rate_burst: u32,

    /// Password hashes the node computes at once for logins, from all
    /// clients together; the rest wait (see `--login-wait`). Caps the CPU a
    /// login flood from many addresses can take from the registry.
    #[arg(long, env = "ROSTER_MAX_CONCURRENT_LOGINS", default_value_t = 1)]
    pub max_concurrent_logins: usize,

    /// How long a login waits for a free password hash before it is
    /// answered 429 (`--max-concurrent-logins`).
    #[arg(long, env = "ROSTER_LOGIN_WAIT", default_value = "3s", value_parser = duration::parse)]
    pub login_wait: Duration,

    /// Largest metadata of one instance or service (keys plus values), in bytes.
    #[arg(long, env = "ROSTER_MAX_METADATA_BYTES", default_value_t = 16 * 1024)]
    pub max_metadata_bytes: usize,

    /// Most instances in one batch registration.
    #[arg(long, env = "ROSTER_MAX_BATCH_INSTANCES", default_value_t = 1000)]
    pub max_batch_instances: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_body_bytes: 1024 * 1024,
            max_grpc_message_bytes: 10 * 1024 * 1024,
            max_grpc_connections: 10_000,
            max_http_connections: 1_024,
            grpc_rate_limit: 200.0,
            grpc_rate_burst: 400,
            http_rate_limit: 500.0,
            http_rate_burst: 1_000,
            login_rate_limit: 1.0,
            login_rate_burst: 10,
            max_concurrent_logins: 1,
            login_wait: Duration::from_secs(3),
            max_metadata_bytes: 16 * 1024,
            max_batch_instances: 1000,
        }
    }
}

impl LimitSettings {
    /// Refuses sizes of zero, rates that are no rates and bursts that let
    /// nothing through.
    pub fn validate(&self) -> Result<()> {
        if self.max_body_bytes == 0 || self.max_grpc_message_bytes == 0 {
            return Err(Error::Config("message size limits must be greater than zero".into()));
        }
        for (name, rate, burst) in [
            ("--grpc-rate-limit", self.grpc_rate_limit, self.grpc_rate_burst),
            ("--http-rate-limit", self.http_rate_limit, self.http_rate_burst),
            ("--login-rate-limit", self.login_rate_limit, self.login_rate_burst),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(Error::Config(format!("{name} must be a number of requests per second, 0 for no limit")));
            }
            if rate > 0.0 && burst == 0 {
                return Err(Error::Config(format!("{name} needs a burst of at least 1")));
            }
        }
        if self.max_concurrent_logins == 0 {
            return Err(Error::Config("--max-concurrent-logins must be at least 1".into()));
        }
        Ok(())
    }

    /// The input limits the validators apply.
    pub fn input(&self) -> Limits {
        Limits { max_metadata_bytes: self.max_metadata_bytes, max_batch_instances: self.max_batch_instances }
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
    metrics: Arc<LimitMetrics>,
}

impl ClientLimits {
    /// The limits `config` sets, counting refusals in `metrics`.
    pub fn new(config: &LimitSettings, metrics: Arc<LimitMetrics>) -> Self {
        // `validate` refuses 0; settings that skipped it get one.
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
        self.metrics.rejected(limit);
    }

    /// Where refusals are counted.
    pub fn metrics(&self) -> &Arc<LimitMetrics> {
        &self.metrics
    }
}
