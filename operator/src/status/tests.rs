//! Status aggregation over hand-built observations and pods.

use super::*;
use crate::node_status::{DistroStatus, PeerState};
use crate::scaling::WaitReason;
use k8s_openapi::jiff::Timestamp;
use roster_crds::{
    find_condition, CONDITION_AVAILABLE, CONDITION_DEGRADED, CONDITION_MEMBERSHIP_CONVERGED, CONDITION_PROGRESSING,
    CONDITION_RAFT_QUORUM, CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_FALSE, STATUS_TRUE, STATUS_UNKNOWN,
};

const REV: &str = "rev-1";

fn addr(i: i32) -> String {
    names::member_address("demo", "ns", i)
}

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(second).expect("valid timestamp"))
}

/// A member `i` that answered: ready, listing `listed` members UP, with the
/// given Distro and Raft sections.
fn node(i: i32, listed: i32, distro: Option<bool>, raft: Option<RaftStatus>) -> (String, Observation) {
    let status = NodeStatus {
        member: addr(i),
        version: "0.1.0".into(),
        lookup: "address-server".into(),
        ready: distro != Some(false),
        members: (0..listed).map(|j| PeerState { address: addr(j), state: "UP".into() }).collect(),
        distro: distro.map(|initialized| DistroStatus {
            initialized,
            snapshot_source: initialized.then(|| addr(0)),
            ..DistroStatus::default()
        }),
        raft,
    };
    (addr(i), Observation::Reached(Box::new(status)))
}

fn raft(i: i32, voters: &[i32], learners: &[i32], leader: Option<i32>) -> RaftStatus {
    RaftStatus {
        role: if leader == Some(i) { "Leader".into() } else { "Follower".into() },
        term: 4,
        leader: leader.map(addr),
        voters: voters.iter().map(|&j| addr(j)).collect(),
        learners: learners.iter().map(|&j| addr(j)).collect(),
        applied_index: Some(120),
        ..RaftStatus::default()
    }
}

fn healthy(n: i32) -> Observations {
    let voters: Vec<i32> = (0..n).collect();
    (0..n).map(|i| node(i, n, Some(true), Some(raft(i, &voters, &[], Some(0))))).collect()
}

fn pod(ordinal: i32, revision: &str, ready: bool) -> PodView {
    PodView { ordinal, revision: Some(revision.into()), ready, terminating: false, waiting: None }
}

/// Pods `0..n`, all Ready on [`REV`].
fn ready_pods(n: i32) -> Vec<PodView> {
    (0..n).map(|i| pod(i, REV, true)).collect()
}

fn sts(replicas: i32) -> StatefulSetView {
    StatefulSetView {
        replicas,
        update_revision: Some(REV.into()),
        template_observed: true,
        rollout: None,
        failure: None,
    }
}

struct World {
    desired: i32,
    step: ScaleStep,
    sts: StatefulSetView,
    pods: Vec<PodView>,
    obs: Observations,
    previous: Option<RegistryClusterStatus>,
}

impl World {
    fn healthy(n: i32) -> World {
        World {
            desired: n,
            step: ScaleStep::Steady { replicas: n },
            sts: sts(n),
            pods: ready_pods(n),
            obs: healthy(n),
            previous: None,
        }
    }

    fn run(&self) -> RegistryClusterStatus {
        aggregate(StatusInput {
            cluster: "demo",
            namespace: "ns",
            generation: Some(7),
            desired: self.desired,
            step: &self.step,
            statefulset: &self.sts,
            pods: &self.pods,
            observations: &self.obs,
            previous: self.previous.as_ref(),
            now: at(1000),
        })
    }

    /// The same world after a reconcile that declared generation 7 carried
    /// out (the healthy world's status).
    fn after_carried_out(mut self) -> World {
        self.previous = Some(World::healthy(self.desired).run());
        self
    }

    fn set_unreachable(&mut self, i: i32) {
        self.obs.insert(addr(i), Observation::Unreachable("connection refused".into()));
    }

