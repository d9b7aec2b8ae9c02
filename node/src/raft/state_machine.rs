//! The replicated state machine: [`PersistentData`] kept in memory for
//! deterministic validation and reads, persisted in its own redb file
//! (`state.redb`) with the last applied log id, the last membership and the
//! current snapshot, and mirrored into the [`NamingStore`] so that queries stay
//! local and subscribers get pushes through the store's change broadcast.
//!
//! Applying a batch is one redb transaction; the naming store is updated
//! after it, only for services that changed. Installing a snapshot replaces
//! the persistent part of the naming store (explicit service settings and
//! persistent instances) and leaves ephemeral clients, which Distro owns,
//! alone.
//!
//! # Durability
//! The log (`log_store.rs`) is what makes a write durable: an entry is
//! fsync'd there before it is acknowledged. The state machine is rebuilt from
//! it, so applying a batch is committed without an fsync
//! (`Durability::None`): after a crash, `state.redb` is as of its last
//! durable commit, its applied log id says so, and openraft applies the
//! entries after it again (at start up to the committed pointer, then as the
//! leader commits). Entries are only purged from the log after a snapshot of
//! the state at or past them, and the snapshot is written durably (which
//! makes every earlier commit of the file durable too), so the entries to
//! apply again are always in the log. An apply is committed durably at least
//! every [`DURABLE_EVERY`] anyway, to bound the entries applied again and the
//! commits redb holds in memory; a clean shutdown closes the file, which
//! makes the last commits durable.
// The error type is openraft's `StorageError`, which the storage traits
// prescribe; boxing it is not ours to choose.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, LogId, RaftSnapshotBuilder, StorageError, StorageIOError};
use parking_lot::RwLock;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tracing::info;

use super::command::{ApplyResult, PersistentData, ServiceEntry};
use super::types::{Entry, NodeId, SnapshotMeta, StoredMembership, TypeConfig};
use crate::naming::{NamingStore, ServiceKey};
use crate::peer::Faults;

/// Services by key (JSON of the key → JSON of [`ServiceEntry`]).
const SERVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("services");
/// Last applied log id and last membership.
const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
/// The current snapshot: its metadata and its data.
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

const APPLIED: &str = "applied";
const MEMBERSHIP: &str = "membership";
const SNAPSHOT_META: &str = "meta";
const SNAPSHOT_DATA: &str = "data";

/// Longest time between two durable commits of applied batches (see
/// "Durability" above).
pub const DURABLE_EVERY: Duration = Duration::from_secs(1);

type StorageResult<T> = Result<T, StorageError<NodeId>>;

