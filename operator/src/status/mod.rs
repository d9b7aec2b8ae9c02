//! Status aggregation: from the members' own status documents and their
//! pods to `status.members[]`, the leader and the six conditions, without
//! I/O.
//!
//! Each condition answers one question a person asks about a cluster, with
//! a CamelCase `reason` and a sentence in `message` (the README's
//! "Conditions" table says the same for users):
//!
//! | condition | question | reasons |
//! |---|---|---|
//! | `Available` | can clients use it through the client Service? | `Serving`, `NotEnoughServingMembers`, `QuorumLost`, `NoLeader`, `MembersReady`, `NotEnoughReadyMembers`, `NoMemberReachable` |
//! | `Progressing` | is a change of the spec still being carried out? | `ScalingUp`, `ScalingDown`, `WaitingForRaftRemoval`, `RollingUpdate`, `WaitingForMembers`, `Converging`, `StatefulSetRefused`, `Stable` |
//! | `Degraded` | is something wrong that no planned change explains? | `StatefulSetRefused`, `PodCreationFailed`, `PodFailing`, `QuorumLost`, `NoLeader`, `MembersNotReady`, `MembersDown`, `AsPlanned`, `Healthy` |
//! | `SnapshotBootstrapped` | has every member loaded its Distro snapshot? | `AllMembersLoaded`, `SnapshotLoading`, `DistroNotReported`, `NoMemberReachable` |
//! | `RaftQuorum` | does a majority of Raft voters follow one leader? | `QuorumHealthy`, `NoLeader`, `QuorumLost`, `RaftNotReported`, `NoMemberReachable` |
//! | `MembershipConverged` | do list, pods, member views and Raft agree? | `Converged`, `PodsPending`, `MembersUnreachable`, `ServerListPending`, `RaftMembershipPending` |
//!
//! A member *serves* when its pod is Ready (so the client Service routes to
//! it) and its own status answers ready with the Distro snapshot loaded.
//! `Available` needs a majority of the listed members serving and a Raft
//! quorum, so `kubectl wait --for=condition=Available` returns only when a
//! write through the Service lands on a loaded member of a quorate cluster.
//!
//! `Progressing` has a memory, kept in the status itself: a change of the
//! spec (a new `metadata.generation`) is in progress until every listed
//! member runs the current template, serves, and the membership converged;
//! only then does `Progressing` turn `False` for that generation. A member
//! that is not ready before that is planned work (a scale-up, a creation,
//! a roll); one that stops serving after it is not, and makes `Degraded`
//! `True`. Because the memory is the status on the object, an operator that
//! crashed between two steps reads it back and decides the same way.
//!
//! Members whose status has no `raft` section (a node build without Raft)
//! make `RaftQuorum` `Unknown` (`RaftNotReported`) and `Available` falls back
//! to "a majority of the members is ready"; no `distro` section makes
//! `SnapshotBootstrapped` `Unknown` (`DistroNotReported`). Nothing is
//! claimed that no member reported.

mod conditions;

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use roster_crds::{set_condition, MemberStatus, RegistryClusterStatus};

use crate::names;
use crate::node_status::{NodeStatus, Observation, Observations, RaftStatus};
use crate::scaling::ScaleStep;
use crate::upgrade::PodView;

/// State value of a member the operator could not read.
pub const STATE_UNREACHABLE: &str = "Unreachable";

/// Why the StatefulSet cannot carry out the spec: nothing the operator or
/// the cluster will fix by waiting, so it is always `Degraded`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The API server refused the StatefulSet the operator applied (the
    /// message is the API server's).
    Refused(String),
    /// The StatefulSet controller cannot create a member pod (its latest
    /// `FailedCreate` Event, while that pod is missing).
    PodCreation(String),
}

/// What the StatefulSet reports, reduced to what the status needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatefulSetView {
    /// `spec.replicas` as applied (or as found, when the apply was refused).
    pub replicas: i32,
    /// `status.updateRevision`: the revision of the current template, once
    /// the StatefulSet controller has seen it.
    pub update_revision: Option<String>,
    /// Whether the StatefulSet controller has seen the current template
    /// (`status.observedGeneration` caught up with `metadata.generation`).
    pub template_observed: bool,
    /// What the upgrade planner did or waits for, when it ran.
    pub rollout: Option<String>,
    /// Why the StatefulSet cannot carry out the spec, if it cannot.
    pub failure: Option<Failure>,
}

