//! The admin plane: `GET /roster/v1/status` ([`document`]), every
//! member's status document as this member reads them, `GET
//! /roster/v1/cluster` ([`cluster`], which the console and `roster status`
//! show), the health probes `/nacos/v1/console/health/{liveness,readiness}`
//! ([`readiness`]), Prometheus `/metrics`, and, with `--fault-injection`,
//! `GET`/`PUT /roster/v1/faults` (the peer plane's fault switch,
//! [`crate::peer::faults`]; without the flag that path answers 404; with
//! authentication on it needs an `admin` user's token, as a header
//! `Authorization: Bearer` or the `accessToken` query parameter).
//!
//! It is served on the main port, by the same listener as the client HTTP
//! API, but on its own [`router`], outside the client limits: the per-IP
//! rate limit and the body limit never apply to it, and a connection
//! refused by the connection limit is still answered by this router (every
//! other path gets the refusal, see [`crate::limits::LimitedListener`]), so
//! the probes answer while the client limits refuse everything. With
//! `--admin-port` the same router is also served on a listener of its own
//! ([`AdminSettings`]), for probes that must not share the client port's
//! connection limits at all. Only the fault switch needs a token: the rest
//! shows no registry data.
//!
//! The plane reads the rest of the node through [`AdminState`]: the
//! membership, Distro and Raft status, store sizes, the metrics registry,
//! and an HTTP client to read its peers' status documents, and nothing
//! else.

pub mod cluster;
pub mod document;
pub mod readiness;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::api::grpc::connection::Connections;
use crate::auth::{bearer_token, Auth};
use crate::cluster::{LookupMode, Membership};
use crate::distro::Distro;
use crate::error::Error;
use crate::naming::NamingStore;
use crate::peer::{FaultSettings, Faults};
use crate::push::Subscribers;
use crate::raft::RaftNode;

/// What the admin plane reads: the node's parts it was given, when it
/// started, and the gauges it sets at each scrape.
#[derive(Debug)]
pub struct AdminState {
    pub(crate) node: AdminParts,
    pub(crate) started: Instant,
    sizes: StoreGauges,
    /// The last cluster view, shared by every caller for a second.
    cluster: cluster::ClusterCache,
}

/// Gauges of the store's sizes, set from the store at each scrape so they
/// can never drift from the truth.
#[derive(Debug, Default)]
struct StoreGauges {
    services: Gauge,
    instances: Gauge,
    clients: Gauge,
}

/// The parts of the node the admin plane reads.
#[derive(Debug)]
pub struct AdminParts {
    /// This member.
    pub member: String,
    /// The lookup mode.
    pub lookup: LookupMode,
    /// Members and their states.
    pub membership: Arc<Membership>,
    /// Distro (status, readiness).
    pub distro: Arc<Distro>,
    /// Raft (status, readiness).
    pub raft: Arc<RaftNode>,
    /// The store (sizes).
    pub store: Arc<NamingStore>,
    /// Open connections (count).
    pub connections: Arc<Connections>,
    /// Subscriptions (count).
    pub subscribers: Arc<Subscribers>,
    /// The fault switch.
    pub faults: Arc<Faults>,
    /// Client authentication: when on, the fault switch needs an admin's token.
    pub auth: Option<Arc<Auth>>,
    /// Every subsystem's metrics, registered.
    pub registry: Registry,
    /// The HTTP client that reads the peers' status documents (with TLS it
    /// trusts the cluster CA only).
    pub http_client: reqwest::Client,
    /// `http` or `https`: the scheme the members' main ports speak.
    pub http_scheme: &'static str,
}

impl AdminState {
    /// The admin plane over `parts`; registers the store-size gauges.
    pub fn new(mut parts: AdminParts) -> Arc<AdminState> {
        let sizes = StoreGauges::default();
        parts.registry.register("services", "Services in the store", sizes.services.clone());
        parts.registry.register("instances", "Instances in the store", sizes.instances.clone());
        parts.registry.register("clients", "Clients holding ephemeral instances", sizes.clients.clone());
        Arc::new(AdminState { node: parts, started: Instant::now(), sizes, cluster: cluster::ClusterCache::default() })
    }

