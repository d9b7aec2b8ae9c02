//! One function per condition, each from the [`Facts`] of one reconcile.
//! The module docs of [`super`] say what each condition means.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use roster_crds::{
    CONDITION_AVAILABLE, CONDITION_DEGRADED, CONDITION_MEMBERSHIP_CONVERGED, CONDITION_PROGRESSING,
    CONDITION_RAFT_QUORUM, CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_FALSE, STATUS_TRUE, STATUS_UNKNOWN,
};

use super::{are, condition, have, list, majority, short, Facts, Failure, STATE_UNREACHABLE};
use crate::scaling::{ScaleStep, WaitReason};

/// Container waiting reasons that are failures, not a start in progress:
/// what the kubelet reports when a member cannot run.
const FAILING: [&str; 7] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// `RaftQuorum`: a majority of the voters answers and follows one leader.
pub(super) fn raft_quorum(f: &Facts<'_>) -> Condition {
    let gen = f.input.generation;
    let existing = f.input.statefulset.replicas.max(f.desired);
    let Some((_, view)) = f.raft else {
        return if f.reached.is_empty() {
            condition(
                CONDITION_RAFT_QUORUM,
                STATUS_UNKNOWN,
                "NoMemberReachable",
                format!("none of the {existing} members answered on /roster/v1/status"),
                gen,
            )
        } else {
            condition(
                CONDITION_RAFT_QUORUM,
                STATUS_UNKNOWN,
                "RaftNotReported",
                "the members do not report Raft state (a node build without Raft)".into(),
                gen,
            )
        };
    };
    let Some(l) = &f.leader else {
        return condition(CONDITION_RAFT_QUORUM, STATUS_FALSE, "NoLeader", "no member knows a Raft leader".into(), gen);
    };
    let voters = f.voters();
    // A voter is with the leader when it follows it, or when it is in the
    // leader's term without a leader yet: it voted in the election the
    // leader just won and has not heard its first heartbeat (one term has
    // one leader), which is no lost quorum.
    let follows = |s: &crate::node_status::NodeStatus| {
        s.raft.as_ref().is_some_and(|r| {
            (r.role == "Leader" && &s.member == l)
                || r.leader.as_ref() == Some(l)
                || (r.term == view.term && r.leader.as_deref().is_none_or(str::is_empty))
        })
    };
    let following = voters.iter().filter(|v| f.reached.iter().any(|s| &s.member == *v && follows(s))).count();
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
}

/// `Available`: a majority of the listed members serves through the client
/// Service, and (with Raft) the group is quorate.
pub(super) fn available(f: &Facts<'_>, raft_quorum: &Condition) -> Condition {
    let gen = f.input.generation;
    if f.reached.is_empty() {
        return condition(CONDITION_AVAILABLE, STATUS_FALSE, "NoMemberReachable", raft_quorum.message.clone(), gen);
    }
    if f.raft_reported() && raft_quorum.status != STATUS_TRUE {
        return condition(CONDITION_AVAILABLE, STATUS_FALSE, &raft_quorum.reason, raft_quorum.message.clone(), gen);
    }
    let desired = f.desired as usize;
    let serving = desired - f.not_serving.len();
    let need = majority(desired);
    let why_not = || {
        let named: Vec<String> = f.not_serving.iter().map(|(m, why)| format!("{m}: {why}")).collect();
        named.join("; ")
    };
    match (f.raft_reported(), serving >= need) {
        (true, true) => condition(
            CONDITION_AVAILABLE,
            STATUS_TRUE,
            "Serving",
            format!(
                "{serving} of {desired} members serve clients (pod Ready, Distro snapshot loaded) and {}",
                raft_quorum.message
            ),
            gen,
        ),
        (true, false) => condition(
            CONDITION_AVAILABLE,
            STATUS_FALSE,
            "NotEnoughServingMembers",
            format!("only {serving} of {desired} members serve clients, a majority is {need} ({})", why_not()),
            gen,
        ),
        (false, ready) => condition(
            CONDITION_AVAILABLE,
            if ready { STATUS_TRUE } else { STATUS_FALSE },
            if ready { "MembersReady" } else { "NotEnoughReadyMembers" },
            format!(
                "{serving} of {desired} members are ready, a majority is {need} (members do not report Raft, so availability is judged by readiness)"
            ),
            gen,
        ),
    }
}

