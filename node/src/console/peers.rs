//! What the member serving the console asks the other members over HTTP:
//! their status documents (open, as `/roster/v1/status` is everywhere) and
//! which gRPC connections they hold (signed with the cluster secret, since
//! connection ids carry client addresses).
//!
//! Every question has a short timeout of its own and all peers are asked
//! at once, so one slow or dead member delays a console page by at most
//! [`PEER_TIMEOUT`] and never fails it: its answer is reported missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::state::NodeState;

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
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: Result<Json<ConnectionQuestion>, JsonRejection>,
) -> Result<Json<ConnectionAnswer>> {
    let auth = state
        .security
        .auth()
        .ok_or_else(|| Error::Forbidden("peer questions need a cluster secret on this member".into()))?;
    let signer = auth.verify(&headers, "POST", CONNECTIONS_PATH).map_err(|failure| {
        state.metrics.cluster.peer_auth_failure(failure.label());
        Error::Forbidden(format!("not a member's signed request: {}", failure.message()))
    })?;
    if state.membership.member(&signer).is_none() {
        return Err(Error::Forbidden(format!("{signer} is not a member")));
    }
    let Json(question) = body.map_err(|e| Error::invalid(format!("invalid connection question: {}", e.body_text())))?;
    if question.ids.len() > MAX_IDS {
        return Err(Error::invalid(format!("at most {MAX_IDS} ids per question")));
    }
    let connected = question.ids.into_iter().filter(|id| state.connections.get(id).is_some()).collect();
    Ok(Json(ConnectionAnswer { connected }))
}

/// The URL of `path` on `member`, in the scheme the client ports speak.
fn url(state: &NodeState, member: &str, path: &str) -> String {
    format!("{}://{member}{path}", state.security.http_scheme())
}

/// `member`'s status document, or why it could not be read.
pub async fn status(state: &NodeState, member: &str) -> std::result::Result<Value, String> {
    let answer = state
        .http_client
        .get(url(state, member, "/roster/v1/status"))
        .timeout(PEER_TIMEOUT)
        .send()
        .await
        .map_err(|e| if e.is_timeout() { format!("no answer within {PEER_TIMEOUT:?}") } else { e.to_string() })?;
    if !answer.status().is_success() {
        return Err(format!("answered {}", answer.status()));
    }
    answer.json().await.map_err(|e| format!("unreadable status: {e}"))
}

/// Asks every peer which of `ids` it holds as connections: connection id →
/// member. Peers that do not answer are left out.
pub async fn connection_holders(state: &NodeState, ids: &[String]) -> HashMap<String, String> {
    let Some(auth) = state.security.auth() else {
        return HashMap::new();
    };
    if ids.is_empty() {
        return HashMap::new();
    }
    let asks = state.membership.peers().into_iter().map(|peer| async move {
        let mut headers = http::HeaderMap::new();
        auth.sign(&mut headers, "POST", CONNECTIONS_PATH);
        let sent = state
            .http_client
            .post(url(state, &peer, CONNECTIONS_PATH))
            .headers(headers)
            .timeout(PEER_TIMEOUT)
            .json(&ConnectionQuestion { ids: ids.to_vec() })
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
