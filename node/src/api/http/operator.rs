//! `GET /nacos/v1/ns/operator/metrics`: the naming summary Nacos 1.x clients
//! poll as their server health check (`status == "UP"` means healthy).
//!
//! Only counts Roster can give honestly are included: the per-kind client
//! counts of Nacos (`ephemeralIpPortClientCount`, ...) are left out because
//! the store does not split its client count by kind, and `cpu`/`load`/`mem`
//! are left to `/metrics` and the platform.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::api::ClientState;
use crate::cluster::LookupMode;

/// The answer of `GET /nacos/v1/ns/operator/metrics`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorMetrics {
    /// `UP` while the node serves.
    pub status: &'static str,
    /// Services (explicit or with instances).
    pub service_count: usize,
    /// Instances, ephemeral and persistent.
    pub instance_count: usize,
    /// gRPC subscriptions.
    pub subscribe_count: usize,
    /// Clients holding ephemeral instances (connections and ip:port clients).
    pub client_count: usize,
    /// Open, set-up gRPC connections (each is a client).
    pub connection_based_client_count: usize,
    /// Clients this node is responsible for; only known standalone, where
    /// it is every client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible_client_count: Option<usize>,
    /// Instances this node is responsible for (standalone: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible_instance_count: Option<usize>,
}

/// `GET /nacos/v1/ns/operator/metrics`.
pub async fn metrics(State(state): State<Arc<ClientState>>) -> Json<OperatorMetrics> {
    let counts = state.store.counts();
    let standalone = state.lookup == LookupMode::Standalone;
    Json(OperatorMetrics {
        status: "UP",
        service_count: counts.services,
        instance_count: counts.instances,
        subscribe_count: state.subscribers.count(),
        client_count: counts.clients,
        connection_based_client_count: state.connections.count(),
        responsible_client_count: standalone.then_some(counts.clients),
        responsible_instance_count: standalone.then_some(counts.instances),
    })
}
