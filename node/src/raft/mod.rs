//! Raft (CP): persistent instances, service settings, durable on disk and
//! replicated to every member (`docs/ARCHITECTURE.md`, "One persistent write").
//!
//! Roster uses `openraft` (pinned exactly, 0.9 stable line) behind this module
//! and keeps the three planes of its examples apart: Raft RPCs on the peer
//! plane ([`network`], through [`crate::peer`]), group administration
//! ([`controller`], [`reconfigure`])
//! and the application API ([`RaftNode::write`], used by the client handlers).
//!
//! # How a write travels
//! A handler validates its input, builds a [`Command`] and calls
//! [`RaftNode::write`]. On the leader the command is appended to the log,
//! fsync'd on a majority, applied by every member's [`StateMachine`] (which
//! validates it deterministically against the replicated data and mirrors the
//! result into the naming store, so reads stay local and pushes fire), and the
//! outcome goes back to the client. On a follower the command is forwarded to
//! the leader with the `RaftForward` peer RPC. Only a committed write is
//! acknowledged; a write whose outcome is unknown (the leader went silent)
//! is reported as an error, never as success.
//!
//! # Layout
//! - [`types`]: the openraft type configuration.
//! - [`command`]: commands, the replicated data and the pure apply.
//! - [`log_store`]: the durable log, vote and committed pointer (redb).
//! - [`state_machine`]: the durable state machine and snapshots (redb), mirrored
//!   into the naming store.
//! - [`network`]: Raft messages over the peer gRPC service, both ways.
//! - [`node_id`]: the member's random Raft id, stored in the data directory.
//! - [`reconfigure`]: pure decisions: bootstrap and membership changes.
//! - [`controller`]: the task that executes them.
//! - [`health`]: server-side health checks of persistent instances.
//! - [`override_cleaner`]: the leader clears overrides of gone instances.
//! - [`metrics`]: Prometheus metrics of writes, forwards, changes and indexes.
//! - [`summary`]: the `raft` section of `/roster/v1/status`.
//!
//! # Files
//! `<data-dir>/raft/node-id` (the id), `log.redb` (log, vote, committed),
//! `state.redb` (state machine, last applied, membership, snapshot).

pub mod command;
pub mod controller;
pub mod health;
pub mod log_store;
pub mod metrics;
pub mod network;
pub mod node_id;
pub mod override_cleaner;
pub mod reconfigure;
pub mod state_machine;
pub mod summary;
pub mod types;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::SnapshotPolicy;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use self::command::{ApplyError, ApplyResult, Command, PersistentData};
pub use self::log_store::LogStore;
use self::metrics::{ForwardOutcome, RaftMetricSet, WriteOutcome};
pub use self::network::RaftRpc;
use self::network::{CallError, ForwardReply, ForwardRequest};
pub use self::state_machine::{SmState, StateMachine};
pub use self::summary::RaftStatus;
use self::types::{NodeId, Raft};
use crate::cluster::Membership;
use crate::duration;
use crate::error::{Error, Result};
use crate::naming::NamingStore;
use crate::peer::{Faults, PeerTransport};

/// Largest snapshot chunk sent in one `RaftSnapshot` message.
const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;
/// Most log entries in one `RaftAppend` message.
const MAX_PAYLOAD_ENTRIES: u64 = 64;
/// How far behind the leader's log a learner may be and be promoted.
const CATCH_UP_LAG: u64 = 8;

/// Raft timing, log compaction and health checks of persistent instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Raft (persistent instances)")]
pub struct RaftSettings {
    /// Shortest Raft election timeout.
    // A follower that hears no leader for a random time between the bounds
    // starts an election.
    #[arg(long = "raft-election-timeout-min", id = "raft_election_timeout_min", value_name = "RAFT_ELECTION_TIMEOUT_MIN", env = "ROSTER_RAFT_ELECTION_TIMEOUT_MIN", default_value = "1000ms", value_parser = duration::parse)]
    pub election_timeout_min: Duration,

    /// Longest Raft election timeout: a leader lost is replaced within about this.
    #[arg(long = "raft-election-timeout-max", id = "raft_election_timeout_max", value_name = "RAFT_ELECTION_TIMEOUT_MAX", env = "ROSTER_RAFT_ELECTION_TIMEOUT_MAX", default_value = "2000ms", value_parser = duration::parse)]
    pub election_timeout_max: Duration,