    fn set_pod_ready(&mut self, i: i32, ready: bool) {
        if let Some(p) = self.pods.iter_mut().find(|p| p.ordinal == i) {
            p.ready = ready;
        }
    }
}

fn cond<'a>(s: &'a RegistryClusterStatus, t: &str) -> &'a Condition {
    find_condition(&s.conditions, t).unwrap_or_else(|| panic!("condition {t} missing: {:?}", s.conditions))
}

fn assert_cond(s: &RegistryClusterStatus, t: &str, status: &str, reason: &str) {
    let c = cond(s, t);
    assert_eq!((c.status.as_str(), c.reason.as_str()), (status, reason), "{t}: {}", c.message);
    assert_eq!(c.observed_generation, Some(7), "{t} carries the generation");
    assert!(!c.message.is_empty(), "{t} explains itself");
}

#[test]
fn healthy_cluster_is_available_stable_and_converged() {
    let s = World::healthy(3).run();
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "Serving");
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_TRUE, "QuorumHealthy");
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_FALSE, "Stable");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "Healthy");
    assert_cond(&s, CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_TRUE, "AllMembersLoaded");
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_TRUE, "Converged");
    assert_eq!(s.conditions.len(), 6);
    assert_eq!(s.leader.as_deref(), Some(addr(0).as_str()));
    assert_eq!((s.replicas, s.ready_replicas), (3, 3));
    assert_eq!(s.observed_generation, Some(7));
    assert_eq!(s.selector.as_deref(), Some("app.kubernetes.io/instance=demo,app.kubernetes.io/name=roster"));
    assert_eq!(s.members.len(), 3);
    let m1 = &s.members[1];
    assert_eq!(m1.name, "demo-1");
    assert_eq!(m1.state.as_deref(), Some("UP"));
    assert_eq!(m1.raft_role.as_deref(), Some("Follower"));
    assert_eq!(m1.applied_index, Some(120));
    assert!(m1.distro_initialized);
    assert_eq!(m1.snapshot_source.as_deref(), Some(addr(0).as_str()));
}

#[test]
fn quorum_survives_one_lost_member_of_three_but_degrades() {
    let mut w = World::healthy(3).after_carried_out();
    w.set_unreachable(2);
    w.set_pod_ready(2, false);
    let s = w.run();
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_TRUE, "QuorumHealthy");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "Serving");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_TRUE, "MembersNotReady");
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_FALSE, "Stable");
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "MembersUnreachable");
    assert_eq!(s.members[2].state.as_deref(), Some(STATE_UNREACHABLE));
    assert!(!s.members[2].ready);
    assert!(cond(&s, CONDITION_DEGRADED).message.contains("demo-2"));
}

#[test]
fn losing_a_majority_loses_quorum_and_availability() {
    let mut w = World::healthy(3).after_carried_out();
    w.set_unreachable(1);
    w.set_unreachable(2);
    let s = w.run();
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_FALSE, "QuorumLost");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_FALSE, "QuorumLost");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_TRUE, "QuorumLost");
    assert!(cond(&s, CONDITION_RAFT_QUORUM).message.contains("needs 2"), "{}", cond(&s, CONDITION_RAFT_QUORUM).message);
}

#[test]
fn no_leader_is_not_available() {
    let mut w = World::healthy(3);
    w.obs = (0..3).map(|i| node(i, 3, Some(true), Some(raft(i, &[0, 1, 2], &[], None)))).collect();
    let s = w.run();
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_FALSE, "NoLeader");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_FALSE, "NoLeader");
    assert!(s.leader.is_none());
}

#[test]
fn nothing_reachable_is_unknown_not_invented() {
    let mut w = World::healthy(3);
    w.obs = (0..3).map(|i| (addr(i), Observation::Unreachable("no route".into()))).collect();
    let s = w.run();
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_UNKNOWN, "NoMemberReachable");
    assert_cond(&s, CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_UNKNOWN, "NoMemberReachable");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_FALSE, "NoMemberReachable");
    assert_eq!((s.replicas, s.ready_replicas), (0, 0));
}