/// Everything the aggregation reads.
#[derive(Debug, Clone)]
pub struct StatusInput<'a> {
    /// RegistryCluster name.
    pub cluster: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.replicas`.
    pub desired: i32,
    /// The step the planner chose in this reconcile.
    pub step: &'a ScaleStep,
    /// The StatefulSet after this reconcile's apply.
    pub statefulset: &'a StatefulSetView,
    /// The member pods that exist.
    pub pods: &'a [PodView],
    /// Statuses of the members `0..max(desired, statefulset.replicas)`.
    pub observations: &'a Observations,
    /// The status before this reconcile (for `lastTransitionTime` and for
    /// whether the current generation was already carried out).
    pub previous: Option<&'a RegistryClusterStatus>,
    /// Now.
    pub now: Time,
}

/// Majority of `n`.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

fn short(member: &str) -> &str {
    member.split('.').next().unwrap_or(member)
}

fn list(members: &[String]) -> String {
    members.iter().map(|m| short(m)).collect::<Vec<_>>().join(", ")
}

/// One listed member: its pod and what it says about itself.
#[derive(Debug, Clone, Copy)]
struct Member<'a> {
    name: &'a str,
    pod: Option<&'a PodView>,
    status: Option<&'a NodeStatus>,
}

impl Member<'_> {
    /// Why the member does not serve clients, or `None` when it does: its
    /// pod is Ready (the client Service routes to it) and it answers ready
    /// with its Distro snapshot loaded.
    fn not_serving(&self) -> Option<&'static str> {
        let Some(pod) = self.pod else { return Some("its pod does not exist") };
        if pod.terminating {
            return Some("its pod is terminating");
        }
        let Some(status) = self.status else { return Some("its status does not answer") };
        if status.distro.as_ref().is_some_and(|d| !d.initialized) {
            return Some("it has not loaded the Distro snapshot");
        }
        if !status.ready {
            return Some("it does not answer ready");
        }
        if !pod.ready {
            return Some("its pod is not Ready");
        }
        None
    }

    /// Whether the pod exists and runs `revision` (any revision when the
    /// StatefulSet has not named one yet).
    fn outdated(&self, revision: Option<&str>) -> bool {
        match (self.pod, revision) {
            (Some(pod), Some(revision)) => pod.revision.as_deref() != Some(revision),
            _ => false,
        }
    }
}

/// The facts every condition reads, computed once.
struct Facts<'a> {
    input: &'a StatusInput<'a>,
    desired: i32,
    /// Statuses of every member that answered.
    reached: Vec<&'a NodeStatus>,
    /// The listed members, ordinal order.
    listed: Vec<Member<'a>>,
    /// The Raft view the status trusts (see [`raft_view`]).
    raft: Option<(&'a NodeStatus, &'a RaftStatus)>,
    /// The leader that view knows.
    leader: Option<String>,
    /// `members[]` for every existing member.
    members: Vec<MemberStatus>,
    /// The listed members that do not serve, with why.
    not_serving: Vec<(String, &'static str)>,
    /// The listed members whose pod runs an older template.
    outdated: Vec<String>,
}

impl Facts<'_> {
    fn address(&self, ordinal: i32) -> String {
        names::member_address(self.input.cluster, self.input.namespace, ordinal)
    }

    fn published(&self) -> Vec<String> {
        (0..self.desired).map(|i| self.address(i)).collect()
    }

    fn raft_reported(&self) -> bool {
        self.raft.is_some()
    }

    fn voters(&self) -> Vec<String> {
        self.raft.map(|(_, r)| r.voters.clone()).unwrap_or_default()
    }

    fn learners(&self) -> Vec<String> {
        self.raft.map(|(_, r)| r.learners.clone()).unwrap_or_default()
    }

    /// Whether a rolling update is under way: the StatefulSet has not seen
    /// the template yet, or a listed pod runs an older one.
    fn rolling(&self) -> bool {
        !self.input.statefulset.template_observed || !self.outdated.is_empty()
    }

    /// Whether the previous status already declared the current generation
    /// carried out (`Progressing` `False` for it).
    fn carried_out_before(&self) -> bool {
        let previous = self.input.previous.and_then(|p| roster_crds::find_condition(&p.conditions, PROGRESSING));
        previous
            .is_some_and(|c| c.status == roster_crds::STATUS_FALSE && c.observed_generation == self.input.generation)
    }
}

const PROGRESSING: &str = roster_crds::CONDITION_PROGRESSING;

/// The Raft view the status trusts: the answering member with the highest
/// term, and of those the leader's own status, then the highest committed
/// index. The term comes first because a member restarted from its disk
/// can claim the leadership of an old term for a moment (it steps down
/// when it hears the newer one); its claim must not hide the real leader.
fn raft_view<'a>(statuses: &[&'a NodeStatus]) -> Option<(&'a NodeStatus, &'a RaftStatus)> {
    let with_raft = statuses.iter().filter_map(|s| s.raft.as_ref().map(|r| (*s, r)));
    with_raft.max_by_key(|(_, r)| (r.term, r.role == "Leader", r.committed_index.unwrap_or(0)))
}

/// The leader this view knows: itself when it leads, else its `leader`.
fn leader_of(view: Option<(&NodeStatus, &RaftStatus)>) -> Option<String> {
    let (s, r) = view?;
    if r.role == "Leader" {
        Some(s.member.clone())
    } else {
        r.leader.clone().filter(|l| !l.is_empty())
    }
}

fn member_statuses(
    input: &StatusInput<'_>,
    existing: i32,
    leader_status: Option<&NodeStatus>,
    pod_names: &[String],
) -> Vec<MemberStatus> {
    (0..existing)
        .map(|i| {
            let addr = names::member_address(input.cluster, input.namespace, i);
            let name = pod_names[i as usize].clone();
            match input.observations.get(&addr).and_then(Observation::status) {
                None => MemberStatus {
                    name,
                    address: Some(addr),
                    state: Some(STATE_UNREACHABLE.to_owned()),
                    ..MemberStatus::default()
                },
                Some(s) => {
                    let reported =
                        |v: &NodeStatus| v.members.iter().find(|p| p.address == addr).map(|p| p.state.clone());
                    let state = leader_status.and_then(reported).or_else(|| reported(s)).unwrap_or_else(|| "UP".into());
                    MemberStatus {
                        name,
                        address: Some(addr),
                        state: Some(state),
                        ready: s.ready,
                        distro_initialized: s.distro.as_ref().is_some_and(|d| d.initialized),
                        snapshot_source: s.distro.as_ref().and_then(|d| d.snapshot_source.clone()),
                        raft_role: s.raft.as_ref().map(|r| r.role.clone()),
                        applied_index: s
                            .raft
                            .as_ref()
                            .and_then(|r| r.applied_index)
                            .and_then(|i| i64::try_from(i).ok()),
                    }
                }
            }
        })
        .collect()
}

/// Builds the new status. Pure: same input, same output.
pub fn aggregate(input: StatusInput<'_>) -> RegistryClusterStatus {
    let desired = input.desired.max(0);
    let existing = input.statefulset.replicas.max(desired);
    let address = |i: i32| names::member_address(input.cluster, input.namespace, i);
    let pod_names: Vec<String> = (0..existing).map(|i| names::pod(input.cluster, i)).collect();

    let reached: Vec<&NodeStatus> =
        (0..existing).filter_map(|i| input.observations.get(&address(i))?.status()).collect();
    let raft = raft_view(&reached);
    let leader = leader_of(raft);
    let leader_status = leader.as_deref().and_then(|l| reached.iter().copied().find(|s| s.member == l));
    let members = member_statuses(&input, existing, leader_status, &pod_names);
    let listed: Vec<Member<'_>> = (0..desired)
        .map(|i| Member {
            name: &pod_names[i as usize],
            pod: input.pods.iter().find(|p| p.ordinal == i),
            status: input.observations.get(&address(i)).and_then(Observation::status),
        })
        .collect();
    let revision = input.statefulset.update_revision.as_deref();
    let not_serving = listed.iter().filter_map(|m| Some((m.name.to_owned(), m.not_serving()?))).collect();
    let outdated = listed.iter().filter(|m| m.outdated(revision)).map(|m| m.name.to_owned()).collect();
    let facts = Facts { input: &input, desired, reached, listed, raft, leader, members, not_serving, outdated };

    let raft_quorum = conditions::raft_quorum(&facts);
    let available = conditions::available(&facts, &raft_quorum);
    let snapshot = conditions::snapshot_bootstrapped(&facts);
    let converged = conditions::membership_converged(&facts);
    let progressing = conditions::progressing(&facts, &converged);
    let degraded = conditions::degraded(&facts, &raft_quorum, &progressing);

    let mut all = input.previous.map(|p| p.conditions.clone()).unwrap_or_default();
    for c in [available, progressing, degraded, snapshot, raft_quorum, converged] {
        set_condition(&mut all, c, input.now.clone());
    }
    let voter_set: BTreeSet<String> = facts.voters().into_iter().collect();
    let replicas = if facts.raft_reported() {
        let joined: BTreeSet<String> = facts.voters().into_iter().chain(facts.learners()).collect();
        joined.len() as i32
    } else {
        facts.reached.len() as i32
    };
    let ready_replicas = facts.members[..desired as usize]
        .iter()
        .filter(|m| {
            m.ready && (!facts.raft_reported() || m.address.as_ref().is_some_and(|a| voter_set.contains(a.as_str())))
        })
        .count() as i32;
    RegistryClusterStatus {
        observed_generation: input.generation,
        replicas,
        ready_replicas,
        selector: Some(names::selector_string(input.cluster)),
        leader: facts.leader,
        members: facts.members,
        conditions: all,
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: String, generation: Option<i64>) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    }
}

fn have(names: &[String]) -> String {
    if names.len() == 1 {
        format!("{} has", names[0])
    } else {
        format!("{} have", names.join(", "))
    }
}

fn are(names: &[String]) -> String {
    if names.len() == 1 {
        format!("{} is", names[0])
    } else {
        format!("{} are", names.join(", "))
    }
}

#[cfg(test)]
mod tests;
