//! Prometheus metrics of membership: lookup refreshes, member reports and
//! member states, registered on the node's registry by
//! [`ClusterMetrics::register`] (as `roster_member_*` and `roster_members`
//! when the registry has the `roster` prefix).
//!
//! Every label is a closed set (an enum): nothing a peer or an address
//! server sends becomes a label value.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::member::MemberState;

label_set! {
    /// How one read of the member-list source ended.
    pub enum LookupOutcome {
        /// The source was read (whether or not the list changed).
        Ok => "ok",
        /// Unreadable, unreachable, non-200 or no valid member.
        Failed => "failed",
    }
}

label_set! {
    /// How one member report ended.
    pub enum ReportOutcome {
        /// Answered by the member asked.
        Ok => "ok",
        /// The call failed (refused, reset, error status).
        Failed => "failed",
        /// No answer in time.
        Timeout => "timeout",
        /// The member has no peer endpoint (or is cut by fault injection).
        Unresolved => "unresolved",
        /// Another member answered at its endpoint.
        WrongMember => "wrong_member",
    }
}

impl EncodeLabelValue for MemberState {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Labels of a lookup read.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// The outcome.
    pub result: LookupOutcome,
}

/// Labels of a member report.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReportLabels {
    /// The outcome.
    pub result: ReportOutcome,
}

/// Labels of a member state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `UP`, `SUSPICIOUS` or `DOWN`.
    pub state: MemberState,
}

/// Membership metrics. Share one per node.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Lookup reads by outcome.
    pub lookup_refreshes: Family<LookupLabels, Counter>,
    /// Reports sent to other members by outcome.
    pub reports: Family<ReportLabels, Counter>,
    /// State changes of other members, by the state entered.
    pub state_changes: Family<StateLabels, Counter>,
    /// Members in the list, by state (the local member counts as `UP`).
    pub members: Family<StateLabels, Gauge>,
}

impl ClusterMetrics {
    /// Fresh, unregistered metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the metrics to `registry` as `member_lookup_refreshes`,
    /// `member_reports`, `member_state_changes` and `members`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "member_lookup_refreshes",
            "Reads of the member list source by outcome",
            self.lookup_refreshes.clone(),
        );
        registry.register("member_reports", "Member reports sent to other members by outcome", self.reports.clone());
        registry.register(
            "member_state_changes",
            "Member state changes by the state entered",
            self.state_changes.clone(),
        );
        registry.register("members", "Members in the list by state", self.members.clone());
    }

    /// Counts one lookup read.
    pub fn lookup_refresh(&self, ok: bool) {
        let result = if ok { LookupOutcome::Ok } else { LookupOutcome::Failed };
        self.lookup_refreshes.get_or_create(&LookupLabels { result }).inc();
    }

    /// Counts one report outcome.
    pub fn report(&self, result: ReportOutcome) {
        self.reports.get_or_create(&ReportLabels { result }).inc();
    }

    /// Counts a member entering `state`.
    pub fn state_change(&self, state: MemberState) {
        self.state_changes.get_or_create(&StateLabels { state }).inc();
    }

    /// How many times a member entered `state`.
    pub fn state_change_count(&self, state: MemberState) -> u64 {
        self.state_changes.get_or_create(&StateLabels { state }).get()
    }

    /// Sets the member gauges from per-state counts.
    pub fn set_members(&self, counts: [(MemberState, usize); 3]) {
        for (state, n) in counts {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.members.get_or_create(&StateLabels { state }).set(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn registered_metrics_render() {
        let metrics = ClusterMetrics::new();
        let mut registry = Registry::with_prefix("roster");
        metrics.register(&mut registry);
        metrics.report(ReportOutcome::Ok);
        metrics.report(ReportOutcome::WrongMember);
        metrics.lookup_refresh(false);
        metrics.state_change(MemberState::Down);
        metrics.set_members([(MemberState::Up, 2), (MemberState::Suspicious, 0), (MemberState::Down, 1)]);
        let mut out = String::new();
        assert!(encode(&mut out, &registry).is_ok());
        assert!(out.contains("roster_member_reports_total{result=\"ok\"} 1"), "{out}");
        assert!(out.contains("roster_member_reports_total{result=\"wrong_member\"} 1"), "{out}");
        assert!(out.contains("roster_member_lookup_refreshes_total{result=\"failed\"} 1"), "{out}");
        assert!(out.contains("roster_member_state_changes_total{state=\"DOWN\"} 1"), "{out}");
        assert!(out.contains("roster_members{state=\"UP\"} 2"), "{out}");
        assert_eq!(metrics.state_change_count(MemberState::Down), 1);
    }

    #[test]
    fn outcome_labels_are_a_closed_set() {
        let labels: Vec<&str> = ReportOutcome::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels, ["ok", "failed", "timeout", "unresolved", "wrong_member"]);
        assert_eq!((LookupOutcome::Ok.label(), LookupOutcome::Failed.label()), ("ok", "failed"));
    }
}
