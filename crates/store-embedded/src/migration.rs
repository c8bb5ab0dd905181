//! Whole-account export and import (being implemented).

use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_storage::{Migration, StoreError, StoreResult, UserData};
use redb::Database;

/// Export/import over the embedded database.
pub(crate) struct EmbeddedMigration {
    #[allow(dead_code)]
    db: Arc<Database>,
}

impl EmbeddedMigration {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        Self { db }
    }
}

#[async_trait]
impl Migration for EmbeddedMigration {
    async fn export_user(&self, _jid: &BareJid) -> StoreResult<Option<UserData>> {
        Err(StoreError::Unavailable(
            "export is not implemented yet".into(),
        ))
    }
    async fn import_user(&self, _data: &UserData) -> StoreResult<()> {
        Err(StoreError::Unavailable(
            "import is not implemented yet".into(),
        ))
    }
}