    /// The Prometheus text exposition, with store sizes read now.
    pub fn metrics_text(&self) -> String {
        let counts = self.node.store.counts();
        self.sizes.services.set(i64::try_from(counts.services).unwrap_or(i64::MAX));
        self.sizes.instances.set(i64::try_from(counts.instances).unwrap_or(i64::MAX));
        self.sizes.clients.set(i64::try_from(counts.clients).unwrap_or(i64::MAX));
        let mut out = String::new();
        if encode(&mut out, &self.node.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// This member's status document.
pub const STATUS: &str = "/roster/v1/status";
/// Every member's status document, as this member reads them.
pub const CLUSTER: &str = "/roster/v1/cluster";
/// Liveness: 200 while the process serves.
pub const LIVENESS: &str = "/nacos/v1/console/health/liveness";
/// Readiness: 200 once every readiness check passes.
pub const READINESS: &str = "/nacos/v1/console/health/readiness";

/// The admin plane's routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route(STATUS, get(|State(s): State<Arc<AdminState>>| async move { Json(document::status(&s)) }))
        .route(
            CLUSTER,
            get(|State(s): State<Arc<AdminState>>| async move {
                Json(s.cluster.view(|| cluster::build(&s)).await.as_ref().clone())
            }),
        )
        .route(LIVENESS, get(|| async { "OK" }))
        .route(
            READINESS,
            get(|State(s): State<Arc<AdminState>>| async move {
                match readiness::not_ready_reason(&s) {
                    None => (StatusCode::OK, "OK".to_string()),
                    Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")),
                }
            }),
        )
        .route("/roster/v1/faults", get(get_faults).put(put_faults))
        .route(
            "/metrics",
            get(|State(s): State<Arc<AdminState>>| async move {
                let body = s.metrics_text();
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                    .into_response()
            }),
        )
        .with_state(state)
}

/// The admin plane's own flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Admin plane")]
pub struct AdminSettings {
    /// Also serve the admin routes (probes, status, metrics, faults) on
    /// this port of --bind, a listener of their own that the client limits
    /// never touch; point Kubernetes probes here when client traffic
    /// could fill the main port. Unset: the main port only.
    #[arg(long, env = "ROSTER_ADMIN_PORT")]
    pub admin_port: Option<u16>,
}

/// The `accessToken` query parameter of an admin request.
#[derive(Debug, Default, serde::Deserialize)]
struct TokenParam {
    #[serde(rename = "accessToken")]
    access_token: Option<String>,
}

/// The fault switch, if it is on and the caller may use it: with
/// authentication on, only an `admin` user.
fn fault_switch(s: &AdminState, headers: &axum::http::HeaderMap, query: &TokenParam, what: &str) -> Result<(), Error> {
    if !s.node.faults.is_enabled() {
        return Err(Error::NotFound("fault injection is disabled (start with --fault-injection)".into()));
    }
    if let Some(auth) = &s.node.auth {
        let token = bearer_token(headers).or(query.access_token.as_deref());
        let identity = auth.authenticate(token, what)?;
        auth.authorize_admin(&identity, what)?;
    }
    Ok(())
}

async fn get_faults(
    State(s): State<Arc<AdminState>>,
    headers: axum::http::HeaderMap,
    Query(query): Query<TokenParam>,
) -> Result<Json<FaultSettings>, Error> {
    fault_switch(&s, &headers, &query, "GET /roster/v1/faults")?;
    Ok(Json(s.node.faults.current()))
}

async fn put_faults(
    State(s): State<Arc<AdminState>>,
    headers: axum::http::HeaderMap,
    Query(query): Query<TokenParam>,
    body: Result<Json<FaultSettings>, JsonRejection>,
) -> Result<Json<FaultSettings>, Error> {
    fault_switch(&s, &headers, &query, "PUT /roster/v1/faults")?;
    let Json(settings) = body.map_err(|e| Error::invalid(format!("invalid fault settings: {}", e.body_text())))?;
    tracing::warn!(?settings, "fault injection changed");
    s.node.faults.set(settings);
    Ok(Json(s.node.faults.current()))
}
