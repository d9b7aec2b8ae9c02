//! The upgrade planner: rolls the member pods to a new template one at a
//! time, the Raft leader last (README, "Run on Kubernetes", "Upgrade"),
//! without any I/O.
//!
//! The StatefulSet uses the `OnDelete` update strategy, so Kubernetes never
//! restarts a member by itself; after a change of image or pod settings the
//! operator picks the one pod to restart next and evicts it (the eviction
//! API, so the PodDisruptionBudget still has the last word). The StatefulSet
//! controller recreates the pod from the new template.
//!
//! The rules, in order (the first that applies decides):
//!
//! 1. A pod is missing or terminating: a restart is in flight, wait.
//! 2. Every pod runs the new revision: done.
//! 3. A pod on the new revision is not ready yet: wait until it is (the
//!    restarted pod must load its Distro snapshot and rejoin Raft first).
//! 4. A pod on the old revision is not ready: restart it now (highest
//!    ordinal first). It serves nothing, so restarting it costs no
//!    availability, and the new template may be its fix.
//! 5. A member's status endpoint does not answer ready, no leader is
//!    known, or the leader's Raft membership is not every member as a
//!    voter (a learner still catching up, a voter missing): wait;
//!    restarting a voter now could cost the quorum of a smaller group.
//! 6. Restart the highest old-revision pod that is not the Raft leader;
//!    when only the leader is left, restart the leader. A leader restarted
//!    last means one election per upgrade instead of one per member.
//!
//! Like the scale planner this is a pure function of one observation, so an
//! operator crash between two steps repeats or continues the same step.

use crate::names;
use crate::node_status::Observations;

/// One member pod as the API server shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// StatefulSet ordinal.
    pub ordinal: i32,
    /// The `controller-revision-hash` label: the template revision it runs.
    pub revision: Option<String>,
    /// The pod's `Ready` condition is true.
    pub ready: bool,
    /// The pod has a deletion timestamp.
    pub terminating: bool,
    /// Why the member container is waiting instead of running, as the
    /// kubelet says (`CrashLoopBackOff`, `ImagePullBackOff`, ...), if it is.
    pub waiting: Option<String>,
}

/// What the planner needs to know.
#[derive(Debug, Clone, Copy)]
pub struct UpgradeInput<'a> {
    /// RegistryCluster name.
    pub cluster: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// The StatefulSet's `spec.replicas`.
    pub replicas: i32,
    /// The StatefulSet's `status.updateRevision`: the revision of the
    /// current template.
    pub update_revision: &'a str,
    /// The member pods that exist.
    pub pods: &'a [PodView],
    /// Statuses of the members `0..replicas`, keyed by member address.
    pub observations: &'a Observations,
}

/// Why the upgrade waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeWait {
    /// The pod with this ordinal does not exist (yet).
    PodMissing(i32),
    /// The pod with this ordinal is being deleted.
    PodTerminating(i32),
    /// The pod with this ordinal runs the new revision but is not ready.
    RestartedPodNotReady(i32),
    /// This member's status endpoint does not answer ready.
    MemberNotReady(String),
    /// No member names a Raft leader.
    LeaderUnknown,
    /// The leader's voters are not exactly the members, or a learner is
    /// pending: these are the members missing as voters (or the learners).
    RaftMembershipPending(Vec<String>),
    /// The PodDisruptionBudget refused to evict the pod with this ordinal.
    EvictionRefused(i32),
}

/// The next step of an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeStep {
    /// Every pod runs the current template.
    Done,
    /// Restart (evict) the pod with this ordinal.
    Restart {
        /// StatefulSet ordinal.
        ordinal: i32,
        /// Whether it is the Raft leader (restarted last).
        leader: bool,
        /// Whether it was not ready before its restart.
        was_ready: bool,
        /// Pods still on the old revision, this one included.
        remaining: usize,
    },
    /// Nothing may be restarted now.
    Wait(UpgradeWait),
}