#[test]
fn null_raft_and_distro_are_reported_as_unknown_and_readiness_decides_availability() {
    let mut w = World::healthy(3);
    w.obs = (0..3).map(|i| node(i, 3, None, None)).collect();
    let s = w.run();
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_UNKNOWN, "RaftNotReported");
    assert_cond(&s, CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_UNKNOWN, "DistroNotReported");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "MembersReady");
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_TRUE, "Converged");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "Healthy");
    assert!(s.leader.is_none());
    assert_eq!((s.replicas, s.ready_replicas), (3, 3));
    assert!(s.members.iter().all(|m| m.raft_role.is_none()));

    // one of three unreachable still leaves a ready majority; two do not
    w.set_unreachable(2);
    assert_cond(&w.run(), CONDITION_AVAILABLE, STATUS_TRUE, "MembersReady");
    w.set_unreachable(1);
    assert_cond(&w.run(), CONDITION_AVAILABLE, STATUS_FALSE, "NotEnoughReadyMembers");
}

#[test]
fn available_needs_a_serving_majority_not_only_a_quorum() {
    // The bug this replaces: Raft has a quorum the moment the members
    // elect a leader, before any pod is Ready or any snapshot loaded.
    let mut w = World::healthy(3);
    w.step = ScaleStep::Steady { replicas: 3 };
    for i in 0..3 {
        w.set_pod_ready(i, false);
    }
    let s = w.run();
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_TRUE, "QuorumHealthy");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_FALSE, "NotEnoughServingMembers");
    assert!(cond(&s, CONDITION_AVAILABLE).message.contains("demo-0: its pod is not Ready"));

    // One Ready pod is not a majority of three.
    w.set_pod_ready(0, true);
    assert_cond(&w.run(), CONDITION_AVAILABLE, STATUS_FALSE, "NotEnoughServingMembers");
    // A Ready pod whose member has not loaded the snapshot does not serve.
    w.set_pod_ready(1, true);
    w.obs.insert(addr(1), node(1, 3, Some(false), Some(raft(1, &[0, 1, 2], &[], Some(0)))).1);
    let s = w.run();
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_FALSE, "NotEnoughServingMembers");
    assert!(cond(&s, CONDITION_AVAILABLE).message.contains("demo-1: it has not loaded the Distro snapshot"));
    // Two serving members of three, with a quorum: available.
    w.obs = healthy(3);
    let s = w.run();
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "Serving");
    assert!(cond(&s, CONDITION_AVAILABLE).message.starts_with("2 of 3 members serve clients"));
}

#[test]
fn scale_up_in_flight_reports_loading_learners() {
    // 3 -> 5: the new members answer, 3 loaded and is a learner, 4 still loading.
    let voters = [0, 1, 2];
    let mut w = World::healthy(5);
    w.step = ScaleStep::ScaleUp { from: 3, to: 5 };
    w.obs = (0..3).map(|i| node(i, 5, Some(true), Some(raft(i, &voters, &[3], Some(0))))).collect();
    w.obs.extend([node(3, 5, Some(true), Some(raft(3, &voters, &[3], Some(0))))]);
    w.obs.extend([node(4, 5, Some(false), None)]);
    w.set_pod_ready(4, false);
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "ScalingUp");
    assert_cond(&s, CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_FALSE, "SnapshotLoading");
    assert!(cond(&s, CONDITION_SNAPSHOT_BOOTSTRAPPED).message.contains("demo-4 has"));
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "RaftMembershipPending");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "Serving");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "AsPlanned");
    assert!(cond(&s, CONDITION_DEGRADED).message.contains("demo-4 is not serving yet, as planned while ScalingUp"));
    assert_eq!(s.replicas, 4, "3 voters + 1 learner joined");
    assert_eq!(s.ready_replicas, 3, "only ready voters count");
    assert_eq!(s.members[3].raft_role.as_deref(), Some("Follower"));

    // Once the StatefulSet has its 5 pods the step is Steady, but the
    // change is not carried out until demo-4 serves and Raft promoted it:
    // neither Progressing=False nor Degraded.
    w.step = ScaleStep::Steady { replicas: 5 };
    w.previous = Some(s);
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "WaitingForMembers");
    assert!(cond(&s, CONDITION_PROGRESSING).message.contains("demo-4 (it has not loaded the Distro snapshot)"));
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "AsPlanned");
    w.obs.insert(addr(4), node(4, 5, Some(true), Some(raft(4, &voters, &[3, 4], Some(0)))).1);
    w.set_pod_ready(4, true);
    w.previous = Some(s);
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "Converging");
    w.obs = healthy(5);
    w.previous = Some(s);
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_FALSE, "Stable");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "Healthy");
}

