//! The Nacos Open API over HTTP (main port): v1 for 1.x-era SDKs and tools,
//! the v2 naming routes for tools built on Nacos 2, and the v2 client
//! introspection routes for operators.
//!
//! Same paths, parameters, defaults and JSON shapes as Nacos
//! (`namespaceId=public`, `groupName=DEFAULT_GROUP`, `clusterName=DEFAULT`).
//! v1 writes answer a plain `ok`, v1 errors a plain `caused: <message>;`
//! with the status of [`crate::Error::http_status`]; v2 routes answer
//! `{"code", "message", "data"}` ([`v2`]). Bad input is refused before the
//! store is touched, so it changes nothing.
//!
//! # Layout
//! - [`auth`]: the login routes and the token check on every naming route.
//! - [`params`]: parameters from the query string and the form body.
//! - [`error`]: how an [`crate::Error`] becomes a response.
//! - [`instance`]: register, deregister, update, detail and list.
//! - [`beat`]: heartbeats of HTTP-registered instances.
//! - [`forward`]: ip:port client writes go to the responsible member.
//! - [`guard`]: the per-IP rate limit in front of the client routes.
//! - [`service`]: service create, update, delete, detail and list.
//! - [`cluster`]: the member list (`/nacos/v1/core/cluster/nodes`).
//! - [`operator`]: the naming summary 1.x clients use as a health check.
//! - [`udp_subscribe`]: list callers subscribing to UDP pushes.
//! - [`v2`]: the v2 answer shape (`Result`, `ErrorCode`).
//! - [`v2_naming`]: the v2 naming routes (`/nacos/v2/ns/instance...`,
//!   `/service...`, `/health...`, `/operator/metrics`).
//! - [`client`]: the v2 client introspection routes
//!   (`/nacos/v2/ns/client...`), for admins only.
//!
//! Every request on the main port, including unmatched ones, is counted in
//! `roster_http_requests` by route template, method and status
//! ([`count_requests`], applied by the server to the whole application).

pub mod auth;
pub mod beat;
pub mod client;
pub mod cluster;
pub mod error;
pub mod forward;
pub mod guard;
pub mod instance;
pub mod operator;
pub mod params;
pub mod service;
pub mod udp_subscribe;
pub mod v2;
pub mod v2_naming;

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;

use crate::api::ClientState;
use crate::error::Error;
use crate::metrics::{HttpMethod, Metrics};

/// Route label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The v1 naming routes, the v2 naming routes and the v2 client routes.
///
/// The router has its own fallback (a 404 in the v1 error shape) and the
/// client limits (the per-IP rate, [`guard::http_guard`]);
/// a router merged with it must not set another fallback. The server wraps
/// the merged main-port application in [`count_requests`].
pub fn router(state: Arc<ClientState>) -> Router {
    // Every naming route checks the caller's token and namespace right when
    // authentication is on (a route layer: unmatched paths stay 404).
    let naming = Router::new()
        .route(
            "/nacos/v1/ns/instance",
            post(instance::register)
                .delete(instance::deregister)
                .put(instance::update)
                .patch(instance::update)
                .get(instance::detail),
        )
        .route("/nacos/v1/ns/instance/beat", put(beat::beat))
        .route("/nacos/v1/ns/instance/list", get(instance::list))
        .route(
            "/nacos/v1/ns/service",
            post(service::create).put(service::update).delete(service::delete).get(service::detail),
        )
        .route("/nacos/v1/ns/service/list", get(service::list))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_namespace_right));
    let summary = Router::new()
        .route("/nacos/v1/ns/operator/metrics", get(operator::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_login));
    // Nacos secures these as resource `nacos/admin`: they show every
    // namespace's clients.
    let clients = Router::new()
        .route("/nacos/v2/ns/client/list", get(client::list))
        .route("/nacos/v2/ns/client", get(client::detail))
        .route("/nacos/v2/ns/client/publish/list", get(client::published))
        .route("/nacos/v2/ns/client/subscribe/list", get(client::subscribed))
        .route("/nacos/v2/ns/client/service/publisher/list", get(client::service_publishers))
        .route("/nacos/v2/ns/client/service/subscriber/list", get(client::service_subscribers))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_admin));
    let logins = Router::new()
        .route("/nacos/v1/auth/login", post(auth::login))
        .route("/nacos/v1/auth/users/login", post(auth::login))
        .route_layer(middleware::from_fn_with_state(state.client_limits.clone(), crate::limits::login::login_guard));
    Router::new()
        .merge(naming)
        .merge(summary)
        .merge(clients)
        .merge(v2_naming::routes(&state))
        .merge(logins)
        .route("/nacos/v1/core/cluster/nodes", get(cluster::nodes))
        .route("/nacos/v1/core/cluster/nodes/self", get(cluster::node_self))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard::http_guard))
        .with_state(state)
}

/// Answers requests that match no route, in the v1 error shape.
async fn not_found(method: Method, uri: axum::http::Uri) -> Error {
    Error::NotFound(format!("no API at {method} {}", uri.path()))
}

/// Counts a request by route template, method and status once answered
/// (unusual methods share one label, so clients cannot grow the label set).
pub async fn count_requests(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, MatchedPath::as_str).to_owned();
    let method = HttpMethod::of(req.method());
    let response = next.run(req).await;
    metrics.http_request(&route, method, response.status().as_u16());
    response
}
