//! [`ArchiveStore`] on the `archive`, `archive_count` and `archive_seq` tables.
//!
//! Ids come from one counter per store name (`archive_seq`), shared by all users: ids then
//! increase strictly per user, are never handed out twice (not after `clear`, nor after the
//! account is deleted and created again), and deleting a user leaves no row behind. redb runs
//! one write transaction at a time, so the shared counter costs no extra contention.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_storage::{ArchiveStore, StoreError, StoreResult};
use redb::ReadableTable;

use crate::blocking::{read, Context};
use crate::tables::{ARCHIVE, ARCHIVE_COUNT, ARCHIVE_SEQ};
use crate::writer::Db;

/// One named archive store of an [`crate::EmbeddedStore`].
pub(crate) struct EmbeddedArchive {
    db: Db,
    name: Arc<str>,
}

impl EmbeddedArchive {
    /// A handle on the store `name` in `db`.
    pub(crate) fn new(db: Db, name: &str) -> Self {
        Self {
            db,
            name: name.into(),
        }
    }
}

#[async_trait]
impl ArchiveStore for EmbeddedArchive {
    async fn append(
        &self,
        user: &BareJid,
        value: &[u8],
        max_items: Option<usize>,
    ) -> StoreResult<u64> {
        let (user, name, value) = (user.to_string(), Arc::clone(&self.name), value.to_vec());
        self.db
            .write("archive append", move |tx| {
                let key = (user.as_str(), &*name);
                // Count, check and insert in one write transaction: concurrent appends cannot
                // both see room for one more item.
                let id = {
                    let mut counts = tx
                        .open_table(ARCHIVE_COUNT)
                        .context("open archive counts")?;
                    let count = stored_count(&counts, key)?;
                    if max_items.is_some_and(|max| count >= u64::try_from(max).unwrap_or(u64::MAX))
                    {
                        return Err(StoreError::LimitReached);
                    }
                    let mut seq = tx.open_table(ARCHIVE_SEQ).context("open archive ids")?;
                    let last = seq
                        .get(&*name)
                        .context("read archive id")?
                        .map_or(0, |s| s.value());
                    let id = last.checked_add(1).ok_or_else(|| {
                        StoreError::Corrupt(format!("archive {name}: ids exhausted"))
                    })?;
                    seq.insert(&*name, id).context("write archive id")?;
                    tx.open_table(ARCHIVE)
                        .context("open archive")?
                        .insert((key.0, key.1, id), value.as_slice())
                        .context("write archive item")?;
                    counts
                        .insert(key, count.saturating_add(1))
                        .context("write archive count")?;
                    id
                };
                Ok(id)
            })
            .await
    }

    async fn range(
        &self,
        user: &BareJid,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let (user, name) = (user.to_string(), Arc::clone(&self.name));
        read(self.db.database(), move |db| {
            let first = match after {
                None => 0,
                Some(after) => match after.checked_add(1) {
                    Some(first) => first,
                    None => return Ok(Vec::new()),
                },
            };
            if limit == 0 {
                return Ok(Vec::new());
            }
            let tx = db.begin_read().context("begin read")?;
            let table = tx.open_table(ARCHIVE).context("open archive")?;
            let rows = table
                .range((user.as_str(), &*name, first)..=(user.as_str(), &*name, u64::MAX))
                .context("read archive")?;
            let mut items = Vec::new();
            for row in rows.take(limit) {
                let (key, value) = row.context("read archive")?;
                items.push((key.value().2, value.value().to_vec()));
            }
            Ok(items)
        })
    }

    async fn remove(&self, user: &BareJid, ids: &[u64]) -> StoreResult<usize> {
        let (user, name) = (user.to_string(), Arc::clone(&self.name));
        // Each id once, so a repeated id is not counted twice.
        let ids: BTreeSet<u64> = ids.iter().copied().collect();
        if ids.is_empty() {
            return Ok(0);
        }
        self.db
            .write("archive remove", move |tx| {
                let key = (user.as_str(), &*name);
                let removed = {
                    let mut archive = tx.open_table(ARCHIVE).context("open archive")?;
                    let mut removed = 0usize;
                    for &id in &ids {
                        if archive
                            .remove((key.0, key.1, id))
                            .context("remove archive item")?
                            .is_some()
                        {
                            removed += 1;
                        }
                    }
                    if removed > 0 {
                        let mut counts = tx
                            .open_table(ARCHIVE_COUNT)
                            .context("open archive counts")?;
                        let count = stored_count(&counts, key)?;
                        let left = count.saturating_sub(u64::try_from(removed).unwrap_or(u64::MAX));
                        if left == 0 {
                            counts.remove(key).context("remove archive count")?;
                        } else {
                            counts.insert(key, left).context("write archive count")?;
                        }
                    }
                    removed
                };
                Ok(removed)
            })
            .await
    }

    async fn count(&self, user: &BareJid) -> StoreResult<usize> {
        let (user, name) = (user.to_string(), Arc::clone(&self.name));
        read(self.db.database(), move |db| {
            let tx = db.begin_read().context("begin read")?;
            let counts = tx
                .open_table(ARCHIVE_COUNT)
                .context("open archive counts")?;
            let count = stored_count(&counts, (user.as_str(), &*name))?;
            usize::try_from(count).map_err(|_| {
                StoreError::Corrupt(format!("archive {name}: count {count} too large"))
            })
        })
    }

    async fn clear(&self, user: &BareJid) -> StoreResult<()> {
        let (user, name) = (user.to_string(), Arc::clone(&self.name));
        self.db
            .write("archive clear", move |tx| {
                let key = (user.as_str(), &*name);
                tx.open_table(ARCHIVE)
                    .context("open archive")?
                    .retain_in((key.0, key.1, 0)..=(key.0, key.1, u64::MAX), |_, _| false)
                    .context("clear archive")?;
                tx.open_table(ARCHIVE_COUNT)
                    .context("open archive counts")?
                    .remove(key)
                    .context("clear archive count")?;
                Ok(())
            })
            .await
    }
}

/// The item count `archive_count` holds for `key` (absent = 0).
fn stored_count(
    counts: &impl ReadableTable<(&'static str, &'static str), u64>,
    key: (&str, &str),
) -> StoreResult<u64> {
    Ok(counts
        .get(key)
        .context("read archive count")?
        .map_or(0, |c| c.value()))
}
