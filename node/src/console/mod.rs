//! The web console, served by every member on its main port at `/console/`.
//!
//! A small hand-written UI (plain HTML, CSS and JavaScript, embedded in the
//! binary, so the build stays `cargo build`) over JSON routes:
//!
//! - Nacos's console catalog API (`/nacos/v1/ns/catalog/...`), which the
//!   service list uses, so that tools made for Nacos's console work too;
//! - Roster's own `/roster/v1/console/...`: one service with the member
//!   responsible for each instance, and the whole cluster's status read by
//!   the serving member from its peers;
//! - writes go through the existing Open API v1 (`PUT` and `DELETE
//!   /nacos/v1/ns/instance`), login through `POST /nacos/v1/auth/login`, so
//!   a user's rights apply to the console exactly as to any client.
//!
//! Registry data needs the caller's read right for the namespace (the same
//! check as every `/nacos/v1/ns/...` route); the cluster view shows what
//! `/roster/v1/status` shows and is open like it.
//!
//! These routes are mounted outside the per-IP request rate (a console
//! must keep working while a client floods the node from a shared
//! address); what they can cost is bounded instead: the cluster view is
//! shared for a second ([`cluster::ClusterCache`]), and at most
//! [`DATA_PERMITS`] data requests run at once.
//!
//! # Layout
//! - [`assets`]: the embedded UI files.
//! - [`catalog`]: Nacos's catalog routes.
//! - [`service`]: one service with each instance's responsible member.
//! - [`cluster`]: the aggregated cluster view and its cache.
//! - [`peers`]: the questions the serving member asks its peers.

pub mod assets;
pub mod catalog;
pub mod cluster;
pub mod peers;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::api::http::auth;
use crate::error::Error;
use crate::state::NodeState;

/// Data requests (catalog, service view) served at once; more wait.
pub const DATA_PERMITS: usize = 4;
/// How long a data request waits for its turn before a 429.
const DATA_WAIT: Duration = Duration::from_secs(2);

/// What `GET /roster/v1/console/info` answers: what the UI needs before
/// anything else.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleInfo {
    /// The member serving the console.
    pub member: String,
    /// Roster version.
    pub version: &'static str,
    /// Whether a login is needed (`--auth-enabled`).
    pub auth_enabled: bool,
}

/// The console's routes; merged into the main-port application outside
/// the per-IP rate limit (see the module docs).
pub fn router(state: Arc<NodeState>) -> Router {
    let permits = Arc::new(Semaphore::new(DATA_PERMITS));
    let data = Router::new()
        .route("/nacos/v1/ns/catalog/services", get(catalog::services))
        .route("/nacos/v1/ns/catalog/instances", get(catalog::instances))
        .route("/roster/v1/console/service", get(service::service))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_namespace_right))
        .route_layer(middleware::from_fn_with_state(permits, one_of_few));
    let cache = Arc::new(cluster::ClusterCache::default());
    let cluster_view = move |State(s): State<Arc<NodeState>>| {
        let cache = cache.clone();
        async move { Json(cache.view(&s).await.as_ref().clone()) }
    };
    Router::new()
        .merge(data)
        .route(peers::CONNECTIONS_PATH, post(peers::connections))
        .route("/roster/v1/console/cluster", get(cluster_view))
        .route("/roster/v1/console/info", get(info))
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(assets::index))
        .route("/console/{file}", get(assets::file))
        .with_state(state)
}

/// `GET /roster/v1/console/info`.
async fn info(State(s): State<Arc<NodeState>>) -> Json<ConsoleInfo> {
    Json(ConsoleInfo { member: s.member.clone(), version: crate::status::VERSION, auth_enabled: s.auth.is_some() })
}

/// Runs a data request once one of [`DATA_PERMITS`] is free; a request
/// that waited [`DATA_WAIT`] in vain gets 429 and `Retry-After: 1`.
async fn one_of_few(State(permits): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(DATA_WAIT, permits.acquire()).await {
        Ok(Ok(_permit)) => next.run(request).await,
        _ => {
            let mut refused =
                Error::RateLimited("The console's data routes are busy; retry in a second.".into()).into_response();
            refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            refused
        }
    }
}
