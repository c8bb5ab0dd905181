//! [`KeyValueStore`] on the `kv` table.

use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_storage::{KeyValueStore, StoreResult};
use redb::Database;

use crate::blocking::{run, Context};
use crate::tables::KV;

/// One named key-value store of an [`crate::EmbeddedStore`].
pub(crate) struct EmbeddedKv {
    db: Arc<Database>,
    name: Arc<str>,
}

impl EmbeddedKv {
    /// A handle on the store `name` in `db`.
    pub(crate) fn new(db: Arc<Database>, name: &str) -> Self {
        Self {
            db,
            name: name.into(),
        }
    }
}

#[async_trait]
impl KeyValueStore for EmbeddedKv {
    async fn get(&self, user: &BareJid) -> StoreResult<Option<Vec<u8>>> {
        let (user, name) = (user.to_string(), Arc::clone(&self.name));
        run(&self.db, move |db| {
            let tx = db.begin_read().context("begin read")?;
            let table = tx.open_table(KV).context("open kv")?;
            let found = table.get((user.as_str(), &*name)).context("read kv")?;
            Ok(found.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn set(&self, user: &BareJid, value: &[u8]) -> StoreResult<()> {
        let (user, name, value) = (user.to_string(), Arc::clone(&self.name), value.to_vec());
        run(&self.db, move |db| {
            let tx = db.begin_write().context("begin kv set")?;
            tx.open_table(KV)
                .context("open kv")?
                .insert((user.as_str(), &*name), value.as_slice())
                .context("write kv")?;
            tx.commit().context("commit kv set")
        })
        .await
    }

    async fn delete(&self, user: &BareJid) -> StoreResult<bool> {
        let (user, name) = (user.to_string(), Arc::clone(&self.name));
        run(&self.db, move |db| {
            let tx = db.begin_write().context("begin kv delete")?;
            let existed = tx
                .open_table(KV)
                .context("open kv")?
                .remove((user.as_str(), &*name))
                .context("remove kv")?
                .is_some();
            tx.commit().context("commit kv delete")?;
            Ok(existed)
        })
        .await
    }
}
