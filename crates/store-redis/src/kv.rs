//! [`KeyValueStore`] on `{prefix}:{<jid>}:kv:<store>` strings.

use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_storage::{KeyValueStore, StoreResult};
use redis::AsyncCommands;

use crate::conn::Shared;
use crate::scripts::{DROP_KEY_SCRIPT, KV_SET_SCRIPT};

/// One named key-value store of a [`crate::RedisStore`].
pub(crate) struct RedisKv {
    shared: Arc<Shared>,
    name: Arc<str>,
}

impl RedisKv {
    /// A handle on the store `name`.
    pub(crate) fn new(shared: Arc<Shared>, name: &str) -> Self {
        Self {
            shared,
            name: name.into(),
        }
    }
}

#[async_trait]
impl KeyValueStore for RedisKv {
    async fn get(&self, user: &BareJid) -> StoreResult<Option<Vec<u8>>> {
        let key = self.shared.keys.kv(user, &self.name);
        self.shared
            .run("kv get", |mut conn| async move { Ok(conn.get(key).await?) })
            .await
    }

    async fn set(&self, user: &BareJid, value: &[u8]) -> StoreResult<()> {
        let (key, user_keys) = (
            self.shared.keys.kv(user, &self.name),
            self.shared.keys.user_keys(user),
        );
        self.shared
            .run("kv set", |mut conn| async move {
                Ok(KV_SET_SCRIPT
                    .key(key)
                    .key(user_keys)
                    .arg(value)
                    .invoke_async::<()>(&mut conn)
                    .await?)
            })
            .await
    }

    async fn delete(&self, user: &BareJid) -> StoreResult<bool> {
        let (key, user_keys) = (
            self.shared.keys.kv(user, &self.name),
            self.shared.keys.user_keys(user),
        );
        let existed: i64 = self
            .shared
            .run("kv delete", |mut conn| async move {
                Ok(DROP_KEY_SCRIPT
                    .key(key)
                    .key(user_keys)
                    .invoke_async(&mut conn)
                    .await?)
            })
            .await?;
        Ok(existed == 1)
    }
}
