//! Status aggregation over hand-built observations.

use super::*;
use crate::node_status::{DistroStatus, PeerState};
use k8s_openapi::jiff::Timestamp;
use roster_crds::find_condition;

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
        ready: true,
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

fn run(desired: i32, step: &ScaleStep, sts: &StatefulSetView, obs: &Observations) -> RegistryClusterStatus {
    aggregate(StatusInput {
        cluster: "demo",
        namespace: "ns",
        generation: Some(7),
        desired,
        step,
        statefulset: sts,
        observations: obs,
        previous: None,
        now: at(1000),
    })
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

fn sts(replicas: i32, ready: i32) -> StatefulSetView {
    StatefulSetView { replicas, ready_replicas: ready, rolling: false, rollout: None }
}

#[test]
fn healthy_cluster_is_available_stable_and_converged() {
    let obs = healthy(3);
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 3), &obs);
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "QuorumHealthy");
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
    let mut obs = healthy(3);
    obs.insert(addr(2), Observation::Unreachable("connection refused".into()));
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 2), &obs);
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_TRUE, "QuorumHealthy");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "QuorumHealthy");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_TRUE, "MembersNotReady");
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "MembersUnreachable");
    assert_eq!(s.members[2].state.as_deref(), Some(STATE_UNREACHABLE));
    assert!(!s.members[2].ready);
    assert!(cond(&s, CONDITION_DEGRADED).message.contains("demo-2"));
}

#[test]
fn losing_a_majority_loses_quorum_and_availability() {
    let mut obs = healthy(3);
    obs.insert(addr(1), Observation::Unreachable("timeout".into()));
    obs.insert(addr(2), Observation::Unreachable("timeout".into()));
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 1), &obs);
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_FALSE, "QuorumLost");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_FALSE, "QuorumLost");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_TRUE, "QuorumLost");
    assert!(cond(&s, CONDITION_RAFT_QUORUM).message.contains("needs 2"), "{}", cond(&s, CONDITION_RAFT_QUORUM).message);
}

#[test]
fn no_leader_is_not_available() {
    let obs: Observations = (0..3).map(|i| node(i, 3, Some(true), Some(raft(i, &[0, 1, 2], &[], None)))).collect();
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 0), &obs);
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_FALSE, "NoLeader");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_FALSE, "NoLeader");
    assert!(s.leader.is_none());
}

#[test]
fn nothing_reachable_is_unknown_not_invented() {
    let obs: Observations = (0..3).map(|i| (addr(i), Observation::Unreachable("no route".into()))).collect();
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 0), &obs);
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_UNKNOWN, "NoMemberReachable");
    assert_cond(&s, CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_UNKNOWN, "NoMemberReachable");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_FALSE, "NoMemberReachable");
    assert_eq!((s.replicas, s.ready_replicas), (0, 0));
}

#[test]
fn null_raft_and_distro_are_reported_as_unknown_and_readiness_decides_availability() {
    let obs: Observations = (0..3).map(|i| node(i, 3, None, None)).collect();
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 3), &obs);
    assert_cond(&s, CONDITION_RAFT_QUORUM, STATUS_UNKNOWN, "RaftNotReported");
    assert_cond(&s, CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_UNKNOWN, "DistroNotReported");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "MembersReady");
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_TRUE, "Converged");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "Healthy");
    assert!(s.leader.is_none());
    assert_eq!((s.replicas, s.ready_replicas), (3, 3));
    assert!(s.members.iter().all(|m| m.raft_role.is_none()));

    // one of three unreachable still leaves a ready majority; two do not
    let mut obs2 = obs.clone();
    obs2.insert(addr(2), Observation::Unreachable("x".into()));
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 2), &obs2);
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "MembersReady");
    obs2.insert(addr(1), Observation::Unreachable("x".into()));
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 1), &obs2);
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_FALSE, "NotEnoughReadyMembers");
}

