//! Prometheus metrics of Raft: writes and forwards by outcome, membership
//! changes, health verdicts, and gauges following Raft's own metrics (term,
//! leadership, indexes, group size).
//!
//! Like [`crate::cluster::ClusterMetrics`], they are registered on the
//! node's registry ([`RaftMetricSet::register`]), as `roster_raft_*`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::status::RaftStatus;

/// Labels of an outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The outcome.
    pub result: String,
}

/// Labels of a membership change.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    /// `finish_joint`, `remove_learner`, `remove_voter`, `add_learner` or `promote`.
    pub action: String,
    /// `ok`, `failed` or `timeout`.
    pub result: String,
}

/// Raft metrics. Share one per node.
#[derive(Debug, Default)]
pub struct RaftMetricSet {
    /// Client writes by outcome: `ok`, `refused` (a validation error when
    /// applied), `unavailable` (no leader in time, outcome unknown, stopped).
    pub writes: Family<OutcomeLabels, Counter>,
    /// Writes forwarded to the leader by outcome: `ok`, `not_leader`,
    /// `unreachable`, `failed`.
    pub forwards: Family<OutcomeLabels, Counter>,
    /// Membership changes attempted by the leader.
    pub membership_changes: Family<ChangeLabels, Counter>,
    /// Health changes of persistent instances committed, by new health (`healthy`, `unhealthy`).
    pub health_verdicts: Family<OutcomeLabels, Counter>,
    /// Current term.
    pub term: Gauge,
    /// 1 while this member leads.
    pub leader: Gauge,
    /// Last log index.
    pub last_log_index: Gauge,
    /// Last committed index.
    pub committed_index: Gauge,
    /// Last applied index.
    pub applied_index: Gauge,
    /// Voters in the group.
    pub voters: Gauge,
    /// Learners in the group.
    pub learners: Gauge,
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl RaftMetricSet {
    /// Fresh, unregistered metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("raft_writes", "Persistent writes by outcome", self.writes.clone());
        registry.register("raft_forwards", "Writes forwarded to the Raft leader by outcome", self.forwards.clone());
        registry.register(
            "raft_membership_changes",
            "Raft membership changes by action and outcome",
            self.membership_changes.clone(),
        );
        registry.register(
            "raft_health_verdicts",
            "Health changes of persistent instances committed",
            self.health_verdicts.clone(),
        );
        registry.register("raft_term", "Current Raft term", self.term.clone());
        registry.register("raft_leader", "1 while this member is the Raft leader", self.leader.clone());
        registry.register("raft_last_log_index", "Last Raft log index", self.last_log_index.clone());
        registry.register("raft_committed_index", "Last committed Raft log index", self.committed_index.clone());
        registry.register("raft_applied_index", "Last applied Raft log index", self.applied_index.clone());
        registry.register("raft_voters", "Voters in the Raft group", self.voters.clone());
        registry.register("raft_learners", "Learners in the Raft group", self.learners.clone());
    }

    /// Counts one outcome in `family`.
    pub fn count(family: &Family<OutcomeLabels, Counter>, result: &str) {
        family.get_or_create(&OutcomeLabels { result: result.to_owned() }).inc();
    }

    /// Counts one membership change.
    pub fn membership_change(&self, action: &str, result: &str) {
        self.membership_changes.get_or_create(&ChangeLabels { action: action.into(), result: result.into() }).inc();
    }

    /// Sets the gauges from the status.
    pub fn observe(&self, s: &RaftStatus) {
        self.term.set(gauge(s.term));
        self.leader.set(i64::from(s.role == "Leader"));
        self.last_log_index.set(gauge(s.last_log_index));
        self.committed_index.set(gauge(s.committed_index));
        self.applied_index.set(gauge(s.applied_index));
        self.voters.set(gauge(s.voters.len() as u64));
        self.learners.set(gauge(s.learners.len() as u64));
    }
}
