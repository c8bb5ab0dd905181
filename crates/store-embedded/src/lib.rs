//! The embedded on-disk store (redb): the single-node default backend.
//!
//! # Layout
//!
//! One redb 2 database, `dir/corvid.redb`. Every user-data key starts with the user (the bare
//! JID as [`BareJid`](corvid_jid::BareJid) displays it, already normalized), so all of a user's rows, or all of one
//! user's entries in one named store, are one contiguous key range. Tuple keys compare element by
//! element, strings bytewise, so the names `"roster"` and `"roster2"` or the users `al@x` and
//! `al@x.y` never mix.
//!
//! | table           | key                          | value                                   |
//! |-----------------|------------------------------|-----------------------------------------|
//! | `meta`          | `"format"`                   | `u64` layout version, now `1`           |
//! | `accounts`      | bare JID                     | `0x01` ‖ JSON of `StoredCredentials`    |
//! | `kv`            | `(user, store name)`         | the document, raw bytes                 |
//! | `map`           | `(user, store name, key)`    | the value, raw bytes                    |
//! | `archive`       | `(user, store name, id u64)` | the item, raw bytes                     |
//! | `archive_count` | `(user, store name)`         | `u64` items in `archive` (absent = 0)   |
//! | `archive_seq`   | store name                   | `u64` last id handed out in that store  |
//!
//! - Module data (kv/map/archive values) is opaque to the store and kept as given; the layout
//!   version in `meta` covers the table shapes, and account values carry their own version byte.
//!   A database with a newer layout version is refused at open rather than misread.
//! - Archive ids come from one counter per store name, shared by the store's users, starting at
//!   1: strictly increasing per user and never reused, even after `clear` or when an account is
//!   deleted and created again, and no row of a deleted user survives.
//! - `archive_count` makes `count` and the `max_items` check one lookup instead of a scan; it is
//!   updated in the same write transaction as the items.
//!
//! ```text
//!  async caller ──▶ handle (Db + store name) ──reads: inline──▶ redb read transaction
//!                                           └─writes: queue──▶ writer thread: group commit
//!  EmbeddedStore::accounts/kv/map/archive: cheap handles sharing one Db
//! ```
//!
//! Reads are one redb read transaction each, run inline (microseconds from redb's page cache:
//! cheaper than two thread switches); listing every account and exporting a user run on tokio's
//! blocking pool. Writes go to the store's writer thread, which commits the writes queued at
//! that moment in one transaction with one fsync (group commit, see `writer.rs`; while several
//! callers write at once, commits begin at most once per 5 ms and take in what arrives
//! meanwhile); each caller hears back once its write is durable (redb's default
//! `Durability::Immediate`), and sees the same result it would have alone. redb runs one write
//! transaction at a time, which is what makes `append` with `max_items` and
//! `AccountStore::delete` atomic.
//! `AccountStore::import` commits every 4096 accounts; if it fails part way, the committed
//! batches stay and running it again counts them as existing.
//!
//! The file is locked while open: a second [`EmbeddedStore::open`] of the same folder, from this
//! process or another, fails with `Unavailable` until every handle of the first store (including
//! the kv/map/archive handles it gave out) has been dropped.

mod accounts;
mod archive;
mod blocking;
mod kv;
mod map;
mod migration;
mod tables;
mod writer;

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use corvid_storage::{
    AccountStore, ArchiveStore, KeyValueStore, MapStore, Migration, Store, StoreError,
};
use redb::{Database, DatabaseError, ReadableTable};

use crate::accounts::EmbeddedAccounts;
use crate::archive::EmbeddedArchive;
use crate::kv::EmbeddedKv;
use crate::map::EmbeddedMap;
use crate::tables::{
    ACCOUNTS, ARCHIVE, ARCHIVE_COUNT, ARCHIVE_SEQ, FORMAT, FORMAT_KEY, KV, MAP, META,
};
use crate::writer::Db;

/// The database file's name inside the data folder.
pub const FILE_NAME: &str = "corvid.redb";
/// The page cache of [`EmbeddedStore::open`] (the `storage.cache_mb` default): 4 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 4 << 20;

