//! [`Migration`]: a user's data is found through its key set `{prefix}:{<jid>}:keys`.
//!
//! Export reads the account and every key in the set in one MULTI/EXEC (a consistent
//! snapshot of what the set named a moment before). Import is one MULTI/EXEC: delete the user
//! (the same script as account deletion), write the account and every value, record the keys,
//! and raise each archive store's id counter to at least the highest imported id.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_storage::{Migration, StoreError, StoreResult, UserData};
use redis::{from_owned_redis_value, Value};

use crate::accounts::{decode_credentials, encode_credentials};
use crate::archive::MAX_ID;
use crate::conn::{OpError, Shared};
use crate::keys::DataKey;
use crate::map::entries;
use crate::scripts::{DELETE_USER, RAISE_SEQ};

/// Export and import over a [`crate::RedisStore`].
pub(crate) struct RedisMigration {
    shared: Arc<Shared>,
}

impl RedisMigration {
    /// A handle on `shared`.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// What one read of the export's transaction is for.
enum Read {
    Kv(String),
    Map(String),
    Archive(String),
}

#[async_trait]
impl Migration for RedisMigration {
    async fn export_user(&self, jid: &BareJid) -> StoreResult<Option<UserData>> {
        let keys = self.shared.keys.clone();
        self.shared
            .run("export user", |mut conn| async move {
                let members: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(keys.user_keys(jid))
                    .query_async(&mut conn)
                    .await?;
                let mut pipe = redis::pipe();
                pipe.atomic().cmd("GET").arg(keys.account(jid));
                let mut reads = Vec::new();
                for member in members {
                    match keys.classify(jid, &member) {
                        Some(DataKey::Kv(name)) => {
                            pipe.cmd("GET").arg(&member);
                            reads.push(Read::Kv(name));
                        }
                        Some(DataKey::Map(name)) => {
                            pipe.cmd("HGETALL").arg(&member);
                            reads.push(Read::Map(name));
                        }
                        Some(DataKey::Archive(name)) => {
                            pipe.cmd("HGETALL").arg(&member);
                            reads.push(Read::Archive(name));
                        }
                        // The index holds nothing the items hash does not.
                        Some(DataKey::ArchiveIndex(_)) => {}
                        None => {
                            return Err(OpError::Store(StoreError::Corrupt(format!(
                                "key set of {jid} names {member:?}, not one of its data keys"
                            ))))
                        }
                    }
                }
                let mut replies: Vec<Value> = pipe.query_async(&mut conn).await?;
                if replies.len() != reads.len() + 1 {
                    return Err(OpError::Store(StoreError::Corrupt(format!(
                        "export of {jid}: {} replies to {} reads",
                        replies.len(),
                        reads.len() + 1
                    ))));
                }
                let rest = replies.split_off(1);
                let account: Option<Vec<u8>> =
                    from_owned_redis_value(replies.pop().unwrap_or(Value::Nil))?;
                let Some(account) = account else {
                    return Ok(None);
                };
                let credentials = decode_credentials(jid, &account)?;
                let (mut kv, mut maps, mut archives) =
                    (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
                for (read, reply) in reads.into_iter().zip(rest) {
                    match read {
                        Read::Kv(name) => {
                            if let Some(value) = from_owned_redis_value::<Option<Vec<u8>>>(reply)? {
                                kv.insert(name, value);
                            }
                        }
                        Read::Map(name) => {
                            let fields: Vec<(Vec<u8>, Vec<u8>)> = from_owned_redis_value(reply)?;
                            let what = format!("export of {jid}, map {name}");
                            maps.insert(name, entries(&what, fields)?);
                        }
                        Read::Archive(name) => {
                            let fields: Vec<(String, Vec<u8>)> = from_owned_redis_value(reply)?;
                            let mut items = fields
                                .into_iter()
                                .map(|(id, value)| {
                                    id.parse::<u64>().map(|id| (id, value)).map_err(|_| {
                                        StoreError::Corrupt(format!(
                                            "export of {jid}, archive {name}: item id {id:?}"
                                        ))
                                    })
                                })
                                .collect::<StoreResult<Vec<_>>>()?;
                            items.sort_unstable_by_key(|(id, _)| *id);
                            archives.insert(name, items);
                        }
                    }
                }
                // BTreeMap<String, _> iterates in bytewise order of the store names.
                Ok(Some(UserData {
                    jid: jid.clone(),
                    credentials,
                    kv: kv.into_iter().collect(),
                    maps: maps
                        .into_iter()
                        .flat_map(|(name, entries)| {
                            entries
                                .into_iter()
                                .map(move |(key, value)| (name.clone(), key, value))
                        })
                        .collect(),
                    archives: archives
                        .into_iter()
                        .flat_map(|(name, items)| {
                            items
                                .into_iter()
                                .map(move |(id, value)| (name.clone(), id, value))
                        })
                        .collect(),
                }))
            })
            .await
    }

    async fn import_user(&self, data: &UserData) -> StoreResult<()> {
        let jid = &data.jid;
        let keys = &self.shared.keys;
        if let Some((name, id, _)) = data.archives.iter().find(|(_, id, _)| *id > MAX_ID) {
            return Err(StoreError::Corrupt(format!(
                "import of {jid}: archive {name} id {id} is above {MAX_ID}, the largest this backend stores"
            )));
        }
        let user_keys = keys.user_keys(jid);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("EVAL")
            .arg(DELETE_USER)
            .arg(3)
            .arg(keys.account(jid))
            .arg(keys.accounts())
            .arg(&user_keys)
            .arg(jid.to_string())
            .arg(keys.user_prefix(jid));
        pipe.cmd("SET")
            .arg(keys.account(jid))
            .arg(encode_credentials(&data.credentials)?);
        pipe.cmd("SADD").arg(keys.accounts()).arg(jid.to_string());
        for (name, value) in &data.kv {
            let key = keys.kv(jid, name);
            pipe.cmd("SET").arg(&key).arg(value);
            pipe.cmd("SADD").arg(&user_keys).arg(&key);
        }
        let mut maps: BTreeMap<&str, Vec<(&str, &[u8])>> = BTreeMap::new();
        for (name, key, value) in &data.maps {
            maps.entry(name).or_default().push((key, value));
        }
        for (name, fields) in maps {
            let key = keys.map(jid, name);
            pipe.cmd("HSET").arg(&key).arg(fields);
            pipe.cmd("SADD").arg(&user_keys).arg(&key);
        }
        let mut archives: BTreeMap<&str, Vec<(u64, &[u8])>> = BTreeMap::new();
        for (name, id, value) in &data.archives {
            archives.entry(name).or_default().push((*id, value));
        }
        for (name, items) in archives {
            let (hash, index) = (keys.archive(jid, name), keys.archive_index(jid, name));
            let hset = pipe.cmd("HSET").arg(&hash);
            for (id, value) in &items {
                hset.arg(id.to_string()).arg(*value);
            }
            let zadd = pipe.cmd("ZADD").arg(&index);
            for (id, _) in &items {
                zadd.arg(id.to_string()).arg(id.to_string());
            }
            pipe.cmd("SADD").arg(&user_keys).arg(&hash).arg(&index);
            let highest = items.iter().map(|(id, _)| *id).max().unwrap_or(0);
            pipe.cmd("EVAL")
                .arg(RAISE_SEQ)
                .arg(1)
                .arg(keys.archive_seq(name))
                .arg(highest.to_string());
        }
        self.shared
            .run("import user", |mut conn| async move {
                // Not `ignore`d: errors inside EXEC surface only from the replies kept.
                let _: Value = pipe.query_async(&mut conn).await?;
                Ok(())
            })
            .await
    }
}
