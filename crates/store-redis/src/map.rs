//! [`MapStore`] on `{prefix}:{<jid>}:map:<store>` hashes.

use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_storage::{MapStore, StoreError, StoreResult};
use redis::AsyncCommands;

use crate::conn::Shared;
use crate::scripts::{DROP_KEY_SCRIPT, MAP_DELETE_SCRIPT, MAP_SET_SCRIPT};

/// One named map store of a [`crate::RedisStore`].
pub(crate) struct RedisMap {
    shared: Arc<Shared>,
    name: Arc<str>,
}

impl RedisMap {
    /// A handle on the store `name`.
    pub(crate) fn new(shared: Arc<Shared>, name: &str) -> Self {
        Self {
            shared,
            name: name.into(),
        }
    }
}

/// Hash fields and values as map entries, ordered bytewise by key. Field names were written
/// from `&str`, so one that is not UTF-8 was not written by this store.
pub(crate) fn entries(
    what: &str,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
) -> StoreResult<Vec<(String, Vec<u8>)>> {
    let mut entries = fields
        .into_iter()
        .map(|(field, value)| {
            String::from_utf8(field)
                .map(|key| (key, value))
                .map_err(|e| StoreError::Corrupt(format!("{what}: a map key is not UTF-8: {e}")))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    // `str` orders bytewise, which is the order the trait promises.
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

#[async_trait]
impl MapStore for RedisMap {
    async fn get(&self, user: &BareJid, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let map = self.shared.keys.map(user, &self.name);
        self.shared
            .run("map get", |mut conn| async move {
                Ok(conn.hget(map, key).await?)
            })
            .await
    }

    async fn set(&self, user: &BareJid, key: &str, value: &[u8]) -> StoreResult<()> {
        let (map, user_keys) = (
            self.shared.keys.map(user, &self.name),
            self.shared.keys.user_keys(user),
        );
        self.shared
            .run("map set", |mut conn| async move {
                Ok(MAP_SET_SCRIPT
                    .key(map)
                    .key(user_keys)
                    .arg(key)
                    .arg(value)
                    .invoke_async::<()>(&mut conn)
                    .await?)
            })
            .await
    }

    async fn delete(&self, user: &BareJid, key: &str) -> StoreResult<bool> {
        let (map, user_keys) = (
            self.shared.keys.map(user, &self.name),
            self.shared.keys.user_keys(user),
        );
        let existed: i64 = self
            .shared
            .run("map delete", |mut conn| async move {
                Ok(MAP_DELETE_SCRIPT
                    .key(map)
                    .key(user_keys)
                    .arg(key)
                    .invoke_async(&mut conn)
                    .await?)
            })
            .await?;
        Ok(existed == 1)
    }

    async fn all(&self, user: &BareJid) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let map = self.shared.keys.map(user, &self.name);
        let fields: Vec<(Vec<u8>, Vec<u8>)> = self
            .shared
            .run(
                "map all",
                |mut conn| async move { Ok(conn.hgetall(map).await?) },
            )
            .await?;
        entries(&format!("map {}", self.name), fields)
    }

    async fn clear(&self, user: &BareJid) -> StoreResult<()> {
        let (map, user_keys) = (
            self.shared.keys.map(user, &self.name),
            self.shared.keys.user_keys(user),
        );
        self.shared
            .run("map clear", |mut conn| async move {
                Ok(DROP_KEY_SCRIPT
                    .key(map)
                    .key(user_keys)
                    .invoke_async::<()>(&mut conn)
                    .await?)
            })
            .await
    }
}
