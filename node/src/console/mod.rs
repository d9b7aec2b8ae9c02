//! The web console, served by every member on its main port at `/console/`.
//!
//! A small hand-written UI (plain HTML, CSS and JavaScript, embedded in the
//! binary, so the build stays `cargo build`) over JSON routes:
//!
//! - Nacos's console catalog API (`/nacos/v1/ns/catalog/...`), which the
//!   service list uses, so that tools made for Nacos's console work too;
//! - Roster's own `/roster/v1/console/...`: what the UI needs first
//!   (`info`), and one service with the member responsible for each
//!   instance (`service`);
//! - the admin plane's `/roster/v1/cluster` ([`crate::admin::cluster`]):
//!   the members table;
//! - writes go through the Open API v1 (`PUT` and `DELETE
//!   /nacos/v1/ns/instance`), login through `POST /nacos/v1/auth/login`, so
//!   a user's rights apply to the console exactly as to any client.
//!
//! The routes here read the client plane's [`ClientState`] and check the
//! caller's read right for the namespace (the same check as every
//! `/nacos/v1/ns/...` route). They are mounted beside the per-IP request
//! rate, not behind it (a console must keep working while a client floods
//! the node from a shared address); what they can cost is bounded instead:
//! at most [`DATA_PERMITS`] data requests run at once, and the cluster view
//! is shared for a second by the admin plane.
//!
//! # Layout
//! - [`assets`]: the embedded UI files.
//! - [`catalog`]: Nacos's catalog routes.
//! - [`service`]: one service with each instance's responsible member.
//! - [`peers`]: which member holds a gRPC connection, asked of the peers.

pub mod assets;
pub mod catalog;
pub mod peers;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::api::http::auth;
use crate::api::ClientState;
use crate::error::Error;

/// Data requests (catalog, service view) served at once; more wait.
pub const DATA_PERMITS: usize = 4;
/// How long a data request waits for its turn before a 429.
pub const DATA_WAIT: Duration = Duration::from_secs(2);

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

/// The console's routes, to be merged into the main-port application
/// beside the client plane's rate limit (see the module docs).
pub fn router(state: Arc<ClientState>) -> Router {
    let data = Router::new()
        .route("/nacos/v1/ns/catalog/services", get(catalog::services))
        .route("/nacos/v1/ns/catalog/instances", get(catalog::instances))
        .route("/roster/v1/console/service", get(service::service))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_namespace_right));
    Router::new()
        .merge(one_at_a_few(data, DATA_PERMITS, DATA_WAIT))
        .route(peers::CONNECTIONS_PATH, post(peers::connections))
        .route("/roster/v1/console/info", get(info))
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(assets::index))
        .route("/console/{file}", get(assets::file))
        .with_state(state)
}

/// `GET /roster/v1/console/info`.
async fn info(State(s): State<Arc<ClientState>>) -> Json<ConsoleInfo> {
    Json(ConsoleInfo {
        member: s.member.clone(),
        version: crate::admin::document::VERSION,
        auth_enabled: s.auth.is_some(),
    })
}

/// `routes`, each request run once one of `permits` is free; a request
/// that waited `wait` in vain gets 429 and `Retry-After: 1`.
fn one_at_a_few<S: Clone + Send + Sync + 'static>(routes: Router<S>, permits: usize, wait: Duration) -> Router<S> {
    let permits = Arc::new(Semaphore::new(permits));
    routes.route_layer(middleware::from_fn(move |request: Request, next: Next| {
        let permits = permits.clone();
        async move {
            match tokio::time::timeout(wait, permits.acquire()).await {
                Ok(Ok(_permit)) => next.run(request).await,
                _ => {
                    let mut refused =
                        Error::RateLimited("The console's data routes are busy; retry in a second.".into())
                            .into_response();
                    refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    refused
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::response::Response;
    use tokio::sync::mpsc;
    use tower_service::Service;

    use super::*;

    async fn call(router: &Router, path: &str) -> Response {
        let request = axum::http::Request::get(path).body(Body::empty()).expect("request");
        router.clone().call(request).await.expect("infallible")
    }

    #[tokio::test(start_paused = true)]
    async fn a_data_request_beyond_the_permits_waits_then_gets_429() {
        let release = Arc::new(Semaphore::new(0));
        let (entered_tx, mut entered) = mpsc::unbounded_channel();
        let held = release.clone();
        let slow = get(move || {
            let (held, entered_tx) = (held.clone(), entered_tx.clone());
            async move {
                let _ = entered_tx.send(());
                held.acquire().await.expect("open").forget();
                "done"
            }
        });
        let router = one_at_a_few(Router::new().route("/slow", slow), DATA_PERMITS, DATA_WAIT);
        let running: Vec<_> = (0..DATA_PERMITS)
            .map(|_| {
                let router = router.clone();
                tokio::spawn(async move { call(&router, "/slow").await.status() })
            })
            .collect();
        for _ in 0..DATA_PERMITS {
            entered.recv().await.expect("a request entered");
        }

        let started = tokio::time::Instant::now();
        let refused = call(&router, "/slow").await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert_eq!(started.elapsed(), DATA_WAIT, "refused only after waiting its turn");
        assert!(entered.try_recv().is_err(), "the refused request never ran");

        release.add_permits(DATA_PERMITS + 1);
        for request in running {
            assert_eq!(request.await.expect("joined"), StatusCode::OK);
        }
        assert_eq!(call(&router, "/slow").await.status(), StatusCode::OK, "permits come back");
    }
}