    /// How often the Raft leader sends heartbeats.
    #[arg(long = "raft-heartbeat-interval", id = "raft_heartbeat_interval", value_name = "RAFT_HEARTBEAT_INTERVAL", env = "ROSTER_RAFT_HEARTBEAT_INTERVAL", default_value = "250ms", value_parser = duration::parse)]
    pub heartbeat_interval: Duration,

    /// Build a Raft snapshot (and compact the log) after this many entries.
    #[arg(
        long = "raft-snapshot-logs",
        id = "raft_snapshot_logs",
        value_name = "RAFT_SNAPSHOT_LOGS",
        env = "ROSTER_RAFT_SNAPSHOT_LOGS",
        default_value_t = 10_000
    )]
    pub snapshot_logs: u64,

    /// Raft log entries kept behind a snapshot for members that lag briefly.
    #[arg(
        long = "raft-logs-to-keep",
        id = "raft_logs_to_keep",
        value_name = "RAFT_LOGS_TO_KEEP",
        env = "ROSTER_RAFT_LOGS_TO_KEEP",
        default_value_t = 1_000
    )]
    pub logs_to_keep: u64,

    /// How long a persistent write may wait for a Raft leader and its commit.
    #[arg(long = "raft-write-timeout", id = "raft_write_timeout", value_name = "RAFT_WRITE_TIMEOUT", env = "ROSTER_RAFT_WRITE_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub write_timeout: Duration,

    /// Time between health checks of persistent instances (by the Raft leader); 0 turns them off.
    #[arg(long = "health-check-interval", env = "ROSTER_HEALTH_CHECK_INTERVAL", default_value = "5s", value_parser = duration::parse)]
    pub health_check_interval: Duration,

    /// Timeout of one health check of a persistent instance.
    #[arg(long = "health-check-timeout", env = "ROSTER_HEALTH_CHECK_TIMEOUT", default_value = "2s", value_parser = duration::parse)]
    pub health_check_timeout: Duration,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            heartbeat_interval: Duration::from_millis(250),
            snapshot_logs: 10_000,
            logs_to_keep: 1_000,
            write_timeout: Duration::from_secs(10),
            health_check_interval: Duration::from_secs(5),
            health_check_timeout: Duration::from_secs(2),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RaftSettings {
    /// Refuses settings openraft would refuse, with the flag names.
    pub fn validate(&self) -> Result<()> {
        if self.election_timeout_min.is_zero() || self.heartbeat_interval.is_zero() {
            return Err(Error::Config("Raft timeouts and the heartbeat interval must be greater than zero".into()));
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return Err(Error::Config(
                "--raft-election-timeout-max must be greater than --raft-election-timeout-min".into(),
            ));
        }
        if self.heartbeat_interval >= self.election_timeout_min {
            return Err(Error::Config(
                "--raft-heartbeat-interval must be shorter than --raft-election-timeout-min".into(),
            ));
        }
        if self.snapshot_logs == 0 {
            return Err(Error::Config("--raft-snapshot-logs must be at least 1".into()));
        }
        if self.write_timeout.is_zero() || self.health_check_timeout.is_zero() {
            return Err(Error::Config(
                "--raft-write-timeout and --health-check-timeout must be greater than zero".into(),
            ));
        }
        self.openraft_config().map(|_| ())
    }

    /// The openraft configuration.
    pub fn openraft_config(&self) -> Result<openraft::Config> {
        let config = openraft::Config {
            cluster_name: "roster".into(),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            heartbeat_interval: millis(self.heartbeat_interval),
            // Per chunk; generous so that a slow disk never makes a member
            // resend the first chunk forever.
            install_snapshot_timeout: millis(self.election_timeout_max.max(Duration::from_secs(3))),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs),
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            max_in_snapshot_log_to_keep: self.logs_to_keep,
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            ..Default::default()
        };
        config.validate().map_err(|e| Error::Config(format!("Raft: {e}")))
    }
}

/// What [`RaftNode::start`] needs from the rest of the node.
#[derive(Debug)]
pub struct RaftContext {
    /// Timing and compaction.
    pub settings: RaftSettings,
    /// When the overrides of gone instances are cleared.
    pub overrides: override_cleaner::OverrideSettings,
    /// `--data-dir`; Raft uses `<data-dir>/raft`.
    pub data_dir: PathBuf,
    /// This member's address.
    pub local: String,
    /// Whether the node runs standalone (a single voter).
    pub standalone: bool,
    /// The naming store the state machine mirrors into.
    pub store: Arc<NamingStore>,
    /// Members, their states and reported Raft ids.
    pub membership: Arc<Membership>,
    /// The peer plane's transport.
    pub transport: Arc<dyn PeerTransport>,
    /// The fault switch (`drop_applies`).
    pub faults: Arc<Faults>,
    /// The lookup list: the members the group should have.
    pub list: watch::Receiver<Vec<String>>,
    /// Where to count.
    pub metrics: Arc<RaftMetricSet>,
}

