//! Store traits: what durable user data Corvid keeps, independent of where.
//!
//! # Layout
//! - [`AccountStore`]: accounts and their SCRAM credentials (never passwords).
//! - Three generic shapes that modules open by name, so each backend implements three traits
//!   instead of one per module: [`KeyValueStore`] (one document per user, e.g. `vcard`),
//!   [`MapStore`] (a map per user, e.g. `roster`), [`ArchiveStore`] (an ordered log per user with
//!   server-assigned increasing ids, e.g. `offline`).
//! - [`Store`]: a backend, handing out the above.
//! - `testsuite` (feature `testsuite`): the conformance suite every backend runs.
//!
//! Errors say whose fault they are: [`StoreError::Unavailable`] is a backend that cannot be
//! reached right now (callers answer `internal-server-error`/`temporary-auth-failure` and retry
//! later); the others are definite answers.

use std::sync::Arc;

use async_trait::async_trait;
use corvid_jid::BareJid;
use corvid_sasl::StoredCredentials;

#[cfg(feature = "testsuite")]
pub mod testsuite;

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The account (or item) already exists.
    #[error("already exists")]
    AlreadyExists,
    /// The account does not exist.
    #[error("no such account")]
    NotFound,
    /// A per-user limit was reached (e.g. an archive's `max_items`).
    #[error("limit reached")]
    LimitReached,
    /// The backend cannot be reached or failed transiently; nothing was changed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Data in the store could not be decoded.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

/// Outcome of a bulk import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Accounts created.
    pub created: usize,
    /// Accounts skipped because they existed.
    pub existing: usize,
}

/// Accounts and their credentials.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an account; `AlreadyExists` if there is one.
    async fn create(&self, jid: &BareJid, creds: &StoredCredentials) -> StoreResult<()>;
    /// Replaces the credentials of an existing account; `NotFound` if there is none.
    async fn set_credentials(&self, jid: &BareJid, creds: &StoredCredentials) -> StoreResult<()>;
    /// The credentials, `None` if there is no such account.
    async fn credentials(&self, jid: &BareJid) -> StoreResult<Option<StoredCredentials>>;
    /// Deletes the account and every user data of it in every key-value, map and archive store.
    /// Returns false if there was no such account.
    async fn delete(&self, jid: &BareJid) -> StoreResult<bool>;
    /// Every account, sorted by [`BareJid`]'s order (localpart, then domainpart).
    async fn list(&self) -> StoreResult<Vec<BareJid>>;
    /// Creates many accounts at once (existing ones are left alone and counted), in as few
    /// transactions as the backend allows.
    async fn import(&self, accounts: &[(BareJid, StoredCredentials)]) -> StoreResult<ImportReport>;
}

/// One document per user.
#[async_trait]
pub trait KeyValueStore: Send + Sync {
    /// The user's document.
    async fn get(&self, user: &BareJid) -> StoreResult<Option<Vec<u8>>>;
    /// Replaces the user's document.
    async fn set(&self, user: &BareJid, value: &[u8]) -> StoreResult<()>;
    /// Removes the user's document; false if there was none.
    async fn delete(&self, user: &BareJid) -> StoreResult<bool>;
}

/// A map per user, keys ordered bytewise.
#[async_trait]
pub trait MapStore: Send + Sync {
    /// One entry.
    async fn get(&self, user: &BareJid, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Inserts or replaces one entry.
    async fn set(&self, user: &BareJid, key: &str, value: &[u8]) -> StoreResult<()>;
    /// Removes one entry; false if it was absent.
    async fn delete(&self, user: &BareJid, key: &str) -> StoreResult<bool>;
    /// All entries, ordered by key.
    async fn all(&self, user: &BareJid) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Removes all of the user's entries.
    async fn clear(&self, user: &BareJid) -> StoreResult<()>;
}

/// An ordered log per user; ids are assigned by the store and increase strictly per user, and
/// are never handed out twice for a user (not after `remove` or `clear`, nor after the account
/// was deleted and created again), so a client's "after id N" never skips new items.
#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Appends an item and returns its id. With `max_items`, fails with `LimitReached` (and
    /// stores nothing) if the user already has that many.
    async fn append(
        &self,
        user: &BareJid,
        value: &[u8],
        max_items: Option<usize>,
    ) -> StoreResult<u64>;
    /// Up to `limit` items with id greater than `after`, oldest first.
    async fn range(
        &self,
        user: &BareJid,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>>;
    /// Removes the items with these ids; returns how many existed.
    async fn remove(&self, user: &BareJid, ids: &[u64]) -> StoreResult<usize>;
    /// Number of items.
    async fn count(&self, user: &BareJid) -> StoreResult<usize>;
    /// Removes all of the user's items.
    async fn clear(&self, user: &BareJid) -> StoreResult<()>;
}

/// Everything stored about one account, for moving it between backends
/// (`corvid store migrate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    /// The account.
    pub jid: BareJid,
    /// Its credentials.
    pub credentials: StoredCredentials,
    /// Key-value documents: (store name, value), sorted by store name.
    pub kv: Vec<(String, Vec<u8>)>,
    /// Map entries: (store name, key, value), sorted by store name then key.
    pub maps: Vec<(String, String, Vec<u8>)>,
    /// Archive items: (store name, id, value), sorted by store name then id.
    pub archives: Vec<(String, u64, Vec<u8>)>,
}

/// Whole-account export and import, for migrations between backends.
#[async_trait]
pub trait Migration: Send + Sync {
    /// Everything of one account, `None` if there is no such account.
    async fn export_user(&self, jid: &BareJid) -> StoreResult<Option<UserData>>;
    /// Writes an account and all of its data, replacing whatever that account had here, in as
    /// few transactions as the backend allows. Archive ids are kept as they are, and ids the
    /// store assigns later for that archive name are above them.
    async fn import_user(&self, data: &UserData) -> StoreResult<()>;
}

/// A storage backend.
pub trait Store: Send + Sync {
    /// Export and import of whole accounts.
    fn migration(&self) -> Arc<dyn Migration>;
    /// The account store.
    fn accounts(&self) -> Arc<dyn AccountStore>;
    /// The key-value store called `name` (created on first use).
    fn kv(&self, name: &str) -> Arc<dyn KeyValueStore>;
    /// The map store called `name` (created on first use).
    fn map(&self, name: &str) -> Arc<dyn MapStore>;
    /// The archive store called `name` (created on first use).
    fn archive(&self, name: &str) -> Arc<dyn ArchiveStore>;
}
