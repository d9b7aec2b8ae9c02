//! Limits on what one client may take from a node, so that a flood from one
//! client cannot starve the others: message sizes, open connections and
//! request rate. Every refusal gives the client a clear error in its own
//! protocol, increments `roster_limit_rejections_total{limit}` and happens
//! before any handler runs, so a refused request changes nothing.
//!
//! # Layout
//! - [`bucket`]: the token bucket (sans-IO) and a map of buckets by key.
//! - [`connections`]: the connection gates of the listeners (open
//!   connections in all and per client IP) and the refusal of connections
//!   over a limit.
//! - [`per_ip`]: what each client IP holds at once.
//! - [`setup`]: the set-up deadline of gRPC connections (client port:
//!   `ConnectionSetupRequest`; peer port: a signed request).
//! - [`http_server`]: the HTTP/1.1 server loop with its header-read
//!   deadline (slowloris).
//! - [`rate`]: the request-rate checks of both client planes.
//! - [`login`]: the login throttle (per-IP rate and concurrent hashes).
//! - [`size`]: the gRPC status of messages over the size limit.
//!
//! HTTP bodies over `--max-body-bytes` are refused by axum's body limit
//! (`api/http/params.rs` names the limit); this module counts them.

pub mod bucket;
pub mod connections;
pub mod http_server;
pub mod login;
pub mod per_ip;
pub mod rate;
pub mod setup;
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
pub use self::connections::{
    grpc_incoming, Admitted, CloseHook, ConnectionGate, GateLimits, GrpcAdmission, LimitedListener, Refused,
};
pub use self::http_server::HttpServing;
pub use self::setup::SetupTracker;
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
        /// `--max-grpc-connections-per-ip`: a client gRPC connection refused
        /// because its IP holds its share.
        GrpcConnectionsPerIp => "grpc_connections_per_ip",
        /// `--max-http-connections-per-ip`: an HTTP connection refused (503)
        /// because its IP holds its share.
        HttpConnectionsPerIp => "http_connections_per_ip",
        /// `--grpc-setup-timeout`: a client gRPC connection closed because it
        /// sent no `ConnectionSetupRequest` in time.
        GrpcSetupTimeout => "grpc_setup_timeout",
        /// `--http-header-read-timeout`: an HTTP connection closed before it
        /// completed a request head.
        HttpHeaderTimeout => "http_header_timeout",
        /// `--max-peer-connections`: a peer-port connection refused.
        PeerConnections => "peer_connections",
        /// `--max-peer-connections-per-ip`: a peer-port connection refused
        /// because its IP holds its share.
        PeerConnectionsPerIp => "peer_connections_per_ip",
        /// `--peer-auth-timeout`: a peer-port connection closed because it
        /// carried no validly signed request in time.
        PeerAuthTimeout => "peer_auth_timeout",
        /// `--max-services-per-connection`: a registration or subscription
        /// refused because its connection holds that many services already.
        ServicesPerConnection => "services_per_connection",
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

// The default rates are sized for the heaviest legitimate client, not the
// average one: a gateway or sidecar multiplexes many callers over a few
// gRPC connections, and everything behind a proxy or NAT shares one HTTP
// client IP. A node of two cores answers on the order of 10 000 requests/s
// in total, so these limits refuse only a client that alone asks for more
// than such a node serves: a flood or a retry loop gone wrong, refused
// cheaply before any work is done.