/// A running Raft member.
pub struct RaftNode {
    id: NodeId,
    raft: Raft,
    settings: RaftSettings,
    transport: Arc<dyn PeerTransport>,
    log: LogStore,
    state: Arc<RwLock<SmState>>,
    rpc: RaftRpc,
    metrics: Arc<RaftMetricSet>,
    stop: watch::Sender<bool>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode").field("id", &self.id).finish()
    }
}

impl RaftNode {
    /// Opens the Raft data (creating it and the member's id on first start),
    /// loads the persistent data into the naming store, starts Raft, the
    /// membership controller and the health checker, and publishes the id in
    /// member reports.
    pub async fn start(ctx: RaftContext) -> Result<Arc<RaftNode>> {
        ctx.settings.validate()?;
        let dir = node_id::raft_dir(&ctx.data_dir);
        let id = node_id::load_or_create(&dir)?;
        let log = LogStore::open(&dir.join("log.redb"))
            .map_err(|e| Error::Config(format!("cannot open the Raft log in {}: {e}", dir.display())))?;
        let sm = StateMachine::open(&dir.join("state.redb"), ctx.store.clone())?.with_faults(ctx.faults.clone());
        let state = sm.shared();
        let network = network::Network { id, transport: ctx.transport.clone() };
        let config = Arc::new(ctx.settings.openraft_config()?);
        let raft = Raft::new(id, config, network, log.clone(), sm)
            .await
            .map_err(|e| Error::Internal(format!("Raft did not start: {e}")))?;
        ctx.membership.set_raft_id(Some(id));
        let rpc = RaftRpc::new(raft.clone(), id, ctx.list.clone());
        let (stop, stop_rx) = watch::channel(false);
        let controller = controller::Controller {
            raft: raft.clone(),
            id,
            local: ctx.local.clone(),
            standalone: ctx.standalone,
            membership: ctx.membership.clone(),
            list: ctx.list.clone(),
            transport: ctx.transport.clone(),
            interval: ctx.settings.heartbeat_interval.max(Duration::from_millis(100)),
            change_timeout: ctx.settings.election_timeout_max.saturating_mul(4).max(Duration::from_secs(5)),
            catch_up_lag: CATCH_UP_LAG,
            metrics: ctx.metrics.clone(),
        };
        let mut tasks = vec![
            tokio::spawn(controller.run(stop_rx.clone())),
            tokio::spawn(follow_gauges(raft.clone(), log.clone(), ctx.metrics.clone(), stop_rx.clone())),
        ];
        if !ctx.settings.health_check_interval.is_zero() {
            let checker = health::HealthChecker {
                raft: raft.clone(),
                id,
                state: state.clone(),
                interval: ctx.settings.health_check_interval,
                timeout: ctx.settings.health_check_timeout,
                metrics: ctx.metrics.clone(),
            };
            tasks.push(tokio::spawn(checker.run(stop_rx.clone())));
        }
        let cleaner = override_cleaner::OverrideCleaner {
            raft: raft.clone(),
            id,
            state: state.clone(),
            store: ctx.store.clone(),
            settings: ctx.overrides,
            metrics: ctx.metrics.clone(),
        };
        tasks.push(tokio::spawn(cleaner.run(stop_rx)));
        info!(raft_id = id, dir = %dir.display(), "raft started");
        Ok(Arc::new(RaftNode {
            id,
            raft,
            settings: ctx.settings,
            transport: ctx.transport,
            log,
            state,
            rpc,
            metrics: ctx.metrics,
            stop,
            tasks: parking_lot::Mutex::new(tasks),
        }))
    }

    /// This member's Raft id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The inbound RPC handler, for the peer service.
    pub fn rpc(&self) -> Arc<RaftRpc> {
        Arc::new(self.rpc.clone())
    }

    /// The openraft handle (tests and administration).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The replicated data as applied here.
    pub fn data(&self) -> PersistentData {
        self.state.read().data.clone()
    }

