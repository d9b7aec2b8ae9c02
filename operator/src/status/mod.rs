//! Status aggregation: from the members' own status documents to
//! `status.members[]`, the leader and the six conditions, without I/O.
//!
//! Each condition answers one question a person asks about a cluster, with
//! a CamelCase `reason` and a sentence in `message`:
//!
//! | condition | question | reasons |
//! |---|---|---|
//! | `RaftQuorum` | does a majority of Raft voters follow one leader? | `QuorumHealthy`, `NoLeader`, `QuorumLost`, `RaftNotReported`, `NoMemberReachable` |
//! | `Available` | can clients use it (persistent writes succeed)? | `QuorumHealthy`, `NoLeader`, `QuorumLost`, `MembersReady`, `NotEnoughReadyMembers`, `NoMemberReachable` |
//! | `SnapshotBootstrapped` | has every member loaded its Distro snapshot? | `AllMembersLoaded`, `SnapshotLoading`, `DistroNotReported`, `NoMemberReachable` |
//! | `MembershipConverged` | do list, pods, member views and Raft agree? | `Converged`, `PodsPending`, `MembersUnreachable`, `ServerListPending`, `RaftMembershipPending` |
//! | `Progressing` | is the operator or the cluster still moving? | `ScalingUp`, `ScalingDown`, `WaitingForRaftRemoval`, `RollingUpdate`, `Converging`, `Stable` |
//! | `Degraded` | is something wrong that is not explained by progress? | `QuorumLost`, `NoLeader`, `MembersNotReady`, `MembersDown`, `Healthy` |
//!
//! Members whose status has no `raft` section (a node build without Raft)
//! make `RaftQuorum` `Unknown` (`RaftNotReported`) and `Available` falls back
//! to "a majority of the members is ready"; no `distro` section makes
//! `SnapshotBootstrapped` `Unknown` (`DistroNotReported`). Nothing is
//! claimed that no member reported.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use roster_crds::{
    set_condition, MemberStatus, RegistryClusterStatus, CONDITION_AVAILABLE, CONDITION_DEGRADED,
    CONDITION_MEMBERSHIP_CONVERGED, CONDITION_PROGRESSING, CONDITION_RAFT_QUORUM, CONDITION_SNAPSHOT_BOOTSTRAPPED,
    STATUS_FALSE, STATUS_TRUE, STATUS_UNKNOWN,
};

use crate::names;
use crate::node_status::{NodeStatus, Observation, Observations, RaftStatus};
use crate::scaling::{ScaleStep, WaitReason};

/// State value of a member the operator could not read.
pub const STATE_UNREACHABLE: &str = "Unreachable";

/// What the StatefulSet reports, reduced to what the status needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatefulSetView {
    /// `spec.replicas` as applied.
    pub replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// Whether a rolling update is in flight (not every pod runs the
    /// current template, or the StatefulSet controller has not seen it yet).
    pub rolling: bool,
    /// What the upgrade planner did or waits for, when it ran.
    pub rollout: Option<String>,
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
    /// Statuses of the members `0..max(desired, statefulset.replicas)`.
    pub observations: &'a Observations,
    /// The status before this reconcile (for `lastTransitionTime`).
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