/// Picks the next step. See the module docs for the rules.
pub fn plan(input: UpgradeInput<'_>) -> UpgradeStep {
    let pod = |ordinal: i32| input.pods.iter().find(|p| p.ordinal == ordinal);
    for ordinal in 0..input.replicas {
        match pod(ordinal) {
            None => return UpgradeStep::Wait(UpgradeWait::PodMissing(ordinal)),
            Some(p) if p.terminating => return UpgradeStep::Wait(UpgradeWait::PodTerminating(ordinal)),
            Some(_) => {}
        }
    }
    let members: Vec<&PodView> = (0..input.replicas).filter_map(pod).collect();
    let is_new = |p: &PodView| p.revision.as_deref() == Some(input.update_revision);
    let mut old: Vec<&PodView> = members.iter().copied().filter(|p| !is_new(p)).collect();
    if old.is_empty() {
        return UpgradeStep::Done;
    }
    old.sort_by_key(|p| std::cmp::Reverse(p.ordinal));
    let remaining = old.len();

    if let Some(p) = members.iter().find(|p| is_new(p) && !p.ready) {
        return UpgradeStep::Wait(UpgradeWait::RestartedPodNotReady(p.ordinal));
    }
    if let Some(p) = old.iter().find(|p| !p.ready) {
        return UpgradeStep::Restart { ordinal: p.ordinal, leader: false, was_ready: false, remaining };
    }

    let address = |ordinal: i32| names::member_address(input.cluster, input.namespace, ordinal);
    for ordinal in 0..input.replicas {
        let member = address(ordinal);
        let ready = input.observations.get(&member).and_then(|o| o.status()).is_some_and(|s| s.ready);
        if !ready {
            return UpgradeStep::Wait(UpgradeWait::MemberNotReady(member));
        }
    }
    let Some(leader) = input
        .observations
        .values()
        .filter_map(|o| o.status())
        .filter_map(|s| s.raft.as_ref())
        .find_map(|r| r.leader.clone())
    else {
        return UpgradeStep::Wait(UpgradeWait::LeaderUnknown);
    };
    // The leader's own view of the membership (the newest term's): every
    // member a voter, no learner pending.
    let leader_view = input
        .observations
        .values()
        .filter_map(|o| o.status())
        .filter_map(|s| s.raft.as_ref())
        .filter(|r| r.role == "Leader")
        .max_by_key(|r| r.term);
    if let Some(view) = leader_view {
        let mut pending: Vec<String> = (0..input.replicas).map(address).filter(|m| !view.voters.contains(m)).collect();
        pending.extend(view.learners.iter().filter(|l| !pending.contains(l)).cloned().collect::<Vec<_>>());
        if !pending.is_empty() {
            return UpgradeStep::Wait(UpgradeWait::RaftMembershipPending(pending));
        }
    }
    let next = old.iter().find(|p| address(p.ordinal) != leader).unwrap_or(&old[0]);
    UpgradeStep::Restart { ordinal: next.ordinal, leader: address(next.ordinal) == leader, was_ready: true, remaining }
}

