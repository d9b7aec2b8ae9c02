//! How the Raft group follows the lookup list: pure decisions from observed
//! state to one next step, tested exhaustively below. The IO around them is
//! in [`super::controller`].
//!
//! # Bootstrap (exactly once)
//!
//! A new cluster is initialised by exactly one member: the one with the
//! smallest address in the lookup list, once every listed member has
//! reported its Raft id, and only after every other member has answered a
//! probe saying that it has **no Raft state** and sees **the same list**.
//! The initialiser makes every listed member a voter at once (they are all
//! pristine, so no one can hold a competing configuration). A member that has
//! any Raft state never initialises, so a restart, a late member or a wiped
//! member can never start a second cluster; those join through the leader.
//! A standalone node initialises itself as a single voter on first start.
//!
//! # Following the list (on the leader, one change at a time)
//!
//! [`next_action`] picks one step in this order:
//! 1. finish a joint configuration left by a leader that died mid-change;
//! 2. remove learners that left the list (or whose address now reports
//!    another id: a wiped volume);
//! 3. remove such voters, never one whose removal leaves fewer live voters
//!    than a majority of the new set, and the leader itself last;
//! 4. add listed members that answer reports (with their reported id) as
//!    learners;
//! 5. promote a learner whose replication has caught up with the leader's log.

use std::collections::{BTreeMap, BTreeSet};

use super::network::ProbeReply;
use super::types::NodeId;

/// A listed member as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    /// `host:mainPort`.
    pub address: String,
    /// The Raft id it reports, once known.
    pub raft_id: Option<NodeId>,
    /// Whether it answers member reports (`UP` or `SUSPICIOUS`).
    pub reachable: bool,
}

/// Why the local member does not initialise a cluster (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoBootstrap {
    /// It already has Raft state.
    Initialized,
    /// It is not in the list it sees.
    NotListed,
    /// Another member has the smallest address.
    NotSmallest,
    /// Some members have not reported their Raft id yet.
    IdsUnknown,
}

/// Whether the local member should try to initialise, and with which
/// voters: `Ok(voters)` means "probe the others, then initialise with these".
pub fn bootstrap_candidate(
    local: &str,
    local_id: NodeId,
    standalone: bool,
    initialized: bool,
    list: &[ListedMember],
) -> Result<BTreeMap<NodeId, String>, NoBootstrap> {
    if initialized {
        return Err(NoBootstrap::Initialized);
    }
    if standalone {
        return Ok(BTreeMap::from([(local_id, local.to_string())]));
    }
    if !list.iter().any(|m| m.address == local) {
        return Err(NoBootstrap::NotListed);
    }
    if list.iter().map(|m| m.address.as_str()).min() != Some(local) {
        return Err(NoBootstrap::NotSmallest);
    }
    let mut voters = BTreeMap::new();
    for m in list {
        let id = if m.address == local { Some(local_id) } else { m.raft_id };
        match id {
            Some(id) => voters.insert(id, m.address.clone()),
            None => return Err(NoBootstrap::IdsUnknown),
        };
    }
    Ok(voters)
}

/// Whether the probe answers allow initialising `voters`: every other
/// voter answered, with the id we expect, no Raft state and the same list.
pub fn probes_allow_bootstrap(
    local_id: NodeId,
    voters: &BTreeMap<NodeId, String>,
    list: &[String],
    replies: &BTreeMap<NodeId, ProbeReply>,
) -> bool {
    let mut list = list.to_vec();
    list.sort();
    voters
        .keys()
        .filter(|id| **id != local_id)
        .all(|id| replies.get(id).is_some_and(|r| r.id == *id && !r.initialized && r.members == list))
}

/// The Raft membership as the leader sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    /// The leader's own id.
    pub leader: NodeId,
    /// Voters of the effective config (the last one when joint), with their addresses.
    pub voters: BTreeMap<NodeId, String>,
    /// Learners, with their addresses.
    pub learners: BTreeMap<NodeId, String>,
    /// Whether the config is joint (a change was left half done).
    pub joint: bool,
    /// The highest log index each member is known to hold (from replication progress).
    pub matched: BTreeMap<NodeId, Option<u64>>,
    /// The leader's last log index.
    pub last_log_index: u64,
}

