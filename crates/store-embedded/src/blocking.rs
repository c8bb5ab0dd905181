//! Running redb work off the async threads, and turning redb's errors into [`StoreError`]s.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use corvid_storage::{StoreError, StoreResult};
use redb::Database;

/// Runs `work` on tokio's blocking pool (redb does synchronous file I/O and fsyncs), or inline
/// when called outside a tokio runtime.
pub(crate) async fn run<T, F>(db: &Arc<Database>, work: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
{
    let db = Arc::clone(db);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("storage task failed: {e}")))?,
        // Off tokio there is no pool to contain a panic in redb, so contain it here.
        Err(_) => {
            std::panic::catch_unwind(AssertUnwindSafe(|| work(&db))).unwrap_or_else(|panic| {
                Err(StoreError::Unavailable(format!(
                    "storage task failed: {}",
                    crate::panic_message(panic.as_ref())
                )))
            })
        }
    }
}

/// Runs a point read or a short scan inline on the calling thread. redb serves it from its page
/// cache (or the kernel's) in microseconds: less than the two thread switches of handing it to
/// the blocking pool and back, which cost more CPU than the read itself on a login's path. Long
/// scans (every account, a whole user's export) still go through [`run`]. A panic in redb is
/// contained here as in [`run`].
pub(crate) fn read<T, F>(db: &Database, work: F) -> StoreResult<T>
where
    F: FnOnce(&Database) -> StoreResult<T>,
{
    std::panic::catch_unwind(AssertUnwindSafe(|| work(db))).unwrap_or_else(|panic| {
        Err(StoreError::Unavailable(format!(
            "storage read failed: {}",
            crate::panic_message(panic.as_ref())
        )))
    })
}

/// Converts redb results, naming what was being done.
pub(crate) trait Context<T> {
    /// Maps the error: corruption is [`StoreError::Corrupt`], an oversized value is
    /// [`StoreError::LimitReached`], anything else (I/O, locks) is [`StoreError::Unavailable`].
    fn context(self, what: &str) -> StoreResult<T>;
}

impl<T, E> Context<T> for Result<T, E>
where
    E: Into<redb::Error>,
{
    fn context(self, what: &str) -> StoreResult<T> {
        self.map_err(|e| match e.into() {
            redb::Error::Corrupted(msg) => StoreError::Corrupt(format!("{what}: {msg}")),
            e @ redb::Error::ValueTooLarge(_) => {
                tracing::warn!(what = "store_value_too_large", during = what, error = %e);
                StoreError::LimitReached
            }
            e => StoreError::Unavailable(format!("{what}: {e}")),
        })
    }
}