#[test]
fn scale_up_in_flight_reports_loading_learners() {
    // 3 -> 5: the new members answer, 3 loaded and is a learner, 4 still loading.
    let voters = [0, 1, 2];
    let mut obs: Observations = (0..3).map(|i| node(i, 5, Some(true), Some(raft(i, &voters, &[3], Some(0))))).collect();
    obs.extend([node(3, 5, Some(true), Some(raft(3, &voters, &[3], Some(0))))]);
    let (a4, mut o4) = node(4, 5, Some(false), None);
    if let Observation::Reached(s) = &mut o4 {
        s.ready = false;
    }
    obs.insert(a4, o4);
    let s = run(5, &ScaleStep::ScaleUp { from: 3, to: 5 }, &sts(5, 3), &obs);
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "ScalingUp");
    assert_cond(&s, CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_FALSE, "SnapshotLoading");
    assert!(cond(&s, CONDITION_SNAPSHOT_BOOTSTRAPPED).message.contains("demo-4 has"));
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "RaftMembershipPending");
    assert_cond(&s, CONDITION_AVAILABLE, STATUS_TRUE, "QuorumHealthy");
    assert_cond(&s, CONDITION_DEGRADED, STATUS_FALSE, "Healthy");
    assert_eq!(s.replicas, 4, "3 voters + 1 learner joined");
    assert_eq!(s.ready_replicas, 3, "only ready voters count");
    assert_eq!(s.members[3].raft_role.as_deref(), Some("Follower"));
}

#[test]
fn scale_down_wait_is_explained() {
    let all = [0, 1, 2, 3, 4];
    let obs: Observations = (0..5).map(|i| node(i, 3, Some(true), Some(raft(i, &all, &[], Some(0))))).collect();
    let step = ScaleStep::WaitForRaftRemoval {
        replicas: 5,
        desired: 3,
        reason: WaitReason::StillCounted(vec![addr(4), addr(3)]),
    };
    let s = run(3, &step, &sts(5, 5), &obs);
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "WaitingForRaftRemoval");
    assert!(cond(&s, CONDITION_PROGRESSING).message.contains("demo-4, demo-3"));
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "PodsPending");
    assert_eq!(s.members.len(), 5, "departing pods are still reported");
}

#[test]
fn a_member_with_a_stale_list_is_not_converged() {
    let mut obs = healthy(3);
    obs.insert(addr(1), node(1, 2, Some(true), Some(raft(1, &[0, 1, 2], &[], Some(0)))).1);
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 3), &obs);
    assert_cond(&s, CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "ServerListPending");
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "Converging");
}

#[test]
fn down_members_as_the_leader_sees_them_degrade_an_idle_cluster() {
    let mut obs = healthy(3);
    if let Some(Observation::Reached(s)) = obs.get_mut(&addr(0)) {
        s.members[2].state = "DOWN".into();
    }
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 3), &obs);
    assert_eq!(s.members[2].state.as_deref(), Some("DOWN"));
    assert_cond(&s, CONDITION_DEGRADED, STATUS_TRUE, "MembersDown");
}

#[test]
fn rolling_update_is_progress() {
    let obs = healthy(3);
    let view = StatefulSetView { replicas: 3, ready_replicas: 3, rolling: true, rollout: None };
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &view, &obs);
    assert_cond(&s, CONDITION_PROGRESSING, STATUS_TRUE, "RollingUpdate");

    let step = "rolling update: restarting demo-1 (2 of the members still on the old template)";
    let view = StatefulSetView { rollout: Some(step.into()), ..view };
    let s = run(3, &ScaleStep::Steady { replicas: 3 }, &view, &obs);
    let progressing = find_condition(&s.conditions, CONDITION_PROGRESSING).expect("progressing");
    assert_eq!(progressing.message, step, "the condition says which pod the roll is at");
}

#[test]
fn transition_times_move_only_when_status_flips() {
    let obs = healthy(3);
    let first = run(3, &ScaleStep::Steady { replicas: 3 }, &sts(3, 3), &obs);
    let later = |observations: &Observations, previous: &RegistryClusterStatus| {
        aggregate(StatusInput {
            cluster: "demo",
            namespace: "ns",
            generation: Some(8),
            desired: 3,
            step: &ScaleStep::Steady { replicas: 3 },
            statefulset: &sts(3, 1),
            observations,
            previous: Some(previous),
            now: at(2000),
        })
    };
    // Same world, new generation: every time is kept, every generation moves.
    let same = later(&obs, &first);
    for c in &same.conditions {
        assert_eq!(c.last_transition_time, at(1000), "{}", c.type_);
        assert_eq!(c.observed_generation, Some(8), "{}", c.type_);
    }
    // Two members gone: Available flips and its time moves.
    let mut obs2 = obs.clone();
    obs2.insert(addr(1), Observation::Unreachable("x".into()));
    obs2.insert(addr(2), Observation::Unreachable("x".into()));
    let flipped = later(&obs2, &same);
    let avail = cond(&flipped, CONDITION_AVAILABLE);
    assert_eq!(avail.status, STATUS_FALSE);
    assert_eq!(avail.last_transition_time, at(2000));
    assert_eq!(cond(&flipped, CONDITION_PROGRESSING).last_transition_time, at(1000), "still not progressing");
}

#[test]
fn majority_math() {
    assert_eq!([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
}