/// A store in one redb database file under a data folder.
pub struct EmbeddedStore {
    db: Db,
    path: PathBuf,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir` (the file is `dir/corvid.redb`). Fails with a
    /// message naming the path if the folder cannot be created or the database is locked by
    /// another process or corrupt.
    ///
    /// This does blocking file I/O (and, after a crash, a repair that can take a while on a large
    /// file): call it at startup or from `spawn_blocking`.
    pub fn open(dir: &Path) -> Result<Arc<Self>, StoreError> {
        Self::open_with(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`EmbeddedStore::open`] with at most `cache_bytes` of the file's pages cached in memory
    /// (redb's own default is 1 GiB, a copy of what the kernel's page cache holds anyway).
    pub fn open_with(dir: &Path, cache_bytes: usize) -> Result<Arc<Self>, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create data folder {}: {e}", dir.display()))
        })?;
        let path = dir.join(FILE_NAME);
        // redb 2 asserts on some damage (a file shorter than its header says, for one) instead
        // of returning an error; a damaged file must not take the server down with it.
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let db = Database::builder()
                .set_cache_size(cache_bytes)
                .create(&path)
                .map_err(|e| open_error(&path, e))?;
            prepare(&db, &path)?;
            Ok(db)
        }));
        let db = match opened {
            Ok(result) => result?,
            Err(panic) => {
                let why = panic_message(panic.as_ref());
                tracing::error!(what = "store_open_failed", backend = "embedded", path = %path.display(), error = %why);
                return Err(StoreError::Unavailable(format!(
                    "cannot open {}: database is corrupt (redb: {why}); restore it from a backup",
                    path.display()
                )));
            }
        };
        tracing::info!(what = "store_open", backend = "embedded", path = %path.display());
        Ok(Arc::new(Self {
            db: Db::new(db)?,
            path,
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store for EmbeddedStore {
    fn migration(&self) -> Arc<dyn Migration> {
        Arc::new(migration::EmbeddedMigration::new(Arc::clone(
            self.db.database(),
        )))
    }
    fn accounts(&self) -> Arc<dyn AccountStore> {
        Arc::new(EmbeddedAccounts::new(self.db.clone()))
    }
    fn kv(&self, name: &str) -> Arc<dyn KeyValueStore> {
        Arc::new(EmbeddedKv::new(self.db.clone(), name))
    }
    fn map(&self, name: &str) -> Arc<dyn MapStore> {
        Arc::new(EmbeddedMap::new(self.db.clone(), name))
    }
    fn archive(&self, name: &str) -> Arc<dyn ArchiveStore> {
        Arc::new(EmbeddedArchive::new(self.db.clone(), name))
    }
}

/// Explains why the database at `path` did not open.
fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let why = match e {
        DatabaseError::DatabaseAlreadyOpen => {
            "database already open (by another process, or by another store in this process)"
                .to_owned()
        }
        DatabaseError::UpgradeRequired(version) => {
            format!("database file format {version} is too old for this redb and must be upgraded")
        }
        DatabaseError::Storage(redb::StorageError::Corrupted(msg)) => {
            format!("database is corrupt ({msg}); restore it from a backup")
        }
        DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            format!("not a redb database, or corrupt ({io}); restore it from a backup")
        }
        e => e.to_string(),
    };
    tracing::error!(what = "store_open_failed", backend = "embedded", path = %path.display(), error = %why);
    StoreError::Unavailable(format!("cannot open {}: {why}", path.display()))
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(msg), _) => (*msg).to_owned(),
        (_, Some(msg)) => msg.clone(),
        _ => "panic without a message".to_owned(),
    }
}

/// Creates the tables and checks (or, on a new file, writes) the layout version.
fn prepare(db: &Database, path: &Path) -> Result<(), StoreError> {
    let fail = |what: &str, e: &dyn fmt::Display| {
        StoreError::Unavailable(format!("cannot prepare {}: {what}: {e}", path.display()))
    };
    let tx = db.begin_write().map_err(|e| fail("begin", &e))?;
    {
        let mut meta = tx.open_table(META).map_err(|e| fail("open meta", &e))?;
        let format = meta
            .get(FORMAT_KEY)
            .map_err(|e| fail("read format", &e))?
            .map(|v| v.value());
        match format {
            None => {
                meta.insert(FORMAT_KEY, FORMAT)
                    .map_err(|e| fail("write format", &e))?;
            }
            Some(FORMAT) => {}
            Some(other) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot open {}: layout version {other} is not {FORMAT}, the one this Corvid understands",
                    path.display()
                )));
            }
        }
        // Opening a table in a write transaction creates it; afterwards reads never meet a
        // missing table. A table of the same name with other key/value types is an error here.
        tx.open_table(ACCOUNTS)
            .map_err(|e| fail("open accounts", &e))?;
        tx.open_table(KV).map_err(|e| fail("open kv", &e))?;
        tx.open_table(MAP).map_err(|e| fail("open map", &e))?;
        tx.open_table(ARCHIVE)
            .map_err(|e| fail("open archive", &e))?;
        tx.open_table(ARCHIVE_COUNT)
            .map_err(|e| fail("open archive counts", &e))?;
        tx.open_table(ARCHIVE_SEQ)
            .map_err(|e| fail("open archive ids", &e))?;
    }
    tx.commit().map_err(|e| fail("commit", &e))
}
