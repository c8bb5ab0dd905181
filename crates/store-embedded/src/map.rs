//! [`MapStore`] on the `map` table.

use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_storage::{MapStore, StoreResult};

use crate::blocking::{read, Context};
use crate::tables::{successor, MAP};
use crate::writer::Db;

/// One named map store of an [`crate::EmbeddedStore`].
pub(crate) struct EmbeddedMap {
    db: Db,
    name: Arc<str>,
}

impl EmbeddedMap {
    /// A handle on the store `name` in `db`.
    pub(crate) fn new(db: Db, name: &str) -> Self {
        Self {
            db,
            name: name.into(),
        }
    }
}

#[async_trait]
impl MapStore for EmbeddedMap {
    async fn get(&self, user: &BareJid, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let (user, name, key) = (user.to_string(), Arc::clone(&self.name), key.to_owned());
        read(self.db.database(), move |db| {
            let tx = db.begin_read().context("begin read")?;
            let table = tx.open_table(MAP).context("open map")?;
            let found = table
                .get((user.as_str(), &*name, key.as_str()))
                .context("read map")?;
            Ok(found.map(|v| v.value().to_vec()))
        })
    }

    async fn set(&self, user: &BareJid, key: &str, value: &[u8]) -> StoreResult<()> {
        let (user, name) = (user.to_string(), Arc::clone(&self.name));
        let (key, value) = (key.to_owned(), value.to_vec());
        self.db
            .write("map set", move |tx| {
                tx.open_table(MAP)
                    .context("open map")?
                    .insert((user.as_str(), &*name, key.as_str()), value.as_slice())
                    .context("write map")?;
                Ok(())
            })
            .await
    }

    async fn delete(&self, user: &BareJid, key: &str) -> StoreResult<bool> {
        let (user, name, key) = (user.to_string(), Arc::clone(&self.name), key.to_owned());
        self.db
            .write("map delete", move |tx| {
                let existed = tx
                    .open_table(MAP)
                    .context("open map")?
                    .remove((user.as_str(), &*name, key.as_str()))
                    .context("remove map entry")?
                    .is_some();
                Ok(existed)
            })
            .await
    }

    async fn all(&self, user: &BareJid) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let (user, name) = (user.to_string(), Arc::clone(&self.name));
        read(self.db.database(), move |db| {
            let next = successor(&name);
            let tx = db.begin_read().context("begin read")?;
            let table = tx.open_table(MAP).context("open map")?;
            let mut entries = Vec::new();
            for row in table
                .range((user.as_str(), &*name, "")..(user.as_str(), next.as_str(), ""))
                .context("read map")?
            {
                let (key, value) = row.context("read map")?;
                entries.push((key.value().2.to_owned(), value.value().to_vec()));
            }
            Ok(entries)
        })
    }

    async fn clear(&self, user: &BareJid) -> StoreResult<()> {
        let (user, name) = (user.to_string(), Arc::clone(&self.name));
        self.db
            .write("map clear", move |tx| {
                let next = successor(&name);
                tx.open_table(MAP)
                    .context("open map")?
                    .retain_in(
                        (user.as_str(), &*name, "")..(user.as_str(), next.as_str(), ""),
                        |_, _| false,
                    )
                    .context("clear map")?;
                Ok(())
            })
            .await
    }
}
