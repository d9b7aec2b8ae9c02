//! The `raft` section of `/roster/v1/status` (the status document in
//! `docs/ARCHITECTURE.md`), read from Raft's
//! metrics. Members are named by address, as everywhere in the status
//! document; indexes are 0 before the first entry.

use openraft::ServerState;
use serde::Serialize;

use super::types::RaftMetrics;

/// The `raft` section of the status document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RaftStatus {
    /// This member's Raft id, as a string (JSON numbers lose precision past 2^53).
    pub id: String,
    /// `Leader`, `Follower`, `Candidate`, `Learner` (not a voter, or no group yet) or `Shutdown`.
    pub role: &'static str,
    /// Current term.
    pub term: u64,
    /// The leader's member address, when one is known.
    pub leader: Option<String>,
    /// Voters' addresses (of the newest config while a change is in flight), sorted.
    pub voters: Vec<String>,
    /// Learners' addresses, sorted.
    pub learners: Vec<String>,
    /// Index of the last entry in the local log.
    pub last_log_index: u64,
    /// Index of the last entry known committed.
    pub committed_index: u64,
    /// Index of the last entry applied to the state machine.
    pub applied_index: u64,
    /// Index covered by the local snapshot.
    pub snapshot_index: u64,
    /// Index up to which the log was compacted away.
    pub purged_index: u64,
}

/// The status name of a server state.
pub fn role(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

impl RaftStatus {
    /// Builds the section from Raft's metrics and the committed index.
    pub fn from_metrics(m: &RaftMetrics, committed: Option<u64>) -> RaftStatus {
        let membership = m.membership_config.membership();
        let address = |id: &u64| membership.get_node(id).map(|n| n.addr.clone()).unwrap_or_else(|| format!("#{id}"));
        let mut voters: Vec<String> =
            membership.get_joint_config().last().map(|c| c.iter().map(address).collect()).unwrap_or_default();
        voters.sort();
        let mut learners: Vec<String> = membership.learner_ids().map(|id| address(&id)).collect();
        learners.sort();
        RaftStatus {
            id: m.id.to_string(),
            role: role(m.state),
            term: m.current_term,
            leader: m.current_leader.as_ref().map(address),
            voters,
            learners,
            last_log_index: m.last_log_index.unwrap_or(0),
            committed_index: committed.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            purged_index: m.purged.map_or(0, |l| l.index),
        }
    }
}
