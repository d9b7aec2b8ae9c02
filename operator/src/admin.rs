//! The operator's own HTTP endpoints: `/metrics` (Prometheus) and
//! `/healthz` (liveness). Kept on their own port so the address server's
//! port carries nothing but member lists.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// Routes of the admin endpoints.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.render())
                    .into_response()
            }),
        )
        .with_state(metrics)
}
