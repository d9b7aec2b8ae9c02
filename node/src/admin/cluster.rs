//! `GET /roster/v1/cluster`: every member's status document in one answer,
//! read by the member asked from its peers (it knows the member list), so
//! that the console and `roster status` talk to one member only.
//!
//! The view is shared for [`FRESH_FOR`]: every caller within that time gets
//! the same answer, and one round of peer questions runs at a time (later
//! callers wait for it and get its result). The admin plane is outside the
//! client limits, and this keeps what the route can cost bounded however
//! often it is asked: at most one status read per peer per [`FRESH_FOR`],
//! each bounded by [`PEER_TIMEOUT`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{document, AdminState};

/// How long one view is served before the peers are asked again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// How long the view waits for one peer's status: one slow or dead member
/// delays the view by at most this, and never fails it.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(1);

/// One member in the view.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// `host:mainPort`.
    pub address: String,
    /// Its state as the answering member sees it (`UP`, `SUSPICIOUS`, `DOWN`).
    pub state: &'static str,
    /// Whether this is the member that answered.
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
    /// The Raft leader: the answering member's view, else the first member
    /// that names one.
    pub leader: Option<String>,
    /// Every listed member, sorted by address.
    pub members: Vec<MemberView>,
}

/// Why a peer's status document is missing from the view.
#[derive(Debug, thiserror::Error)]
pub enum StatusUnread {
    /// No answer within [`PEER_TIMEOUT`].
    #[error("no answer within {PEER_TIMEOUT:?}")]
    Timeout,
    /// The request failed (refused connection, TLS, reset).
    #[error("{0}")]
    Unreachable(reqwest::Error),
    /// An answer other than 200.
    #[error("answered {0}")]
    Refused(reqwest::StatusCode),
    /// A 200 whose body is not JSON.
    #[error("unreadable status: {0}")]
    Unreadable(reqwest::Error),
}

/// The last view built, and when.
#[derive(Debug, Default)]
pub struct ClusterCache {
    last: Mutex<Option<(Instant, Arc<ClusterView>)>>,
}

impl ClusterCache {
    /// The cached view while it is fresh, else the one `build` makes (which
    /// is then cached). Callers that arrive while a build runs wait for it.
    pub async fn view<F>(&self, build: impl FnOnce() -> F) -> Arc<ClusterView>
    where
        F: Future<Output = ClusterView>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, view)) = last.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return view.clone();
            }
        }
        let view = Arc::new(build().await);
        *last = Some((Instant::now(), view.clone()));
        view
    }
}

/// Asks every peer for its status (all at once) and adds this member's own.
pub async fn build(state: &AdminState) -> ClusterView {
    let node = &state.node;
    let mut members = node.membership.members();
    members.sort_by(|a, b| a.address.cmp(&b.address));
    let local = serde_json::to_value(document::status(state)).ok();
    let reads = members.iter().map(|m| {
        let local = local.clone();
        async move {
            let serving = m.address == node.member;
            let (status, error) = if serving {
                (local, None)
            } else {
                match peer_status(state, &m.address).await {
                    Ok(s) => (Some(s), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            };
            MemberView { address: m.address.clone(), state: m.state.as_str(), serving, status, error }
        }
    });
    let members: Vec<MemberView> = futures::future::join_all(reads).await;
    ClusterView { member: node.member.clone(), leader: leader(&members), members }
}

/// The leader the answering member names, else the first one any member names.
fn leader(members: &[MemberView]) -> Option<String> {
    let named = |m: &MemberView| m.status.as_ref()?.get("raft")?.get("leader")?.as_str().map(str::to_owned);
    members.iter().find(|m| m.serving).and_then(named).or_else(|| members.iter().find_map(named))
}

/// `member`'s status document (open on every member, like this route).
async fn peer_status(state: &AdminState, member: &str) -> Result<Value, StatusUnread> {
    let url = format!("{}://{member}{}", state.node.http_scheme, super::STATUS);
    let sent = state.node.http_client.get(url).timeout(PEER_TIMEOUT).send().await;
    let answer = sent.map_err(|e| if e.is_timeout() { StatusUnread::Timeout } else { StatusUnread::Unreachable(e) })?;
    if !answer.status().is_success() {
        return Err(StatusUnread::Refused(answer.status()));
    }
    answer.json().await.map_err(|e| if e.is_timeout() { StatusUnread::Timeout } else { StatusUnread::Unreadable(e) })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn member(address: &str, serving: bool, leader: Option<&str>) -> MemberView {
        let status = leader.map(|l| serde_json::json!({"raft": {"leader": l}}));
        MemberView { address: address.into(), state: "UP", serving, status, error: None }
    }

    fn view(n: usize) -> ClusterView {
        ClusterView { member: format!("build-{n}"), leader: None, members: Vec::new() }
    }

    #[tokio::test(start_paused = true)]
    async fn one_view_serves_every_caller_for_a_second() {
        let cache = ClusterCache::default();
        let builds = AtomicUsize::new(0);
        let build = || async {
            let n = builds.fetch_add(1, Ordering::SeqCst);
            // A slow round of peer questions: callers meanwhile wait for it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            view(n)
        };
        let (a, b, c) = tokio::join!(cache.view(build), cache.view(build), cache.view(build));
        assert_eq!((a.member.as_str(), b.member.as_str(), c.member.as_str()), ("build-0", "build-0", "build-0"));
        tokio::time::advance(FRESH_FOR - Duration::from_millis(1)).await;
        assert_eq!(cache.view(build).await.member, "build-0", "still fresh");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.view(build).await.member, "build-1", "stale after FRESH_FOR");
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_leader_is_the_answering_members_view_first() {
        let members = [member("a", false, Some("a")), member("b", true, Some("b")), member("c", false, None)];
        assert_eq!(leader(&members).as_deref(), Some("b"));
        let members = [member("a", false, None), member("b", true, None), member("c", false, Some("c"))];
        assert_eq!(leader(&members).as_deref(), Some("c"), "else the first member that names one");
        assert_eq!(leader(&[member("a", true, None)]), None);
    }
}
