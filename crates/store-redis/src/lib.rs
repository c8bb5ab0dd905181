//! The Redis store: the backend every edge of a cluster shares.
//!
//! # Layout
//!
//! Every key starts with a configurable prefix (`corvid` below). Every key of one user carries
//! the user's bare JID as its hash tag (`{…}`), so a user's keys share one Redis Cluster slot
//! and every per-user script touches one slot. `docs/storage.md` has the full story.
//!
//! | key                              | type       | holds                                        |
//! |----------------------------------|------------|----------------------------------------------|
//! | `corvid:format`                  | string     | layout version, now `1`                      |
//! | `corvid:accounts`                | set        | every account's bare JID (for `list`)        |
//! | `corvid:acct:{<jid>}`            | string     | `{"v":1,"credentials":{…}}`                  |
//! | `corvid:{<jid>}:keys`            | set        | names of every data key of the user          |
//! | `corvid:{<jid>}:kv:<store>`      | string     | the document                                 |
//! | `corvid:{<jid>}:map:<store>`     | hash       | map key → value                              |
//! | `corvid:{<jid>}:arc:<store>`     | hash       | decimal id → item                            |
//! | `corvid:{<jid>}:arcidx:<store>`  | sorted set | the ids (member and score)                   |
//! | `corvid:seq:<store>`             | string     | last archive id handed out in that store     |
//!
//! - Nothing expires: every key lives until the store deletes it.
//! - Every write that touches more than one key is one Lua script (`scripts.rs`), which Redis
//!   runs alone: create (SET NX + index), delete (account, every key in the key set, the set,
//!   the index entry), kv/map writes (value + key set), archive append (count check, id,
//!   insert, key set). Import of a user is one MULTI/EXEC.
//! - Archive ids come from one counter per store name, like the embedded store, so they
//!   increase strictly per user and are never reused, even after the account is deleted.
//!
//! ```text
//!  handle (Arc<Shared> + store name) ──run(op)──▶ ConnectionManager i (round robin, N of them)
//!        │  tokio timeout = command_timeout               │ reconnects by itself
//!        ▼                                                ▼
//!  StoreError::Unavailable / Corrupt ◀── classify ◀── RedisError      Redis (EVALSHA, MULTI)
//!        └─ first failure: warn!(what = "redis-unavailable"); next success: info!(redis-recovered)
//! ```
//!
//! Deployment: one Redis primary (standalone, or with replicas and Sentinel/managed
//! failover), reached through one URL. The per-user keys are ready for Redis Cluster; the
//! shared ones (`accounts`, `seq:<store>`) and the scripts that touch them alongside a user's
//! keys are not yet (see `docs/storage.md`).

mod accounts;
mod archive;
mod conn;
mod keys;
mod kv;
mod map;
mod migration;
mod scripts;
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use corvid_storage::{
    AccountStore, ArchiveStore, KeyValueStore, MapStore, Migration, Store, StoreError,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, TlsCertificates};

pub use crate::archive::MAX_ID;
use crate::conn::{redact, Shared};
use crate::keys::Keys;

/// The key layout this build reads and writes, kept in `{prefix}:format`.
pub const FORMAT: u64 = 1;

/// How to reach Redis (the server maps `storage.redis` settings onto this).
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS.
    pub url: String,
    /// First part of every key; lets several deployments share one Redis.
    pub key_prefix: String,
    /// Multiplexed connections, used in turn (at least one is opened).
    pub connections: usize,
    /// Deadline for establishing a connection.
    pub connect_timeout: Duration,
    /// Deadline for each store operation; past it the operation fails with `Unavailable`.
    pub command_timeout: Duration,
    /// PEM file of the CA that signed the server's certificate, instead of the system's roots
    /// (`rediss://` only).
    pub tls_ca_file: Option<PathBuf>,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("connections", &self.connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

impl RedisOptions {
    /// Options for `url` with the defaults of the settings (prefix `corvid`, 4 connections,
    /// 2 s to connect, 1 s per operation, system TLS roots).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "corvid".into(),
            connections: 4,
            connect_timeout: Duration::from_millis(2000),
            command_timeout: Duration::from_millis(1000),
            tls_ca_file: None,
        }
    }
}

/// A store in one Redis, shared by every server that opens it with the same URL and prefix.
pub struct RedisStore {
    shared: Arc<Shared>,
}

