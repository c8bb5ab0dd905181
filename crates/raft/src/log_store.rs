//! [`LogStore`]: the durable Raft log of one registry node, on redb in a folder.
//!
//! One redb file (`raft-log.redb`) with two tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `log` | log index (`u64`) | the openraft entry, serde_json |
//! | `meta` | `"vote"`, `"committed"`, `"last_purged"` | the value, serde_json |
//!
//! Every write is one redb transaction committed with redb's default durability (fsync before
//! the commit returns), so when [`RaftLogStorage::append`] reports the entries flushed they are
//! on disk, and a vote is on disk before [`RaftLogStorage::save_vote`] returns. redb calls block,
//! so each runs on tokio's blocking pool; openraft issues log writes one at a time (`&mut self`),
//! which keeps them in order.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, LogState, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{StorageError, TypeConfig};

/// Log entries by index.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// The vote and the committed and purged log ids.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The database file inside the store's folder.
const FILE: &str = "raft-log.redb";

/// Why the log store failed. Openraft receives these inside a [`StorageError`], which stops the
/// Raft node: a log that cannot be read or written must not take part in consensus.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// The folder could not be created.
    #[error("log folder: {0}")]
    Io(#[from] io::Error),
    /// redb failed (open, transaction, table, commit). Boxed: redb's error is large.
    #[error("log database: {0}")]
    Db(Box<redb::Error>),
    /// A stored record does not decode (or a value does not encode): corruption or a bug.
    #[error("log record: {0}")]
    Codec(#[from] serde_json::Error),
    /// The blocking task running a redb call panicked or was cancelled.
    #[error("log store task: {0}")]
    Task(String),
}

/// The durable Raft log of one node. Cloning is cheap and shares the database; a clone is also
/// the log reader openraft's replication tasks use.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens the log in `dir` (created if missing), creating the database on first use.
    pub fn open(dir: &Path) -> Result<Self, LogStoreError> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join(FILE)).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(LOG).map_err(db_err)?;
        tx.open_table(META).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs a blocking redb call on tokio's blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, LogStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, LogStoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| LogStoreError::Task(e.to_string()))?
    }

    async fn read_meta<T>(&self, key: &'static str) -> Result<Option<T>, LogStoreError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let meta = tx.open_table(META).map_err(db_err)?;
            get_meta(&meta, key)
        })
        .await
    }

    async fn write_meta<T: Serialize>(
        &self,
        key: &'static str,
        value: &T,
    ) -> Result<(), LogStoreError> {
        let bytes = serde_json::to_vec(value)?;
        self.run(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut meta = tx.open_table(META).map_err(db_err)?;
                meta.insert(key, bytes.as_slice()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }
}

/// Converts any redb error into a [`LogStoreError`] (redb has one error type per step).
fn db_err<E: Into<redb::Error>>(e: E) -> LogStoreError {
    LogStoreError::Db(Box::new(e.into()))
}

fn get_meta<T: DeserializeOwned>(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, LogStoreError> {
    match meta.get(key).map_err(db_err)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
        None => Ok(None),
    }
}

fn decode_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, LogStoreError> {
    Ok(serde_json::from_slice(bytes)?)
}

fn read_err(e: LogStoreError) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_err(e: LogStoreError) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let bounds: (Bound<u64>, Bound<u64>) =
            (range.start_bound().cloned(), range.end_bound().cloned());
        self.run(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let log = tx.open_table(LOG).map_err(db_err)?;
            let mut entries = Vec::new();
            for item in log.range(bounds).map_err(db_err)? {
                let (_, v) = item.map_err(db_err)?;
                entries.push(decode_entry(v.value())?);
            }
            Ok(entries)
        })
        .await
        .map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.run(|db| {
            let tx = db.begin_read().map_err(db_err)?;
            let meta = tx.open_table(META).map_err(db_err)?;
            let last_purged: Option<LogId<u64>> = get_meta(&meta, LAST_PURGED)?;
            let log = tx.open_table(LOG).map_err(db_err)?;
            let last = match log.last().map_err(db_err)? {
                Some((_, v)) => Some(decode_entry(v.value())?.log_id),
                None => last_purged,
            };
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last,
            })
        })
        .await
        .map_err(read_err)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        self.write_meta(VOTE, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.read_meta(VOTE)
            .await
            .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StorageError> {
        self.write_meta(COMMITTED, &committed)
            .await
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError> {
        // Stored as `Option<LogId>`: a missing key and a stored `null` both mean "none".
        let stored: Option<Option<LogId<u64>>> =
            self.read_meta(COMMITTED).await.map_err(read_err)?;
        Ok(stored.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let encoded: Result<Vec<(u64, Vec<u8>)>, LogStoreError> = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, serde_json::to_vec(&e)?)))
            .collect();
        let result = match encoded {
            Ok(encoded) => {
                self.run(move |db| {
                    let tx = db.begin_write().map_err(db_err)?;
                    {
                        let mut log = tx.open_table(LOG).map_err(db_err)?;
                        for (index, bytes) in &encoded {
                            log.insert(*index, bytes.as_slice()).map_err(db_err)?;
                        }
                    }
                    tx.commit().map_err(db_err)
                })
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        tracing::debug!(what = "raft-log-truncate", since = %log_id);
        self.run(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut log = tx.open_table(LOG).map_err(db_err)?;
                log.retain_in(log_id.index.., |_, _| false)
                    .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
        .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        tracing::debug!(what = "raft-log-purge", upto = %log_id);
        let purged = serde_json::to_vec(&log_id)
            .map_err(LogStoreError::from)
            .map_err(write_err)?;
        self.run(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                // The purged id first: a reader never sees entries gone without knowing why.
                let mut meta = tx.open_table(META).map_err(db_err)?;
                meta.insert(LAST_PURGED, purged.as_slice())
                    .map_err(db_err)?;
                let mut log = tx.open_table(LOG).map_err(db_err)?;
                log.retain_in(..=log_id.index, |_, _| false)
                    .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
        .map_err(write_err)
    }
}

impl LogStore {
    /// The number of entries currently stored (after purges and truncations).
    pub async fn len(&self) -> Result<u64, LogStoreError> {
        self.run(|db| {
            let tx = db.begin_read().map_err(db_err)?;
            let log = tx.open_table(LOG).map_err(db_err)?;
            log.len().map_err(db_err)
        })
        .await
    }

    /// True if no entry is stored.
    pub async fn is_empty(&self) -> Result<bool, LogStoreError> {
        Ok(self.len().await? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::StateMachineStore;
    use openraft::storage::RaftLogStorageExt;
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{CommittedLeaderId, EntryPayload};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Builds a fresh log store and state machine, each in its own folder of one temp dir.
    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
            let log = LogStore::open(&dir.path().join("log")).map_err(write_err)?;
            let sm = StateMachineStore::open(&dir.path().join("state"))
                .map_err(|e| StorageIOError::read_state_machine(AnyError::new(&e)))?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn the_log_store_passes_openraft_s_storage_suite() -> TestResult {
        Suite::test_all(Builder)?;
        Ok(())
    }

    fn blank(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    #[tokio::test]
    async fn entries_vote_and_purge_survive_reopening_the_folder() -> TestResult {
        let dir = tempfile::tempdir()?;
        {
            let mut store = LogStore::open(dir.path())?;
            store.blocking_append((1..=5).map(|i| blank(1, i))).await?;
            store.save_vote(&Vote::new(3, 2)).await?;
            store
                .purge(LogId::new(CommittedLeaderId::new(1, 1), 2))
                .await?;
            store
                .save_committed(Some(LogId::new(CommittedLeaderId::new(1, 1), 4)))
                .await?;
        }
        let mut store = LogStore::open(dir.path())?;
        assert_eq!(store.read_vote().await?, Some(Vote::new(3, 2)));
        assert_eq!(store.read_committed().await?.map(|l| l.index), Some(4));
        let state = store.get_log_state().await?;
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(2));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(5));
        let indexes: Vec<u64> = store
            .try_get_log_entries(0..100)
            .await?
            .iter()
            .map(|e| e.log_id.index)
            .collect();
        assert_eq!(indexes, vec![3, 4, 5]);
        Ok(())
    }
}