fn sm_read(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

fn sm_write(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> StorageResult<T> + Send + 'static) -> StorageResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(sm_write)?
}

/// What the state machine holds in memory.
#[derive(Debug, Default)]
pub struct SmState {
    /// The replicated data.
    pub data: PersistentData,
    /// Last applied log id.
    pub applied: Option<LogId<NodeId>>,
    /// Last applied membership.
    pub membership: StoredMembership,
}

/// The state machine. The in-memory state is shared (read-only) with the
/// health checker and the status page through [`StateMachine::shared`].
#[derive(Debug)]
pub struct StateMachine {
    db: Arc<Database>,
    state: Arc<RwLock<SmState>>,
    store: Arc<NamingStore>,
    /// Distinguishes snapshots built at the same log id.
    snapshot_seq: u64,
    /// The fault switch (`drop_applies`); off unless tests turn it on.
    faults: Arc<Faults>,
    /// When an applied batch was last committed durably.
    last_durable: Instant,
}

fn key_string(key: &ServiceKey) -> Result<String, serde_json::Error> {
    serde_json::to_string(key)
}

/// Makes the store's copy of one service's Raft-held part (settings,
/// persistent instances, overrides) what Raft holds.
fn mirror(store: &NamingStore, key: &ServiceKey, entry: Option<ServiceEntry>) {
    match entry {
        Some(e) => {
            store.set_persistent_service(key, e.meta, e.instances);
            store.set_overrides(key, e.overrides.into_iter().collect());
        }
        None => {
            store.set_persistent_service(key, None, Vec::new());
            store.set_overrides(key, BTreeMap::new());
        }
    }
}

/// Makes the store's copy of everything Raft holds what `data` holds (the
/// state loaded at start, or a snapshot installed).
fn mirror_all(store: &NamingStore, data: &PersistentData) {
    let entries = data.entries();
    let overrides = entries
        .iter()
        .filter(|e| !e.overrides.is_empty())
        .map(|e| (e.service.clone(), e.overrides.iter().cloned().collect()))
        .collect();
    store.replace_persistent(entries.into_iter().map(|e| (e.service, e.meta, e.instances)).collect());
    store.replace_overrides(overrides);
}

impl StateMachine {
    /// Opens (or creates) the state at `path`, loads it and mirrors it into
    /// `store`.
    pub fn open(path: &Path, store: Arc<NamingStore>) -> Result<StateMachine, crate::error::Error> {
        let fail = |e: &dyn std::fmt::Display| crate::error::Error::Internal(format!("raft state {path:?}: {e}"));
        let db = Database::create(path).map_err(|e| fail(&e))?;
        let state = (|| -> Result<SmState, Box<dyn std::error::Error>> {
            let txn = db.begin_write()?;
            txn.open_table(SERVICES)?;
            txn.open_table(SM_META)?;
            txn.open_table(SNAPSHOT)?;
            txn.commit()?;
            let txn = db.begin_read()?;
            let services = txn.open_table(SERVICES)?;
            let mut entries = Vec::new();
            for item in services.iter()? {
                let (_, v) = item?;
                entries.push(serde_json::from_slice::<ServiceEntry>(v.value())?);
            }
            let meta = txn.open_table(SM_META)?;
            let applied = match meta.get(APPLIED)? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => None,
            };
            let membership = match meta.get(MEMBERSHIP)? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => StoredMembership::default(),
            };
            Ok(SmState { data: PersistentData::from_entries(entries), applied, membership })
        })()
        .map_err(|e| fail(&e))?;
        mirror_all(&store, &state.data);
        info!(services = state.data.len(), applied = ?state.applied, "raft state loaded");
        Ok(StateMachine {
            db: Arc::new(db),
            state: Arc::new(RwLock::new(state)),
            store,
            snapshot_seq: 0,
            faults: Arc::new(Faults::default()),
            last_durable: Instant::now(),
        })
    }

    /// Makes the state machine skip the writes `faults` asks it to drop.
    pub fn with_faults(self, faults: Arc<Faults>) -> StateMachine {
        StateMachine { faults, ..self }
    }

    /// The in-memory state, for readers outside Raft.
    pub fn shared(&self) -> Arc<RwLock<SmState>> {
        self.state.clone()
    }
}

