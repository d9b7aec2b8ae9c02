//! Prometheus metrics of the client planes: HTTP and gRPC requests, open
//! gRPC connections and pushes to subscribers.
//!
//! Each subsystem owns its metrics and registers them on the node's
//! registry (`roster_` prefix): these here, [`crate::limits::LimitMetrics`],
//! [`crate::distro::metrics::DistroMetrics`],
//! [`crate::cluster::ClusterMetrics`], [`crate::raft::metrics::RaftMetricSet`],
//! [`crate::auth::AuthMetrics`], [`crate::security::SecurityMetrics`] and
//! [`crate::push_udp::UdpPushMetrics`]; the
//! admin plane serves them at `GET /metrics`. Every label is a closed set:
//! nothing a client sends becomes a label value (a label value is a time
//! series kept forever).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

label_set! {
    /// The `type` label of a gRPC client request: the Nacos request types a
    /// client sends, by name; anything else is `other`, and a payload
    /// without a readable type is `unknown`.
    pub enum GrpcRequestType {
        /// `ServerCheckRequest`.
        ServerCheck => "ServerCheckRequest",
        /// `ConnectionSetupRequest`.
        ConnectionSetup => "ConnectionSetupRequest",
        /// `HealthCheckRequest`.
        HealthCheck => "HealthCheckRequest",
        /// `InstanceRequest`.
        Instance => "InstanceRequest",
        /// `BatchInstanceRequest`.
        BatchInstance => "BatchInstanceRequest",
        /// `PersistentInstanceRequest`.
        PersistentInstance => "PersistentInstanceRequest",
        /// `ServiceQueryRequest`.
        ServiceQuery => "ServiceQueryRequest",
        /// `SubscribeServiceRequest`.
        SubscribeService => "SubscribeServiceRequest",
        /// `ServiceListRequest`.
        ServiceList => "ServiceListRequest",
        /// `ConfigQueryRequest` (config center; Roster has no handler).
        ConfigQuery => "ConfigQueryRequest",
        /// `ConfigPublishRequest` (config center; no handler).
        ConfigPublish => "ConfigPublishRequest",
        /// `ConfigRemoveRequest` (config center; no handler).
        ConfigRemove => "ConfigRemoveRequest",
        /// `ConfigBatchListenRequest` (config center; no handler).
        ConfigBatchListen => "ConfigBatchListenRequest",
        /// Any other type name.
        Other => "other",
        /// A payload whose envelope could not be read.
        Unknown => "unknown",
    }
}

impl GrpcRequestType {
    /// The label of the payload type `name`: a known Nacos request type, or
    /// [`GrpcRequestType::Other`].
    pub fn of(name: &str) -> GrpcRequestType {
        GrpcRequestType::ALL
            .iter()
            .copied()
            .filter(|t| !matches!(t, GrpcRequestType::Other | GrpcRequestType::Unknown))
            .find(|t| t.label() == name)
            .unwrap_or(GrpcRequestType::Other)
    }
}

label_set! {
    /// An HTTP method; unusual ones share `OTHER`.
    pub enum HttpMethod {
        /// `GET`.
        Get => "GET",
        /// `POST`.
        Post => "POST",
        /// `PUT`.
        Put => "PUT",
        /// `DELETE`.
        Delete => "DELETE",
        /// `PATCH`.
        Patch => "PATCH",
        /// `HEAD`.
        Head => "HEAD",
        /// `OPTIONS`.
        Options => "OPTIONS",
        /// Anything else.
        Other => "OTHER",
    }
}

impl HttpMethod {
    /// The label of `method`.
    pub fn of(method: &http::Method) -> HttpMethod {
        match *method {
            http::Method::GET => HttpMethod::Get,
            http::Method::POST => HttpMethod::Post,
            http::Method::PUT => HttpMethod::Put,
            http::Method::DELETE => HttpMethod::Delete,
            http::Method::PATCH => HttpMethod::Patch,
            http::Method::HEAD => HttpMethod::Head,
            http::Method::OPTIONS => HttpMethod::Options,
            _ => HttpMethod::Other,
        }
    }
}

label_set! {
    /// How a push to a subscriber ended.
    pub enum PushOutcome {
        /// Acknowledged.
        Ok => "ok",
        /// Not acknowledged in time.
        Timeout => "timeout",
        /// Answered with an error, or the connection is gone.
        Failed => "failed",
        /// Sent again after a failure.
        Retry => "retry",
    }
}

/// Labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Route template, e.g. `/nacos/v1/ns/instance` (`unmatched` for
    /// requests no route matched): a closed set, as it is always one of the
    /// router's own templates, never the request's path.
    pub route: String,
    /// HTTP method.
    pub method: HttpMethod,
    /// Status code.
    pub status: u16,
}

