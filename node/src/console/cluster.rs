//! `GET /roster/v1/console/cluster`: every member's status document in one
//! answer, read by the member serving the console from its peers (it knows
//! the member list), so the browser talks to one member only.
//!
//! The view is shared for [`FRESH_FOR`]: every console polling this member
//! within that time gets the same answer, and only one round of peer
//! questions runs at a time (later callers wait for it). The route is
//! outside the per-IP rate limit, and this keeps what it can cost bounded
//! however often it is asked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::peers;
use crate::state::NodeState;

/// How long one view is served before the peers are asked again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// One member in the view.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// `host:mainPort`.
    pub address: String,
    /// Its state as the serving member sees it (`UP`, `SUSPICIOUS`, `DOWN`).
    pub state: &'static str,
    /// Whether this is the member serving the console.
    pub serving: bool,
    /// Its own `/roster/v1/status` document, when it answered.
    pub status: Option<Value>,
    /// Why its status is missing.
    pub error: Option<String>,
}

/// The whole cluster as one member sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The member that built the view.
    pub member: String,
    /// The Raft leader (the serving member's view, else the first member
    /// that names one).
    pub leader: Option<String>,
    /// Every listed member, sorted by address.
    pub members: Vec<MemberView>,
}

/// The last view built and when.
#[derive(Debug, Default)]
pub struct ClusterCache {
    last: Mutex<Option<(Instant, Arc<ClusterView>)>>,
}

impl ClusterCache {
    /// The current view: the cached one while fresh, else a new one.
    pub async fn view(&self, state: &NodeState) -> Arc<ClusterView> {
        let mut last = self.last.lock().await;
        if let Some((at, view)) = last.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return view.clone();
            }
        }
        let view = Arc::new(build(state).await);
        *last = Some((Instant::now(), view.clone()));
        view
    }
}

/// Asks every peer for its status (all at once) and adds this member's own.
async fn build(state: &NodeState) -> ClusterView {
    let mut members = state.membership.members();
    members.sort_by(|a, b| a.address.cmp(&b.address));
    let local = serde_json::to_value(crate::status::status(state)).ok();
    let reads = members.iter().map(|m| {
        let local = local.clone();
        async move {
            let serving = m.address == state.member;
            let (status, error) = if serving {
                (local, None)
            } else {
                match peers::status(state, &m.address).await {
                    Ok(s) => (Some(s), None),
                    Err(e) => (None, Some(e)),
                }
            };
            MemberView { address: m.address.clone(), state: m.state.as_str(), serving, status, error }
        }
    });
    let members: Vec<MemberView> = futures::future::join_all(reads).await;
    let named = |m: &MemberView| m.status.as_ref()?.get("raft")?.get("leader")?.as_str().map(str::to_owned);
    let leader = members.iter().find(|m| m.serving).and_then(named).or_else(|| members.iter().find_map(named));
    ClusterView { member: state.member.clone(), leader, members }
}