/// Builds a snapshot from a copy of the state taken when the builder was made.
#[derive(Debug)]
pub struct SnapshotBuilder {
    db: Arc<Database>,
    entries: Vec<ServiceEntry>,
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let data = serde_json::to_vec(&self.entries).map_err(sm_read)?;
        let snapshot_id = match &self.applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.seq),
            None => format!("none-{}", self.seq),
        };
        let meta = SnapshotMeta { last_log_id: self.applied, last_membership: self.membership.clone(), snapshot_id };
        let db = self.db.clone();
        let (meta_bytes, stored) = (serde_json::to_vec(&meta).map_err(sm_read)?, data.clone());
        blocking(move || {
            let txn = db.begin_write().map_err(sm_write)?;
            {
                let mut t = txn.open_table(SNAPSHOT).map_err(sm_write)?;
                t.insert(SNAPSHOT_META, meta_bytes.as_slice()).map_err(sm_write)?;
                t.insert(SNAPSHOT_DATA, stored.as_slice()).map_err(sm_write)?;
            }
            txn.commit().map_err(sm_write)
        })
        .await?;
        info!(snapshot = %meta.snapshot_id, services = self.entries.len(), "raft snapshot built");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership)> {
        let s = self.state.read();
        Ok((s.applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<ApplyResult>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut results = Vec::new();
        let mut changed: Vec<ServiceKey> = Vec::new();
        let mut deleted: Vec<ServiceKey> = Vec::new();
        let (rows, applied, membership) = {
            let mut s = self.state.write();
            for entry in entries {
                s.applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => results.push(Ok(())),
                    // An injected fault: the write is lost here, and the
                    // writer is still told it succeeded.
                    EntryPayload::Normal(_) if self.faults.drop_apply() => results.push(Ok(())),
                    EntryPayload::Normal(command) => {
                        let outcome = s.data.apply(&command);
                        if outcome.is_ok() && !changed.contains(command.service()) {
                            changed.push(command.service().clone());
                        }
                        if outcome.is_ok() && command.deletes_service() {
                            deleted.push(command.service().clone());
                        }
                        results.push(outcome);
                    }
                    EntryPayload::Membership(m) => {
                        s.membership = StoredMembership::new(Some(entry.log_id), m);
                        results.push(Ok(()));
                    }
                }
            }
            let rows: Vec<(ServiceKey, Option<ServiceEntry>)> =
                changed.iter().map(|k| (k.clone(), s.data.entry(k))).collect();
            (rows, s.applied, s.membership.clone())
        };
        let encoded = rows
            .iter()
            .map(|(k, e)| Ok((key_string(k)?, e.as_ref().map(serde_json::to_vec).transpose()?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(sm_write)?;
        let applied_bytes = serde_json::to_vec(&applied).map_err(sm_write)?;
        let membership_bytes = serde_json::to_vec(&membership).map_err(sm_write)?;
        let durable = self.last_durable.elapsed() >= DURABLE_EVERY;
        if durable {
            self.last_durable = Instant::now();
        }
        let db = self.db.clone();
        blocking(move || {
            let mut txn = db.begin_write().map_err(sm_write)?;
            if !durable {
                // Rebuilt from the log after a crash (module documentation).
                txn.set_durability(Durability::None).map_err(sm_write)?;
            }
            {
                let mut t = txn.open_table(SERVICES).map_err(sm_write)?;
                for (k, v) in &encoded {
                    match v {
                        Some(v) => t.insert(k.as_str(), v.as_slice()).map(|_| ()),
                        None => t.remove(k.as_str()).map(|_| ()),
                    }
                    .map_err(sm_write)?;
                }
                let mut m = txn.open_table(SM_META).map_err(sm_write)?;
                m.insert(APPLIED, applied_bytes.as_slice()).map_err(sm_write)?;
                m.insert(MEMBERSHIP, membership_bytes.as_slice()).map_err(sm_write)?;
            }
            txn.commit().map_err(sm_write)
        })
        .await?;
        for (key, entry) in rows {
            mirror(&self.store, &key, entry);
        }
        for key in &deleted {
            self.store.forget_deleted_service(key);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        let s = self.state.read();
        SnapshotBuilder {
            db: self.db.clone(),
            entries: s.data.entries(),
            applied: s.applied,
            membership: s.membership.clone(),
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<Cursor<Vec<u8>>>) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let entries: Vec<ServiceEntry> = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e)))?;
        let rows = entries
            .iter()
            .map(|e| Ok((key_string(&e.service)?, serde_json::to_vec(e)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(sm_write)?;
        let applied_bytes = serde_json::to_vec(&meta.last_log_id).map_err(sm_write)?;
        let membership_bytes = serde_json::to_vec(&meta.last_membership).map_err(sm_write)?;
        let meta_bytes = serde_json::to_vec(meta).map_err(sm_write)?;
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write().map_err(sm_write)?;
            {
                let mut t = txn.open_table(SERVICES).map_err(sm_write)?;
                t.retain(|_, _| false).map_err(sm_write)?;
                for (k, v) in &rows {
                    t.insert(k.as_str(), v.as_slice()).map_err(sm_write)?;
                }
                let mut m = txn.open_table(SM_META).map_err(sm_write)?;
                m.insert(APPLIED, applied_bytes.as_slice()).map_err(sm_write)?;
                m.insert(MEMBERSHIP, membership_bytes.as_slice()).map_err(sm_write)?;
                let mut snap = txn.open_table(SNAPSHOT).map_err(sm_write)?;
                snap.insert(SNAPSHOT_META, meta_bytes.as_slice()).map_err(sm_write)?;
                snap.insert(SNAPSHOT_DATA, data.as_slice()).map_err(sm_write)?;
            }
            txn.commit().map_err(sm_write)
        })
        .await?;
        let data = PersistentData::from_entries(entries);
        mirror_all(&self.store, &data);
        info!(snapshot = %meta.snapshot_id, services = data.len(), "raft snapshot installed");
        let mut s = self.state.write();
        *s = SmState { data, applied: meta.last_log_id, membership: meta.last_membership.clone() };
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read().map_err(sm_read)?;
            let t = txn.open_table(SNAPSHOT).map_err(sm_read)?;
            let (Some(meta), Some(data)) =
                (t.get(SNAPSHOT_META).map_err(sm_read)?, t.get(SNAPSHOT_DATA).map_err(sm_read)?)
            else {
                return Ok(None);
            };
            let meta: SnapshotMeta = serde_json::from_slice(meta.value()).map_err(sm_read)?;
            Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data.value().to_vec())) }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    use super::*;
    use crate::naming::model::{BeatTimeouts, Instance};
    use crate::peer::FaultSettings;
    use crate::raft::command::Command;

    fn register(index: u64, ip: &str) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::RegisterInstance {
                service: ServiceKey::new("public", "DEFAULT_GROUP", "svc"),
                instance: Instance::new(ip, 80),
            }),
        }
    }

    /// A state machine in `dir` whose fault switch (`enabled` or not) was
    /// asked to drop the next `drops` writes.
    fn machine(dir: &tempfile::TempDir, enabled: bool, drops: u64) -> (StateMachine, Arc<Faults>) {
        let faults = Arc::new(Faults::new(enabled));
        faults.set(FaultSettings { drop_applies: drops, ..FaultSettings::default() });
        let store = Arc::new(NamingStore::new(BeatTimeouts::default()));
        let sm = StateMachine::open(&dir.path().join("state.redb"), store).expect("state").with_faults(faults.clone());
        (sm, faults)
    }

    #[tokio::test]
    async fn an_armed_apply_drop_loses_the_write_and_still_advances_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut sm, faults) = machine(&dir, true, 1);

        let results = sm.apply([register(1, "10.0.0.1"), register(2, "10.0.0.2")]).await.expect("apply");
        assert!(results.iter().all(Result::is_ok), "the writer is told both succeeded: {results:?}");
        let held: Vec<String> = sm.state.read().data.instances().into_iter().map(|(_, i)| i.ip).collect();
        assert_eq!(held, ["10.0.0.2"], "the first write was dropped, the second applied");
        assert_eq!(sm.state.read().applied.map(|l| l.index), Some(2), "the log advanced past the dropped write");
        assert_eq!(faults.dropped_applies(), 1);
    }

    #[tokio::test]
    async fn without_fault_injection_every_write_is_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut sm, _) = machine(&dir, false, 5);
        sm.apply([register(1, "10.0.0.1")]).await.expect("apply");
        assert_eq!(sm.state.read().data.instances().len(), 1);
    }
}