/// `SnapshotBootstrapped`: every listed member loaded its Distro snapshot.
pub(super) fn snapshot_bootstrapped(f: &Facts<'_>) -> Condition {
    let gen = f.input.generation;
    let desired = f.desired;
    let listed = &f.members[..desired as usize];
    if listed.iter().all(|m| m.state.as_deref() == Some(STATE_UNREACHABLE)) {
        return condition(
            CONDITION_SNAPSHOT_BOOTSTRAPPED,
            STATUS_UNKNOWN,
            "NoMemberReachable",
            format!("none of the {desired} members answered on /roster/v1/status"),
            gen,
        );
    }
    if !f.reached.iter().any(|s| s.distro.is_some()) {
        return condition(
            CONDITION_SNAPSHOT_BOOTSTRAPPED,
            STATUS_UNKNOWN,
            "DistroNotReported",
            "the members do not report Distro state (a node build without Distro)".into(),
            gen,
        );
    }
    let loading: Vec<String> = listed.iter().filter(|m| !m.distro_initialized).map(|m| m.name.clone()).collect();
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
}

/// `MembershipConverged`: the server list, the pods, every member's own
/// list and the Raft voters name the same members.
pub(super) fn membership_converged(f: &Facts<'_>) -> Condition {
    let gen = f.input.generation;
    let desired = f.desired;
    let sts_replicas = f.input.statefulset.replicas;
    let published = f.published();
    let published_set: BTreeSet<&str> = published.iter().map(String::as_str).collect();
    if sts_replicas != desired {
        let message = match f.input.step {
            ScaleStep::WaitForRaftRemoval { reason: WaitReason::StillCounted(m), .. } => format!(
                "the StatefulSet keeps {sts_replicas} pods for {desired} listed members until Raft removes {}",
                list(m)
            ),
            _ => format!("the StatefulSet runs {sts_replicas} pods, the list names {desired} members"),
        };
        return condition(CONDITION_MEMBERSHIP_CONVERGED, STATUS_FALSE, "PodsPending", message, gen);
    }
    let unreachable: Vec<String> = f.listed.iter().filter(|m| m.status.is_none()).map(|m| m.name.to_owned()).collect();
    if !unreachable.is_empty() {
        return condition(
            CONDITION_MEMBERSHIP_CONVERGED,
            STATUS_FALSE,
            "MembersUnreachable",
            format!("cannot read the status of {}", unreachable.join(", ")),
            gen,
        );
    }
    let stale_view = f.listed.iter().find_map(|m| {
        let seen: BTreeSet<&str> = m.status?.members.iter().map(|p| p.address.as_str()).collect();
        (seen != published_set).then(|| (m.name.to_owned(), seen.len()))
    });
    if let Some((who, n)) = stale_view {
        return condition(
            CONDITION_MEMBERSHIP_CONVERGED,
            STATUS_FALSE,
            "ServerListPending",
            format!("{who} sees {n} members, not the {desired} the server list names"),
            gen,
        );
    }
    let voters = f.voters();
    let learners = f.learners();
    let voter_set: BTreeSet<&str> = voters.iter().map(String::as_str).collect();
    if f.raft_reported() && (voter_set != published_set || !learners.is_empty()) {
        return condition(
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
        );
    }
    let message = if f.raft_reported() {
        format!("the server list, the pods, the member views and the Raft voters name the same {desired} members")
    } else {
        format!(
            "the server list, the pods and the member views name the same {desired} members (the members do not report Raft)"
        )
    };
    condition(CONDITION_MEMBERSHIP_CONVERGED, STATUS_TRUE, "Converged", message, gen)
}

