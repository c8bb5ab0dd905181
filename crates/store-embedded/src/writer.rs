//! Group commit: every write of the store runs on one writer thread, and the writes that queue
//! up while a commit is being made durable share the next transaction and its one fsync.
//!
//! ```text
//!  set/append/delete ──job──▶ queue ──▶ writer thread: take every queued job (≤ MAX_GROUP)
//!        ▲                                  │ one write transaction, the jobs in arrival order
//!        └──── result after the commit ◀────┘ one commit (fsync)
//! ```
//!
//! redb runs one write transaction at a time anyway, so a writer thread loses no parallelism;
//! what it saves is an fsync (and a thread hand-off) per write under load, e.g. one per logout
//! for XEP-0012 last activity. A lone write is committed at once: nothing waits for company.
//!
//! The jobs of a group see each other's writes exactly as if they had run one after another in
//! their own transactions, and every caller hears back only after the commit that made its write
//! durable. A job that fails (or panics) may have written part of its work into the shared
//! transaction, so the group is then rolled back and every job of it is run again alone, each in
//! its own transaction: the failing one fails by itself, as it would have without grouping.
//! That is why jobs are `Fn`: they may run twice, the first run never committed.
//!
//! A write may ask for [`Durability::Relaxed`] (XEP-0012 last activity, one per logout): a group
//! made only of such writes is committed without an fsync (redb's `Durability::None`) and its
//! callers hear back at once. The thread then makes it durable with an empty fsynced commit
//! after [`SYNC_DELAY`] without other writes, or sooner with the next group that has an ordinary
//! write (an fsynced commit persists every commit before it), and before it stops. A crash loses
//! at most the relaxed writes of the last [`SYNC_DELAY`]; nothing else changes.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use corvid_storage::{StoreError, StoreResult};
use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use crate::blocking::Context;

/// At most this many jobs share a transaction (bounds the work lost to one failing job).
const MAX_GROUP: usize = 256;

/// How long a relaxed write may stay without an fsync, at most (plus one commit).
pub(crate) const SYNC_DELAY: Duration = Duration::from_secs(1);

/// How soon a write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Durable before the caller hears back.
    Immediate,
    /// Durable within [`SYNC_DELAY`] (see the module documentation).
    Relaxed,
}

/// A database and the writer thread that makes every write transaction on it.
#[derive(Clone)]
pub(crate) struct Db {
    db: Arc<Database>,
    writer: Arc<Writer>,
}

impl Db {
    /// Starts the writer thread of `db`. Fails only if the system cannot start a thread.
    pub(crate) fn new(db: Database) -> Result<Self, StoreError> {
        let db = Arc::new(db);
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("corvid-store-writer".into())
            .spawn({
                let db = Arc::clone(&db);
                move || write_loop(&db, &jobs)
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer: {e}")))?;
        Ok(Self {
            db,
            writer: Arc::new(Writer {
                queue: Some(queue),
                thread: Some(thread),
            }),
        })
    }

    /// The database, for reads and for bulk writes that commit in batches of their own.
    pub(crate) fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Runs `work` in a write transaction (possibly shared with other writes, see the module
    /// documentation) and returns its result once that transaction is committed. `what` names
    /// the operation in errors.
    pub(crate) async fn write<T, F>(&self, what: &'static str, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        self.write_with(what, Durability::Immediate, work).await
    }

    /// [`Self::write`] with the durability it needs.
    pub(crate) async fn write_with<T, F>(
        &self,
        what: &'static str,
        durability: Durability,
        work: F,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job = Box::new(Typed {
            what,
            durability,
            work,
            result: None,
            reply,
        });
        let sent = self
            .writer
            .queue
            .as_ref()
            .is_some_and(|q| q.send(job).is_ok());
        if !sent {
            return Err(StoreError::Unavailable(format!(
                "{what}: the store writer has stopped"
            )));
        }
        result.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "{what}: the store writer stopped before answering"
            )))
        })
    }
}

/// The writer thread's queue; dropping the last handle stops the thread and waits for it, so the
/// database file is closed (and its lock released) when the store's last handle is gone.
struct Writer {
    /// `None` only while dropping: closing it tells the thread to finish.
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            // The thread finishes the jobs already queued, then sees the queue closed.
            let _ = thread.join();
        }
    }
}

/// One queued write, with its result type erased.
trait Job: Send {
    /// Runs the work in `tx`, keeping its result; false when it failed or panicked.
    fn run(&mut self, tx: &WriteTransaction) -> bool;
    /// Answers the caller: with the kept result, or with `error` if the commit failed.
    fn answer(self: Box<Self>, error: Option<StoreError>);
    /// Names the operation.
    fn what(&self) -> &'static str;
    /// How soon it must be on disk.
    fn durability(&self) -> Durability;
}

