//! The client HTTP plane's guard: the per-IP rate limit
//! ([`crate::limits::rate`]) in front of every client route, and the count
//! of bodies refused by `--max-body-bytes`.
//!
//! Requests another member forwarded (`x-roster-forwarded-by` naming a
//! current member that signed the request with the cluster secret, see
//! [`crate::security`]) are not counted again: the first member already
//! did, and the forwarding member speaks for many clients.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::forward::signed_forwarder;
use crate::api::state::ClientState;
use crate::limits::rate::refused_by_rate;
use crate::limits::Limit;

/// Whether a request was forwarded, and signed, by a current member. An unsigned header is counted like any client request;
/// the forwarding extractor logs and counts the forgery.
fn forwarded_by_member(state: &ClientState, request: &Request) -> bool {
    let signed = signed_forwarder(state, request.method().as_str(), request.uri().path(), request.headers());
    signed.ok().flatten().is_some_and(|from| from != state.member && state.membership.member(&from).is_some())
}

/// Middleware of the client routes on the main port: the per-IP rate limit,
/// and the count of bodies refused by `--max-body-bytes`.
pub async fn http_guard(State(state): State<Arc<ClientState>>, request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    let exempt = forwarded_by_member(&state, &request);
    if let (Some(ip), false) = (client, exempt) {
        let limits = &state.client_limits;
        if let Some(refused) = refused_by_rate(limits, &limits.http_rate, ip, Limit::HttpRate, "requests") {
            return refused;
        }
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        state.client_limits.rejected(Limit::HttpBodyBytes);
    }
    response
}