/// `Progressing`: from a change of the spec until every listed member runs
/// the current template, serves, and the membership converged.
pub(super) fn progressing(f: &Facts<'_>, converged: &Condition) -> Condition {
    let gen = f.input.generation;
    let sts = f.input.statefulset;
    let step = |reason: &str, message: String| condition(CONDITION_PROGRESSING, STATUS_TRUE, reason, message, gen);
    match f.input.step {
        ScaleStep::Create { replicas } => {
            return step("ScalingUp", format!("creating the StatefulSet with {replicas} members"));
        }
        ScaleStep::ScaleUp { from, to } => {
            return step(
                "ScalingUp",
                format!("scaling up from {from} to {to} members; the new members are in the server list"),
            );
        }
        ScaleStep::ScaleDown { from, to } => {
            return step(
                "ScalingDown",
                format!("Raft let the highest members go; lowering the StatefulSet from {from} to {to}"),
            );
        }
        ScaleStep::WaitForRaftRemoval { replicas, desired, reason } => {
            let message = match reason {
                WaitReason::StillCounted(m) => {
                    format!("scaling down from {replicas} to {desired}: waiting until Raft no longer counts {}", list(m))
                }
                WaitReason::NoStayingMemberAnswered => format!(
                    "scaling down from {replicas} to {desired}: no staying member answered, so it is unknown whether Raft still counts the departing ones"
                ),
            };
            return step("WaitingForRaftRemoval", message);
        }
        ScaleStep::Steady { .. } => {}
    }
    if let Some(Failure::Refused(why)) = &sts.failure {
        return condition(
            CONDITION_PROGRESSING,
            STATUS_FALSE,
            "StatefulSetRefused",
            format!("the spec cannot be carried out: the API server refused the StatefulSet: {why}"),
            gen,
        );
    }
    if f.rolling() {
        let message =
            sts.rollout.clone().unwrap_or_else(|| "the StatefulSet is rolling its pods to a new template".into());
        return step("RollingUpdate", message);
    }
    if !f.carried_out_before() {
        if !f.not_serving.is_empty() {
            let named: Vec<String> = f.not_serving.iter().map(|(m, why)| format!("{m} ({why})")).collect();
            return step("WaitingForMembers", format!("waiting for {} to serve", named.join(", ")));
        }
        if converged.status != STATUS_TRUE {
            return step("Converging", format!("membership is converging: {}", converged.message));
        }
    }
    condition(
        CONDITION_PROGRESSING,
        STATUS_FALSE,
        "Stable",
        format!("{} members run the current template; no scaling, rolling or membership change in progress", f.desired),
        gen,
    )
}

/// `Degraded`: what is wrong and not explained by planned work.
pub(super) fn degraded(f: &Facts<'_>, raft_quorum: &Condition, progressing: &Condition) -> Condition {
    let gen = f.input.generation;
    let yes = |reason: &str, message: String| condition(CONDITION_DEGRADED, STATUS_TRUE, reason, message, gen);
    match &f.input.statefulset.failure {
        Some(Failure::Refused(why)) => {
            return yes("StatefulSetRefused", format!("the API server refused the StatefulSet: {why}"));
        }
        Some(Failure::PodCreation(why)) => {
            return yes("PodCreationFailed", format!("the StatefulSet cannot create member pods: {why}"));
        }
        None => {}
    }
    let failing: Vec<String> = f
        .listed
        .iter()
        .filter_map(|m| {
            let waiting = m.pod?.waiting.as_deref()?;
            FAILING.contains(&waiting).then(|| format!("{} ({waiting})", m.name))
        })
        .collect();
    if !failing.is_empty() {
        return yes("PodFailing", format!("{} failing", are(&failing)));
    }
    let not_serving: Vec<String> = f.not_serving.iter().map(|(m, _)| m.clone()).collect();
    if progressing.status == STATUS_TRUE {
        // Planned work explains members that do not serve yet and a Raft
        // election; a leader that lost its followers it does not.
        if raft_quorum.reason == "QuorumLost" {
            return yes("QuorumLost", raft_quorum.message.clone());
        }
        if !not_serving.is_empty() {
            return condition(
                CONDITION_DEGRADED,
                STATUS_FALSE,
                "AsPlanned",
                format!(
                    "{} not serving yet, as planned while {} ({})",
                    are(&not_serving),
                    progressing.reason,
                    progressing.message
                ),
                gen,
            );
        }
    } else {
        if raft_quorum.status == STATUS_FALSE {
            return yes(&raft_quorum.reason, raft_quorum.message.clone());
        }
        if !not_serving.is_empty() {
            let named: Vec<String> = f.not_serving.iter().map(|(m, why)| format!("{m}: {why}")).collect();
            return yes(
                "MembersNotReady",
                format!(
                    "{} not serving while no change of the spec is in progress ({})",
                    are(&not_serving),
                    named.join("; ")
                ),
            );
        }
        let down: Vec<String> = f.members[..f.desired as usize]
            .iter()
            .filter(|m| m.state.as_deref() == Some("DOWN"))
            .map(|m| m.name.clone())
            .collect();
        if !down.is_empty() {
            return yes("MembersDown", format!("{} DOWN for the cluster", are(&down)));
        }
    }
    condition(CONDITION_DEGRADED, STATUS_FALSE, "Healthy", "no unexplained problem".into(), gen)
}