    /// Whether this member knows a leader (its readiness condition).
    pub fn has_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader.is_some()
    }

    /// The `raft` section of the status document.
    pub fn status(&self) -> RaftStatus {
        RaftStatus::from_metrics(&self.raft.metrics().borrow(), self.log.committed_index())
    }

    /// Commits `command` and returns its outcome: through the local Raft when
    /// this member leads, else forwarded to the leader. Waits for a leader up
    /// to the write timeout. An error means the write was not acknowledged
    /// (it was refused, or its outcome is unknown).
    pub async fn write(&self, command: Command) -> Result<()> {
        let result = self.propose(command).await;
        let outcome = match &result {
            Ok(()) => WriteOutcome::Ok,
            Err(Error::NotFound(_) | Error::Conflict(_)) => WriteOutcome::Refused,
            Err(_) => WriteOutcome::Unavailable,
        };
        self.metrics.write(outcome);
        result
    }

    async fn propose(&self, command: Command) -> Result<()> {
        let deadline = Instant::now() + self.settings.write_timeout;
        let mut metrics = self.raft.metrics();
        loop {
            match self.raft.client_write(command.clone()).await {
                Ok(resp) => return resp.data.map_err(ApplyError::into_error),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let (Some(leader), Some(node)) = (f.leader_id, f.leader_node) {
                        if leader != self.id {
                            let left = deadline.saturating_duration_since(Instant::now());
                            let request = ForwardRequest::Write(command.clone());
                            let forwarded =
                                network::forward(self.transport.as_ref(), leader, &node.addr, request, left).await;
                            let outcome = match &forwarded {
                                Ok(ForwardReply::Applied(_)) => ForwardOutcome::Ok,
                                Ok(ForwardReply::NotLeader) => ForwardOutcome::NotLeader,
                                Err(CallError::Unreachable(_)) => ForwardOutcome::Unreachable,
                                _ => ForwardOutcome::Failed,
                            };
                            self.metrics.forward(outcome);
                            match forwarded {
                                Ok(ForwardReply::Applied(result)) => return result.map_err(ApplyError::into_error),
                                Ok(ForwardReply::NotLeader) | Err(CallError::Unreachable(_)) => {}
                                Ok(ForwardReply::Failed(e)) => {
                                    return Err(Error::NotReady(format!("the Raft leader could not commit: {e}")))
                                }
                                Ok(ForwardReply::Probe(_)) => {
                                    return Err(Error::Internal("the Raft leader answered a write with a probe".into()))
                                }
                                Err(e) => {
                                    return Err(Error::NotReady(format!(
                                        "the write reached the Raft leader {} but its outcome is unknown: {e}",
                                        node.addr
                                    )))
                                }
                            }
                        }
                    }
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    return Err(Error::Internal(format!("unexpected membership error: {e}")))
                }
                Err(RaftError::Fatal(e)) => return Err(Error::NotReady(format!("Raft has stopped: {e}"))),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::NotReady(format!(
                    "no Raft leader took the write within {:?}",
                    self.settings.write_timeout
                )));
            }
            // Wait for a leader change (or a little while) before retrying.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), metrics.changed()).await;
        }
    }

    /// Stops the controller, the health checker, the gauges and Raft.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "Raft shutdown failed");
        }
        info!(raft_id = self.id, "raft stopped");
    }
}

/// Keeps the Raft gauges in step with Raft's metrics (and the committed
/// index, which changes without them).
async fn follow_gauges(raft: Raft, log: LogStore, metrics: Arc<RaftMetricSet>, mut stop: watch::Receiver<bool>) {
    let mut changes = raft.metrics();
    loop {
        let status = RaftStatus::from_metrics(&changes.borrow_and_update(), log.committed_index());
        metrics.observe(&status);
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod storage_suite {
    //! openraft's storage conformance suite against the real redb store.

    use std::sync::Arc;

    use openraft::testing::{StoreBuilder, Suite};
    use openraft::StorageError;

    use super::types::{NodeId, TypeConfig};
    use super::{LogStore, StateMachine};
    use crate::naming::model::BeatTimeouts;
    use crate::naming::NamingStore;

    struct RedbBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = LogStore::open(&dir.path().join("log.redb")).expect("log");
            let store = Arc::new(NamingStore::new(BeatTimeouts::default()));
            let sm = StateMachine::open(&dir.path().join("state.redb"), store).expect("state");
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn redb_store_passes_the_openraft_suite() {
        Suite::test_all(RedbBuilder).expect("storage suite");
    }
}
