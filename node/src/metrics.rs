//! Prometheus metrics, served at `GET /metrics` on the main port.
//!
//! Counters are updated where the work happens; sizes of the store are read
//! at scrape time so they can never drift from the truth.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use std::sync::Arc;

use crate::auth::AuthMetrics;
use crate::cluster::ClusterMetrics;
use crate::naming::StoreCounts;
use crate::raft::metrics::RaftMetricSet;

/// Labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Route template, e.g. `/nacos/v1/ns/instance`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status code.
    pub status: u16,
}

/// Labels of a gRPC client request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// Payload type, e.g. `InstanceRequest`.
    pub r#type: String,
    /// `ok` or an error label.
    pub result: String,
}

/// Labels of a push to a subscriber.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    /// `ok`, `timeout`, `failed` or `retry`.
    pub result: String,
}

/// Labels of Distro events.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DistroLabels {
    /// What happened (`sync_sent`, `sync_failed`, `verify_missing`, ...).
    pub event: String,
}

/// Labels of a request or connection refused by a limit.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// Which limit ([`crate::limits::Limit::label`]).
    pub limit: String,
}

/// All metrics of a node.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests served.
    pub http_requests: Family<HttpLabels, Counter>,
    /// gRPC client requests served.
    pub grpc_requests: Family<GrpcLabels, Counter>,
    /// Open, set-up gRPC client connections.
    pub connections: Gauge,
    /// Pushes to subscribers by outcome.
    pub pushes: Family<PushLabels, Counter>,
    /// Distro events by kind.
    pub distro: Family<DistroLabels, Counter>,
    /// Requests and connections refused by a limit, by limit.
    pub limit_rejections: Family<LimitLabels, Counter>,
    /// Member lookup and report metrics.
    pub cluster: Arc<ClusterMetrics>,
    /// Raft metrics.
    pub raft: Arc<RaftMetricSet>,
    /// Client authentication metrics.
    pub auth: Arc<AuthMetrics>,
    /// UDP push metrics ([`crate::push_udp`]).
    pub udp_push: Arc<crate::push_udp::UdpPushMetrics>,
    services: Gauge,
    instances: Gauge,
    clients: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `roster_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("roster");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let grpc_requests = Family::<GrpcLabels, Counter>::default();
        let connections = Gauge::default();
        let pushes = Family::<PushLabels, Counter>::default();
        let distro = Family::<DistroLabels, Counter>::default();
        let limit_rejections = Family::<LimitLabels, Counter>::default();
        let services = Gauge::default();
        let instances = Gauge::default();
        let clients = Gauge::default();
        registry.register("http_requests", "HTTP requests served", http_requests.clone());
        registry.register("grpc_requests", "gRPC client requests served", grpc_requests.clone());
        registry.register("connections", "Open gRPC client connections", connections.clone());
        registry.register("pushes", "Pushes to subscribers by outcome", pushes.clone());
        registry.register("distro_events", "Distro replication events by kind", distro.clone());
        registry.register(
            "limit_rejections",
            "Requests and connections refused by a size, connection or rate limit",
            limit_rejections.clone(),
        );
        registry.register("services", "Services in the store", services.clone());
        registry.register("instances", "Instances in the store", instances.clone());
        registry.register("clients", "Clients holding ephemeral instances", clients.clone());
        let cluster = Arc::new(ClusterMetrics::new());
        cluster.register(&mut registry);
        let raft = Arc::new(RaftMetricSet::new());
        raft.register(&mut registry);
        let auth = Arc::new(AuthMetrics::default());
        auth.register(&mut registry);
        let udp_push = Arc::new(crate::push_udp::UdpPushMetrics::default());
        udp_push.register(&mut registry);
        Metrics {
            registry,
            http_requests,
            grpc_requests,
            connections,
            pushes,
            distro,
            limit_rejections,
            cluster,
            raft,
            auth,
            udp_push,
            services,
            instances,
            clients,
        }
    }

    /// Counts one gRPC request.
    pub fn grpc_request(&self, r#type: &str, result: &str) {
        self.grpc_requests.get_or_create(&GrpcLabels { r#type: r#type.to_owned(), result: result.to_owned() }).inc();
    }

    /// Counts `n` Distro events of kind `event`.
    pub fn distro_event(&self, event: &str, n: u64) {
        if n > 0 {
            self.distro.get_or_create(&DistroLabels { event: event.to_owned() }).inc_by(n);
        }
    }

    /// How many Distro events of kind `event` happened so far.
    pub fn distro_count(&self, event: &str) -> u64 {
        self.distro.get_or_create(&DistroLabels { event: event.to_owned() }).get()
    }

    /// Counts one request or connection refused by `limit`.
    pub fn limit_rejected(&self, limit: crate::limits::Limit) {
        self.limit_rejections.get_or_create(&LimitLabels { limit: limit.label().to_owned() }).inc();
    }

    /// Counts one push outcome.
    pub fn push(&self, result: &str) {
        self.pushes.get_or_create(&PushLabels { result: result.to_owned() }).inc();
    }

    /// The text exposition, with store sizes read now.
    pub fn render(&self, counts: StoreCounts) -> String {
        self.services.set(counts.services as i64);
        self.instances.set(counts.instances as i64);
        self.clients.set(counts.clients as i64);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
