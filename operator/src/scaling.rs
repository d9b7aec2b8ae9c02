//! The scale planner: from what the operator observes to the one next step
//! (README, "Run on Kubernetes", "Scale"), without any I/O.
//!
//! The published server list always names the members `0..spec.replicas`:
//! on scale-up the new members appear in it at once; on scale-down the
//! highest members leave it at once. What this module decides is the
//! StatefulSet's replica count, which may lag behind on scale-down:
//!
//! * **Scale up** (or first creation): raise the StatefulSet to
//!   `spec.replicas` right away. The new pods find themselves in the list,
//!   load the Distro snapshot and join Raft as learners, then voters; the
//!   nodes drive that, the operator only watches it in the status.
//! * **Scale down**: the departing members (`spec.replicas..current`) are
//!   already off the list, so the Raft leader removes them one change at a
//!   time. The StatefulSet is lowered only past members that no staying
//!   member's Raft membership counts any more (neither voter nor learner),
//!   highest first, so a pod is never stopped while Raft still needs its
//!   vote. A member whose status has no `raft` section (a node built
//!   without Raft) counts nothing. If no staying member answers, the planner
//!   waits: it cannot tell, and quorum is never risked on purpose.
//!
//! Because the planner is a pure function of the observation, a crash
//! between two steps is harmless: the next reconcile observes the same
//! world and repeats or continues the step.

use crate::names;
use crate::node_status::{Observation, Observations};

/// What the planner needs to know.
#[derive(Debug, Clone, Copy)]
pub struct ScaleInput<'a> {
    /// RegistryCluster name.
    pub cluster: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// `spec.replicas`: the members the list names.
    pub desired: i32,
    /// The StatefulSet's `spec.replicas`, `None` when it does not exist yet.
    pub current: Option<i32>,
    /// Statuses of the members `0..max(desired, current)`, keyed by member
    /// address; a member missing from the map counts as unreachable.
    pub observations: &'a Observations,
}

/// Why a scale-down waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// Some staying member's Raft membership still counts these departing
    /// members (highest first).
    StillCounted(Vec<String>),
    /// No staying member answered, so nobody can say whether Raft still
    /// counts the departing members.
    NoStayingMemberAnswered,
}

/// The next step for the StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleStep {
    /// No StatefulSet yet: create it with `replicas`.
    Create {
        /// Replicas to create it with.
        replicas: i32,
    },
    /// The StatefulSet already has the right size.
    Steady {
        /// Its replicas.
        replicas: i32,
    },
    /// Raise the StatefulSet.
    ScaleUp {
        /// Current replicas.
        from: i32,
        /// New replicas (`spec.replicas`).
        to: i32,
    },
    /// Lower the StatefulSet to `to`: every member at or above `to` has left
    /// Raft. `to` may still be above `spec.replicas` (partial progress).
    ScaleDown {
        /// Current replicas.
        from: i32,
        /// New replicas.
        to: i32,
    },
    /// Keep the StatefulSet at `replicas` until Raft lets members go.
    WaitForRaftRemoval {
        /// Current (unchanged) replicas.
        replicas: i32,
        /// Target of the scale-down.
        desired: i32,
        /// Why.
        reason: WaitReason,
    },
}

impl ScaleStep {
    /// The replicas to apply to the StatefulSet.
    pub fn statefulset_replicas(&self) -> i32 {
        match self {
            ScaleStep::Create { replicas } | ScaleStep::Steady { replicas } => *replicas,
            ScaleStep::ScaleUp { to, .. } | ScaleStep::ScaleDown { to, .. } => *to,
            ScaleStep::WaitForRaftRemoval { replicas, .. } => *replicas,
        }
    }

    /// Whether the step leaves work for a later reconcile.
    pub fn in_progress(&self) -> bool {
        !matches!(self, ScaleStep::Steady { .. })
    }
}

