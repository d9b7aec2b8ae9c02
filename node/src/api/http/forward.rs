//! Forwarding of ip:port client writes to the member responsible for them
//! (Nacos's `DistroFilter`).
//!
//! An HTTP-registered instance belongs to the ip:port client of its own
//! address, and only the member [`Responsibility`] names for that
//! `ip:port` writes it, judges its beats and vouches for it in verify
//! rounds. A write, deregistration, update or beat that reaches another
//! member is validated there, then re-sent to the responsible member with
//! the same method, path and parameters (as a form body) and a
//! [`FORWARDED_BY`] header; the answer is relayed unchanged.
//!
//! A forwarded request is never forwarded again (the two members may
//! briefly disagree about responsibility while a member changes state).
//! When the responsible member cannot be reached, the write is applied
//! here instead: Distro is AP, and the copy reaches the others by sync,
//! where the higher revision wins.
//!
//! [`Responsibility`]: crate::cluster::Responsibility

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Response, StatusCode};
use tracing::{debug, warn};

use super::params::Params;
use crate::state::NodeState;

/// Header naming the member that forwarded a request.
pub const FORWARDED_BY: &str = "x-roster-forwarded-by";

/// Sends the write for the ip:port `tag` to its responsible member, unless
/// that is this node, the request was already forwarded, or the member is
/// unreachable. `None` means "handle it here".
pub async fn to_responsible(
    state: &NodeState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    params: &Params,
    tag: &str,
) -> Option<Response<Body>> {
    if headers.contains_key(FORWARDED_BY) {
        return None;
    }
    let target = state.membership.responsibility().member_for(tag)?.to_owned();
    if target == state.member {
        return None;
    }
    if state.faults.is_blocked(&target) {
        debug!(tag, target, "responsible member cut by fault injection; handling the write here");
        state.metrics.distro_event("http_forward_failed", 1);
        return None;
    }
    let url = format!("http://{target}{path}");
    let sent = state
        .http_client
        .request(method.clone(), &url)
        .header(FORWARDED_BY, &state.member)
        .form(params.pairs())
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => {
            warn!(tag, target, error = %e, "cannot forward to the responsible member; handling the write here");
            state.metrics.distro_event("http_forward_failed", 1);
            return None;
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(e) => {
            // The target may have applied the write; applying it here too is
            // harmless (the same data, and the higher revision wins).
            warn!(tag, target, error = %e, "the responsible member's answer broke off; handling the write here");
            state.metrics.distro_event("http_forward_failed", 1);
            return None;
        }
    };
    state.metrics.distro_event("http_forwarded", 1);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Some(response)
}
