//! Prometheus metrics of membership: lookup refreshes, member reports and
//! member states.
//!
//! They live here rather than in [`crate::metrics`] so the cluster module can
//! be wired in without touching the node's metric set; call
//! [`ClusterMetrics::register`] on the node's registry to expose them
//! (as `roster_member_*` when the registry has the `roster` prefix).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::member::MemberState;

/// Labels of an outcome (`ok`, `failed`, `timeout`, ...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// The outcome.
    pub result: String,
}

/// Labels of a member state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `UP`, `SUSPICIOUS` or `DOWN`.
    pub state: String,
}

/// Labels of a refused peer request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why it was refused (`missing`, `malformed`, `stale`, `bad_signature`,
    /// `no_secret`, `wrong_sender`).
    pub reason: String,
}

/// Membership metrics. Cheap to clone handles; share one per node.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Lookup reads by outcome (`ok`, `failed`).
    pub lookup_refreshes: Family<ResultLabels, Counter>,
    /// Reports sent to other members by outcome (`ok`, `failed`, `timeout`,
    /// `unresolved`, `wrong_member`).
    pub reports: Family<ResultLabels, Counter>,
    /// State changes of other members, by the state entered.
    pub state_changes: Family<StateLabels, Counter>,
    /// Members in the list, by state (the local member counts as `UP`).
    pub members: Family<StateLabels, Gauge>,
    /// Peer requests (peer port and forwarded HTTP writes) refused by the
    /// peer identity check, by reason ([`crate::security`]).
    pub peer_auth_failures: Family<ReasonLabels, Counter>,
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
        registry.register(
            "peer_auth_failures",
            "Peer requests refused by the peer identity check, by reason",
            self.peer_auth_failures.clone(),
        );
    }

    /// Counts one peer request refused for `reason`.
    pub fn peer_auth_failure(&self, reason: &str) {
        self.peer_auth_failures.get_or_create(&ReasonLabels { reason: reason.into() }).inc();
    }

    /// Counts one lookup read.
    pub fn lookup_refresh(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.lookup_refreshes.get_or_create(&ResultLabels { result: result.into() }).inc();
    }

    /// Counts one report outcome.
    pub fn report(&self, result: &str) {
        self.reports.get_or_create(&ResultLabels { result: result.into() }).inc();
    }

    /// Counts a member entering `state`.
    pub fn state_change(&self, state: MemberState) {
        self.state_changes.get_or_create(&StateLabels { state: state.as_str().into() }).inc();
    }

    /// Sets the member gauges from per-state counts.
    pub fn set_members(&self, counts: [(MemberState, usize); 3]) {
        for (state, n) in counts {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.members.get_or_create(&StateLabels { state: state.as_str().into() }).set(n);
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
        metrics.report("ok");
        metrics.lookup_refresh(false);
        metrics.peer_auth_failure("bad_signature");
        metrics.state_change(MemberState::Down);
        metrics.set_members([(MemberState::Up, 2), (MemberState::Suspicious, 0), (MemberState::Down, 1)]);
        let mut out = String::new();
        assert!(encode(&mut out, &registry).is_ok());
        assert!(out.contains("roster_member_reports_total{result=\"ok\"} 1"), "{out}");
        assert!(out.contains("roster_member_lookup_refreshes_total{result=\"failed\"} 1"), "{out}");
        assert!(out.contains("roster_member_state_changes_total{state=\"DOWN\"} 1"), "{out}");
        assert!(out.contains("roster_members{state=\"UP\"} 2"), "{out}");
        assert!(out.contains("roster_peer_auth_failures_total{reason=\"bad_signature\"} 1"), "{out}");
    }
}
