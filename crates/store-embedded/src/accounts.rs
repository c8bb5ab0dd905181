//! [`AccountStore`] on the `accounts` table; deletion also sweeps every user-data table.

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_sasl::StoredCredentials;
use corvid_storage::{AccountStore, ImportReport, StoreError, StoreResult};
use redb::ReadableTable;

use crate::blocking::{read, run, Context};
use crate::tables::{
    decode_credentials, encode_credentials, successor, ACCOUNTS, ARCHIVE, ARCHIVE_COUNT, KV, MAP,
};
use crate::writer::Db;

/// Accounts imported per write transaction: large enough that 10,000 accounts cost a couple of
/// fsyncs, small enough that one transaction's dirty pages stay a few megabytes.
const IMPORT_BATCH: usize = 4096;

/// The account store of an [`crate::EmbeddedStore`].
pub(crate) struct EmbeddedAccounts {
    db: Db,
}

impl EmbeddedAccounts {
    /// A handle on `db`.
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl AccountStore for EmbeddedAccounts {
    async fn create(&self, jid: &BareJid, creds: &StoredCredentials) -> StoreResult<()> {
        let (user, value) = (jid.to_string(), encode_credentials(creds)?);
        self.db
            .write("account create", move |tx| {
                {
                    let mut accounts = tx.open_table(ACCOUNTS).context("open accounts")?;
                    if accounts
                        .get(user.as_str())
                        .context("read account")?
                        .is_some()
                    {
                        return Err(StoreError::AlreadyExists);
                    }
                    accounts
                        .insert(user.as_str(), value.as_slice())
                        .context("insert account")?;
                }
                Ok(())
            })
            .await
    }

    async fn set_credentials(&self, jid: &BareJid, creds: &StoredCredentials) -> StoreResult<()> {
        let (user, value) = (jid.to_string(), encode_credentials(creds)?);
        self.db
            .write("account set_credentials", move |tx| {
                {
                    let mut accounts = tx.open_table(ACCOUNTS).context("open accounts")?;
                    if accounts
                        .get(user.as_str())
                        .context("read account")?
                        .is_none()
                    {
                        return Err(StoreError::NotFound);
                    }
                    accounts
                        .insert(user.as_str(), value.as_slice())
                        .context("update account")?;
                }
                Ok(())
            })
            .await
    }

    async fn credentials(&self, jid: &BareJid) -> StoreResult<Option<StoredCredentials>> {
        let user = jid.to_string();
        read(self.db.database(), move |db| {
            let tx = db.begin_read().context("begin read")?;
            let accounts = tx.open_table(ACCOUNTS).context("open accounts")?;
            let found = accounts.get(user.as_str()).context("read account")?;
            found
                .map(|value| decode_credentials(&user, value.value()))
                .transpose()
        })
    }

    async fn delete(&self, jid: &BareJid) -> StoreResult<bool> {
        let user = jid.to_string();
        self.db
            .write("account delete", move |tx| {
                let next = successor(&user);
                let (user, next) = (user.as_str(), next.as_str());
                let existed = {
                    let mut accounts = tx.open_table(ACCOUNTS).context("open accounts")?;
                    let existed = accounts.remove(user).context("remove account")?.is_some();
                    // Every user-data key starts with the user, so each sweep is one exact range.
                    let mut kv = tx.open_table(KV).context("open kv")?;
                    kv.retain_in((user, "")..(next, ""), |_, _| false)
                        .context("remove kv")?;
                    let mut map = tx.open_table(MAP).context("open map")?;
                    map.retain_in((user, "", "")..(next, "", ""), |_, _| false)
                        .context("remove map")?;
                    let mut archive = tx.open_table(ARCHIVE).context("open archive")?;
                    archive
                        .retain_in((user, "", 0)..(next, "", 0), |_, _| false)
                        .context("remove archive")?;
                    let mut counts = tx
                        .open_table(ARCHIVE_COUNT)
                        .context("open archive counts")?;
                    counts
                        .retain_in((user, "")..(next, ""), |_, _| false)
                        .context("remove archive counts")?;
                    existed
                };
                Ok(existed)
            })
            .await
    }

    async fn list(&self) -> StoreResult<Vec<BareJid>> {
        run(self.db.database(), |db| {
            let tx = db.begin_read().context("begin read")?;
            let accounts = tx.open_table(ACCOUNTS).context("open accounts")?;
            let mut jids = Vec::new();
            for row in accounts.iter().context("list accounts")? {
                let (key, _) = row.context("list accounts")?;
                let key = key.value();
                let jid = key.parse::<BareJid>().map_err(|e| {
                    StoreError::Corrupt(format!("account key {key:?} is not a bare JID: {e}"))
                })?;
                jids.push(jid);
            }
            // Rows are in byte order of "node@domain", which is not BareJid's order.
            jids.sort_unstable();
            Ok(jids)
        })
        .await
    }

    async fn import(&self, accounts: &[(BareJid, StoredCredentials)]) -> StoreResult<ImportReport> {
        let accounts: Vec<(BareJid, StoredCredentials)> = accounts.to_vec();
        run(self.db.database(), move |db| {
            let mut report = ImportReport::default();
            for batch in accounts.chunks(IMPORT_BATCH) {
                let tx = db.begin_write().context("begin import")?;
                let mut batch_report = ImportReport::default();
                {
                    let mut table = tx.open_table(ACCOUNTS).context("open accounts")?;
                    for (jid, creds) in batch {
                        let user = jid.to_string();
                        if table.get(user.as_str()).context("read account")?.is_some() {
                            batch_report.existing += 1;
                        } else {
                            let value = encode_credentials(creds)?;
                            table
                                .insert(user.as_str(), value.as_slice())
                                .context("insert account")?;
                            batch_report.created += 1;
                        }
                    }
                }
                tx.commit().context("commit import")?;
                report.created += batch_report.created;
                report.existing += batch_report.existing;
            }
            Ok(report)
        })
        .await
    }
}
