//! [`StateMachineStore`]: applies committed entries to the local [`RegistryState`], and
//! [`Replica`]: the read handle on that table and the feed of what each entry did.
//!
//! The table lives in memory. Snapshots are what make it durable: a snapshot is the table's
//! `to_snapshot()` bytes, with the last applied log id and the membership in openraft's
//! [`SnapshotMeta`], written to `snapshot.bin` in the folder (meta JSON, a newline, the bytes;
//! written to a temporary file, synced and renamed). On start the table is restored from that
//! file and openraft replays the committed log entries after it; replaying an index the table
//! already has is a no-op (`Outcome::AlreadyApplied`).
//!
//! Blank and membership entries change nothing in the table; their response is
//! `Outcome::AlreadyApplied` ("nothing changed"), which no proposer ever waits for.

use std::fmt::Debug;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use corvid_registry::{Command, Outcome, RegistryState};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use tokio::sync::broadcast;

use crate::{StorageError, TypeConfig};

/// Why the state machine could not be opened from its folder.
#[derive(Debug, thiserror::Error)]
pub enum StateMachineError {
    /// The folder or the snapshot file could not be created or read, or the file is malformed.
    #[error("snapshot file: {0}")]
    Io(#[from] io::Error),
    /// The snapshot file's table does not decode.
    #[error("snapshot table: {0}")]
    Table(#[from] corvid_registry::SnapshotError),
}

/// The snapshot file inside the state machine's folder.
const SNAPSHOT_FILE: &str = "snapshot.bin";
/// How many events a slow [`Replica::subscribe`] receiver may fall behind before it lags.
const EVENTS_CAPACITY: usize = 4096;

/// What the local replica just did, in log order, published to every [`Replica::subscribe`]r
/// after the table has changed (so reading the replica on receipt sees the change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaEvent {
    /// One normal entry was applied.
    Applied {
        /// The entry's log id.
        log_id: LogId<u64>,
        /// The command it carried.
        command: Command,
        /// What it did (the same on every replica): act on it (conflict kicks, `unavailable`
        /// for dropped sessions).
        outcome: Outcome,
    },
    /// The whole table was replaced by a snapshot from the leader: the entries up to
    /// `last_log_id` were never seen one by one here, so a subscriber re-reads the table.
    Restored {
        /// The last log id the snapshot covers.
        last_log_id: Option<LogId<u64>>,
    },
}

/// The replicated table and the log position it reflects.
#[derive(Debug, Default)]
struct Table {
    registry: RegistryState,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
}

/// A snapshot kept as the current one: meta and the table's bytes.
#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Shared {
    table: RwLock<Table>,
    current: Mutex<Option<StoredSnapshot>>,
    events: broadcast::Sender<ReplicaEvent>,
    dir: PathBuf,
    /// Tells apart snapshots built at the same log id.
    seq: AtomicU64,
}

impl Shared {
    // A poisoned lock means a panic while it was held; `apply` is pure and the critical sections
    // only assign, so the data is whole: keep serving it rather than panic on every read.
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> Option<StoredSnapshot> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_current(&self, snapshot: StoredSnapshot) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(snapshot);
    }
}

/// The state-machine side of openraft for the registry: owns the local [`RegistryState`].
/// Cloning is cheap and shares the table; openraft gets one clone, [`Replica`]s read it.
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

/// The local replica of the session table, read without any network round trip, and the feed
/// of [`ReplicaEvent`]s. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Replica {
    shared: Arc<Shared>,
}

impl Replica {
    /// Runs `f` on the table as of the last applied entry. Keep `f` short: applying waits for it.
    pub fn read<R>(&self, f: impl FnOnce(&RegistryState) -> R) -> R {
        f(&self.shared.read().registry)
    }

    /// The log id of the last entry applied here (or covered by the installed snapshot).
    pub fn last_applied(&self) -> Option<LogId<u64>> {
        self.shared.read().last_applied
    }

