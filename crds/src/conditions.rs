//! Condition types of a RegistryCluster and the one helper that writes them.
//!
//! Kubernetes has a fixed contract for conditions (`metav1.Condition`): one
//! entry per `type`, and `lastTransitionTime` moves only when `status`
//! changes. kube has no writer for that contract, so [`set_condition`] mirrors
//! apimachinery's `meta.SetStatusCondition` as a pure function the operator
//! and its tests can call without a cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The Raft group has a leader and a quorum, so persistent writes succeed.
/// `kubectl wait --for=condition=Available` waits on this one.
pub const CONDITION_AVAILABLE: &str = "Available";
/// The operator is moving the cluster toward the spec: scaling, promoting a
/// learner, rolling pods.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Some members are unhealthy or the membership disagrees with the spec,
/// while the cluster may still be available.
pub const CONDITION_DEGRADED: &str = "Degraded";
/// Every member has loaded its Distro snapshot.
pub const CONDITION_SNAPSHOT_BOOTSTRAPPED: &str = "SnapshotBootstrapped";
/// A majority of the Raft voters is reachable.
pub const CONDITION_RAFT_QUORUM: &str = "RaftQuorum";
/// The Raft voters, the server list and the pods name the same members.
pub const CONDITION_MEMBERSHIP_CONVERGED: &str = "MembershipConverged";

/// Every condition type the operator maintains, in the order it reports them.
pub const CONDITION_TYPES: [&str; 6] = [
    CONDITION_AVAILABLE,
    CONDITION_PROGRESSING,
    CONDITION_DEGRADED,
    CONDITION_SNAPSHOT_BOOTSTRAPPED,
    CONDITION_RAFT_QUORUM,
    CONDITION_MEMBERSHIP_CONVERGED,
];

/// Condition status when the condition holds.
pub const STATUS_TRUE: &str = "True";
/// Condition status when the condition does not hold.
pub const STATUS_FALSE: &str = "False";
/// Condition status when the operator cannot tell.
pub const STATUS_UNKNOWN: &str = "Unknown";

/// Inserts or updates `new` in `conditions`, keyed by `type`.
///
/// As `meta.SetStatusCondition` does: a new type is appended with
/// `lastTransitionTime = now`; an existing one takes `reason`, `message` and
/// `observedGeneration` from `new`, and `lastTransitionTime` becomes `now` only
/// if `status` changed, otherwise the old time is kept. The
/// `lastTransitionTime` of `new` itself is ignored. Returns whether anything
/// changed, so a caller can skip a status write that would change nothing.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition, now: Time) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        None => {
            conditions.push(Condition { last_transition_time: now, ..new });
            true
        }
        Some(old) => {
            let mut changed = false;
            if old.status != new.status {
                old.status = new.status;
                old.last_transition_time = now;
                changed = true;
            }
            if old.reason != new.reason {
                old.reason = new.reason;
                changed = true;
            }
            if old.message != new.message {
                old.message = new.message;
                changed = true;
            }
            if old.observed_generation != new.observed_generation {
                old.observed_generation = new.observed_generation;
                changed = true;
            }
            changed
        }
    }
}

/// The condition of type `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is present with status `True`.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == STATUS_TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).expect("valid timestamp"))
    }

    fn cond(type_: &str, status: &str, reason: &str, generation: i64) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: format!("{reason} message"),
            observed_generation: Some(generation),
            // Deliberately odd: set_condition must ignore the caller's time.
            last_transition_time: at(1),
        }
    }

    #[test]
    fn new_condition_is_appended_with_now() {
        let mut conds = Vec::new();
        let changed = set_condition(&mut conds, cond(CONDITION_AVAILABLE, STATUS_FALSE, "NoLeader", 1), at(100));
        assert!(changed);
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, at(100));
        assert_eq!(conds[0].reason, "NoLeader");
    }

    #[test]
    fn unchanged_status_keeps_last_transition_time() {
        let mut conds = Vec::new();
        set_condition(&mut conds, cond(CONDITION_AVAILABLE, STATUS_TRUE, "QuorumHealthy", 1), at(100));
        let changed = set_condition(&mut conds, cond(CONDITION_AVAILABLE, STATUS_TRUE, "QuorumHealthy", 2), at(200));
        assert!(changed, "observedGeneration moved, so the condition changed");
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, at(100));
        assert_eq!(conds[0].observed_generation, Some(2));
    }

    #[test]
    fn changed_reason_alone_keeps_last_transition_time() {
        let mut conds = Vec::new();
        set_condition(&mut conds, cond(CONDITION_PROGRESSING, STATUS_TRUE, "AddingLearner", 3), at(100));
        let changed =
            set_condition(&mut conds, cond(CONDITION_PROGRESSING, STATUS_TRUE, "PromotingLearner", 3), at(150));
        assert!(changed);
        assert_eq!(conds[0].reason, "PromotingLearner");
        assert_eq!(conds[0].message, "PromotingLearner message");
        assert_eq!(conds[0].last_transition_time, at(100));
    }

    #[test]
    fn changed_status_moves_last_transition_time() {
        let mut conds = Vec::new();
        set_condition(&mut conds, cond(CONDITION_AVAILABLE, STATUS_FALSE, "NoLeader", 1), at(100));
        let changed = set_condition(&mut conds, cond(CONDITION_AVAILABLE, STATUS_TRUE, "QuorumHealthy", 1), at(300));
        assert!(changed);
        assert_eq!(conds[0].status, STATUS_TRUE);
        assert_eq!(conds[0].last_transition_time, at(300));
    }

    #[test]
    fn identical_condition_reports_no_change() {
        let mut conds = Vec::new();
        set_condition(&mut conds, cond(CONDITION_DEGRADED, STATUS_FALSE, "Healthy", 4), at(100));
        let before = conds.clone();
        let changed = set_condition(&mut conds, cond(CONDITION_DEGRADED, STATUS_FALSE, "Healthy", 4), at(500));
        assert!(!changed);
        assert_eq!(conds, before);
    }

    #[test]
    fn other_types_are_left_alone() {
        let mut conds = Vec::new();
        set_condition(&mut conds, cond(CONDITION_AVAILABLE, STATUS_TRUE, "QuorumHealthy", 1), at(100));
        set_condition(&mut conds, cond(CONDITION_RAFT_QUORUM, STATUS_TRUE, "QuorumHealthy", 1), at(110));
        set_condition(&mut conds, cond(CONDITION_RAFT_QUORUM, STATUS_FALSE, "QuorumLost", 1), at(120));
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0].status, STATUS_TRUE);
        assert_eq!(conds[0].last_transition_time, at(100));
        assert_eq!(conds[1].last_transition_time, at(120));
    }

    #[test]
    fn find_and_is_true() {
        let mut conds = Vec::new();
        assert!(!is_condition_true(&conds, CONDITION_AVAILABLE));
        set_condition(&mut conds, cond(CONDITION_AVAILABLE, STATUS_UNKNOWN, "Probing", 1), at(100));
        assert!(!is_condition_true(&conds, CONDITION_AVAILABLE));
        set_condition(&mut conds, cond(CONDITION_AVAILABLE, STATUS_TRUE, "QuorumHealthy", 1), at(100));
        assert!(is_condition_true(&conds, CONDITION_AVAILABLE));
        assert!(find_condition(&conds, CONDITION_DEGRADED).is_none());
    }

    #[test]
    fn condition_types_are_distinct_and_valid_names() {
        let mut seen = std::collections::BTreeSet::new();
        for t in CONDITION_TYPES {
            assert!(seen.insert(t), "duplicate condition type {t}");
            assert!(t.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
            assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }
}
