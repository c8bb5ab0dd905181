//! [`ArchiveStore`] on `{prefix}:{<jid>}:arc:<store>` hashes (id → item) with a sorted-set
//! index `{prefix}:{<jid>}:arcidx:<store>`, and ids from `{prefix}:seq:<store>`.
//!
//! Ids come from one counter per store name, shared by all users (as in the embedded store):
//! the append script takes the next id and inserts the item in one atomic step, so ids
//! increase strictly per user, are never handed out twice (not after `clear`, nor after the
//! account is deleted and created again), and deleting a user leaves nothing of it behind.
//! Ids are sorted-set scores, doubles, so they stay exact up to [`MAX_ID`] (2^53 - 1).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_storage::{ArchiveStore, StoreError, StoreResult};
use redis::AsyncCommands;

use crate::conn::Shared;
use crate::scripts::{
    ARCHIVE_APPEND_SCRIPT, ARCHIVE_CLEAR_SCRIPT, ARCHIVE_RANGE_SCRIPT, ARCHIVE_REMOVE_SCRIPT,
};

/// The largest archive id this backend stores: ids are sorted-set scores (doubles) and Lua
/// numbers, both exact up to 2^53 - 1.
pub const MAX_ID: u64 = (1 << 53) - 1;

/// What [`crate::scripts::ARCHIVE_APPEND`] returns when the archive is full.
const APPEND_FULL: i64 = -1;
/// What [`crate::scripts::ARCHIVE_APPEND`] returns when the counter passed [`MAX_ID`].
const APPEND_EXHAUSTED: i64 = -2;

/// One named archive store of a [`crate::RedisStore`].
pub(crate) struct RedisArchive {
    shared: Arc<Shared>,
    name: Arc<str>,
}

impl RedisArchive {
    /// A handle on the store `name`.
    pub(crate) fn new(shared: Arc<Shared>, name: &str) -> Self {
        Self {
            shared,
            name: name.into(),
        }
    }

    /// (items, index, key set) of `user`.
    fn keys(&self, user: &BareJid) -> (String, String, String) {
        let keys = &self.shared.keys;
        (
            keys.archive(user, &self.name),
            keys.archive_index(user, &self.name),
            keys.user_keys(user),
        )
    }
}

#[async_trait]
impl ArchiveStore for RedisArchive {
    async fn append(
        &self,
        user: &BareJid,
        value: &[u8],
        max_items: Option<usize>,
    ) -> StoreResult<u64> {
        let (items, index, user_keys) = self.keys(user);
        let seq = self.shared.keys.archive_seq(&self.name);
        let max = max_items.map(|m| m.to_string()).unwrap_or_default();
        let id: i64 = self
            .shared
            .run("archive append", |mut conn| async move {
                Ok(ARCHIVE_APPEND_SCRIPT
                    .key(items)
                    .key(index)
                    .key(seq)
                    .key(user_keys)
                    .arg(value)
                    .arg(max)
                    .invoke_async(&mut conn)
                    .await?)
            })
            .await?;
        match id {
            APPEND_FULL => Err(StoreError::LimitReached),
            APPEND_EXHAUSTED => Err(StoreError::Corrupt(format!(
                "archive {}: ids exhausted (above {MAX_ID})",
                self.name
            ))),
            id => u64::try_from(id).map_err(|_| {
                StoreError::Corrupt(format!("archive {}: append returned id {id}", self.name))
            }),
        }
    }

    async fn range(
        &self,
        user: &BareJid,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let min = match after {
            None => "-inf".to_owned(),
            // No stored id is above MAX_ID; a larger `after` would lose precision as a score.
            Some(after) if after >= MAX_ID => return Ok(Vec::new()),
            Some(after) => format!("({after}"),
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (items, index, _) = self.keys(user);
        self.shared
            .run("archive range", |mut conn| async move {
                Ok(ARCHIVE_RANGE_SCRIPT
                    .key(items)
                    .key(index)
                    .arg(min)
                    .arg(limit)
                    .invoke_async(&mut conn)
                    .await?)
            })
            .await
    }

    async fn remove(&self, user: &BareJid, ids: &[u64]) -> StoreResult<usize> {
        // Each id once, so a repeated id is not counted twice.
        let ids: BTreeSet<u64> = ids.iter().copied().collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let (items, index, user_keys) = self.keys(user);
        self.shared
            .run("archive remove", |mut conn| async move {
                let mut invocation = ARCHIVE_REMOVE_SCRIPT.key(items);
                invocation.key(index).key(user_keys);
                for id in ids {
                    invocation.arg(id.to_string());
                }
                Ok(invocation.invoke_async(&mut conn).await?)
            })
            .await
    }

    async fn count(&self, user: &BareJid) -> StoreResult<usize> {
        let (_, index, _) = self.keys(user);
        self.shared
            .run("archive count", |mut conn| async move {
                Ok(conn.zcard(index).await?)
            })
            .await
    }

    async fn clear(&self, user: &BareJid) -> StoreResult<()> {
        let (items, index, user_keys) = self.keys(user);
        self.shared
            .run("archive clear", |mut conn| async move {
                Ok(ARCHIVE_CLEAR_SCRIPT
                    .key(items)
                    .key(index)
                    .key(user_keys)
                    .invoke_async::<()>(&mut conn)
                    .await?)
            })
            .await
    }
}