#[test]
fn scale_down_wait_is_explained() {
    let all = [0, 1, 2, 3, 4];
    let mut w = World::healthy(3);
    w.obs = (0..5).map(|i| node(i, 3, Some(true), Some(raft(i, &all, &[], Some(0))))).collect();
    w.pods = ready_pods(5);
    w.sts = sts(5);
    w.step = ScaleStep::WaitForRaftRemoval {
        replicas: 5,
        desired: 3,
        reason: WaitReason::StillCounted(vec![addr(4), addr(3)]),
    };
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "WaitingForRaftRemoval");
    assert!(cond(&s, CONDITION_PROGRESSING).message.contains("demo-4, demo-3"));
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "PodsPending");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "Healthy");
    assert_eq!(s.members.len(), 5, "departing pods are still reported");
}

#[test]
fn a_member_with_a_stale_list_is_not_converged() {
    let mut w = World::healthy(3);
    w.obs.insert(addr(1), node(1, 2, Some(true), Some(raft(1, &[0, 1, 2], &[], Some(0)))).1);
    let s = w.run();
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "ServerListPending");
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "Converging");
    // After the generation was carried out, a view that lags is not a
    // change in progress (and not a degradation either).
    let s = w.after_carried_out().run();
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "ServerListPending");
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_FALSE, "Stable");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "Healthy");
}

#[test]
fn down_members_as_the_leader_sees_them_degrade_an_idle_cluster() {
    let mut w = World::healthy(3).after_carried_out();
    if let Some(Observation::Reached(s)) = w.obs.get_mut(&addr(0)) {
        s.members[2].state = "DOWN".into();
    }
    let s = w.run();
    assert_eq!(s.members[2].state.as_deref(), Some("DOWN"));
    assert_cond(&s, CONDITION_DEGRADED, STATUS_TRUE, "MembersDown");
}

#[test]
fn rolling_update_is_progress() {
    let mut w = World::healthy(3);
    w.pods[1].revision = Some("rev-0".into());
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "RollingUpdate");

    let step = "rolling update: restarting demo-1 (2 of the members still on the old template)";
    w.sts.rollout = Some(step.into());
    let s = w.run();
    let progressing = find_condition(&s.conditions, CONDITION_PROGRESSING).expect("progressing");
    assert_eq!(progressing.message, step, "the condition says which pod the roll is at");
    // A template the StatefulSet controller has not seen yet is a roll too.
    let mut w = World::healthy(3);
    w.sts.template_observed = false;
    assert_cond(&w.run(), CONDITION_PROGRESSING, STATUS_TRUE, "RollingUpdate");
}

#[test]
fn a_recreated_pod_that_is_not_ready_is_not_updated() {
    // The end of a roll: every pod runs the new revision, the last one
    // restarted is not Ready yet. The roll is not done.
    let mut w = World::healthy(3);
    w.previous = Some({
        let mut rolling = World::healthy(3);
        rolling.pods[0].revision = Some("rev-0".into());
        rolling.run()
    });
    w.set_pod_ready(0, false);
    w.obs.insert(addr(0), node(0, 3, Some(false), Some(raft(0, &[0, 1, 2], &[], Some(1)))).1);
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "WaitingForMembers");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "AsPlanned");
    // Ready again: done.
    w.previous = Some(s);
    w.set_pod_ready(0, true);
    w.obs = healthy(3);
    assert_cond(&w.run(), CONDITION_PROGRESSING, STATUS_FALSE, "Stable");
}

