//! The client HTTP plane's guard, in front of every client route: it reads
//! the body (within `--max-body-bytes`, and within
//! `--http-header-read-timeout` so that a body trickled byte by byte cannot
//! hold a handler), checks a forwarding member's signature over it, then
//! applies the per-IP rate limit ([`crate::limits::rate`]).
//!
//! Requests another member forwarded (`x-roster-forwarded-by` naming a
//! current member that signed the request with the cluster secret, see
//! [`crate::security`]) are not counted again: the first member already
//! did, and the forwarding member speaks for many clients. The signature
//! is checked here once (its nonce is used up) and handed to the handlers
//! as the [`Forwarded`] extension.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::forward::{forwarded_by, Forwarded};
use crate::api::state::ClientState;
use crate::error::Error;
use crate::limits::rate::refused_by_rate;
use crate::limits::Limit;

/// The whole body, or the answer to a body that is too large, too slow or
/// broken.
async fn read_body(state: &ClientState, body: Body) -> Result<Bytes, Response> {
    let limits = &state.client_limits;
    let deadline = limits.http_serving.header_read_timeout;
    match tokio::time::timeout(deadline, Limited::new(body, state.max_body_bytes).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            limits.rejected(Limit::HttpBodyBytes);
            let err =
                Error::TooLarge(format!("Request body is larger than the limit of {} bytes.", state.max_body_bytes));
            Err(err.into_response())
        }
        Ok(Err(e)) => Err(Error::invalid(format!("Cannot read the request body: {e}")).into_response()),
        Err(_) => {
            limits.rejected(Limit::HttpHeaderTimeout);
            let body = format!("caused: The request body did not arrive within {} ms.;", deadline.as_millis());
            Err((
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CONNECTION, "close")],
                body,
            )
                .into_response())
        }
    }
}

/// Middleware of the client routes on the main port; see the module docs.
pub async fn http_guard(State(state): State<Arc<ClientState>>, request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    let (mut parts, body) = request.into_parts();
    let body = match read_body(&state, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let forwarded = forwarded_by(&state, &parts, &body);
    let exempt =
        forwarded.as_deref().is_some_and(|from| from != state.member && state.membership.member(from).is_some());
    if let (Some(ip), false) = (client, exempt) {
        let limits = &state.client_limits;
        if let Some(refused) = refused_by_rate(limits, &limits.http_rate, ip, Limit::HttpRate, "requests") {
            return refused;
        }
    }
    parts.extensions.insert(Forwarded(forwarded));
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        state.client_limits.rejected(Limit::HttpBodyBytes);
    }
    response
}