impl UpgradeStep {
    /// A sentence for the `Progressing` condition and the Events.
    pub fn describe(&self, cluster: &str) -> String {
        match self {
            UpgradeStep::Done => "every member runs the current template".to_owned(),
            UpgradeStep::Restart { ordinal, leader, was_ready, remaining } => {
                let pod = names::pod(cluster, *ordinal);
                let why = match (leader, was_ready) {
                    (true, _) => ", the Raft leader, last",
                    (false, false) => ", which was not ready",
                    (false, true) => "",
                };
                format!("rolling update: restarting {pod}{why} ({remaining} of the members still on the old template)")
            }
            UpgradeStep::Wait(wait) => {
                let why = match wait {
                    UpgradeWait::PodMissing(o) => format!("{} does not exist yet", names::pod(cluster, *o)),
                    UpgradeWait::PodTerminating(o) => format!("{} is terminating", names::pod(cluster, *o)),
                    UpgradeWait::RestartedPodNotReady(o) => {
                        format!("the restarted {} is not ready yet", names::pod(cluster, *o))
                    }
                    UpgradeWait::MemberNotReady(m) => format!("member {m} is not ready"),
                    UpgradeWait::LeaderUnknown => "no member names a Raft leader".to_owned(),
                    UpgradeWait::RaftMembershipPending(members) => {
                        let names: Vec<&str> = members.iter().map(|m| m.split('.').next().unwrap_or(m)).collect();
                        format!("Raft does not count {} as voters yet", names.join(", "))
                    }
                    UpgradeWait::EvictionRefused(o) => {
                        format!("the PodDisruptionBudget refused to evict {} for now", names::pod(cluster, *o))
                    }
                };
                format!("rolling update: waiting before the next restart, {why}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_status::{NodeStatus, Observation, RaftStatus};

    const NEW: &str = "rev-new";

    fn pods(revisions: &[&str]) -> Vec<PodView> {
        revisions
            .iter()
            .enumerate()
            .map(|(i, r)| PodView {
                ordinal: i32::try_from(i).expect("small"),
                revision: Some((*r).to_owned()),
                ready: true,
                terminating: false,
                waiting: None,
            })
            .collect()
    }

    fn observations(replicas: i32, leader: i32) -> Observations {
        (0..replicas)
            .map(|i| {
                let member = names::member_address("demo", "ns", i);
                let status = NodeStatus {
                    member: member.clone(),
                    version: String::new(),
                    lookup: String::new(),
                    ready: true,
                    members: Vec::new(),
                    distro: None,
                    raft: Some(RaftStatus {
                        role: if i == leader { "Leader" } else { "Follower" }.to_owned(),
                        leader: Some(names::member_address("demo", "ns", leader)),
                        voters: names::member_addresses("demo", "ns", replicas),
                        ..RaftStatus::default()
                    }),
                };
                (member, Observation::Reached(Box::new(status)))
            })
            .collect()
    }

    fn plan_for(pods: &[PodView], obs: &Observations) -> UpgradeStep {
        plan(UpgradeInput {
            cluster: "demo",
            namespace: "ns",
            replicas: 3,
            update_revision: NEW,
            pods,
            observations: obs,
        })
    }

    fn restart(ordinal: i32, leader: bool, remaining: usize) -> UpgradeStep {
        UpgradeStep::Restart { ordinal, leader, was_ready: true, remaining }
    }

    #[test]
    fn followers_go_first_highest_first_and_the_leader_last() {
        let obs = observations(3, 2);
        let mut p = pods(&["old", "old", "old"]);
        assert_eq!(plan_for(&p, &obs), restart(1, false, 3), "the leader 2 is skipped");
        p[1].revision = Some(NEW.into());
        assert_eq!(plan_for(&p, &obs), restart(0, false, 2));
        p[0].revision = Some(NEW.into());
        assert_eq!(plan_for(&p, &obs), restart(2, true, 1), "the leader goes last");
        p[2].revision = Some(NEW.into());
        assert_eq!(plan_for(&p, &obs), UpgradeStep::Done);
    }

    #[test]
    fn one_restart_at_a_time() {
        let obs = observations(3, 0);
        let mut p = pods(&["old", "old", NEW]);
        p[2].ready = false;
        assert_eq!(plan_for(&p, &obs), UpgradeStep::Wait(UpgradeWait::RestartedPodNotReady(2)));
        p[2].ready = true;
        p[1].terminating = true;
        assert_eq!(plan_for(&p, &obs), UpgradeStep::Wait(UpgradeWait::PodTerminating(1)));
        p.remove(1);
        assert_eq!(plan_for(&p, &obs), UpgradeStep::Wait(UpgradeWait::PodMissing(1)));
    }

    #[test]
    fn a_member_that_is_not_ready_or_no_leader_stops_the_roll() {
        let p = pods(&["old", "old", "old"]);
        let mut obs = observations(3, 0);
        let member1 = names::member_address("demo", "ns", 1);
        obs.insert(member1.clone(), Observation::Unreachable("connection refused".into()));
        assert_eq!(plan_for(&p, &obs), UpgradeStep::Wait(UpgradeWait::MemberNotReady(member1)));

        let mut obs = observations(3, 0);
        for o in obs.values_mut() {
            if let Observation::Reached(s) = o {
                s.raft = None;
            }
        }
        assert_eq!(plan_for(&p, &obs), UpgradeStep::Wait(UpgradeWait::LeaderUnknown));
    }

    #[test]
    fn a_member_raft_does_not_count_as_voter_holds_the_next_restart() {
        // demo-1 restarted and is ready again, but the leader removed it
        // from the voters and has it back as a learner only: restarting
        // another voter of the two left would cost the quorum.
        let p = pods(&["old", NEW, "old"]);
        let mut obs = observations(3, 0);
        for o in obs.values_mut() {
            if let Observation::Reached(s) = o {
                if let Some(r) = s.raft.as_mut() {
                    r.voters.retain(|v| !v.starts_with("demo-1."));
                    r.learners = vec![names::member_address("demo", "ns", 1)];
                }
            }
        }
        let step = plan_for(&p, &obs);
        assert_eq!(
            step,
            UpgradeStep::Wait(UpgradeWait::RaftMembershipPending(vec![names::member_address("demo", "ns", 1)]))
        );
        assert_eq!(
            step.describe("demo"),
            "rolling update: waiting before the next restart, Raft does not count demo-1 as voters yet"
        );
        // Promoted again: the roll goes on.
        let obs = observations(3, 0);
        assert_eq!(plan_for(&p, &obs), restart(2, false, 2));
    }

    #[test]
    fn an_old_pod_that_is_not_ready_is_restarted_first() {
        let obs = observations(3, 0);
        let mut p = pods(&["old", "old", "old"]);
        p[0].ready = false;
        assert_eq!(
            plan_for(&p, &obs),
            UpgradeStep::Restart { ordinal: 0, leader: false, was_ready: false, remaining: 3 },
            "even the leader's pod: it serves nothing while not ready"
        );
    }

    #[test]
    fn a_pod_without_a_revision_label_counts_as_old() {
        let obs = observations(3, 0);
        let mut p = pods(&[NEW, NEW, NEW]);
        p[1].revision = None;
        assert_eq!(plan_for(&p, &obs), restart(1, false, 1));
    }

    #[test]
    fn descriptions_name_the_pod_and_the_reason() {
        assert_eq!(
            restart(2, true, 1).describe("demo"),
            "rolling update: restarting demo-2, the Raft leader, last (1 of the members still on the old template)"
        );
        assert_eq!(
            UpgradeStep::Wait(UpgradeWait::RestartedPodNotReady(1)).describe("demo"),
            "rolling update: waiting before the next restart, the restarted demo-1 is not ready yet"
        );
    }
}