/// Decides the next step. See the module docs for the rules.
pub fn plan(input: ScaleInput<'_>) -> ScaleStep {
    let desired = input.desired.max(0);
    let current = match input.current {
        None => return ScaleStep::Create { replicas: desired },
        Some(c) => c.max(0),
    };
    if desired == current {
        return ScaleStep::Steady { replicas: current };
    }
    if desired > current {
        return ScaleStep::ScaleUp { from: current, to: desired };
    }

    // Scale down: ask the staying members whether Raft still counts the
    // departing ones.
    let staying: Vec<_> = (0..desired)
        .filter_map(|i| {
            let address = names::member_address(input.cluster, input.namespace, i);
            match input.observations.get(&address) {
                Some(Observation::Reached(status)) => Some(status),
                _ => None,
            }
        })
        .collect();
    if staying.is_empty() {
        return ScaleStep::WaitForRaftRemoval {
            replicas: current,
            desired,
            reason: WaitReason::NoStayingMemberAnswered,
        };
    }
    let counted = |member: &str| staying.iter().any(|s| s.raft.as_ref().is_some_and(|r| r.counts(member)));

    // Lower past the highest members that are gone, stopping at the first
    // one still counted.
    let mut to = current;
    while to > desired && !counted(&names::member_address(input.cluster, input.namespace, to - 1)) {
        to -= 1;
    }
    if to < current {
        return ScaleStep::ScaleDown { from: current, to };
    }
    let still: Vec<String> = (desired..current)
        .rev()
        .map(|i| names::member_address(input.cluster, input.namespace, i))
        .filter(|m| counted(m))
        .collect();
    ScaleStep::WaitForRaftRemoval { replicas: current, desired, reason: WaitReason::StillCounted(still) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_status::{NodeStatus, RaftStatus};

    fn addr(i: i32) -> String {
        names::member_address("demo", "ns", i)
    }

    /// A member that answered, with Raft voters `voters` (None: no raft section).
    fn reached(i: i32, voters: Option<&[i32]>, learners: &[i32]) -> (String, Observation) {
        let raft = voters.map(|v| RaftStatus {
            role: if i == 0 { "Leader".into() } else { "Follower".into() },
            term: 2,
            leader: Some(addr(0)),
            voters: v.iter().map(|&j| addr(j)).collect(),
            learners: learners.iter().map(|&j| addr(j)).collect(),
            ..RaftStatus::default()
        });
        let status = NodeStatus {
            member: addr(i),
            version: "0.1.0".into(),
            lookup: "address-server".into(),
            ready: true,
            members: vec![],
            distro: None,
            raft,
        };
        (addr(i), Observation::Reached(Box::new(status)))
    }

    fn unreachable(i: i32) -> (String, Observation) {
        (addr(i), Observation::Unreachable("connection refused".into()))
    }

    fn plan_with(desired: i32, current: Option<i32>, obs: Vec<(String, Observation)>) -> ScaleStep {
        let observations: Observations = obs.into_iter().collect();
        plan(ScaleInput { cluster: "demo", namespace: "ns", desired, current, observations: &observations })
    }

    #[test]
    fn creates_with_the_desired_size() {
        assert_eq!(plan_with(3, None, vec![]), ScaleStep::Create { replicas: 3 });
    }

    #[test]
    fn steady_when_sizes_match() {
        let step = plan_with(3, Some(3), vec![]);
        assert_eq!(step, ScaleStep::Steady { replicas: 3 });
        assert!(!step.in_progress());
    }

    #[test]
    fn scale_up_raises_at_once_whatever_raft_says() {
        let step = plan_with(5, Some(3), vec![unreachable(0), unreachable(1), unreachable(2)]);
        assert_eq!(step, ScaleStep::ScaleUp { from: 3, to: 5 });
        assert_eq!(step.statefulset_replicas(), 5);
    }

    #[test]
    fn scale_down_waits_while_raft_counts_the_departing_members() {
        let all = [0, 1, 2, 3, 4];
        let step = plan_with(3, Some(5), (0..5).map(|i| reached(i, Some(&all), &[])).collect());
        assert_eq!(
            step,
            ScaleStep::WaitForRaftRemoval {
                replicas: 5,
                desired: 3,
                reason: WaitReason::StillCounted(vec![addr(4), addr(3)])
            }
        );
        assert_eq!(step.statefulset_replicas(), 5, "the StatefulSet keeps every pod");
    }

    #[test]
    fn a_learner_still_counts() {
        let step = plan_with(3, Some(4), (0..4).map(|i| reached(i, Some(&[0, 1, 2]), &[3])).collect());
        assert!(
            matches!(step, ScaleStep::WaitForRaftRemoval { reason: WaitReason::StillCounted(ref m), .. } if m == &vec![addr(3)])
        );
    }

    #[test]
    fn scale_down_lowers_once_raft_let_go() {
        let staying = [0, 1, 2];
        let step = plan_with(3, Some(5), (0..5).map(|i| reached(i, Some(&staying), &[])).collect());
        assert_eq!(step, ScaleStep::ScaleDown { from: 5, to: 3 });
    }

    #[test]
    fn scale_down_goes_highest_first() {
        // Raft removed member 4 but still counts member 3: only 4 may go.
        let voters = [0, 1, 2, 3];
        let step = plan_with(3, Some(5), (0..3).map(|i| reached(i, Some(&voters), &[])).collect());
        assert_eq!(step, ScaleStep::ScaleDown { from: 5, to: 4 });
        // Raft removed 3 but (oddly) still counts 4: nothing may go, 3 must wait for 4.
        let voters = [0, 1, 2, 4];
        let step = plan_with(3, Some(5), (0..3).map(|i| reached(i, Some(&voters), &[])).collect());
        assert!(matches!(step, ScaleStep::WaitForRaftRemoval { .. }));
    }

    #[test]
    fn any_staying_member_that_still_counts_holds_the_scale_down() {
        // The leader already removed member 3; a lagging follower still counts it.
        let obs = vec![reached(0, Some(&[0, 1, 2]), &[]), reached(1, Some(&[0, 1, 2, 3]), &[]), unreachable(2)];
        assert!(matches!(plan_with(3, Some(4), obs), ScaleStep::WaitForRaftRemoval { .. }));
    }

    #[test]
    fn departing_members_views_do_not_matter() {
        // Member 3 itself still believes it is a voter; the staying members do not.
        let obs = vec![reached(0, Some(&[0, 1, 2]), &[]), reached(3, Some(&[0, 1, 2, 3]), &[])];
        assert_eq!(plan_with(3, Some(4), obs), ScaleStep::ScaleDown { from: 4, to: 3 });
    }

    #[test]
    fn without_a_raft_section_nothing_is_counted() {
        let obs = (0..5).map(|i| reached(i, None, &[])).collect();
        assert_eq!(plan_with(3, Some(5), obs), ScaleStep::ScaleDown { from: 5, to: 3 });
    }

    #[test]
    fn scale_down_waits_when_no_staying_member_answers() {
        let obs = vec![unreachable(0), unreachable(1), unreachable(2), reached(3, None, &[]), reached(4, None, &[])];
        assert_eq!(
            plan_with(3, Some(5), obs),
            ScaleStep::WaitForRaftRemoval { replicas: 5, desired: 3, reason: WaitReason::NoStayingMemberAnswered }
        );
        assert_eq!(
            plan_with(1, Some(2), vec![]),
            ScaleStep::WaitForRaftRemoval { replicas: 2, desired: 1, reason: WaitReason::NoStayingMemberAnswered }
        );
    }

    #[test]
    fn crash_between_list_shrink_and_statefulset_shrink_resumes() {
        // The list already shrank to 3 and Raft removed 4 and 3, but the
        // operator died before lowering the StatefulSet. A restarted
        // operator sees the same world and makes the same step.
        let obs: Vec<_> = (0..5).map(|i| reached(i, Some(&[0, 1, 2]), &[])).collect();
        let first = plan_with(3, Some(5), obs.clone());
        let again = plan_with(3, Some(5), obs.clone());
        assert_eq!(first, again);
        // And after a partial step (StatefulSet at 4), it finishes.
        assert_eq!(plan_with(3, Some(4), obs), ScaleStep::ScaleDown { from: 4, to: 3 });
    }

    #[test]
    fn scale_back_up_during_a_scale_down_stops_it() {
        let all = [0, 1, 2, 3, 4];
        let obs: Vec<_> = (0..5).map(|i| reached(i, Some(&all), &[])).collect();
        assert_eq!(plan_with(5, Some(5), obs.clone()), ScaleStep::Steady { replicas: 5 });
        assert_eq!(plan_with(5, Some(4), obs), ScaleStep::ScaleUp { from: 4, to: 5 });
    }

    #[test]
    fn exhaustive_small_clusters_never_drop_a_counted_member() {
        // For every desired/current pair up to 6 and every set of members
        // Raft still counts, the planned size keeps every counted member.
        for current in 1..=6 {
            for desired in 1..=6 {
                for counted_mask in 0u32..(1 << current) {
                    let voters: Vec<i32> = (0..current).filter(|i| counted_mask & (1 << i) != 0).collect();
                    let obs: Vec<_> = (0..current).map(|i| reached(i, Some(&voters), &[])).collect();
                    let step = plan_with(desired, Some(current), obs);
                    let size = step.statefulset_replicas();
                    if desired >= current {
                        assert_eq!(size, desired);
                        continue;
                    }
                    assert!(size >= desired && size <= current, "{desired}/{current}/{counted_mask:b}: {step:?}");
                    for &v in &voters {
                        assert!(v < size, "{desired}/{current}/{counted_mask:b}: member {v} dropped by {step:?}");
                    }
                    // and it removes as much as allowed
                    let highest_counted_departing = voters.iter().copied().filter(|&v| v >= desired).max();
                    assert_eq!(size, highest_counted_departing.map_or(desired, |v| v + 1));
                }
            }
        }
    }
}
