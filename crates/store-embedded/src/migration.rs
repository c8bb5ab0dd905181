//! [`Migration`]: one account and all of its rows, out of or into the database at once.
//!
//! Every user-data key starts with the user (see the crate's `# Layout`), so "everything of
//! this user" is one exact range per table, in every store name including ones this build has
//! never heard of. Export reads those ranges in one read transaction, so it sees one consistent
//! snapshot; import clears and rewrites them in one write transaction, so a reader sees the old
//! account or the new one, never a mix.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_storage::{Migration, StoreError, StoreResult, UserData};
use redb::{Database, ReadableTable};

use crate::blocking::{run, Context};
use crate::tables::{
    decode_credentials, encode_credentials, successor, ACCOUNTS, ARCHIVE, ARCHIVE_COUNT,
    ARCHIVE_SEQ, KV, MAP,
};

/// Export and import over an [`crate::EmbeddedStore`]'s database.
pub(crate) struct EmbeddedMigration {
    db: Arc<Database>,
}

impl EmbeddedMigration {
    /// A handle on `db`.
    pub(crate) fn new(db: Arc<Database>) -> Self {
        Self { db }
    }
}

#[async_trait]
impl Migration for EmbeddedMigration {
    async fn export_user(&self, jid: &BareJid) -> StoreResult<Option<UserData>> {
        let (jid, user) = (jid.clone(), jid.to_string());
        run(&self.db, move |db| {
            let next = successor(&user);
            let (user, next) = (user.as_str(), next.as_str());
            let tx = db.begin_read().context("begin export")?;

            let accounts = tx.open_table(ACCOUNTS).context("open accounts")?;
            let credentials = match accounts.get(user).context("read account")? {
                Some(value) => decode_credentials(user, value.value())?,
                None => return Ok(None),
            };

            // Tuple keys compare element by element and strings bytewise, as `String`'s `Ord`
            // does, so each range comes out in the order `UserData` documents.
            let mut kv = Vec::new();
            let table = tx.open_table(KV).context("open kv")?;
            for row in table.range((user, "")..(next, "")).context("read kv")? {
                let (key, value) = row.context("read kv")?;
                kv.push((key.value().1.to_owned(), value.value().to_vec()));
            }

            let mut maps = Vec::new();
            let table = tx.open_table(MAP).context("open map")?;
            for row in table
                .range((user, "", "")..(next, "", ""))
                .context("read map")?
            {
                let (key, value) = row.context("read map")?;
                let (_, name, entry) = key.value();
                maps.push((name.to_owned(), entry.to_owned(), value.value().to_vec()));
            }

            let mut archives = Vec::new();
            let table = tx.open_table(ARCHIVE).context("open archive")?;
            for row in table
                .range((user, "", 0)..(next, "", 0))
                .context("read archive")?
            {
                let (key, value) = row.context("read archive")?;
                let (_, name, id) = key.value();
                archives.push((name.to_owned(), id, value.value().to_vec()));
            }

            Ok(Some(UserData {
                jid,
                credentials,
                kv,
                maps,
                archives,
            }))
        })
        .await
    }

    async fn import_user(&self, data: &UserData) -> StoreResult<()> {
        check_unique(data)?;
        let user = data.jid.to_string();
        let account = encode_credentials(&data.credentials)?;
        let data = data.clone();
        run(&self.db, move |db| {
            let next = successor(&user);
            let (user, next) = (user.as_str(), next.as_str());
            let tx = db.begin_write().context("begin import")?;
            {
                tx.open_table(ACCOUNTS)
                    .context("open accounts")?
                    .insert(user, account.as_slice())
                    .context("write account")?;

                // Replace, not merge: whatever this user had here goes first, as in
                // `AccountStore::delete`, so rows the source no longer has do not linger.
                let mut kv = tx.open_table(KV).context("open kv")?;
                kv.retain_in((user, "")..(next, ""), |_, _| false)
                    .context("clear kv")?;
                for (name, value) in &data.kv {
                    kv.insert((user, name.as_str()), value.as_slice())
                        .context("write kv")?;
                }

                let mut map = tx.open_table(MAP).context("open map")?;
                map.retain_in((user, "", "")..(next, "", ""), |_, _| false)
                    .context("clear map")?;
                for (name, key, value) in &data.maps {
                    map.insert((user, name.as_str(), key.as_str()), value.as_slice())
                        .context("write map")?;
                }

                let mut archive = tx.open_table(ARCHIVE).context("open archive")?;
                archive
                    .retain_in((user, "", 0)..(next, "", 0), |_, _| false)
                    .context("clear archive")?;
                let mut counts = tx
                    .open_table(ARCHIVE_COUNT)
                    .context("open archive counts")?;
                counts
                    .retain_in((user, "")..(next, ""), |_, _| false)
                    .context("clear archive counts")?;
                // Per store name: how many items, and the highest id.
                let mut stats: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
                for (name, id, value) in &data.archives {
                    archive
                        .insert((user, name.as_str(), *id), value.as_slice())
                        .context("write archive item")?;
                    let (count, highest) = stats.entry(name.as_str()).or_insert((0, 0));
                    *count = count.saturating_add(1);
                    *highest = (*highest).max(*id);
                }
                let mut seq = tx.open_table(ARCHIVE_SEQ).context("open archive ids")?;
                for (name, (count, highest)) in stats {
                    counts
                        .insert((user, name), count)
                        .context("write archive count")?;
                    // The counter is shared by every user of the store name: only ever raise
                    // it, so ids already handed out here are not handed out again either.
                    let last = seq
                        .get(name)
                        .context("read archive id")?
                        .map_or(0, |s| s.value());
                    if highest > last {
                        seq.insert(name, highest).context("write archive id")?;
                    }
                }
            }
            tx.commit().context("commit import")
        })
        .await
    }
}

