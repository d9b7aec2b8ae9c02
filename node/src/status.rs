//! Admin plane: `/roster/v1/status`, the health endpoints and `/metrics`.
//!
//! The status document is the contract the operator and the e2e suite read
//! (DESIGN §7). `raft` is `null` only before Raft has started.
//!
//! Readiness is the conjunction of named checks, one per subsystem, so each
//! can be read (and added) on its own: [`distro_ready`] and [`raft_ready`].
//!
//! With `--fault-injection`, `GET`/`PUT /roster/v1/faults` reads and sets the
//! peer-plane fault switch ([`crate::cluster::faults`]); without it that
//! path does not exist.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::cluster::FaultSettings;
use crate::distro::DistroStatus;
use crate::error::Error;
use crate::state::NodeState;

/// The roster version reported in status.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One member in the status document.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    /// `host:mainPort`.
    pub address: String,
    /// `UP`, `SUSPICIOUS` or `DOWN`.
    pub state: &'static str,
}

/// Store sizes (a Roster extension of the contract).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// Services.
    pub services: usize,
    /// Instances, ephemeral and persistent.
    pub instances: usize,
    /// Clients (connections and ip:port clients).
    pub clients: usize,
    /// Open gRPC connections.
    pub connections: usize,
    /// Subscriptions.
    pub subscriptions: usize,
}

/// `GET /roster/v1/status`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// This member.
    pub member: String,
    /// Roster version.
    pub version: &'static str,
    /// Lookup mode.
    pub lookup: &'static str,
    /// Same as the readiness endpoint.
    pub ready: bool,
    /// Members and their states.
    pub members: Vec<MemberStatus>,
    /// Distro state.
    pub distro: Option<DistroStatus>,
    /// Raft state (DESIGN §7); `null` only before Raft has started.
    pub raft: Option<crate::raft::RaftStatus>,
    /// Store sizes.
    pub store: StoreStatus,
    /// Seconds since start.
    pub uptime_seconds: u64,
}

/// Whether the node is ready for clients: every readiness check passes.
pub fn is_ready(state: &NodeState) -> bool {
    not_ready_reason(state).is_none()
}

/// Distro's readiness check: the snapshot is loaded (at once when
/// standalone, or when no peer is listed).
pub fn distro_ready(state: &NodeState) -> bool {
    state.distro.is_initialized()
}

/// Raft's readiness check: this member knows a Raft leader, so persistent
/// writes can be committed (a standalone node is its own leader).
pub fn raft_ready(state: &NodeState) -> bool {
    state.raft.get().is_some_and(|r| r.has_leader())
}

/// Why the node is not ready, or `None` when it is.
pub fn not_ready_reason(state: &NodeState) -> Option<&'static str> {
    if !distro_ready(state) {
        return Some("distro: snapshot not loaded yet");
    }
    if !raft_ready(state) {
        return Some("raft: no leader known");
    }
    None
}

/// Builds the status document.
pub fn status(state: &NodeState) -> NodeStatus {
    let counts = state.store.counts();
    NodeStatus {
        member: state.member.clone(),
        version: VERSION,
        lookup: state.config.lookup.as_str(),
        ready: is_ready(state),
        members: state
            .membership
            .members()
            .into_iter()
            .map(|m| MemberStatus { address: m.address, state: m.state.as_str() })
            .collect(),
        distro: Some(state.distro.status(counts)),
        raft: state.raft.get().map(|r| r.status()),
        store: StoreStatus {
            services: counts.services,
            instances: counts.instances,
            clients: counts.clients,
            connections: state.connections.count(),
            subscriptions: state.subscribers.count(),
        },
        uptime_seconds: state.started.elapsed().as_secs(),
    }
}

/// Routes of the admin plane.
pub fn router(state: Arc<NodeState>) -> Router {
    Router::new()
        .route("/roster/v1/status", get(|State(s): State<Arc<NodeState>>| async move { Json(status(&s)) }))
        .route("/nacos/v1/console/health/liveness", get(|| async { "OK" }))
        .route(
            "/nacos/v1/console/health/readiness",
            get(|State(s): State<Arc<NodeState>>| async move {
                match not_ready_reason(&s) {
                    None => (StatusCode::OK, "OK".to_string()),
                    Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")),
                }
            }),
        )
        .route("/roster/v1/faults", get(get_faults).put(put_faults))
        .route(
            "/metrics",
            get(|State(s): State<Arc<NodeState>>| async move {
                let body = s.metrics.render(s.store.counts());
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                    .into_response()
            }),
        )
        .with_state(state)
}

async fn get_faults(State(s): State<Arc<NodeState>>) -> Result<Json<FaultSettings>, Error> {
    if !s.faults.is_enabled() {
        return Err(Error::NotFound("fault injection is disabled (start with --fault-injection)".into()));
    }
    Ok(Json(s.faults.current()))
}

async fn put_faults(
    State(s): State<Arc<NodeState>>,
    body: Result<Json<FaultSettings>, JsonRejection>,
) -> Result<Json<FaultSettings>, Error> {
    if !s.faults.is_enabled() {
        return Err(Error::NotFound("fault injection is disabled (start with --fault-injection)".into()));
    }
    let Json(settings) = body.map_err(|e| Error::invalid(format!("invalid fault settings: {}", e.body_text())))?;
    tracing::warn!(?settings, "fault injection changed");
    s.faults.set(settings);
    Ok(Json(s.faults.current()))
}
