//! [`AccountStore`] on `{prefix}:acct:{<jid>}` strings and the `{prefix}:accounts` set.

use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_sasl::StoredCredentials;
use corvid_storage::{AccountStore, ImportReport, StoreError, StoreResult};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::conn::Shared;
use crate::scripts::{CREATE_ACCOUNT_SCRIPT, DELETE_USER_SCRIPT, IMPORT_ACCOUNTS_SCRIPT};

/// Accounts per import script: a few hundred kilobytes of arguments, a few milliseconds of
/// Redis time, so other clients are not held up for long.
const IMPORT_BATCH: usize = 500;

/// The format of account values this build writes.
const ACCOUNT_V1: u32 = 1;

/// The stored value of an account: versioned JSON, readable with `redis-cli GET`.
#[derive(Serialize)]
struct AccountRecord<'a> {
    v: u32,
    credentials: &'a StoredCredentials,
}

/// Just the version of a stored account value, read before the rest.
#[derive(Deserialize)]
struct Version {
    v: u32,
}

/// A stored account value of format 1.
#[derive(Deserialize)]
struct AccountRecordV1 {
    credentials: StoredCredentials,
}

/// Encodes credentials as an account value.
pub(crate) fn encode_credentials(creds: &StoredCredentials) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(&AccountRecord {
        v: ACCOUNT_V1,
        credentials: creds,
    })
    .map_err(|e| StoreError::Corrupt(format!("cannot encode credentials: {e}")))
}

/// Decodes the account value of `jid`.
pub(crate) fn decode_credentials(jid: &BareJid, bytes: &[u8]) -> StoreResult<StoredCredentials> {
    let version: Version = serde_json::from_slice(bytes).map_err(|e| {
        StoreError::Corrupt(format!(
            "account {jid}: value is not an account record: {e}"
        ))
    })?;
    match version.v {
        ACCOUNT_V1 => serde_json::from_slice::<AccountRecordV1>(bytes)
            .map(|record| record.credentials)
            .map_err(|e| StoreError::Corrupt(format!("account {jid}: credentials: {e}"))),
        other => Err(StoreError::Corrupt(format!(
            "account {jid}: unknown record version {other}"
        ))),
    }
}

/// The account store of a [`crate::RedisStore`].
pub(crate) struct RedisAccounts {
    shared: Arc<Shared>,
}

impl RedisAccounts {
    /// A handle on `shared`.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl AccountStore for RedisAccounts {
    async fn create(&self, jid: &BareJid, creds: &StoredCredentials) -> StoreResult<()> {
        let value = encode_credentials(creds)?;
        let keys = &self.shared.keys;
        let (account, index) = (keys.account(jid), keys.accounts());
        let created: i64 = self
            .shared
            .run("create account", |mut conn| async move {
                Ok(CREATE_ACCOUNT_SCRIPT
                    .key(account)
                    .key(index)
                    .arg(value)
                    .arg(jid.to_string())
                    .invoke_async(&mut conn)
                    .await?)
            })
            .await?;
        if created == 1 {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists)
        }
    }

    async fn set_credentials(&self, jid: &BareJid, creds: &StoredCredentials) -> StoreResult<()> {
        let value = encode_credentials(creds)?;
        let account = self.shared.keys.account(jid);
        // SET … XX writes only over an existing value: one atomic command.
        let replaced: Option<String> = self
            .shared
            .run("set credentials", |mut conn| async move {
                Ok(redis::cmd("SET")
                    .arg(account)
                    .arg(value)
                    .arg("XX")
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        match replaced {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound),
        }
    }

    async fn credentials(&self, jid: &BareJid) -> StoreResult<Option<StoredCredentials>> {
        let account = self.shared.keys.account(jid);
        let value: Option<Vec<u8>> = self
            .shared
            .run("read credentials", |mut conn| async move {
                Ok(conn.get(account).await?)
            })
            .await?;
        value
            .map(|bytes| decode_credentials(jid, &bytes))
            .transpose()
    }

    async fn delete(&self, jid: &BareJid) -> StoreResult<bool> {
        let keys = &self.shared.keys;
        let (account, index, user_keys, user_prefix) = (
            keys.account(jid),
            keys.accounts(),
            keys.user_keys(jid),
            keys.user_prefix(jid),
        );
        let existed: i64 = self
            .shared
            .run("delete account", |mut conn| async move {
                Ok(DELETE_USER_SCRIPT
                    .key(account)
                    .key(index)
                    .key(user_keys)
                    .arg(jid.to_string())
                    .arg(user_prefix)
                    .invoke_async(&mut conn)
                    .await?)
            })
            .await?;
        Ok(existed == 1)
    }

    async fn list(&self) -> StoreResult<Vec<BareJid>> {
        let index = self.shared.keys.accounts();
        let members: Vec<String> = self
            .shared
            .run("list accounts", |mut conn| async move {
                Ok(conn.smembers(index).await?)
            })
            .await?;
        let mut jids = members
            .iter()
            .map(|member| {
                member.parse::<BareJid>().map_err(|e| {
                    StoreError::Corrupt(format!(
                        "account index holds {member:?}, not a bare JID: {e}"
                    ))
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // A set has no order, and byte order of "node@domain" is not BareJid's order anyway.
        jids.sort_unstable();
        Ok(jids)
    }

    async fn import(&self, accounts: &[(BareJid, StoredCredentials)]) -> StoreResult<ImportReport> {
        let mut report = ImportReport::default();
        let keys = &self.shared.keys;
        for batch in accounts.chunks(IMPORT_BATCH) {
            let mut invocation = IMPORT_ACCOUNTS_SCRIPT.key(keys.accounts());
            for (jid, creds) in batch {
                invocation
                    .key(keys.account(jid))
                    .arg(encode_credentials(creds)?)
                    .arg(jid.to_string());
            }
            let created: usize = self
                .shared
                .run("import accounts", |mut conn| async move {
                    Ok(invocation.invoke_async(&mut conn).await?)
                })
                .await?;
            report.created += created;
            report.existing += batch.len().saturating_sub(created);
        }
        Ok(report)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use corvid_sasl::ScramKeys;

    use super::*;

    fn creds() -> StoredCredentials {
        let keys = ScramKeys {
            salt: vec![1, 2],
            iterations: 4096,
            stored_key: vec![3; 20],
            server_key: vec![4; 20],
        };
        StoredCredentials {
            sha1: keys.clone(),
            sha256: keys,
        }
    }

    #[test]
    fn credentials_round_trip_as_versioned_json() {
        let jid: BareJid = "a@b".parse().unwrap();
        let bytes = encode_credentials(&creds()).unwrap();
        assert!(bytes.starts_with(br#"{"v":1,"credentials":{"#), "{bytes:?}");
        assert_eq!(decode_credentials(&jid, &bytes).unwrap(), creds());
    }

    #[test]
    fn unknown_versions_and_garbage_are_corrupt() {
        let jid: BareJid = "a@b".parse().unwrap();
        assert_eq!(
            decode_credentials(&jid, br#"{"v":2,"credentials":{}}"#),
            Err(StoreError::Corrupt(
                "account a@b: unknown record version 2".into()
            ))
        );
        for bad in [
            &b""[..],
            b"{",
            b"[1]",
            br#"{"v":1}"#,
            br#"{"v":1,"credentials":7}"#,
        ] {
            assert!(
                matches!(decode_credentials(&jid, bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }
}