/// The Raft view the status trusts: the leader's own status when the leader
/// answered, otherwise the answering member with the highest term (then
/// highest committed index).
fn raft_view<'a>(statuses: &[&'a NodeStatus]) -> Option<(&'a NodeStatus, &'a RaftStatus)> {
    let with_raft = statuses.iter().filter_map(|s| s.raft.as_ref().map(|r| (*s, r)));
    if let Some(leader) = with_raft.clone().find(|(_, r)| r.role == "Leader") {
        return Some(leader);
    }
    with_raft.max_by_key(|(_, r)| (r.term, r.committed_index.unwrap_or(0)))
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

/// Builds the new status. Pure: same input, same output.
pub fn aggregate(input: StatusInput<'_>) -> RegistryClusterStatus {
    let desired = input.desired.max(0);
    let existing = input.statefulset.replicas.max(desired);
    let gen = input.generation;
    let address = |i: i32| names::member_address(input.cluster, input.namespace, i);
    let published: Vec<String> = (0..desired).map(address).collect();
    let published_set: BTreeSet<&str> = published.iter().map(String::as_str).collect();

    let reached: Vec<&NodeStatus> =
        (0..existing).filter_map(|i| input.observations.get(&address(i))?.status()).collect();
    let view = raft_view(&reached);
    let leader = leader_of(view);
    let leader_status = leader.as_deref().and_then(|l| reached.iter().copied().find(|s| s.member == l));
    let raft_reported = view.is_some();

    // ---- members[]
    let members: Vec<MemberStatus> = (0..existing)
        .map(|i| {
            let addr = address(i);
            match input.observations.get(&addr).and_then(Observation::status) {
                None => MemberStatus {
                    name: names::pod(input.cluster, i),
                    address: Some(addr),
                    state: Some(STATE_UNREACHABLE.to_owned()),
                    ..MemberStatus::default()
                },
                Some(s) => {
                    let reported =
                        |v: &NodeStatus| v.members.iter().find(|p| p.address == addr).map(|p| p.state.clone());
                    let state = leader_status.and_then(reported).or_else(|| reported(s)).unwrap_or_else(|| "UP".into());
                    MemberStatus {
                        name: names::pod(input.cluster, i),
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
        .collect();
    let desired_members = &members[..desired as usize];
    let reached_desired = desired_members.iter().filter(|m| m.state.as_deref() != Some(STATE_UNREACHABLE)).count();
    let ready_desired: Vec<&MemberStatus> = desired_members.iter().filter(|m| m.ready).collect();

    // ---- RaftQuorum
    let voters: Vec<String> = view.map(|(_, r)| r.voters.clone()).unwrap_or_default();
    let learners: Vec<String> = view.map(|(_, r)| r.learners.clone()).unwrap_or_default();
    let raft_quorum = if reached.is_empty() {
        condition(
            CONDITION_RAFT_QUORUM,
            STATUS_UNKNOWN,
            "NoMemberReachable",
            format!("none of the {existing} members answered on /roster/v1/status"),
            gen,
        )
    } else if !raft_reported {
        condition(
            CONDITION_RAFT_QUORUM,
            STATUS_UNKNOWN,
            "RaftNotReported",
            "the members do not report Raft state (a node build without Raft)".into(),
            gen,
        )
    } else if let Some(l) = &leader {
        let following = voters
            .iter()
            .filter(|v| {
                reached.iter().any(|s| {
                    &s.member == *v
                        && s.raft
                            .as_ref()
                            .is_some_and(|r| (r.role == "Leader" && &s.member == l) || r.leader.as_ref() == Some(l))
                })
            })
            .count();
        let need = majority(voters.len());
        if !voters.is_empty() && following >= need {
            condition(
                CONDITION_RAFT_QUORUM,
                STATUS_TRUE,
                "QuorumHealthy",
                format!("{following} of {} voters follow leader {} (a majority is {need})", voters.len(), short(l)),
                gen,
            )
        } else {
            condition(
                CONDITION_RAFT_QUORUM,
                STATUS_FALSE,
                "QuorumLost",
                format!(
                    "only {following} of {} voters answer and follow leader {}; a majority needs {need}",
                    voters.len(),
                    short(l)
                ),
                gen,
            )
        }
    } else {
        condition(CONDITION_RAFT_QUORUM, STATUS_FALSE, "NoLeader", "no member knows a Raft leader".into(), gen)
    };

    // ---- Available
    let available = if raft_reported {
        let status = if raft_quorum.status == STATUS_TRUE { STATUS_TRUE } else { STATUS_FALSE };
        let message = if status == STATUS_TRUE {
            format!("{}; persistent writes can succeed", raft_quorum.message)
        } else {
            raft_quorum.message.clone()
        };
        condition(CONDITION_AVAILABLE, status, &raft_quorum.reason, message, gen)
    } else if reached.is_empty() {
        condition(CONDITION_AVAILABLE, STATUS_FALSE, "NoMemberReachable", raft_quorum.message.clone(), gen)
    } else {
        let need = majority(desired as usize);
        let (status, reason) = if ready_desired.len() >= need {
            (STATUS_TRUE, "MembersReady")
        } else {
            (STATUS_FALSE, "NotEnoughReadyMembers")
        };
        condition(
            CONDITION_AVAILABLE,
            status,
            reason,
            format!(
                "{} of {desired} members are ready, a majority is {need} (members do not report Raft, so availability is judged by readiness)",
                ready_desired.len()
            ),
            gen,
        )
    };

    // ---- SnapshotBootstrapped (over the listed members)
    let distro_reported = reached.iter().any(|s| s.distro.is_some());
    let snapshot = if reached_desired == 0 {
        condition(
            CONDITION_SNAPSHOT_BOOTSTRAPPED,
            STATUS_UNKNOWN,
            "NoMemberReachable",
            format!("none of the {desired} members answered on /roster/v1/status"),
            gen,
        )
    } else if !distro_reported {
        condition(
            CONDITION_SNAPSHOT_BOOTSTRAPPED,
            STATUS_UNKNOWN,
            "DistroNotReported",
            "the members do not report Distro state (a node build without Distro)".into(),
            gen,
        )
    } else {
        let loading: Vec<String> =
            desired_members.iter().filter(|m| !m.distro_initialized).map(|m| m.name.clone()).collect();
        if loading.is_empty() {
            condition(
                CONDITION_SNAPSHOT_BOOTSTRAPPED,
                STATUS_TRUE,
                "AllMembersLoaded",
                format!("all {desired} members loaded their Distro snapshot"),
                gen,
            )
        } else {
            condition(
                CONDITION_SNAPSHOT_BOOTSTRAPPED,
                STATUS_FALSE,
                "SnapshotLoading",
                format!("{} not loaded the Distro snapshot yet (or did not answer)", have(&loading)),
                gen,
            )
        }
    };

    // ---- MembershipConverged
    let unreachable_desired: Vec<String> = desired_members
        .iter()
        .filter(|m| m.state.as_deref() == Some(STATE_UNREACHABLE))
        .map(|m| m.name.clone())
        .collect();
    let stale_view = desired_members.iter().zip(0..).find_map(|(m, i)| {
        let s = input.observations.get(&address(i))?.status()?;
        let seen: BTreeSet<&str> = s.members.iter().map(|p| p.address.as_str()).collect();
        (seen != published_set).then(|| (m.name.clone(), seen.len()))
    });
    let voter_set: BTreeSet<&str> = voters.iter().map(String::as_str).collect();
    let converged = if input.statefulset.replicas != desired {
        let message = match input.step {
            ScaleStep::WaitForRaftRemoval { reason: WaitReason::StillCounted(m), .. } => format!(
                "the StatefulSet keeps {} pods for {desired} listed members until Raft removes {}",
                input.statefulset.replicas,
                list(m)
            ),
            _ => format!("the StatefulSet runs {} pods, the list names {desired} members", input.statefulset.replicas),
        };
        condition(CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "PodsPending", message, gen)
    } else if !unreachable_desired.is_empty() {
        condition(
            CONDITION_MEMBERSHIP_CONVERGED,
            STATUS_FALSE,
            "MembersUnreachable",
            format!("cannot read the status of {}", unreachable_desired.join(", ")),
            gen,
        )
    } else if let Some((who, n)) = stale_view {
        condition(
            CONDITION_MEMBERSHIP_CONVERGED,
            STATUS_FALSE,
            "ServerListPending",
            format!("{who} sees {n} members, not the {desired} the server list names"),
            gen,
        )
    } else if raft_reported && (voter_set != published_set || !learners.is_empty()) {
        condition(
            CONDITION_MEMBERSHIP_CONVERGED,
            STATUS_FALSE,
            "RaftMembershipPending",
            format!(
                "Raft voters are [{}] and learners [{}], the server list names [{}]",
                list(&voters),
                list(&learners),
                list(&published)
            ),
            gen,
        )
    } else {
        let message = if raft_reported {
            format!("the server list, the pods, the member views and the Raft voters name the same {desired} members")
        } else {
            format!(
                "the server list, the pods and the member views name the same {desired} members (the members do not report Raft)"
            )
        };
        condition(CONDITION_MEMBERSHIP_CONVERGED, STATUS_TRUE, "Converged", message, gen)
    };

    // ---- Progressing
    let not_ready: Vec<String> = desired_members.iter().filter(|m| !m.ready).map(|m| m.name.clone()).collect();
    let progressing = match input.step {
        ScaleStep::Create { replicas } => condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            "ScalingUp",
            format!("creating the StatefulSet with {replicas} members"),
            gen,
        ),
        ScaleStep::ScaleUp { from, to } => condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            "ScalingUp",
            format!("scaling up from {from} to {to} members; the new members are in the server list"),
            gen,
        ),
        ScaleStep::ScaleDown { from, to } => condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            "ScalingDown",
            format!("Raft let the highest members go; lowering the StatefulSet from {from} to {to}"),
            gen,
        ),
        ScaleStep::WaitForRaftRemoval { replicas, desired, reason } => condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            "WaitingForRaftRemoval",
            match reason {
                WaitReason::StillCounted(m) => format!(
                    "scaling down from {replicas} to {desired}: waiting until Raft no longer counts {}",
                    list(m)
                ),
                WaitReason::NoStayingMemberAnswered => format!(
                    "scaling down from {replicas} to {desired}: no staying member answered, so it is unknown whether Raft still counts the departing ones"
                ),
            },
            gen,
        ),
        ScaleStep::Steady { .. } if input.statefulset.rolling => condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            "RollingUpdate",
            input
                .statefulset
                .rollout
                .clone()
                .unwrap_or_else(|| "the StatefulSet is rolling its pods to a new template".into()),
            gen,
        ),
        ScaleStep::Steady { .. }
            if converged.reason == "ServerListPending" || converged.reason == "RaftMembershipPending" =>
        {
            condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            "Converging",
            format!("membership is converging: {}", converged.message),
            gen,
            )
        }
        ScaleStep::Steady { replicas } => condition(
            CONDITION_PROGRESSING,
            STATUS_FALSE,
            "Stable",
            format!("{replicas} members; no scaling, rolling or membership change in progress"),
            gen,
        ),
    };

    // ---- Degraded
    let down: Vec<String> =
        desired_members.iter().filter(|m| m.state.as_deref() == Some("DOWN")).map(|m| m.name.clone()).collect();
    let idle = progressing.status != STATUS_TRUE;
    let degraded = if raft_quorum.status == STATUS_FALSE {
        condition(CONDITION_DEGRADED, STATUS_TRUE, &raft_quorum.reason, raft_quorum.message.clone(), gen)
    } else if idle && !not_ready.is_empty() {
        condition(
            CONDITION_DEGRADED,
            STATUS_TRUE,
            "MembersNotReady",
            format!("{} not ready while nothing is in progress", are(&not_ready)),
            gen,
        )
    } else if idle && !down.is_empty() {
        condition(CONDITION_DEGRADED, STATUS_TRUE, "MembersDown", format!("{} DOWN for the cluster", are(&down)), gen)
    } else {
        condition(CONDITION_DEGRADED, STATUS_FALSE, "Healthy", "no unexplained problem".into(), gen)
    };

    // ---- assemble
    let mut conditions = input.previous.map(|p| p.conditions.clone()).unwrap_or_default();
    for c in [available, progressing, degraded, snapshot, raft_quorum, converged] {
        set_condition(&mut conditions, c, input.now.clone());
    }
    let replicas = if raft_reported {
        let joined: BTreeSet<&String> = voters.iter().chain(&learners).collect();
        joined.len() as i32
    } else {
        reached.len() as i32
    };
    let ready_replicas = desired_members
        .iter()
        .filter(|m| m.ready && (!raft_reported || m.address.as_ref().is_some_and(|a| voter_set.contains(a.as_str()))))
        .count() as i32;
    RegistryClusterStatus {
        observed_generation: gen,
        replicas,
        ready_replicas,
        selector: Some(names::selector_string(input.cluster)),
        leader,
        members,
        conditions,
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
