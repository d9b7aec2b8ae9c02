//! `GET /nacos/v2/ns/operator/metrics` (also `/nacos/v2/ns/ops/metrics`):
//! the naming summary of Nacos 2's `OperatorControllerV2`.
//!
//! With `onlyStatus` (the default, `true`) only `{"status": "UP"}`;
//! otherwise the counts of the v1 summary ([`super::super::operator`]),
//! which leaves out what Roster cannot count honestly (per-kind ip:port
//! client counts, `cpu`, `load`, `mem`). The switches
//! (`/nacos/v2/ns/operator/switches`) are not served: Roster has no
//! runtime switches; its settings are flags.

use std::sync::Arc;

use axum::extract::State;
use serde_json::json;

use super::super::operator as v1;
use super::super::params::Params;
use super::answer::{answer, V2Answer};
use crate::api::ClientState;

/// `GET /nacos/v2/ns/operator/metrics`.
pub async fn metrics(State(state): State<Arc<ClientState>>, p: Params) -> V2Answer {
    if p.bool("onlyStatus")?.unwrap_or(true) {
        return answer(json!({"status": "UP"}));
    }
    let axum::Json(summary) = v1::metrics(State(state)).await;
    answer(summary)
}