/// One membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Leave a joint config for these voters.
    FinishJoint(BTreeSet<NodeId>),
    /// Remove a learner.
    RemoveLearner(NodeId),
    /// Remove a voter (not keeping it as learner).
    RemoveVoter(NodeId),
    /// Add a member as learner.
    AddLearner(NodeId, String),
    /// Make a learner a voter.
    Promote(NodeId),
}

/// Whether `id` at `address` is what the list wants there.
fn wanted(list: &[ListedMember], id: NodeId, address: &str) -> bool {
    list.iter().any(|m| m.address == address && m.raft_id == Some(id))
}

/// Whether the voter `id` at `address` can vote now: the leader itself, or
/// a reachable listed member reporting that id.
fn live(view: &GroupView, list: &[ListedMember], id: NodeId, address: &str) -> bool {
    id == view.leader || list.iter().any(|m| m.address == address && m.raft_id == Some(id) && m.reachable)
}

/// Whether the voter set `voters` has a live majority.
fn has_live_quorum(view: &GroupView, list: &[ListedMember], voters: &BTreeMap<NodeId, String>) -> bool {
    let live_count = voters.iter().filter(|(id, a)| live(view, list, **id, a)).count();
    !voters.is_empty() && live_count > voters.len() / 2
}

/// The next membership change, or `None` when the group matches the list
/// (or nothing can be done safely now). `catch_up_lag` is how many entries a
/// learner may be behind the leader's last log and still be promoted.
pub fn next_action(view: &GroupView, list: &[ListedMember], catch_up_lag: u64) -> Option<Action> {
    if view.joint {
        return Some(Action::FinishJoint(view.voters.keys().copied().collect()));
    }
    if let Some((id, _)) = view.learners.iter().find(|(id, a)| !wanted(list, **id, a)) {
        return Some(Action::RemoveLearner(*id));
    }
    let stale: Vec<NodeId> = view
        .voters
        .iter()
        .filter(|(id, a)| !wanted(list, **id, a))
        .map(|(id, _)| *id)
        .filter(|id| *id != view.leader)
        .collect();
    for id in stale {
        let mut rest = view.voters.clone();
        rest.remove(&id);
        if has_live_quorum(view, list, &rest) {
            return Some(Action::RemoveVoter(id));
        }
    }
    let known: BTreeSet<NodeId> = view.voters.keys().chain(view.learners.keys()).copied().collect();
    if let Some(m) = list.iter().find(|m| m.reachable && m.raft_id.is_some_and(|id| !known.contains(&id))) {
        if let Some(id) = m.raft_id {
            return Some(Action::AddLearner(id, m.address.clone()));
        }
    }
    let caught_up = |id: &NodeId| {
        view.matched.get(id).copied().flatten().is_some_and(|m| m.saturating_add(catch_up_lag) >= view.last_log_index)
    };
    if let Some((id, _)) =
        view.learners.iter().find(|(id, a)| wanted(list, **id, a) && live(view, list, **id, a) && caught_up(id))
    {
        return Some(Action::Promote(*id));
    }
    // The leader itself left the list: remove it last, once the others can
    // carry on without it.
    if let Some(address) = view.voters.get(&view.leader) {
        if !wanted(list, view.leader, address) && view.voters.len() > 1 {
            let mut rest = view.voters.clone();
            rest.remove(&view.leader);
            if has_live_quorum(view, list, &rest) {
                return Some(Action::RemoveVoter(view.leader));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(address: &str, id: u64, reachable: bool) -> ListedMember {
        ListedMember { address: address.into(), raft_id: Some(id), reachable }
    }

    fn group(leader: u64, voters: &[(u64, &str)], learners: &[(u64, &str)]) -> GroupView {
        let voters: BTreeMap<u64, String> = voters.iter().map(|(i, a)| (*i, a.to_string())).collect();
        let learners: BTreeMap<u64, String> = learners.iter().map(|(i, a)| (*i, a.to_string())).collect();
        let matched = voters.keys().chain(learners.keys()).map(|i| (*i, Some(10))).collect();
        GroupView { leader, voters, learners, joint: false, matched, last_log_index: 10 }
    }

    #[test]
    fn bootstrap_is_the_smallest_listed_pristine_member_with_every_id_known() {
        let list = vec![m("b:1", 2, true), m("a:1", 1, true), m("c:1", 3, true)];
        let voters = bootstrap_candidate("a:1", 1, false, false, &list).expect("candidate");
        assert_eq!(voters.len(), 3);
        assert_eq!(bootstrap_candidate("b:1", 2, false, false, &list), Err(NoBootstrap::NotSmallest));
        assert_eq!(bootstrap_candidate("a:1", 1, false, true, &list), Err(NoBootstrap::Initialized));
        assert_eq!(bootstrap_candidate("z:1", 9, false, false, &list), Err(NoBootstrap::NotListed));
        let unknown = vec![m("a:1", 1, true), ListedMember { address: "b:1".into(), raft_id: None, reachable: true }];
        assert_eq!(bootstrap_candidate("a:1", 1, false, false, &unknown), Err(NoBootstrap::IdsUnknown));
        // Standalone: itself, whatever the list.
        let alone = bootstrap_candidate("a:1", 1, true, false, &[]).expect("standalone");
        assert_eq!(alone, BTreeMap::from([(1, "a:1".to_string())]));
        assert_eq!(bootstrap_candidate("a:1", 1, true, true, &[]), Err(NoBootstrap::Initialized));
    }

    #[test]
    fn probes_must_all_say_pristine_with_the_same_list() {
        let voters: BTreeMap<u64, String> = [(1, "a:1"), (2, "b:1"), (3, "c:1")].map(|(i, a)| (i, a.into())).into();
        let list = vec!["c:1".to_string(), "a:1".into(), "b:1".into()];
        let sorted = vec!["a:1".to_string(), "b:1".into(), "c:1".into()];
        let reply = |id, initialized, members: &Vec<String>| ProbeReply { id, initialized, members: members.clone() };
        let good: BTreeMap<u64, ProbeReply> = [(2, reply(2, false, &sorted)), (3, reply(3, false, &sorted))].into();
        assert!(probes_allow_bootstrap(1, &voters, &list, &good));
        let mut missing = good.clone();
        missing.remove(&3);
        assert!(!probes_allow_bootstrap(1, &voters, &list, &missing), "an unanswered probe blocks");
        let mut has_state = good.clone();
        has_state.insert(3, reply(3, true, &sorted));
        assert!(!probes_allow_bootstrap(1, &voters, &list, &has_state), "Raft state anywhere blocks");
        let mut other_list = good.clone();
        other_list.insert(2, reply(2, false, &vec!["a:1".into(), "b:1".into()]));
        assert!(!probes_allow_bootstrap(1, &voters, &list, &other_list), "a different list blocks");
        let mut wrong_id = good;
        wrong_id.insert(2, reply(5, false, &sorted));
        assert!(!probes_allow_bootstrap(1, &voters, &list, &wrong_id));
    }

    #[test]
    fn a_matching_group_needs_nothing() {
        let g = group(1, &[(1, "a"), (2, "b"), (3, "c")], &[]);
        let list = vec![m("a", 1, true), m("b", 2, true), m("c", 3, false)];
        assert_eq!(next_action(&g, &list, 0), None);
    }

    #[test]
    fn scale_up_adds_learners_then_promotes_caught_up_ones() {
        let mut g = group(1, &[(1, "a"), (2, "b"), (3, "c")], &[]);
        let mut list = vec![m("a", 1, true), m("b", 2, true), m("c", 3, true), m("d", 4, true), m("e", 5, false)];
        assert_eq!(next_action(&g, &list, 0), Some(Action::AddLearner(4, "d".into())));
        g.learners.insert(4, "d".into());
        g.matched.insert(4, Some(3));
        assert_eq!(next_action(&g, &list, 0), None, "not caught up; e is unreachable");
        assert_eq!(next_action(&g, &list, 7), Some(Action::Promote(4)), "within the allowed lag");
        g.matched.insert(4, Some(10));
        assert_eq!(next_action(&g, &list, 0), Some(Action::Promote(4)));
        list[4].reachable = true;
        assert_eq!(next_action(&g, &list, 0), Some(Action::AddLearner(5, "e".into())), "additions come first");
        // An unknown id is waited for.
        list.push(ListedMember { address: "f".into(), raft_id: None, reachable: true });
        g.learners.insert(5, "e".into());
        g.matched.insert(5, None);
        assert_eq!(next_action(&g, &list, 0), Some(Action::Promote(4)));
    }

    #[test]
    fn scale_down_removes_voters_but_never_below_a_live_quorum() {
        let g = group(1, &[(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")], &[]);
        let list = vec![m("a", 1, true), m("b", 2, true), m("c", 3, true)];
        assert_eq!(next_action(&g, &list, 0), Some(Action::RemoveVoter(4)));
        // With b and c unreachable, removing d leaves {a,b,c,e}: live a only → wait.
        let list = vec![m("a", 1, true), m("b", 2, false), m("c", 3, false), m("e", 5, true)];
        assert_eq!(next_action(&g, &list, 0), None);
        let list = vec![m("a", 1, true), m("b", 2, true), m("c", 3, false), m("e", 5, true)];
        assert_eq!(next_action(&g, &list, 0), Some(Action::RemoveVoter(4)));
    }

    #[test]
    fn learners_that_left_go_first() {
        let g = group(1, &[(1, "a"), (2, "b"), (3, "c")], &[(9, "z")]);
        let list = vec![m("a", 1, true), m("b", 2, true), m("c", 3, true)];
        assert_eq!(next_action(&g, &list, 0), Some(Action::RemoveLearner(9)));
    }

    #[test]
    fn an_address_with_a_new_id_replaces_the_old_id() {
        let mut g = group(1, &[(1, "a"), (2, "b"), (3, "c")], &[]);
        let list = vec![m("a", 1, true), m("b", 2, true), m("c", 33, true)];
        assert_eq!(next_action(&g, &list, 0), Some(Action::RemoveVoter(3)));
        g.voters.remove(&3);
        assert_eq!(next_action(&g, &list, 0), Some(Action::AddLearner(33, "c".into())));
        g.learners.insert(33, "c".into());
        g.matched.insert(33, Some(10));
        assert_eq!(next_action(&g, &list, 0), Some(Action::Promote(33)));
    }

    #[test]
    fn the_leader_removes_itself_last() {
        let g = group(1, &[(1, "a"), (2, "b"), (3, "c")], &[]);
        let list = vec![m("b", 2, true), m("c", 3, true), m("d", 4, true)];
        assert_eq!(next_action(&g, &list, 0), Some(Action::AddLearner(4, "d".into())));
        let list = vec![m("b", 2, true), m("c", 3, true)];
        assert_eq!(next_action(&g, &list, 0), Some(Action::RemoveVoter(1)));
        let list = vec![m("b", 2, true), m("c", 3, false)];
        assert_eq!(next_action(&g, &list, 0), None, "{{b,c}} with c unreachable has no live quorum");
        let alone = group(1, &[(1, "a")], &[]);
        assert_eq!(next_action(&alone, &[m("b", 2, false)], 0), None, "the last voter stays");
    }

    #[test]
    fn a_joint_config_is_finished_first() {
        let mut g = group(1, &[(1, "a"), (2, "b")], &[(9, "z")]);
        g.joint = true;
        assert_eq!(next_action(&g, &[], 0), Some(Action::FinishJoint(BTreeSet::from([1, 2]))));
    }

    #[test]
    fn crashed_between_two_steps_resumes() {
        // The learner was added, then the leader died before promoting it:
        // the next leader (2) promotes it.
        let mut g = group(2, &[(1, "a"), (2, "b"), (3, "c")], &[(4, "d")]);
        g.matched.insert(4, Some(10));
        let list = vec![m("a", 1, false), m("b", 2, true), m("c", 3, true), m("d", 4, true)];
        assert_eq!(next_action(&g, &list, 0), Some(Action::Promote(4)));
    }
}
