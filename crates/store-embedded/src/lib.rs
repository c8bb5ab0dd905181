//! The embedded on-disk store (redb): the single-node default backend.

use std::path::Path;
use std::sync::Arc;

use corvid_storage::{Store, StoreError};

/// A store in one redb database file under a data folder.
pub struct EmbeddedStore {}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir` (the file is `dir/corvid.redb`). Fails with a
    /// message naming the path if the folder cannot be created or the database is locked by
    /// another process or corrupt.
    pub fn open(dir: &Path) -> Result<Arc<Self>, StoreError> {
        todo!()
    }
}
