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
//! "Forwarded" is believed only when the request is signed with the cluster
//! secret ([`crate::security`]); an unsigned or badly signed
//! [`FORWARDED_BY`] header is logged, counted and ignored, so the request
//! is handled as a plain client request.
//! When the responsible member cannot be reached, the write is applied
//! here instead: Distro is AP, and the copy reaches the others by sync,
//! where the higher revision wins.
//!
//! [`Responsibility`]: crate::cluster::Responsibility

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method, Response, StatusCode};
use tracing::{debug, warn};

use super::params::Params;
use crate::api::ClientState;
use crate::distro::metrics::DistroEvent;
use crate::security::AuthFailure;

/// Header naming the member that forwarded a request.
pub const FORWARDED_BY: &str = "x-roster-forwarded-by";

/// What forwarding needs of a write request besides its parameters.
#[derive(Debug, Clone)]
pub struct Inbound {
    method: Method,
    path: String,
    /// Already forwarded by another member: handled here whatever happens.
    forwarded: bool,
    /// The client's `Authorization` header, passed on so that the
    /// responsible member can check the client's token itself (a token in
    /// the `accessToken` parameter travels with the other parameters).
    authorization: Option<header::HeaderValue>,
}

/// The member that forwarded this request: `Ok(None)` without a
/// [`FORWARDED_BY`] header, `Ok(Some(member))` when that member signed the
/// request with the cluster secret, and why not otherwise.
pub fn signed_forwarder(
    state: &ClientState,
    method: &str,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Option<String>, AuthFailure> {
    let Some(by) = headers.get(FORWARDED_BY) else {
        return Ok(None);
    };
    let auth = state.security.auth().ok_or(AuthFailure::NoSecret)?;
    let signer = auth.verify(headers, method, path)?;
    if by.as_bytes() != signer.as_bytes() {
        return Err(AuthFailure::WrongSender);
    }
    Ok(Some(signer))
}

impl FromRequestParts<Arc<ClientState>> for Inbound {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ClientState>) -> Result<Self, Self::Rejection> {
        let path = parts.uri.path().to_owned();
        let forwarded = match signed_forwarder(state, parts.method.as_str(), &path, &parts.headers) {
            Ok(by) => by.is_some(),
            Err(failure) => {
                warn!(
                    forwarded_by = ?parts.headers.get(FORWARDED_BY),
                    path,
                    reason = failure.label(),
                    "forwarded-by header without a valid member signature; handled as a client request"
                );
                state.security_metrics.peer_auth_failure(failure);
                false
            }
        };
        Ok(Inbound {
            method: parts.method.clone(),
            path,
            forwarded,
            authorization: parts.headers.get(header::AUTHORIZATION).cloned(),
        })
    }
}

/// Sends the write for the ip:port client of `ip:port` to its responsible
/// member, unless that is this node, the request was already forwarded, or
/// the member is unreachable. `None` means "handle it here".
pub async fn to_responsible(
    state: &ClientState,
    inbound: &Inbound,
    params: &Params,
    ip: &str,
    port: u16,
) -> Option<Response<Body>> {
    if inbound.forwarded {
        return None;
    }
    let tag = format!("{ip}:{port}");
    let tag = tag.as_str();
    let target = state.membership.responsibility().member_for(tag)?.to_owned();
    if target == state.member {
        return None;
    }
    if state.faults.is_blocked(&target) {
        debug!(tag, target, "responsible member cut by fault injection; handling the write here");
        state.distro_metrics.event(DistroEvent::HttpForwardFailed, 1);
        return None;
    }
    let url = format!("{}://{target}{}", state.security.http_scheme(), inbound.path);
    let mut headers = http::HeaderMap::new();
    if let Some(auth) = state.security.auth() {
        auth.sign(&mut headers, inbound.method.as_str(), &inbound.path);
    }
    if let Some(authorization) = &inbound.authorization {
        headers.insert(header::AUTHORIZATION, authorization.clone());
    }
    let sent = state
        .http_client
        .request(inbound.method.clone(), &url)
        .header(FORWARDED_BY, &state.member)
        .headers(headers)
        .form(params.pairs())
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => {
            warn!(tag, target, error = %e, "cannot forward to the responsible member; handling the write here");
            state.distro_metrics.event(DistroEvent::HttpForwardFailed, 1);
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
            state.distro_metrics.event(DistroEvent::HttpForwardFailed, 1);
            return None;
        }
    };
    state.distro_metrics.event(DistroEvent::HttpForwarded, 1);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Some(response)
}