#[test]
fn a_member_lost_after_the_change_was_carried_out_is_degraded_not_progress() {
    // kill -9 of a member of a stable cluster: nothing planned explains it.
    let mut w = World::healthy(3).after_carried_out();
    w.set_pod_ready(0, false);
    w.set_unreachable(0);
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_FALSE, "Stable");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_TRUE, "MembersNotReady");
    assert!(cond(&s, CONDITION_DEGRADED).message.contains("demo-0 is not serving"));
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "Serving");
    // The same world under a new generation (the user changed the spec):
    // now it is planned work.
    let mut newer = w.previous.clone().expect("previous");
    for c in &mut newer.conditions {
        c.observed_generation = Some(6);
    }
    w.previous = Some(newer);
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "WaitingForMembers");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "AsPlanned");
}

#[test]
fn failures_the_statefulset_reports_are_degraded_even_during_progress() {
    let mut w = World::healthy(3);
    w.step = ScaleStep::Create { replicas: 3 };
    w.pods.clear();
    w.sts.failure = Some(Failure::PodCreation("pods \"demo-0\" is forbidden: exceeded quota".into()));
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "ScalingUp");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_TRUE, "PodCreationFailed");
    assert!(cond(&s, CONDITION_DEGRADED).message.contains("exceeded quota"));

    let mut w = World::healthy(3);
    w.sts.failure = Some(Failure::Refused("spec.template.spec.containers[0].resources.requests: Invalid".into()));
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_FALSE, "StatefulSetRefused");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_TRUE, "StatefulSetRefused");

    let mut w = World::healthy(3);
    w.pods[2].waiting = Some("CrashLoopBackOff".into());
    w.set_pod_ready(2, false);
    let s = w.run();
    assert_cond(&s, CONDITION_DEGRADED, STATUS_TRUE, "PodFailing");
    assert!(cond(&s, CONDITION_DEGRADED).message.contains("demo-2 (CrashLoopBackOff)"));
    // A container that is merely being created is no failure.
    w.pods[2].waiting = Some("ContainerCreating".into());
    assert_cond(&w.run(), CONDITION_DEGRADED, STATUS_FALSE, "AsPlanned");
}

#[test]
fn an_election_during_planned_work_is_not_degraded_but_a_lost_quorum_is() {
    let mut w = World::healthy(3);
    w.pods[2].revision = Some("rev-0".into());
    w.obs = (0..3).map(|i| node(i, 3, Some(true), Some(raft(i, &[0, 1, 2], &[], None)))).collect();
    let s = w.run();
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "RollingUpdate");
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_FALSE, "NoLeader");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "Healthy");
    w.set_unreachable(1);
    w.set_unreachable(2);
    w.obs.insert(addr(0), node(0, 3, Some(true), Some(raft(0, &[0, 1, 2], &[], Some(0)))).1);
    assert_cond(&w.run(), CONDITION_DEGRADED, STATUS_TRUE, "QuorumLost");
}

#[test]
fn transition_times_move_only_when_status_flips() {
    let w = World::healthy(3);
    let first = w.run();
    let later = |observations: &Observations, previous: &RegistryClusterStatus| {
        aggregate(StatusInput {
            cluster: "demo",
            namespace: "ns",
            generation: Some(8),
            desired: 3,
            step: &ScaleStep::Steady { replicas: 3 },
            statefulset: &sts(3),
            pods: &ready_pods(3),
            observations,
            previous: Some(previous),
            now: at(2000),
        })
    };
    // Same world, new generation: every time is kept, every generation moves.
    let same = later(&w.obs, &first);
    for c in &same.conditions {
        assert_eq!(c.last_transition_time, at(1000), "{}", c.type_);
        assert_eq!(c.observed_generation, Some(8), "{}", c.type_);
    }
    // Two members gone: Available flips and its time moves.
    let mut obs2 = w.obs.clone();
    obs2.insert(addr(1), Observation::Unreachable("x".into()));
    obs2.insert(addr(2), Observation::Unreachable("x".into()));
    let flipped = later(&obs2, &same);
    let avail = cond(&flipped, CONDITION_AVAILABLE);
    assert_eq!(avail.status, STATUS_FALSE);
    assert_eq!(avail.last_transition_time, at(2000));
    assert_eq!(cond(&flipped, CONDITION_PROGRESSING).last_transition_time, at(1000), "still not progressing");
}