/// Labels of a gRPC client request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// Payload type, e.g. `InstanceRequest`.
    pub r#type: GrpcRequestType,
    /// `ok` or an error label ([`crate::Error::label`]).
    pub result: &'static str,
}

/// Labels of a push to a subscriber.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    /// The outcome.
    pub result: PushOutcome,
}

/// Metrics of the client planes. Share one per node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests served.
    pub http_requests: Family<HttpLabels, Counter>,
    /// gRPC client requests served.
    pub grpc_requests: Family<GrpcLabels, Counter>,
    /// Open, set-up gRPC client connections.
    pub connections: Gauge,
    /// Pushes to subscribers by outcome.
    pub pushes: Family<PushLabels, Counter>,
}

impl Metrics {
    /// Fresh, unregistered metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `http_requests`, `grpc_requests`, `connections` and `pushes`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("http_requests", "HTTP requests served", self.http_requests.clone());
        registry.register("grpc_requests", "gRPC client requests served", self.grpc_requests.clone());
        registry.register("connections", "Open gRPC client connections", self.connections.clone());
        registry.register("pushes", "Pushes to subscribers by outcome", self.pushes.clone());
    }

    /// Counts one gRPC request of the payload type `type_name`.
    pub fn grpc_request(&self, r#type: GrpcRequestType, result: &'static str) {
        self.grpc_requests.get_or_create(&GrpcLabels { r#type, result }).inc();
    }

    /// Counts one HTTP request.
    pub fn http_request(&self, route: &str, method: HttpMethod, status: u16) {
        self.http_requests.get_or_create(&HttpLabels { route: route.to_owned(), method, status }).inc();
    }

    /// How many HTTP requests were counted with these labels.
    pub fn http_request_count(&self, route: &str, method: HttpMethod, status: u16) -> u64 {
        self.http_requests.get_or_create(&HttpLabels { route: route.to_owned(), method, status }).get()
    }

    /// Counts one push outcome (`ok`, `timeout`, `failed` or `retry`; any
    /// other word counts as `failed`).
    pub fn push(&self, result: &str) {
        let result = PushOutcome::ALL.iter().copied().find(|o| o.label() == result).unwrap_or(PushOutcome::Failed);
        self.pushes.get_or_create(&PushLabels { result }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_request_types_keep_their_names_and_the_rest_is_other() {
        for name in [
            "ServerCheckRequest",
            "InstanceRequest",
            "BatchInstanceRequest",
            "PersistentInstanceRequest",
            "ServiceQueryRequest",
            "SubscribeServiceRequest",
            "ServiceListRequest",
            "HealthCheckRequest",
            "ConnectionSetupRequest",
        ] {
            assert_eq!(GrpcRequestType::of(name).label(), name);
        }
        let huge = "X".repeat(1024 * 1024);
        for junk in ["", "other", "unknown", "instancerequest", "InstanceRequest ", huge.as_str()] {
            assert_eq!(GrpcRequestType::of(junk), GrpcRequestType::Other, "{}", &junk[..junk.len().min(20)]);
        }
    }

    #[test]
    fn a_flood_of_types_makes_one_series() {
        let metrics = Metrics::new();
        let mut registry = Registry::with_prefix("roster");
        metrics.register(&mut registry);
        for n in 0..1000 {
            metrics.grpc_request(GrpcRequestType::of(&format!("Made{n}Request")), "no_handler");
        }
        metrics.grpc_request(GrpcRequestType::of("InstanceRequest"), "ok");
        metrics.push("retry");
        metrics.push("whatever");
        metrics.http_request(
            "/nacos/v1/ns/instance",
            HttpMethod::of(&http::Method::from_bytes(b"BREW").expect("method")),
            404,
        );
        let mut out = String::new();
        assert!(prometheus_client::encoding::text::encode(&mut out, &registry).is_ok());
        assert!(out.contains("roster_grpc_requests_total{type=\"other\",result=\"no_handler\"} 1000"), "{out}");
        assert!(out.contains("roster_grpc_requests_total{type=\"InstanceRequest\",result=\"ok\"} 1"), "{out}");
        assert_eq!(out.matches("roster_grpc_requests_total{").count(), 2, "{out}");
        assert!(out.contains("roster_pushes_total{result=\"retry\"} 1"), "{out}");
        assert!(out.contains("roster_pushes_total{result=\"failed\"} 1"), "{out}");
        assert!(out.contains("method=\"OTHER\""), "{out}");
    }

    #[test]
    fn methods_map_to_their_names() {
        assert_eq!(HttpMethod::of(&http::Method::GET).label(), "GET");
        assert_eq!(HttpMethod::of(&http::Method::PATCH).label(), "PATCH");
        assert_eq!(HttpMethod::of(&http::Method::TRACE), HttpMethod::Other);
    }
}