impl RedisStore {
    /// Connects (every connection, each within the connect timeout), checks that Redis
    /// answers and that the layout under the prefix is one this build understands (writing
    /// the version on an empty prefix). Fails with `Unavailable` saying why, naming the URL
    /// without its password.
    pub async fn open(options: &RedisOptions) -> Result<Arc<Self>, StoreError> {
        let url = redact(&options.url);
        let fail = |why: String| StoreError::Unavailable(format!("redis at {url}: {why}"));
        let client = client(options).map_err(fail)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(options.connect_timeout)
            .set_response_timeout(options.command_timeout)
            // Reconnection is driven by use: each failing command starts a new attempt, so a
            // long backoff inside the manager would only delay recovery.
            .set_number_of_retries(1)
            .set_factor(10)
            .set_max_delay(500);
        let mut managers = Vec::with_capacity(options.connections.max(1));
        for _ in 0..options.connections.max(1) {
            let manager = tokio::time::timeout(
                options.connect_timeout.saturating_mul(2),
                ConnectionManager::new_with_config(client.clone(), config.clone()),
            )
            .await
            .map_err(|_| {
                fail(format!(
                    "no connection within {} ms",
                    options.connect_timeout.as_millis()
                ))
            })?
            .map_err(|e| fail(e.to_string()))?;
            managers.push(manager);
        }
        let keys = Keys::new(&options.key_prefix);
        let shared = Arc::new(Shared::new(
            managers,
            options.command_timeout,
            url.clone(),
            keys.clone(),
        ));
        let format_key = keys.format();
        let format = shared
            .run("check layout version", |mut conn| async move {
                let _: bool = conn.set_nx(&format_key, FORMAT).await?;
                Ok(conn.get::<_, Option<String>>(&format_key).await?)
            })
            .await
            .map_err(|e| fail(e.to_string()))?;
        match format.as_deref().map(str::parse::<u64>) {
            Some(Ok(FORMAT)) => {}
            other => {
                return Err(fail(format!(
                "{} holds layout version {other:?}, not {FORMAT}, the one this Corvid understands",
                keys.format()
            )))
            }
        }
        warn_if_evicting(&shared).await;
        tracing::info!(what = "store_open", backend = "redis", url = %url, prefix = %options.key_prefix, connections = options.connections.max(1));
        Ok(Arc::new(Self { shared }))
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl Store for RedisStore {
    fn migration(&self) -> Arc<dyn Migration> {
        Arc::new(migration::RedisMigration::new(Arc::clone(&self.shared)))
    }
    fn accounts(&self) -> Arc<dyn AccountStore> {
        Arc::new(accounts::RedisAccounts::new(Arc::clone(&self.shared)))
    }
    fn kv(&self, name: &str) -> Arc<dyn KeyValueStore> {
        Arc::new(kv::RedisKv::new(Arc::clone(&self.shared), name))
    }
    fn map(&self, name: &str) -> Arc<dyn MapStore> {
        Arc::new(map::RedisMap::new(Arc::clone(&self.shared), name))
    }
    fn archive(&self, name: &str) -> Arc<dyn ArchiveStore> {
        Arc::new(archive::RedisArchive::new(Arc::clone(&self.shared), name))
    }
}

/// Logs a warning when Redis may evict keys under memory pressure: evicted accounts and
/// messages would be lost without an error. Managed services often refuse `CONFIG`; then
/// nothing is said (docs/storage.md asks for `noeviction`).
async fn warn_if_evicting(shared: &Shared) {
    // Not through `Shared::run`: a refused CONFIG is no outage.
    let mut conn = shared.connection();
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg("maxmemory-policy");
    let query = cmd.query_async::<Vec<String>>(&mut conn);
    if let Ok(Ok(reply)) = tokio::time::timeout(shared.command_timeout(), query).await {
        match reply.get(1) {
            Some(policy) if policy != "noeviction" => {
                tracing::warn!(what = "redis-may-evict", policy = %policy, "Redis maxmemory-policy is not noeviction: under memory pressure it may silently drop Corvid's data");
            }
            _ => {}
        }
    }
}

/// The client for `options`: plain, or TLS with the system's roots or the given CA.
fn client(options: &RedisOptions) -> Result<Client, String> {
    match &options.tls_ca_file {
        None => Client::open(options.url.as_str()).map_err(|e| e.to_string()),
        Some(path) => {
            if !options.url.starts_with("rediss://") {
                return Err(format!(
                    "a CA file ({}) is set, but the URL is not rediss:// (TLS)",
                    path.display()
                ));
            }
            let root_cert = std::fs::read(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            Client::build_with_tls(
                options.url.as_str(),
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            )
            .map_err(|e| format!("CA file {}: {e}", path.display()))
        }
    }
}
