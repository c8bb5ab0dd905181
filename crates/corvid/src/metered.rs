//! [`Metered`]: a [`Store`] that records the duration and failures of every operation of the
//! store it wraps (`corvid.storage.operation.duration`, `corvid.storage.errors`, by
//! `db.operation.name` such as `kv.get` or `accounts.credentials`). The server wraps whichever
//! backend it opened, so every module's storage use is measured without knowing it.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_sasl::StoredCredentials;
use corvid_storage::{
    AccountStore, ArchiveStore, ImportReport, KeyValueStore, MapStore, Migration, Store,
    StoreResult, UserData,
};
use tokio::time::Instant;

/// Times `op` and records it under `name`.
async fn timed<T>(name: &'static str, op: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    let started = Instant::now();
    let result = op.await;
    corvid_telemetry::metrics().storage_operation(name, started.elapsed(), result.is_ok());
    result
}

/// The metered view of a store, and of each store it hands out.
pub struct Metered<S: ?Sized>(Arc<S>);

impl Metered<dyn Store> {
    /// Wraps `store`.
    pub fn store(store: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(Self(store))
    }
}

impl Store for Metered<dyn Store> {
    fn migration(&self) -> Arc<dyn Migration> {
        Arc::new(Metered(self.0.migration()))
    }
    fn accounts(&self) -> Arc<dyn AccountStore> {
        Arc::new(Metered(self.0.accounts()))
    }
    fn kv(&self, name: &str) -> Arc<dyn KeyValueStore> {
        Arc::new(Metered(self.0.kv(name)))
    }
    fn map(&self, name: &str) -> Arc<dyn MapStore> {
        Arc::new(Metered(self.0.map(name)))
    }
    fn archive(&self, name: &str) -> Arc<dyn ArchiveStore> {
        Arc::new(Metered(self.0.archive(name)))
    }
}

#[async_trait]
impl AccountStore for Metered<dyn AccountStore> {
    async fn create(&self, jid: &BareJid, creds: &StoredCredentials) -> StoreResult<()> {
        timed("accounts.create", self.0.create(jid, creds)).await
    }
    async fn set_credentials(&self, jid: &BareJid, creds: &StoredCredentials) -> StoreResult<()> {
        timed(
            "accounts.set_credentials",
            self.0.set_credentials(jid, creds),
        )
        .await
    }
    async fn credentials(&self, jid: &BareJid) -> StoreResult<Option<StoredCredentials>> {
        timed("accounts.credentials", self.0.credentials(jid)).await
    }
    async fn delete(&self, jid: &BareJid) -> StoreResult<bool> {
        timed("accounts.delete", self.0.delete(jid)).await
    }
    async fn list(&self) -> StoreResult<Vec<BareJid>> {
        timed("accounts.list", self.0.list()).await
    }
    async fn import(&self, accounts: &[(BareJid, StoredCredentials)]) -> StoreResult<ImportReport> {
        timed("accounts.import", self.0.import(accounts)).await
    }
}

#[async_trait]
impl KeyValueStore for Metered<dyn KeyValueStore> {
    async fn get(&self, user: &BareJid) -> StoreResult<Option<Vec<u8>>> {
        timed("kv.get", self.0.get(user)).await
    }
    async fn set(&self, user: &BareJid, value: &[u8]) -> StoreResult<()> {
        timed("kv.set", self.0.set(user, value)).await
    }
    async fn delete(&self, user: &BareJid) -> StoreResult<bool> {
        timed("kv.delete", self.0.delete(user)).await
    }
}

#[async_trait]
impl MapStore for Metered<dyn MapStore> {
    async fn get(&self, user: &BareJid, key: &str) -> StoreResult<Option<Vec<u8>>> {
        timed("map.get", self.0.get(user, key)).await
    }
    async fn set(&self, user: &BareJid, key: &str, value: &[u8]) -> StoreResult<()> {
        timed("map.set", self.0.set(user, key, value)).await
    }
    async fn delete(&self, user: &BareJid, key: &str) -> StoreResult<bool> {
        timed("map.delete", self.0.delete(user, key)).await
    }
    async fn all(&self, user: &BareJid) -> StoreResult<Vec<(String, Vec<u8>)>> {
        timed("map.all", self.0.all(user)).await
    }
    async fn clear(&self, user: &BareJid) -> StoreResult<()> {
        timed("map.clear", self.0.clear(user)).await
    }
}

#[async_trait]
impl ArchiveStore for Metered<dyn ArchiveStore> {
    async fn append(
        &self,
        user: &BareJid,
        value: &[u8],
        max_items: Option<usize>,
    ) -> StoreResult<u64> {
        timed("archive.append", self.0.append(user, value, max_items)).await
    }
    async fn range(
        &self,
        user: &BareJid,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        timed("archive.range", self.0.range(user, after, limit)).await
    }
    async fn remove(&self, user: &BareJid, ids: &[u64]) -> StoreResult<usize> {
        timed("archive.remove", self.0.remove(user, ids)).await
    }
    async fn count(&self, user: &BareJid) -> StoreResult<usize> {
        timed("archive.count", self.0.count(user)).await
    }
    async fn clear(&self, user: &BareJid) -> StoreResult<()> {
        timed("archive.clear", self.0.clear(user)).await
    }
}

#[async_trait]
impl Migration for Metered<dyn Migration> {
    async fn export_user(&self, jid: &BareJid) -> StoreResult<Option<UserData>> {
        timed("migration.export_user", self.0.export_user(jid)).await
    }
    async fn import_user(&self, data: &UserData) -> StoreResult<()> {
        timed("migration.import_user", self.0.import_user(data)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use super::*;

    /// The wrapper is a faithful store: the backends' own conformance suite passes through it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_metered_embedded_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> = corvid_store_embedded::EmbeddedStore::open(dir.path()).unwrap();
        corvid_storage::testsuite::run_all(Metered::store(inner)).await;
    }
}