    /// Receives every [`ReplicaEvent`] from now on. A receiver more than a few thousand events
    /// behind gets `RecvError::Lagged` and should re-read the table.
    pub fn subscribe(&self) -> broadcast::Receiver<ReplicaEvent> {
        self.shared.events.subscribe()
    }
}

fn snapshot_err(meta: Option<&SnapshotMeta<u64, BasicNode>>, e: &io::Error) -> StorageError {
    StorageIOError::write_snapshot(meta.map(SnapshotMeta::signature), AnyError::new(e)).into()
}

/// Reads `snapshot.bin`: the meta JSON, a newline, the table's bytes.
fn load_snapshot(path: &Path) -> Result<Option<StoredSnapshot>, io::Error> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let split = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| io::Error::other("snapshot file without a meta line"))?;
    let meta = serde_json::from_slice(&bytes[..split])?;
    let data = bytes[split + 1..].to_vec();
    Ok(Some(StoredSnapshot { meta, data }))
}

/// Writes `snapshot.bin` atomically: temporary file, fsync, rename, fsync of the folder.
fn save_snapshot(dir: &Path, snapshot: &StoredSnapshot) -> Result<(), io::Error> {
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(&snapshot.meta)?)?;
    file.write_all(b"\n")?;
    file.write_all(&snapshot.data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

impl StateMachineStore {
    /// Opens the state machine in `dir` (created if missing), restoring the table from the
    /// snapshot there if there is one.
    pub fn open(dir: &Path) -> Result<Self, StateMachineError> {
        std::fs::create_dir_all(dir)?;
        let mut table = Table::default();
        let current = load_snapshot(&dir.join(SNAPSHOT_FILE))?;
        if let Some(snapshot) = &current {
            table.registry = RegistryState::from_snapshot(&snapshot.data)?;
            table.last_applied = snapshot.meta.last_log_id;
            table.membership = snapshot.meta.last_membership.clone();
        }
        let (events, _) = broadcast::channel(EVENTS_CAPACITY);
        Ok(Self {
            shared: Arc::new(Shared {
                table: RwLock::new(table),
                current: Mutex::new(current),
                events,
                dir: dir.to_path_buf(),
                seq: AtomicU64::new(0),
            }),
        })
    }

    /// A read handle on the table this state machine feeds.
    pub fn replica(&self) -> Replica {
        Replica {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Persists `snapshot` and makes it the current one.
    async fn keep(&self, snapshot: StoredSnapshot) -> Result<(), StorageError> {
        let dir = self.shared.dir.clone();
        let to_save = snapshot.clone();
        tokio::task::spawn_blocking(move || save_snapshot(&dir, &to_save))
            .await
            .map_err(|e| snapshot_err(Some(&snapshot.meta), &io::Error::other(e.to_string())))?
            .map_err(|e| snapshot_err(Some(&snapshot.meta), &e))?;
        self.shared.set_current(snapshot);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_log_id, last_membership) = {
            let table = self.shared.read();
            (
                table.registry.to_snapshot(),
                table.last_applied,
                table.membership.clone(),
            )
        };
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("none-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let stored = StoredSnapshot { meta, data };
        self.keep(stored.clone()).await?;
        tracing::info!(what = "raft-snapshot-built", id = %stored.meta.snapshot_id, bytes = stored.data.len());
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError> {
        let table = self.shared.read();
        Ok((table.last_applied, table.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut replies = Vec::new();
        let mut events = Vec::new();
        {
            let mut table = self.shared.write();
            for entry in entries {
                table.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => replies.push(Outcome::AlreadyApplied),
                    EntryPayload::Normal(command) => {
                        let outcome = table.registry.apply(entry.log_id.index, &command);
                        replies.push(outcome.clone());
                        events.push(ReplicaEvent::Applied {
                            log_id: entry.log_id,
                            command,
                            outcome,
                        });
                    }
                    EntryPayload::Membership(membership) => {
                        table.membership = StoredMembership::new(Some(entry.log_id), membership);
                        replies.push(Outcome::AlreadyApplied);
                    }
                }
            }
        }
        for event in events {
            // No subscriber is fine: nobody needs to act on it.
            let _ = self.shared.events.send(event);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let registry = RegistryState::from_snapshot(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                AnyError::new(&e),
            ))
        })?;
        self.keep(StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .await?;
        {
            let mut table = self.shared.write();
            table.registry = registry;
            table.last_applied = meta.last_log_id;
            table.membership = meta.last_membership.clone();
        }
        tracing::info!(what = "raft-snapshot-installed", id = %meta.snapshot_id);
        let _ = self.shared.events.send(ReplicaEvent::Restored {
            last_log_id: meta.last_log_id,
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.shared.current().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corvid_registry::RouteRecord;
    use openraft::CommittedLeaderId;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn bind(jid: &str, node: u64, session: u64) -> Command {
        Command::Bind {
            route: RouteRecord {
                jid: jid.to_owned(),
                node,
                session,
                priority: 0,
                available: false,
            },
            max_resources: 10,
        }
    }

    fn normal(index: u64, command: Command) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(command),
        }
    }

    #[tokio::test]
    async fn a_bind_is_applied_answered_and_published() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut sm = StateMachineStore::open(dir.path())?;
        let replica = sm.replica();
        let mut events = replica.subscribe();

        let replies = sm
            .apply([normal(1, bind("alice@example.org/phone", 7, 1))])
            .await?;
        assert_eq!(replies, vec![Outcome::Bound { replaced: None }]);
        assert_eq!(replica.read(|s| s.len()), 1);
        assert_eq!(replica.last_applied().map(|l| l.index), Some(1));

        let replies = sm
            .apply([normal(2, bind("alice@example.org/phone", 8, 2))])
            .await?;
        assert!(
            matches!(&replies[0], Outcome::Bound { replaced: Some(r) } if r.session.0 == 1),
            "the second bind replaces the first: {replies:?}"
        );
        let first = events.recv().await?;
        assert!(matches!(
            first,
            ReplicaEvent::Applied {
                outcome: Outcome::Bound { replaced: None },
                ..
            }
        ));
        let second = events.recv().await?;
        assert!(matches!(second, ReplicaEvent::Applied { log_id, .. } if log_id.index == 2));
        Ok(())
    }

    #[tokio::test]
    async fn a_snapshot_restores_the_table_after_reopening_and_on_another_node() -> TestResult {
        let dir = tempfile::tempdir()?;
        let snapshot = {
            let mut sm = StateMachineStore::open(dir.path())?;
            sm.apply([
                normal(1, bind("alice@example.org/phone", 7, 1)),
                normal(2, bind("bob@example.org/pc", 8, 2)),
            ])
            .await?;
            sm.get_snapshot_builder().await.build_snapshot().await?
        };
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(2));

        // The same folder, reopened: the table comes back from the snapshot file.
        let reopened = StateMachineStore::open(dir.path())?;
        assert_eq!(reopened.replica().read(|s| s.len()), 2);
        assert_eq!(reopened.replica().last_applied().map(|l| l.index), Some(2));

        // Another node installs it and hears that its table was replaced.
        let other_dir = tempfile::tempdir()?;
        let mut other = StateMachineStore::open(other_dir.path())?;
        let mut events = other.replica().subscribe();
        let mut receiving = other.begin_receiving_snapshot().await?;
        *receiving = *snapshot.snapshot;
        other.install_snapshot(&snapshot.meta, receiving).await?;
        assert_eq!(other.replica().read(|s| s.len()), 2);
        assert!(matches!(
            events.try_recv(),
            Ok(ReplicaEvent::Restored { last_log_id: Some(l) }) if l.index == 2
        ));
        // Replaying an entry the snapshot covers changes nothing.
        let replies = other
            .apply([normal(2, bind("carol@example.org/x", 9, 3))])
            .await?;
        assert_eq!(replies, vec![Outcome::AlreadyApplied]);
        assert_eq!(other.replica().read(|s| s.len()), 2);
        Ok(())
    }
}