/// Default of `--grpc-rate-limit`: requests/s per gRPC connection.
pub const DEFAULT_GRPC_RATE: f64 = 5_000.0;
/// Default of `--grpc-rate-burst`: two seconds at the default rate.
pub const DEFAULT_GRPC_BURST: u32 = 10_000;
/// Default of `--http-rate-limit`: requests/s per HTTP client IP.
pub const DEFAULT_HTTP_RATE: f64 = 20_000.0;
/// Default of `--http-rate-burst`: two seconds at the default rate.
pub const DEFAULT_HTTP_BURST: u32 = 40_000;

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

    /// Most open TCP connections on the client gRPC port from one client
    /// IP; more are answered RESOURCE_EXHAUSTED and closed. Clients behind
    /// one NAT address share it. 0: no limit.
    #[arg(long, env = "ROSTER_MAX_GRPC_CONNECTIONS_PER_IP", default_value_t = 512)]
    pub max_grpc_connections_per_ip: usize,

    /// Most open TCP connections on the main HTTP port from one client IP;
    /// more are answered 503 and closed. 0: no limit.
    #[arg(long, env = "ROSTER_MAX_HTTP_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_http_connections_per_ip: usize,

    /// A client gRPC connection that has not sent its ConnectionSetupRequest
    /// within this time (or stays without a stream that long after its
    /// stream ended) is closed.
    #[arg(long, env = "ROSTER_GRPC_SETUP_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub grpc_setup_timeout: Duration,

    /// Most concurrent HTTP/2 streams (calls) on one client gRPC
    /// connection; clients queue further calls. 0: no limit.
    #[arg(long, env = "ROSTER_GRPC_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub grpc_max_concurrent_streams: u32,

    /// How often the server pings an idle client gRPC connection (HTTP/2
    /// keepalive); 0s: never.
    #[arg(long, env = "ROSTER_GRPC_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = duration::parse)]
    pub grpc_keepalive_interval: Duration,

    /// A client gRPC connection that does not answer a keepalive ping
    /// within this time is closed.
    #[arg(long, env = "ROSTER_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = duration::parse)]
    pub grpc_keepalive_timeout: Duration,

    /// Time a client has to send a complete HTTP request head, counted from
    /// the moment its connection opens or its previous response was sent;
    /// slower or idle connections are closed.
    #[arg(long, env = "ROSTER_HTTP_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub http_header_read_timeout: Duration,

    /// Most services one gRPC connection may register instances in, and
    /// most it may subscribe to; more are refused. 0: no limit.
    #[arg(long, env = "ROSTER_MAX_SERVICES_PER_CONNECTION", default_value_t = 10_000)]
    pub max_services_per_connection: usize,

    /// Requests per second one gRPC connection may send (token bucket
    /// refill); more are answered with error code 503. 0: no limit. The
    /// default is what a gateway's pooled connection can need, so it only
    /// refuses a flood (README "Limits").
    #[arg(long, env = "ROSTER_GRPC_RATE_LIMIT", default_value_t = DEFAULT_GRPC_RATE)]
    pub grpc_rate_limit: f64,

    /// Requests one gRPC connection may send at once (token bucket size).
    #[arg(long, env = "ROSTER_GRPC_RATE_BURST", default_value_t = DEFAULT_GRPC_BURST)]
    pub grpc_rate_burst: u32,

    /// Requests per second one client IP may send to the HTTP port (token
    /// bucket refill); more are answered 429. 0: no limit. The default is
    /// what everything behind one proxy or NAT address can need, so it only
    /// refuses a flood (README "Limits").
    #[arg(long, env = "ROSTER_HTTP_RATE_LIMIT", default_value_t = DEFAULT_HTTP_RATE)]
    pub http_rate_limit: f64,

    /// Requests one client IP may send to the HTTP port at once (token bucket size).
    #[arg(long, env = "ROSTER_HTTP_RATE_BURST", default_value_t = DEFAULT_HTTP_BURST)]
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
            max_grpc_connections_per_ip: 512,
            max_http_connections_per_ip: 256,
            grpc_setup_timeout: Duration::from_secs(10),
            grpc_max_concurrent_streams: 256,
            grpc_keepalive_interval: Duration::from_secs(30),
            grpc_keepalive_timeout: Duration::from_secs(20),
            http_header_read_timeout: Duration::from_secs(10),
            max_services_per_connection: 10_000,
            grpc_rate_limit: DEFAULT_GRPC_RATE,
            grpc_rate_burst: DEFAULT_GRPC_BURST,
            http_rate_limit: DEFAULT_HTTP_RATE,
            http_rate_burst: DEFAULT_HTTP_BURST,
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
        for (name, value) in [
            ("--grpc-setup-timeout", self.grpc_setup_timeout),
            ("--http-header-read-timeout", self.http_header_read_timeout),
            ("--grpc-keepalive-timeout", self.grpc_keepalive_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::Config(format!("{name} must be greater than zero")));
            }
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
    /// Open TCP connections on the client gRPC port, in all and per IP.
    pub grpc_connections: Arc<ConnectionGate>,
    /// Open TCP connections on the main HTTP port, in all and per IP.
    pub http_connections: Arc<ConnectionGate>,
    /// The set-up deadline of client gRPC connections: the stream handler
    /// marks a connection set up once it is registered.
    pub grpc_setup: Arc<SetupTracker>,
    /// How the HTTP port serves its connections (header-read deadline).
    pub http_serving: HttpServing,
    /// Most services one gRPC connection publishes in or subscribes to
    /// (`--max-services-per-connection`, 0: no limit).
    pub max_services_per_connection: usize,
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
                GateLimits {
                    total: config.max_grpc_connections,
                    per_ip: config.max_grpc_connections_per_ip,
                    which: Limit::GrpcConnections,
                    which_per_ip: Limit::GrpcConnectionsPerIp,
                },
                metrics.clone(),
            )),
            http_connections: Arc::new(ConnectionGate::new(
                GateLimits {
                    total: config.max_http_connections,
                    per_ip: config.max_http_connections_per_ip,
                    which: Limit::HttpConnections,
                    which_per_ip: Limit::HttpConnectionsPerIp,
                },
                metrics.clone(),
            )),
            grpc_setup: SetupTracker::new(config.grpc_setup_timeout, Limit::GrpcSetupTimeout, metrics.clone()),
            http_serving: HttpServing {
                header_read_timeout: config.http_header_read_timeout,
                metrics: metrics.clone(),
            },
            max_services_per_connection: config.max_services_per_connection,
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
