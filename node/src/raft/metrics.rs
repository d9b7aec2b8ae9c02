//! Prometheus metrics of Raft: writes and forwards by outcome, membership
//! changes, health verdicts, overrides cleared, and gauges following Raft's own metrics (term,
//! leadership, indexes, group size).
//!
//! They are registered on the node's registry ([`RaftMetricSet::register`]),
//! as `roster_raft_*`; every label is a closed set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::summary::RaftStatus;

label_set! {
    /// How a client write ended.
    pub enum WriteOutcome {
        /// Committed and applied.
        Ok => "ok",
        /// A validation error when applied (nothing changed).
        Refused => "refused",
        /// No leader in time, outcome unknown, or Raft stopped.
        Unavailable => "unavailable",
    }
}

label_set! {
    /// How a write forwarded to the leader ended.
    pub enum ForwardOutcome {
        /// Applied by the leader.
        Ok => "ok",
        /// The receiver no longer leads.
        NotLeader => "not_leader",
        /// The leader could not be reached.
        Unreachable => "unreachable",
        /// Anything else.
        Failed => "failed",
    }
}

label_set! {
    /// A membership change the leader attempts.
    pub enum ChangeAction {
        /// Leave a joint configuration.
        FinishJoint => "finish_joint",
        /// Remove a learner that left the list.
        RemoveLearner => "remove_learner",
        /// Remove a voter that left the list.
        RemoveVoter => "remove_voter",
        /// Add a new member as learner.
        AddLearner => "add_learner",
        /// Promote a caught-up learner.
        Promote => "promote",
    }
}

label_set! {
    /// How a membership change ended.
    pub enum ChangeOutcome {
        /// Committed.
        Ok => "ok",
        /// Refused by Raft.
        Failed => "failed",
        /// Not committed in time.
        Timeout => "timeout",
    }
}

label_set! {
    /// The health committed for a persistent instance.
    pub enum HealthVerdict {
        /// Healthy again.
        Healthy => "healthy",
        /// Failed its checks.
        Unhealthy => "unhealthy",
    }
}

/// Labels of a write outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// The outcome.
    pub result: WriteOutcome,
}

/// Labels of a forward outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForwardLabels {
    /// The outcome.
    pub result: ForwardOutcome,
}

/// Labels of a health verdict.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// The health committed.
    pub result: HealthVerdict,
}

/// Labels of a membership change.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    /// What was attempted.
    pub action: ChangeAction,
    /// How it ended.
    pub result: ChangeOutcome,
}

/// Raft metrics. Share one per node.
#[derive(Debug, Default)]
pub struct RaftMetricSet {
    /// Client writes by outcome.
    pub writes: Family<WriteLabels, Counter>,
    /// Writes forwarded to the leader by outcome.
    pub forwards: Family<ForwardLabels, Counter>,
    /// Membership changes attempted by the leader.
    pub membership_changes: Family<ChangeLabels, Counter>,
    /// Health changes of persistent instances committed, by new health.
    pub health_verdicts: Family<VerdictLabels, Counter>,
    /// Overrides of gone instances cleared by the leader.
    pub overrides_cleared: Counter,
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
        registry.register(
            "raft_overrides_cleared",
            "Overrides of instances gone for the override expiry, cleared by the leader",
            self.overrides_cleared.clone(),
        );
        registry.register("raft_term", "Current Raft term", self.term.clone());
        registry.register("raft_leader", "1 while this member is the Raft leader", self.leader.clone());
        registry.register("raft_last_log_index", "Last Raft log index", self.last_log_index.clone());
        registry.register("raft_committed_index", "Last committed Raft log index", self.committed_index.clone());
        registry.register("raft_applied_index", "Last applied Raft log index", self.applied_index.clone());
        registry.register("raft_voters", "Voters in the Raft group", self.voters.clone());
        registry.register("raft_learners", "Learners in the Raft group", self.learners.clone());
    }

    /// Counts one client write.
    pub fn write(&self, result: WriteOutcome) {
        self.writes.get_or_create(&WriteLabels { result }).inc();
    }

    /// Counts one forwarded write.
    pub fn forward(&self, result: ForwardOutcome) {
        self.forwards.get_or_create(&ForwardLabels { result }).inc();
    }

    /// Counts one committed health change.
    pub fn health_verdict(&self, healthy: bool) {
        let result = if healthy { HealthVerdict::Healthy } else { HealthVerdict::Unhealthy };
        self.health_verdicts.get_or_create(&VerdictLabels { result }).inc();
    }

    /// Counts one membership change.
    pub fn membership_change(&self, action: ChangeAction, result: ChangeOutcome) {
        self.membership_changes.get_or_create(&ChangeLabels { action, result }).inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_their_names() {
        let metrics = RaftMetricSet::new();
        let mut registry = Registry::with_prefix("roster");
        metrics.register(&mut registry);
        metrics.write(WriteOutcome::Refused);
        metrics.forward(ForwardOutcome::NotLeader);
        metrics.health_verdict(false);
        metrics.membership_change(ChangeAction::AddLearner, ChangeOutcome::Timeout);
        let mut out = String::new();
        assert!(prometheus_client::encoding::text::encode(&mut out, &registry).is_ok());
        for line in [
            "roster_raft_writes_total{result=\"refused\"} 1",
            "roster_raft_forwards_total{result=\"not_leader\"} 1",
            "roster_raft_health_verdicts_total{result=\"unhealthy\"} 1",
            "roster_raft_membership_changes_total{action=\"add_learner\",result=\"timeout\"} 1",
        ] {
            assert!(out.contains(line), "{line} in {out}");
        }
    }
}
