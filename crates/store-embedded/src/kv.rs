//! [`KeyValueStore`] on the `kv` table.

use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_storage::{KeyValueStore, StoreResult};

use crate::blocking::{read, Context};
use crate::tables::KV;
use crate::writer::Db;

/// One named key-value store of an [`crate::EmbeddedStore`].
pub(crate) struct EmbeddedKv {
    db: Db,
    name: Arc<str>,
}

impl EmbeddedKv {
    /// A handle on the store `name` in `db`.
    pub(crate) fn new(db: Db, name: &str) -> Self {
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
        read(self.db.database(), move |db| {
            let tx = db.begin_read().context("begin read")?;
            let table = tx.open_table(KV).context("open kv")?;
            let found = table.get((user.as_str(), &*name)).context("read kv")?;
            Ok(found.map(|v| v.value().to_vec()))
        })
    }

    async fn set(&self, user: &BareJid, value: &[u8]) -> StoreResult<()> {
        let (user, name, value) = (user.to_string(), Arc::clone(&self.name), value.to_vec());
        self.db
            .write("kv set", move |tx| {
                tx.open_table(KV)
                    .context("open kv")?
                    .insert((user.as_str(), &*name), value.as_slice())
                    .context("write kv")?;
                Ok(())
            })
            .await
    }

    async fn delete(&self, user: &BareJid) -> StoreResult<bool> {
        let (user, name) = (user.to_string(), Arc::clone(&self.name));
        self.db
            .write("kv delete", move |tx| {
                let existed = tx
                    .open_table(KV)
                    .context("open kv")?
                    .remove((user.as_str(), &*name))
                    .context("remove kv")?
                    .is_some();
                Ok(existed)
            })
            .await
    }
}