#[test]
fn a_restarted_member_claiming_an_old_term_does_not_hide_the_leader() {
    // demo-2 came back from its disk still believing it leads term 3,
    // while demo-0 and demo-1 moved on to term 4 under demo-1.
    let mut w = World::healthy(3).after_carried_out();
    for i in 0..2 {
        let mut r = raft(i, &[0, 1, 2], &[], Some(1));
        r.term = 5;
        w.obs.insert(addr(i), node(i, 3, Some(true), Some(r)).1);
    }
    let mut stale = raft(2, &[0, 1, 2], &[], Some(2));
    stale.term = 4;
    w.obs.insert(addr(2), node(2, 3, Some(true), Some(stale)).1);
    let s = w.run();
    assert_eq!(s.leader.as_deref(), Some(addr(1).as_str()), "the leader of the newest term");
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_TRUE, "QuorumHealthy");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "Healthy");
}

#[test]
fn a_voter_that_has_not_heard_the_new_leader_yet_is_no_lost_quorum() {
    // demo-1 just won term 5 with demo-2's vote; demo-2 has not had its
    // first heartbeat (no leader yet), demo-0 is restarting.
    let mut w = World::healthy(3).after_carried_out();
    w.set_unreachable(0);
    let mut leader = raft(1, &[0, 1, 2], &[], Some(1));
    leader.term = 5;
    w.obs.insert(addr(1), node(1, 3, Some(true), Some(leader)).1);
    let mut voted = raft(2, &[0, 1, 2], &[], None);
    voted.term = 5;
    w.obs.insert(addr(2), node(2, 3, Some(true), Some(voted.clone())).1);
    assert_cond(&w.run(), CONDITION_RAFT_QUORUM, STATUS_TRUE, "QuorumHealthy");
    // Still in the old term without a leader, it is not with the new one.
    voted.term = 4;
    w.obs.insert(addr(2), node(2, 3, Some(true), Some(voted)).1);
    assert_cond(&w.run(), CONDITION_RAFT_QUORUM, STATUS_FALSE, "QuorumLost");
}