struct Typed<T, F> {
    what: &'static str,
    durability: Durability,
    work: F,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send + 'static,
    F: Fn(&WriteTransaction) -> StoreResult<T> + Send + 'static,
{
    fn run(&mut self, tx: &WriteTransaction) -> bool {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| (self.work)(tx))).unwrap_or_else(
            |panic| {
                Err(StoreError::Unavailable(format!(
                    "{}: storage task failed: {}",
                    self.what,
                    crate::panic_message(panic.as_ref())
                )))
            },
        );
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, error: Option<StoreError>) {
        let result = match (error, self.result) {
            (Some(e), _) => Err(e),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::Unavailable(format!(
                "{}: the write did not run",
                self.what
            ))),
        };
        // The caller may have gone away (its future dropped): the write stands all the same.
        let _ = self.reply.send(result);
    }

    fn what(&self) -> &'static str {
        self.what
    }

    fn durability(&self) -> Durability {
        self.durability
    }
}

/// The writer thread: until every handle is dropped, commits each group of queued jobs; keeps
/// relaxed commits from waiting longer than [`SYNC_DELAY`] for their fsync.
fn write_loop(db: &Database, jobs: &mpsc::Receiver<Box<dyn Job>>) {
    // A commit was made without an fsync and no fsynced commit has followed it yet.
    let mut unsynced = false;
    loop {
        let first = if unsynced {
            match jobs.recv_timeout(SYNC_DELAY) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    unsynced = !sync(db);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // One ordinary write makes the whole group (and every commit before it) durable.
        let durability = if group.iter().all(|j| j.durability() == Durability::Relaxed) {
            Durability::Relaxed
        } else {
            Durability::Immediate
        };
        let grouped = if group.len() > 1 {
            commit_group(db, &mut group, durability)
        } else {
            None
        };
        // Alone, each job in turn: every one of them runs, whatever the others did.
        let synced = grouped.unwrap_or_else(|| {
            let mut synced = false;
            for job in group {
                synced |= commit_alone(db, job, durability);
            }
            synced
        });
        unsynced = match durability {
            Durability::Relaxed => true,
            Durability::Immediate => unsynced && !synced,
        };
    }
    // Every handle is gone: what is still without an fsync gets one before the file closes.
    if unsynced {
        sync(db);
    }
}

/// An empty fsynced commit, which makes every commit before it durable. True when done.
fn sync(db: &Database) -> bool {
    let r = db
        .begin_write()
        .context("begin sync")
        .and_then(|tx| tx.commit().context("commit sync"));
    if let Err(e) = &r {
        tracing::warn!(what = "store_sync_failed", backend = "embedded", error = %e);
    }
    r.is_ok()
}

/// Starts a write transaction with `durability`.
fn begin(db: &Database, what: &str, durability: Durability) -> StoreResult<WriteTransaction> {
    let mut tx = db.begin_write().context(what)?;
    if durability == Durability::Relaxed {
        tx.set_durability(redb::Durability::None);
    }
    Ok(tx)
}

/// Runs every job of `group` in one transaction and commits it. `Some` when done (every job
/// answered), with whether an fsynced commit succeeded; `None` when a job failed, the
/// transaction rolled back and the jobs are still to be run alone.
fn commit_group(
    db: &Database,
    group: &mut Vec<Box<dyn Job>>,
    durability: Durability,
) -> Option<bool> {
    let tx = match begin(db, "begin grouped write", durability) {
        Ok(tx) => tx,
        Err(e) => {
            for job in group.drain(..) {
                job.answer(Some(e.clone()));
            }
            return Some(false);
        }
    };
    for job in group.iter_mut() {
        if !job.run(&tx) {
            drop(tx);
            return None;
        }
    }
    let error = tx.commit().context("commit grouped write").err();
    if let Some(e) = &error {
        tracing::warn!(what = "store_commit_failed", backend = "embedded", writes = group.len(), error = %e);
    }
    let synced = error.is_none() && durability == Durability::Immediate;
    for job in group.drain(..) {
        job.answer(error.clone());
    }
    Some(synced)
}

/// Runs one job in a transaction of its own: committed if it succeeded, rolled back if not.
/// True when an fsynced commit succeeded.
fn commit_alone(db: &Database, mut job: Box<dyn Job>, durability: Durability) -> bool {
    let what = job.what();
    let tx = match begin(db, what, durability) {
        Ok(tx) => tx,
        Err(e) => {
            job.answer(Some(e));
            return false;
        }
    };
    if job.run(&tx) {
        let error = tx.commit().context(what).err();
        let synced = error.is_none() && durability == Durability::Immediate;
        job.answer(error);
        synced
    } else {
        drop(tx);
        job.answer(None);
        false
    }
}
