//! The durable Raft log: entries, the vote and the committed pointer in one
//! redb file (`log.redb`).
//!
//! Every write but the committed pointer's is one redb transaction committed
//! with redb's default `Durability::Immediate` (checksummed commit slot plus
//! fsync), so: an `append` calls openraft's flush callback only after the
//! entries are on disk, `save_vote` returns only after the vote is, and vote
//! and log writes cannot be reordered (redb has one writer at a time). The
//! committed pointer is written without an fsync (`Durability::None`): the
//! next append's durable commit makes it durable too, so one batch costs one
//! fsync here. After a crash it may be behind by the last batches; openraft
//! allows that (the pointer is optional), the entries are in the log, and
//! they are applied again once the leader says they are committed.
//! redb is blocking, so every call runs on tokio's blocking pool.
// The error type is openraft's `StorageError`, which the storage traits
// prescribe; boxing it is not ours to choose.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, LogId, StorageError, StorageIOError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::types::{Entry, NodeId, TypeConfig};

/// Log entries by index, JSON-encoded.
const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
/// The vote, the committed log id and the last purged log id, JSON-encoded.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "last_purged";

type StorageResult<T> = Result<T, StorageError<NodeId>>;

fn io_read(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn io_write(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

/// Runs blocking redb work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> StorageResult<T> + Send + 'static) -> StorageResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(io_write)?
}

/// The redb-backed Raft log. Cheap to clone: clones share the database (the
/// log reader openraft asks for is such a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// The committed index plus one (0: nothing committed), for status.
    committed: Arc<AtomicU64>,
}

impl LogStore {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: &Path) -> Result<LogStore, redb::Error> {
        let db = Database::create(path)?;
        // Create the tables so that readers never see them missing.
        let txn = db.begin_write()?;
        txn.open_table(LOGS)?;
        txn.open_table(META)?;
        txn.commit()?;
        let store = LogStore { db: Arc::new(db), committed: Arc::new(AtomicU64::new(0)) };
        if let Ok(Some(Some(c))) = LogStore::read_meta::<Option<LogId<NodeId>>>(&store.db, COMMITTED) {
            store.note_committed(Some(c));
        }
        Ok(store)
    }

    /// The last committed index this member knows of.
    pub fn committed_index(&self) -> Option<u64> {
        self.committed.load(Ordering::Relaxed).checked_sub(1)
    }

    fn note_committed(&self, committed: Option<LogId<NodeId>>) {
        self.committed.store(committed.map_or(0, |c| c.index.saturating_add(1)), Ordering::Relaxed);
    }

    fn read_meta<T: serde::de::DeserializeOwned>(db: &Database, key: &str) -> StorageResult<Option<T>> {
        let txn = db.begin_read().map_err(io_read)?;
        let table = txn.open_table(META).map_err(io_read)?;
        match table.get(key).map_err(io_read)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(io_read)?)),
            None => Ok(None),
        }
    }

    fn write_meta<T: serde::Serialize>(
        db: &Database,
        key: &str,
        value: &T,
        durability: Durability,
    ) -> StorageResult<()> {
        let bytes = serde_json::to_vec(value).map_err(io_write)?;
        let mut txn = db.begin_write().map_err(io_write)?;
        txn.set_durability(durability).map_err(io_write)?;
        {
            let mut table = txn.open_table(META).map_err(io_write)?;
            table.insert(key, bytes.as_slice()).map_err(io_write)?;
        }
        txn.commit().map_err(io_write)
    }

    fn last_entry(db: &Database) -> StorageResult<Option<LogId<NodeId>>> {
        let txn = db.begin_read().map_err(io_read)?;
        let table = txn.open_table(LOGS).map_err(io_read)?;
        let last = table.last().map_err(io_read)?;
        match last {
            Some((_, v)) => {
                let entry: Entry = serde_json::from_slice(v.value()).map_err(io_read)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => Some(*e),
        Bound::Excluded(0) => return (1, Some(0)),
        Bound::Excluded(e) => Some(e - 1),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry>> {
        let db = self.db.clone();
        let (start, end) = bounds(&range);
        blocking(move || {
            if end.is_some_and(|e| e < start) {
                return Ok(Vec::new());
            }
            let txn = db.begin_read().map_err(io_read)?;
            let table = txn.open_table(LOGS).map_err(io_read)?;
            let iter = match end {
                Some(e) => table.range(start..=e),
                None => table.range(start..),
            }
            .map_err(io_read)?;
            let mut out = Vec::new();
            for item in iter {
                let (_, v) = item.map_err(io_read)?;
                out.push(serde_json::from_slice::<Entry>(v.value()).map_err(io_read)?);
            }
            Ok(out)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let db = self.db.clone();
        blocking(move || {
            let purged: Option<LogId<NodeId>> = LogStore::read_meta(&db, PURGED)?;
            let last = LogStore::last_entry(&db)?.or(purged);
            Ok(LogState { last_purged_log_id: purged, last_log_id: last })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let db = self.db.clone();
        let vote = *vote;
        blocking(move || {
            LogStore::write_meta(&db, VOTE, &vote, Durability::Immediate)
                .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
        })
        .await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        let db = self.db.clone();
        blocking(move || LogStore::read_meta(&db, VOTE)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        let db = self.db.clone();
        blocking(move || LogStore::write_meta(&db, COMMITTED, &committed, Durability::None)).await?;
        self.note_committed(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        let db = self.db.clone();
        blocking(move || Ok(LogStore::read_meta::<Option<LogId<NodeId>>>(&db, COMMITTED)?.flatten())).await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let encoded = entries
            .into_iter()
            .map(|e| serde_json::to_vec(&e).map(|bytes| (e.log_id.index, bytes)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_write)?;
        let db = self.db.clone();
        let result = blocking(move || {
            let txn = db.begin_write().map_err(io_write)?;
            {
                let mut table = txn.open_table(LOGS).map_err(io_write)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice()).map_err(io_write)?;
                }
            }
            // Durability::Immediate (redb's default): on disk when this returns.
            txn.commit().map_err(io_write)
        })
        .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write().map_err(io_write)?;
            {
                let mut table = txn.open_table(LOGS).map_err(io_write)?;
                table.retain_in(log_id.index.., |_, _| false).map_err(io_write)?;
            }
            txn.commit().map_err(io_write)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let db = self.db.clone();
        blocking(move || {
            let bytes = serde_json::to_vec(&log_id).map_err(io_write)?;
            let txn = db.begin_write().map_err(io_write)?;
            {
                let mut meta = txn.open_table(META).map_err(io_write)?;
                meta.insert(PURGED, bytes.as_slice()).map_err(io_write)?;
                let mut table = txn.open_table(LOGS).map_err(io_write)?;
                table.retain_in(..=log_id.index, |_, _| false).map_err(io_write)?;
            }
            txn.commit().map_err(io_write)
        })
        .await
    }
}
