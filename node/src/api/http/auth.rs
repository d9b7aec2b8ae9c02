//! Authentication on the main HTTP port: the login routes and the token
//! check in front of every naming and administrative route (see
//! [`crate::auth`]).
//!
//! The check is a route layer on `/nacos/v1/ns/...`, so a route added there
//! later is covered without thinking about it. It reads the token from an
//! `Authorization: Bearer` header, else from the `accessToken` parameter
//! (query string or form body, as Nacos does), and the namespace from
//! `namespaceId`. `GET` is a read, every other method a write (register,
//! deregister, update, beat, service changes). The summary at
//! `/nacos/v1/ns/operator/metrics` counts every namespace but names none,
//! so any logged-in user may read it (1.x SDKs poll it as a health check).
//!
//! The client introspection routes of the v2 API (`/nacos/v2/ns/client...`,
//! see [`super::client`]) show every client's addresses and subscriptions
//! across namespaces; Nacos secures them as resource `nacos/admin`, so only
//! a user with the `admin` role may read them (others get the same 403 as
//! a missing namespace right). Refusals there keep the v1 shape, as Nacos's
//! auth filter answers before its v2 error handling is reached.
//!
//! Nothing else on the main port needs a token: `/nacos/v1/core/cluster/nodes`,
//! `/roster/v1/status`, the health probes and `/metrics` are read by
//! probes and the operator and show no registry data.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::params::{is_form, Params};
use crate::api::ClientState;
use crate::auth::{bearer_token, Action, ACCESS_TOKEN};
use crate::error::{Error, Result};
use crate::naming::validate;

/// `POST /nacos/v1/auth/login` and `/nacos/v1/auth/users/login`:
/// `username` and `password` as query or form parameters. Answers Nacos's
/// `{accessToken, tokenTtl, globalAdmin, username}` and the same token in
/// an `Authorization: Bearer` header; 403 for a wrong name or password.
pub async fn login(State(state): State<Arc<ClientState>>, p: Params) -> Result<Response> {
    let Some(auth) = state.auth.clone() else {
        return Err(Error::NotFound("authentication is not enabled on this node (--auth-enabled)".into()));
    };
    let (username, password) = (p.raw("username").map(str::to_owned), p.raw("password").map(str::to_owned));
    // The password hash is deliberately slow: it runs off the async
    // workers, so logins never stall other requests.
    let answer = tokio::task::spawn_blocking(move || auth.login(username.as_deref(), password.as_deref()))
        .await
        .map_err(|e| Error::Internal(format!("login task failed: {e}")))??;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", answer.access_token)).ok();
    let mut response = Json(answer).into_response();
    if let Some(bearer) = bearer {
        response.headers_mut().insert(AUTHORIZATION, bearer);
    }
    Ok(response)
}

/// The token of a request: `Authorization: Bearer <token>`, else the
/// `accessToken` parameter.
fn token<'a>(headers: &'a HeaderMap, params: &'a Params) -> Option<&'a str> {
    bearer_token(headers).or_else(|| params.get(ACCESS_TOKEN))
}

/// What a route needs of the caller.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// The right for the request's `namespaceId` and method.
    Namespace,
    /// Any valid token.
    LoggedIn,
    /// A valid token of a user with the `admin` role.
    Admin,
}

/// Route layer of the naming routes: a valid token with the right for
/// the request's namespace.
pub async fn require_namespace_right(state: State<Arc<ClientState>>, req: Request, next: Next) -> Response {
    check(state, req, next, Scope::Namespace).await
}

/// Route layer of routes that only need a logged-in caller.
pub async fn require_login(state: State<Arc<ClientState>>, req: Request, next: Next) -> Response {
    check(state, req, next, Scope::LoggedIn).await
}

/// Route layer of the administrative routes: a logged-in admin.
pub async fn require_admin(state: State<Arc<ClientState>>, req: Request, next: Next) -> Response {
    check(state, req, next, Scope::Admin).await
}

async fn check(State(state): State<Arc<ClientState>>, req: Request, next: Next, scope: Scope) -> Response {
    let Some(auth) = state.auth.clone() else {
        return next.run(req).await;
    };
    let action = if matches!(*req.method(), Method::GET | Method::HEAD) { Action::Read } else { Action::Write };
    let what = format!("{} {}", req.method(), req.uri().path());
    // The parameters may be in the body: read it once (within the body
    // limit), judge, and hand the same bytes on to the handler.
    let (parts, body) = req.into_parts();
    let form = is_form(parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()));
    let bytes = match Bytes::from_request(Request::from_parts(parts.clone(), body), &state).await {
        Ok(bytes) => bytes,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Error::TooLarge(format!("Request body is larger than the limit of {} bytes.", state.max_body_bytes))
                .into_response()
        }
        Err(e) => return Error::invalid(format!("Cannot read the request body: {e}")).into_response(),
    };
    let params = match Params::parse(parts.uri.query(), (form && !bytes.is_empty()).then_some(&bytes[..])) {
        Ok(params) => params,
        Err(e) => return e.into_response(),
    };
    let identity = match auth.authenticate(token(&parts.headers, &params), &what) {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    match scope {
        Scope::Namespace => {
            let namespace = match validate::namespace(params.get("namespaceId")) {
                Ok(namespace) => namespace,
                Err(e) => return e.into_response(),
            };
            if let Err(e) = auth.authorize(&identity, &namespace, action, &what) {
                return e.into_response();
            }
        }
        Scope::Admin => {
            if let Err(e) = auth.authorize_admin(&identity, &what) {
                return e.into_response();
            }
        }
        Scope::LoggedIn => {}
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}
