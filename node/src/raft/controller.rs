//! The task that makes the Raft group follow the lookup list: bootstrap on a
//! pristine member, membership changes on the leader. Decisions are the pure
//! functions of [`super::reconfigure`]; this module observes, probes and
//! executes one change at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers, ServerState};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::metrics::{ChangeAction, ChangeOutcome, RaftMetricSet};
use super::network::{self, ForwardReply, ForwardRequest};
use super::reconfigure::{self, Action, GroupView, ListedMember, NoBootstrap};
use super::types::{NodeId, Raft, RaftMetrics};
use crate::cluster::Membership;
use crate::peer::PeerTransport;

/// Everything the controller needs.
pub struct Controller {
    /// The local Raft.
    pub raft: Raft,
    /// Its id.
    pub id: NodeId,
    /// This member's address.
    pub local: String,
    /// Whether the node runs standalone.
    pub standalone: bool,
    /// Members, their states and reported Raft ids.
    pub membership: Arc<Membership>,
    /// The lookup list (the desired members).
    pub list: watch::Receiver<Vec<String>>,
    /// The peer plane's transport (probes).
    pub transport: Arc<dyn PeerTransport>,
    /// How often to look.
    pub interval: Duration,
    /// How long one probe or membership change may take.
    pub change_timeout: Duration,
    /// How far behind a learner may be and still be promoted.
    pub catch_up_lag: u64,
    /// Where to count changes.
    pub metrics: Arc<RaftMetricSet>,
}

/// The lookup list with what membership knows of each member.
pub fn listed_members(list: &[String], local: &str, id: NodeId, membership: &Membership) -> Vec<ListedMember> {
    list.iter()
        .map(|address| {
            if address == local {
                return ListedMember { address: address.clone(), raft_id: Some(id), reachable: true };
            }
            let member = membership.member(address);
            ListedMember {
                address: address.clone(),
                raft_id: member.as_ref().and_then(|m| m.raft_id),
                reachable: member.is_some_and(|m| m.state.is_healthy() && m.last_report.is_some()),
            }
        })
        .collect()
}

/// The group as the local leader sees it.
pub fn group_view(id: NodeId, metrics: &RaftMetrics) -> GroupView {
    let membership = metrics.membership_config.membership();
    let configs = membership.get_joint_config();
    let address = |id: &NodeId| membership.get_node(id).map(|n| n.addr.clone()).unwrap_or_default();
    let voters = configs.last().map(|c| c.iter().map(|v| (*v, address(v))).collect()).unwrap_or_default();
    let learners = membership.learner_ids().map(|l| (l, address(&l))).collect();
    let matched = metrics
        .replication
        .as_ref()
        .map(|r| r.iter().map(|(id, log)| (*id, log.map(|l| l.index))).collect())
        .unwrap_or_default();
    GroupView {
        leader: id,
        voters,
        learners,
        joint: configs.len() > 1,
        matched,
        last_log_index: metrics.last_log_index.unwrap_or(0),
    }
}

/// Whether the local member is the only voter of its group.
fn is_sole_voter(id: NodeId, metrics: &RaftMetrics) -> bool {
    let configs = metrics.membership_config.membership().get_joint_config();
    configs.len() == 1 && configs.iter().all(|c| c.len() == 1 && c.contains(&id))
}

impl Controller {
    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_wait: Option<NoBootstrap> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let metrics = self.raft.metrics().borrow().clone();
            let list = self.list.borrow().clone();
            let listed = listed_members(&list, &self.local, self.id, &self.membership);
            // Metrics may lag the state loaded at start: ask Raft itself
            // before considering a bootstrap.
            let initialized = metrics.membership_config.membership().nodes().next().is_some()
                || self.raft.is_initialized().await.unwrap_or(true);
            if !initialized {
                match reconfigure::bootstrap_candidate(&self.local, self.id, self.standalone, false, &listed) {
                    Ok(voters) => self.bootstrap(voters, &list).await,
                    Err(why) => {
                        if last_wait.as_ref() != Some(&why) {
                            debug!(reason = ?why, "waiting to join or initialise a Raft group");
                            last_wait = Some(why);
                        }
                    }
                }
                continue;
            }
            if metrics.current_leader.is_none() && is_sole_voter(self.id, &metrics) {
                // A single-voter group (standalone) need not wait out an
                // election timeout after a start.
                if let Err(e) = self.raft.trigger().elect().await {
                    warn!(error = %e, "could not start an election");
                }
                continue;
            }
            if metrics.state != ServerState::Leader || metrics.current_leader != Some(self.id) {
                continue;
            }
            let view = group_view(self.id, &metrics);
            if let Some(action) = reconfigure::next_action(&view, &listed, self.catch_up_lag) {
                self.execute(action).await;
            }
        }
    }

    /// Probes every other voter-to-be and initialises if they all allow it.
    async fn bootstrap(&self, voters: BTreeMap<NodeId, String>, list: &[String]) {
        let mut replies = BTreeMap::new();
        for (id, address) in voters.iter().filter(|(id, _)| **id != self.id) {
            match network::forward(self.transport.as_ref(), *id, address, ForwardRequest::Probe, self.change_timeout)
                .await
            {
                Ok(ForwardReply::Probe(reply)) => {
                    replies.insert(*id, reply);
                }
                Ok(other) => debug!(member = %address, reply = ?other, "unexpected probe reply"),
                Err(e) => debug!(member = %address, error = %e, "bootstrap probe failed"),
            }
        }
        if !self.standalone && !reconfigure::probes_allow_bootstrap(self.id, &voters, list, &replies) {
            debug!(?replies, "not initialising: some members have Raft state, see another list, or did not answer");
            return;
        }
        let nodes: BTreeMap<NodeId, BasicNode> =
            voters.iter().map(|(id, a)| (*id, BasicNode { addr: a.clone() })).collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => info!(voters = ?voters, "initialised the Raft group"),
            Err(e) => warn!(error = %e, "Raft initialisation refused"),
        }
    }

    async fn execute(&self, action: Action) {
        info!(action = ?action, "Raft membership change");
        let name = match &action {
            Action::FinishJoint(_) => ChangeAction::FinishJoint,
            Action::RemoveLearner(_) => ChangeAction::RemoveLearner,
            Action::RemoveVoter(_) => ChangeAction::RemoveVoter,
            Action::AddLearner(..) => ChangeAction::AddLearner,
            Action::Promote(_) => ChangeAction::Promote,
        };
        let raft = &self.raft;
        let change = async {
            match action.clone() {
                Action::FinishJoint(voters) => {
                    raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), false).await
                }
                Action::RemoveLearner(id) => {
                    raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false).await
                }
                Action::RemoveVoter(id) => {
                    raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false).await
                }
                Action::AddLearner(id, addr) => raft.add_learner(id, BasicNode { addr }, false).await,
                Action::Promote(id) => {
                    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false).await
                }
            }
        };
        let result = match tokio::time::timeout(self.change_timeout, change).await {
            Ok(Ok(resp)) => {
                info!(action = ?action, log = %resp.log_id, "Raft membership change committed");
                ChangeOutcome::Ok
            }
            Ok(Err(e)) => {
                warn!(action = ?action, error = %e, "Raft membership change failed");
                ChangeOutcome::Failed
            }
            Err(_) => {
                warn!(action = ?action, "Raft membership change did not commit in time; will look again");
                ChangeOutcome::Timeout
            }
        };
        self.metrics.membership_change(name, result);
    }
}