#[test]
fn majority_math() {
    assert_eq!([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
}

/// One member of an exhaustively enumerated world.
#[derive(Debug, Clone, Copy)]
struct Case {
    pod: u8,    // 0 missing, 1 not Ready, 2 Ready, 3 terminating, 4 crash-looping
    status: u8, // 0 unreachable, 1 loading, 2 ready
    old: bool,  // runs the previous template
}

fn cases() -> Vec<Case> {
    let mut all = Vec::new();
    for pod in 0..5 {
        for status in 0..3 {
            for old in [false, true] {
                all.push(Case { pod, status, old });
            }
        }
    }
    all
}

/// The four previous statuses a world is tried with: none, Progressing
/// True for this generation, False for this generation, False for an older
/// one.
fn previous_statuses() -> [Option<RegistryClusterStatus>; 4] {
    let mut rolling = World::healthy(3);
    rolling.pods[0].revision = Some("rev-0".into());
    let done = World::healthy(3).run();
    let mut older = done.clone();
    for c in &mut older.conditions {
        c.observed_generation = Some(6);
    }
    [None, Some(rolling.run()), Some(done), Some(older)]
}

/// The world of three members in the given states.
fn world_of(members: [Case; 3], previous: &Option<RegistryClusterStatus>) -> World {
    let mut w = World::healthy(3);
    w.pods.clear();
    for (i, c) in members.iter().enumerate() {
        let i = i as i32;
        match c.status {
            0 => w.set_unreachable(i),
            1 => {
                w.obs.insert(addr(i), node(i, 3, Some(false), Some(raft(i, &[0, 1, 2], &[], Some(0)))).1);
            }
            _ => {}
        }
        let revision = if c.old { "rev-0" } else { REV };
        match c.pod {
            0 => {}
            1 => w.pods.push(pod(i, revision, false)),
            2 => w.pods.push(pod(i, revision, true)),
            3 => w.pods.push(PodView { terminating: true, ..pod(i, revision, false) }),
            _ => w.pods.push(PodView { waiting: Some("CrashLoopBackOff".into()), ..pod(i, revision, false) }),
        }
    }
    w.previous = previous.clone();
    w
}

#[test]
fn exhaustive_three_member_worlds_keep_the_condition_contracts() {
    // Member 0 (the Raft leader in these worlds) takes every state; members
    // 1 and 2 are interchangeable, so every unordered pair of states.
    let all = cases();
    let previous = previous_statuses();
    let mut checked = 0;
    for a in &all {
        for (j, b) in all.iter().enumerate() {
            for c in &all[j..] {
                for (p, prev) in previous.iter().enumerate() {
                    let members = [*a, *b, *c];
                    let s = world_of(members, prev).run();
                    let what = || format!("{members:?}, previous {p}: {:#?}", s.conditions);
                    let serving = members.iter().filter(|m| m.pod == 2 && m.status == 2).count();
                    let quorate = cond(&s, CONDITION_RAFT_QUORUM).status == STATUS_TRUE;
                    let available = cond(&s, CONDITION_AVAILABLE).status == STATUS_TRUE;
                    let progressing = cond(&s, CONDITION_PROGRESSING).status == STATUS_TRUE;
                    let degraded = cond(&s, CONDITION_DEGRADED).status == STATUS_TRUE;
                    let any_old = members.iter().any(|m| m.old && m.pod != 0);
                    let carried_out_before = p == 2;

                    // Available: exactly a serving majority of a quorate cluster.
                    assert_eq!(available, quorate && serving >= 2, "Available: {}", what());
                    // Progressing=False for a change not carried out before
                    // means every member runs the template and serves.
                    if !progressing && !carried_out_before {
                        assert_eq!(serving, 3, "Progressing=False while a member does not serve: {}", what());
                        assert!(!any_old, "Progressing=False with an old pod: {}", what());
                    }
                    // A pod on an old template is always a roll in progress.
                    if any_old {
                        assert!(progressing, "old pod without Progressing: {}", what());
                    }
                    // Degraded is for the unplanned: a failing container, a
                    // lost quorum, or members lost after the change was done.
                    let crash = members.iter().any(|m| m.pod == 4);
                    let quorum_lost = cond(&s, CONDITION_RAFT_QUORUM).reason == "QuorumLost";
                    if progressing {
                        assert_eq!(degraded, crash || quorum_lost, "Degraded during planned work: {}", what());
                    } else {
                        assert_eq!(degraded, crash || !quorate || serving < 3, "Degraded when idle: {}", what());
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 30 * (30 * 31 / 2) * 4);
}

#[test]
fn crashed_between_two_reconciles_the_next_one_decides_the_same() {
    // The operator wrote a status and crashed; a new one reads it back as
    // `previous` in the same world and must decide exactly the same: the
    // memory of a carried-out generation is in the status, not in a process.
    let healthy = Case { pod: 2, status: 2, old: false };
    let previous = previous_statuses();
    for a in cases() {
        for b in cases() {
            for prev in &previous {
                let w = world_of([a, b, healthy], prev);
                let first = w.run();
                assert_eq!(first, w.run(), "pure: the same world gives the same status");
                let restarted = world_of([a, b, healthy], &Some(first.clone()));
                assert_eq!(first.conditions, restarted.run().conditions, "{a:?} {b:?} {prev:?}");
            }
        }
    }
}
