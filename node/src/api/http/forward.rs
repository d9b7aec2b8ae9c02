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
//! secret ([`crate::security`]), over its method, path, query and body,
//! with a nonce not seen before; the client plane's guard checks that once
//! per request ([`verify_forwarded`]) and hands the outcome on as the
//! [`Forwarded`] extension. An unsigned, badly signed or replayed
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
use crate::telemetry::clip;

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

/// The member that forwarded and signed a request, as the guard found it
/// (a request extension; `None`: not forwarded, or not provably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded(pub Option<String>);

/// The member that forwarded this request: `Ok(None)` without a
/// [`FORWARDED_BY`] header, `Ok(Some(member))` when that member signed the
/// request (method, path with query, `body`) with the cluster secret and a
/// fresh nonce, and why not otherwise. Uses the nonce up: call it once per
/// request.
pub fn verify_forwarded(state: &ClientState, parts: &Parts, body: &[u8]) -> Result<Option<String>, AuthFailure> {
    let Some(by) = parts.headers.get(FORWARDED_BY) else {
        return Ok(None);
    };
    let auth = state.security.auth().ok_or(AuthFailure::NoSecret)?;
    let target = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
    let signer = auth.verify(&parts.headers, parts.method.as_str(), target, body)?;
    if by.as_bytes() != signer.as_bytes() {
        return Err(AuthFailure::WrongSender);
    }
    Ok(Some(signer))
}

/// [`verify_forwarded`], with a failure logged and counted: the signer, or
/// `None` (handled as a client request).
pub fn forwarded_by(state: &ClientState, parts: &Parts, body: &[u8]) -> Option<String> {
    match verify_forwarded(state, parts, body) {
        Ok(by) => by,
        Err(failure) => {
            let claimed = parts.headers.get(FORWARDED_BY).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            warn!(
                forwarded_by = claimed.as_deref().map(clip).as_deref(),
                path = %clip(parts.uri.path()),
                reason = failure.label(),
                "forwarded-by header without a valid member signature; handled as a client request"
            );
            state.security_metrics.peer_auth_failure(failure);
            None
        }
    }
}

impl FromRequestParts<Arc<ClientState>> for Inbound {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &Arc<ClientState>) -> Result<Self, Self::Rejection> {
        // The guard verified the signature (once: it uses the nonce up).
        let forwarded = parts.extensions.get::<Forwarded>().is_some_and(|f| f.0.is_some());
        Ok(Inbound {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
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
    let mut request = state.http_client.request(inbound.method.clone(), &url).header(FORWARDED_BY, &state.member);
    if let Some(authorization) = &inbound.authorization {
        request = request.header(header::AUTHORIZATION, authorization.clone());
    }
    let sent = match request.form(params.pairs()).build() {
        Ok(mut request) => {
            if let Some(auth) = state.security.auth() {
                // The signature covers the form body as it is sent.
                let body = request.body().and_then(reqwest::Body::as_bytes).unwrap_or_default().to_vec();
                auth.sign(request.headers_mut(), inbound.method.as_str(), &inbound.path, &body);
            }
            state.http_client.execute(request).await
        }
        Err(e) => Err(e),
    };
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