/// Refuses data with a repeated kv store name, map key or archive id: written as is, the later
/// row would silently replace the earlier one, and a migration must not lose data quietly.
fn check_unique(data: &UserData) -> StoreResult<()> {
    let refuse = |what: String| {
        Err(StoreError::Corrupt(format!(
            "import of {}: {what} appears twice",
            data.jid
        )))
    };
    let mut kv = BTreeSet::new();
    for (name, _) in &data.kv {
        if !kv.insert(name.as_str()) {
            return refuse(format!("key-value store {name:?}"));
        }
    }
    let mut maps = BTreeSet::new();
    for (name, key, _) in &data.maps {
        if !maps.insert((name.as_str(), key.as_str())) {
            return refuse(format!("key {key:?} of map store {name:?}"));
        }
    }
    let mut archives = BTreeSet::new();
    for (name, id, _) in &data.archives {
        if !archives.insert((name.as_str(), *id)) {
            return refuse(format!("id {id} of archive store {name:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use corvid_sasl::{ScramKeys, StoredCredentials};

    use super::*;

    fn data() -> UserData {
        let keys = ScramKeys {
            salt: vec![1; 16],
            iterations: 4096,
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
        };
        UserData {
            jid: "juliet@capulet.example".parse().unwrap(),
            credentials: StoredCredentials {
                sha1: keys.clone(),
                sha256: keys,
            },
            kv: vec![("vcard".into(), b"v".to_vec())],
            maps: vec![
                ("roster".into(), "a@x".into(), b"1".to_vec()),
                ("roster".into(), "b@x".into(), b"2".to_vec()),
            ],
            archives: vec![
                ("offline".into(), 3, b"m".to_vec()),
                ("offline".into(), 7, b"n".to_vec()),
            ],
        }
    }

    #[test]
    fn distinct_rows_are_accepted() {
        assert_eq!(check_unique(&data()), Ok(()));
        // The same key in two map stores, or the same id in two archive stores, is no clash.
        let mut other = data();
        other
            .maps
            .push(("roster2".into(), "a@x".into(), b"1".to_vec()));
        other.archives.push(("mam".into(), 3, b"m".to_vec()));
        assert_eq!(check_unique(&other), Ok(()));
    }

    #[test]
    fn repeated_rows_are_refused_naming_them() {
        let mut kv = data();
        kv.kv.push(("vcard".into(), b"w".to_vec()));
        assert_eq!(
            check_unique(&kv),
            Err(StoreError::Corrupt(
                "import of juliet@capulet.example: key-value store \"vcard\" appears twice".into()
            ))
        );
        let mut map = data();
        map.maps
            .push(("roster".into(), "b@x".into(), b"3".to_vec()));
        assert_eq!(
            check_unique(&map),
            Err(StoreError::Corrupt(
                "import of juliet@capulet.example: key \"b@x\" of map store \"roster\" appears twice"
                    .into()
            ))
        );
        let mut archive = data();
        archive.archives.push(("offline".into(), 7, b"o".to_vec()));
        assert_eq!(
            check_unique(&archive),
            Err(StoreError::Corrupt(
                "import of juliet@capulet.example: id 7 of archive store \"offline\" appears twice"
                    .into()
            ))
        );
    }
}
