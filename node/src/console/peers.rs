//! Which member holds a gRPC connection: the member serving the console
//! asks its peers over HTTP, signed with the cluster secret (connection
//! ids carry client addresses, so only members may ask), as forwarded
//! writes are signed.
//!
//! All peers are asked at once, each with a short timeout of its own, so
//! one slow or dead member delays a service view by at most
//! [`PEER_TIMEOUT`] and never fails it: its answer is left out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::api::ClientState;
use crate::error::{Error, Result};

/// How long the console waits for one peer.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(1);

/// Path of the connection question.
pub const CONNECTIONS_PATH: &str = "/roster/v1/console/connections";

/// Most client ids one connection question may carry.
pub const MAX_IDS: usize = 10_000;

/// Body of a connection question: connection client ids.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConnectionQuestion {
    /// The ids asked about.
    pub ids: Vec<String>,
}

/// Answer to a connection question: those of the ids connected here.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConnectionAnswer {
    /// The ids of connections open on the answering member.
    pub connected: Vec<String>,
}

/// `POST /roster/v1/console/connections`: which of the given connection
/// ids are open on this member. Only a current member that signed the
/// request with the cluster secret may ask.
pub async fn connections(
    State(state): State<Arc<ClientState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ConnectionAnswer>> {
    let auth = state
        .security
        .auth()
        .ok_or_else(|| Error::Forbidden("peer questions need a cluster secret on this member".into()))?;
    let signer = auth.verify(&headers, "POST", CONNECTIONS_PATH, &body).map_err(|failure| {
        state.security_metrics.peer_auth_failure(failure);
        Error::Forbidden(format!("not a member's signed request: {}", failure.message()))
    })?;
    if state.membership.member(&signer).is_none() {
        return Err(Error::Forbidden(format!("{signer} is not a member")));
    }
    let question: ConnectionQuestion =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("invalid connection question: {e}")))?;
    if question.ids.len() > MAX_IDS {
        return Err(Error::invalid(format!("at most {MAX_IDS} ids per question")));
    }
    let connected = question.ids.into_iter().filter(|id| state.connections.get(id).is_some()).collect();
    Ok(Json(ConnectionAnswer { connected }))
}

/// The URL of `path` on `member`, in the scheme the client ports speak.
fn url(state: &ClientState, member: &str, path: &str) -> String {
    format!("{}://{member}{path}", state.security.http_scheme())
}

/// Asks every peer which of `ids` it holds as connections: connection id →
/// member. Peers that do not answer are left out.
pub async fn connection_holders(state: &ClientState, ids: &[String]) -> HashMap<String, String> {
    let Some(auth) = state.security.auth() else {
        return HashMap::new();
    };
    if ids.is_empty() {
        return HashMap::new();
    }
    let Ok(body) = serde_json::to_vec(&ConnectionQuestion { ids: ids.to_vec() }) else {
        return HashMap::new();
    };
    let body = &body;
    let asks = state.membership.peers().into_iter().map(|peer| async move {
        let mut headers = http::HeaderMap::new();
        auth.sign(&mut headers, "POST", CONNECTIONS_PATH, body);
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        let sent = state
            .http_client
            .post(url(state, &peer, CONNECTIONS_PATH))
            .headers(headers)
            .timeout(PEER_TIMEOUT)
            .body(body.clone())
            .send()
            .await;
        let answer = match sent {
            Ok(a) if a.status().is_success() => a.json::<ConnectionAnswer>().await.ok(),
            Ok(a) => {
                tracing::debug!(peer, status = %a.status(), "peer refused the connection question");
                None
            }
            Err(e) => {
                tracing::debug!(peer, error = %e, "peer did not answer the connection question");
                None
            }
        };
        answer.map(|a| (peer, a.connected))
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .flat_map(|(peer, ids)| ids.into_iter().map(move |id| (id, peer.clone())))
        .collect()
}
