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

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use corvid_storage::{StoreError, StoreResult};
use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use crate::blocking::Context;

/// At most this many jobs share a transaction (bounds the work lost to one failing job).
const MAX_GROUP: usize = 256;

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
fn write_loop(db: &Database, jobs: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
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
