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
//! While several callers write at once, a commit waits until [`LINGER`] has passed since the
//! previous one began, so that a steady stream of writes costs at most one fsync per `LINGER`.
//!
//! The jobs of a group see each other's writes exactly as if they had run one after another in
//! their own transactions, and every caller hears back only after the commit that made its write
//! durable. A job that fails (or panics) may have written part of its work into the shared
//! transaction, so the group is then rolled back and every job of it is run again alone, each in
//! its own transaction: the failing one fails by itself, as it would have without grouping.
//! That is why jobs are `Fn`: they may run twice, the first run never committed.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use corvid_storage::{StoreError, StoreResult};
use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::blocking::Context;

/// At most this many jobs share a transaction (bounds the work lost to one failing job).
const MAX_GROUP: usize = 256;

/// While several callers write at once, commits (and their fsyncs) begin at most this often;
/// see [`write_loop`].
const LINGER: Duration = Duration::from_millis(5);

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
        let commits = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new()
            .name("corvid-store-writer".into())
            .spawn({
                let db = Arc::clone(&db);
                let commits = Arc::clone(&commits);
                move || write_loop(&db, &jobs, &commits)
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer: {e}")))?;
        Ok(Self {
            db,
            writer: Arc::new(Writer {
                queue: Some(queue),
                thread: Some(thread),
                commits,
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
        let (reply, result) = oneshot::channel();
        let job = Box::new(Typed {
            what,
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
    /// Write transactions begun so far (what the tests read off the writer thread).
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests read it"))]
    commits: Arc<AtomicU64>,
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
}

struct Typed<T, F> {
    what: &'static str,
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
}

/// The writer thread: until every handle is dropped, commits each group of queued jobs.
///
/// While writes come from several callers at once (the last group held more than one), the
/// thread lets a commit wait until [`LINGER`] has passed since the previous one began, taking in
/// the writes that arrive meanwhile: fsyncs are then at most one per `LINGER` however fast
/// writes come, at the price of up to `LINGER` more wait for each (every write is still answered
/// only once it is durable). A write that comes alone is committed at once.
fn write_loop(db: &Database, jobs: &mpsc::Receiver<Box<dyn Job>>, commits: &AtomicU64) {
    let mut busy = false;
    let mut last_commit = Instant::now();
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        // Busy: wait for company until LINGER after the last commit began; otherwise (or once
        // that has passed) take only what is queued already.
        let until = if busy {
            last_commit + LINGER
        } else {
            Instant::now()
        };
        while group.len() < MAX_GROUP {
            match jobs.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        busy = group.len() > 1;
        last_commit = Instant::now();
        commits.fetch_add(1, Ordering::Relaxed);
        if group.len() == 1 || !commit_group(db, &mut group) {
            for job in group {
                commit_alone(db, job);
            }
        }
    }
}

/// Runs every job of `group` in one transaction and commits it. True when done (every job
/// answered); false when a job failed, the transaction rolled back and the jobs are still to be
/// run alone.
fn commit_group(db: &Database, group: &mut Vec<Box<dyn Job>>) -> bool {
    let tx = match db.begin_write().context("begin grouped write") {
        Ok(tx) => tx,
        Err(e) => {
            for job in group.drain(..) {
                job.answer(Some(e.clone()));
            }
            return true;
        }
    };
    for job in group.iter_mut() {
        if !job.run(&tx) {
            drop(tx);
            return false;
        }
    }
    let error = tx.commit().context("commit grouped write").err();
    if let Some(e) = &error {
        tracing::warn!(what = "store_commit_failed", backend = "embedded", writes = group.len(), error = %e);
    }
    for job in group.drain(..) {
        job.answer(error.clone());
    }
    true
}

/// Runs one job in a transaction of its own: committed if it succeeded, rolled back if not.
fn commit_alone(db: &Database, mut job: Box<dyn Job>) {
    let what = job.what();
    let tx = match db.begin_write().context(what) {
        Ok(tx) => tx,
        Err(e) => return job.answer(Some(e)),
    };
    if job.run(&tx) {
        let error = tx.commit().context(what).err();
        job.answer(error);
    } else {
        drop(tx);
        job.answer(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableTableMetadata as _, TableDefinition};

    const TABLE: TableDefinition<u64, u64> = TableDefinition::new("writer_test");

    /// Eight callers writing as fast as they are answered: while they do, commits are paced by
    /// LINGER (the bound allows two per LINGER, and a few more to start), yet every write is
    /// there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_commits_paced_by_the_linger() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::new(Database::create(dir.path().join("w.redb")).unwrap()).unwrap();
        let started = Instant::now();
        let writers: Vec<_> = (0..8u64)
            .map(|w| {
                let db = db.clone();
                tokio::spawn(async move {
                    for i in 0..40u64 {
                        db.write("test write", move |tx| {
                            let mut t = tx.open_table(TABLE).unwrap();
                            t.insert(w * 1000 + i, i).unwrap();
                            Ok(())
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let elapsed = started.elapsed();
        let commits = db.writer.commits.load(Ordering::Relaxed);
        // Without the linger every group would commit as soon as the previous one did: about
        // one commit per write or two (320 writes) in far less time than 320 LINGERs.
        let bound = 2 * (elapsed.as_millis() / LINGER.as_millis()) as u64 + 4;
        assert!(
            commits <= bound,
            "{commits} commits in {elapsed:?}: more than {bound}"
        );
        let read = db.database().begin_read().unwrap();
        let table = read.open_table(TABLE).unwrap();
        assert_eq!(table.len().unwrap(), 320);
    }
}
