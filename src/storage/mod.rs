//! Storage: the seam between the core and a database engine. The core and the HTTP layer
//! see only what is declared here: the [`Store`] traits (every statement the core may run,
//! in domain types), [`StoreError`], and the [`Db`] door through which reads and
//! transactions reach an engine. SQLite (`sqlite`) is the engine; a second one implements
//! the same traits behind the same door. The store sees hashes, never plaintext keys.

pub mod fleet;
pub mod postgres;
pub mod sqlite;
pub mod writer;

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::domain::grants::Grants;
use crate::domain::key_format::KeyHash;
use crate::domain::limits::{Cidr, Credits, LimitSettings, RateLimit, RefillInterval};
use crate::domain::model::{Action, AppId, Application, AuditContext, KeyAuth, KeyId, KeyRecord, Meta, Status};
use crate::domain::timestamp::Timestamp;

pub use sqlite::{ChangeMarker, Db};

/// Occurs when the database cannot be opened, read or written, or is busy past the timeout.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No pooled connection could be had.
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The file could not be created or its permissions set.
    #[error("database file: {0}")]
    Io(#[from] std::io::Error),
    /// The database was written by a newer apikeyd.
    #[error("database schema version {found} is newer than this binary's {expected}")]
    TooNew {
        /// The version found.
        found: i64,
        /// The version this binary writes.
        expected: i64,
    },
    /// The database's schema version is one no apikeyd writes (negative).
    #[error("database schema version {found} was not written by apikeyd")]
    UnknownVersion {
        /// The version found.
        found: i64,
    },
    /// A pragma did not take (e.g. WAL refused on this file system).
    #[error("pragma check failed: {0}")]
    Pragma(String),
    /// A key with the same hash exists already.
    #[error("a key with this hash exists already")]
    Duplicate,
    /// A stored row does not decode (a column of the wrong shape).
    #[error("stored row is malformed: {0}")]
    Malformed(&'static str),
    /// A write transaction could not begin or commit; nothing in it was kept.
    #[error("write not committed: {0}")]
    NotCommitted(String),
    /// The write queue is full: the server is overloaded.
    #[error("write queue is full")]
    Overloaded,
    /// The writer thread or a blocking task is gone.
    #[error("background worker stopped")]
    WorkerGone,
    /// Fleet mode: PostgreSQL could not be reached, or did not answer in time; a write's
    /// outcome there is then unknown, and nothing was written locally.
    #[error("PostgreSQL unreachable: {0}")]
    Unreachable(String),
    /// Fleet mode: PostgreSQL refused a statement.
    #[error("PostgreSQL refused a statement: {0}")]
    Refused(String),
    /// The fleet configuration is unusable (bad URL, TLS settings).
    #[error("{0}")]
    Config(String),
}

impl StoreError {
    /// The same failure, for one more waiter: [`StoreError::Unreachable`] stays itself (it is
    /// answered 503); anything else becomes [`StoreError::NotCommitted`] with its text.
    pub fn again(&self) -> StoreError {
        match self {
            StoreError::Unreachable(m) => StoreError::Unreachable(m.clone()),
            other => StoreError::NotCommitted(other.to_string()),
        }
    }
}

/// What a new key row holds; the id is assigned by the store.
#[derive(Debug)]
pub struct NewKeyRow<'a> {
    /// Public UUID.
    pub uuid: Uuid,
    /// Label.
    pub title: &'a str,
    /// Display prefix.
    pub prefix: &'a str,
    /// SHA-256 of the plaintext.
    pub hash: &'a KeyHash,
    /// Grants.
    pub grants: &'a Grants,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// The key that made it.
    pub created_by: Option<KeyId>,
    /// Its application.
    pub application_id: Option<AppId>,
    /// Who it belongs to.
    pub owner: Option<&'a str>,
    /// Its metadata.
    pub meta: Option<&'a Meta>,
    /// The key it replaces, when made by a rotation.
    pub rotated_from: Option<KeyId>,
    /// Its rate limit, credits and IP allowlist.
    pub limits: &'a LimitSettings,
}

/// What an update changes on a key: `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyChanges {
    /// New title.
    pub title: Option<String>,
    /// New grants.
    pub grants: Option<Grants>,
    /// New expiry (`Some(None)`: never).
    pub expires_at: Option<Option<Timestamp>>,
    /// New owner (`Some(None)`: none).
    pub owner: Option<Option<String>>,
    /// New metadata (`Some(None)`: none).
    pub meta: Option<Option<Meta>>,
    /// On or off.
    pub enabled: Option<bool>,
    /// The key that replaced this one.
    pub rotated_to: Option<KeyId>,
    /// New rate limit (`Some(None)`: none).
    pub rate_limit: Option<Option<RateLimit>>,
    /// New credits (`Some(None)`: none); setting them starts a new generation.
    pub credits: Option<Option<Credits>>,
    /// New IP allowlist (`Some(None)`: none).
    pub allowed_ips: Option<Option<Vec<Cidr>>>,
}

/// What a credit lease took from the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreditTake {
    /// Credits granted to the node.
    pub granted: u64,
    /// Credits left in the database.
    pub left: u64,
    /// The refill period they belong to (the start of the current one), if they refill.
    pub period: Option<Timestamp>,
    /// Their refill interval, if any.
    pub interval: Option<RefillInterval>,
}

/// Which keys a listing returns: newest first, ids below `before`, at most `limit`.
#[derive(Clone, Debug, Default)]
pub struct KeyFilter {
    /// Only this application's keys; every key when `None`.
    pub application: Option<AppId>,
    /// Only keys with this status.
    pub status: Option<Status>,
    /// Only keys with this owner.
    pub owner: Option<String>,
    /// Only keys whose title (any case) or display prefix holds this text.
    pub text: Option<String>,
    /// Only keys expiring in `(now, .0]`: `(now, until)`.
    pub expiring: Option<(Timestamp, Timestamp)>,
    /// Only keys not used (or, never used, not created) since this instant.
    pub unused_since: Option<Timestamp>,
    /// Only ids below this one (the previous page's last).
    pub before: Option<KeyId>,
    /// At most this many.
    pub limit: u32,
}

/// Which keys [`KeyStore::count_keys`] counts, and the instants its counts are taken at.
#[derive(Clone, Copy, Debug)]
pub struct CountAt {
    /// Only this application's keys; every key when `None`.
    pub application: Option<AppId>,
    /// Now: expiry is judged at this instant.
    pub now: Timestamp,
    /// "Expiring soon" means expiring in `(now, soon]`.
    pub soon: Timestamp,
    /// "Unused" means not used (never used: not created) since this instant.
    pub unused_since: Timestamp,
}

/// How many keys stand where. Expiring and unused count active keys only, as the listing
/// filters `status=active&expiring_within=…` and `status=active&unused_for=…` select them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Status active (whether or not disabled or expired).
    pub active: u64,
    /// Status revoked.
    pub revoked: u64,
    /// Status deleted.
    pub deleted: u64,
    /// Active but disabled.
    pub disabled: u64,
    /// Active and past its expiry.
    pub expired: u64,
    /// Active and expiring in `(now, soon]`.
    pub expiring: u64,
    /// Active and unused since `unused_since`.
    pub unused: u64,
}

/// What one audit row records, besides who and when (`AuditContext`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// What happened.
    pub action: Action,
    /// The key it happened to (none for an application's creation).
    pub key: Option<KeyId>,
    /// The key's application, or the application made.
    pub application: Option<AppId>,
    /// What changed, as JSON (never a hash or plaintext).
    pub changes: Option<serde_json::Value>,
}

/// One stored audit row.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    /// Its id: the change feed's order.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// What happened.
    pub action: Action,
    /// The key it happened to.
    pub key_id: Option<KeyId>,
    /// The application concerned.
    pub application_id: Option<AppId>,
    /// That application's public UUID.
    pub application_uuid: Option<Uuid>,
    /// Who did it (`None`: bootstrap or the command line).
    pub actor_key_id: Option<KeyId>,
    /// Under which request.
    pub request_id: Option<String>,
    /// What changed.
    pub changes: Option<serde_json::Value>,
}

/// Which audit rows a listing returns: newest first, ids below `before`, at most `limit`.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only rows of this application.
    pub application: Option<AppId>,
    /// Only rows of this key.
    pub key: Option<KeyId>,
    /// Only this action.
    pub action: Option<Action>,
    /// Only rows at or after this instant.
    pub since: Option<Timestamp>,
    /// Only ids below this one.
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Grants texts already parsed, shared by every key that has them: a million keys with a
/// few distinct grant sets hold a few `Grants` values.
pub type Interned = HashMap<String, Arc<Grants>>;

/// One entry of the change feed: the audit row's id, and the changed key's current state
/// (none for a row that changed no key).
pub type Change = (i64, Option<(KeyHash, KeyAuth)>);

/// Statements on keys and their `last_used_at`.
pub trait KeyStore {
    /// Inserts a new active key and returns its record.
    fn insert_key(&self, row: &NewKeyRow<'_>) -> Result<KeyRecord, StoreError> {
        let id = self.insert_key_row(row)?.ok_or(StoreError::Duplicate)?;
        self.find_key_by_id(id)?.ok_or(StoreError::Malformed("a key vanished inside its own transaction"))
    }
    /// Inserts a new active key and returns its id only (for bulk work). `Ok(None)` when a
    /// key with the same hash exists already.
    fn insert_key_row(&self, row: &NewKeyRow<'_>) -> Result<Option<KeyId>, StoreError>;
    /// The key with this id, in any status and any application.
    fn find_key_by_id(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError>;
    /// The key with this UUID, in any status and any application.
    fn find_key_by_uuid(&self, uuid: Uuid) -> Result<Option<KeyRecord>, StoreError>;
    /// The key whose plaintext hashes to `hash`, in any status and any application.
    fn find_key_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError>;
    /// The keys `filter` selects, newest first.
    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError>;
    /// How many keys (of one application, or all) stand where, as [`CountAt`] says.
    fn count_keys(&self, at: &CountAt) -> Result<KeyCounts, StoreError>;
    /// Marks an active key revoked. False when the key was not active.
    fn mark_revoked(&self, id: KeyId, at: Timestamp) -> Result<bool, StoreError>;
    /// Marks a key deleted (from active or revoked). False when it was already deleted.
    fn mark_deleted(&self, id: KeyId, at: Timestamp) -> Result<bool, StoreError>;
    /// Applies `changes` to key `id`.
    fn update_key(&self, id: KeyId, changes: &KeyChanges) -> Result<(), StoreError>;
    /// Takes up to `block` credits of key `id` (of its successor, if it was rotated away)
    /// for a node to spend, refilling them first if a refill boundary passed by `now`.
    fn lease_credits(&self, id: KeyId, block: u64, now: Timestamp) -> Result<CreditTake, StoreError>;
    /// Gives back `amount` credits leased for key `id`, if its credits are still of
    /// generation `version` and refill period `period` (else they are void anyway).
    fn return_credits(&self, id: KeyId, version: u64, period: Option<Timestamp>, amount: u64)
        -> Result<(), StoreError>;
    /// Makes key `from` (and every key already spending from it) spend from `to`'s credits:
    /// a rotation moves the count, so the old and the new key never spend it twice.
    fn pool_credits(&self, from: KeyId, to: KeyId) -> Result<(), StoreError>;
    /// Moves the key's `last_used_at` forward to `at`, never backward.
    fn touch_last_used(&self, id: KeyId, at: Timestamp) -> Result<(), StoreError>;
    /// True when any key exists.
    fn any_keys(&self) -> Result<bool, StoreError>;
    /// The highest key id (0 for none): an upper bound on the number of keys.
    fn max_key_id(&self) -> Result<i64, StoreError>;
    /// Up to `limit` keys' authentication views with ids above `after`, in id order.
    fn load_auth_page(
        &self,
        after: KeyId,
        limit: u32,
        interned: &mut Interned,
    ) -> Result<Vec<(KeyHash, KeyAuth)>, StoreError>;
}

/// Statements on the audit trail, which is also the change feed of keys.
pub trait AuditStore {
    /// Appends one audit row.
    fn insert_audit(&self, entry: &AuditEntry, ctx: &AuditContext) -> Result<(), StoreError>;
    /// The rows `filter` selects, newest first.
    fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
    /// The newest audit row's id (0 for none): where a reader of the change feed starts.
    fn last_audit_id(&self) -> Result<i64, StoreError>;
    /// The change feed: audit rows after `after`, oldest first, at most `limit`, each with the
    /// current state of the key it changed.
    fn changes_since(&self, after: i64, limit: u32, interned: &mut Interned) -> Result<Vec<Change>, StoreError>;
}

/// Statements on applications and their audit trail.
pub trait ApplicationStore {
    /// Inserts an application and returns it.
    fn insert_application(&self, uuid: Uuid, name: &str, at: Timestamp) -> Result<Application, StoreError>;
    /// The application with this UUID.
    fn find_application_by_uuid(&self, uuid: Uuid) -> Result<Option<Application>, StoreError>;
    /// Every application, or only `only` when given, newest first.
    fn list_applications(&self, only: Option<AppId>) -> Result<Vec<Application>, StoreError>;
}

/// Statements on settings: small named values that must survive restarts.
pub trait SettingStore {
    /// Stores `value` under `name` unless something is already there; returns what is stored.
    fn insert_setting_once(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// The value stored under `name`, if any.
    fn find_setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Statements on the one-way clock's high-water mark (`service::clock`).
pub trait ClockStore {
    /// The latest time this database has seen, in ms (0 for none): its persisted high-water
    /// mark and its newest stored timestamps (audit rows, applications, `last_used_at`).
    fn latest_time(&self) -> Result<i64, StoreError>;
    /// Raises the persisted high-water mark to `at`, never lowering it; returns the mark now
    /// stored.
    fn raise_clock_mark(&self, at: Timestamp) -> Result<i64, StoreError>;
}

/// Everything the core may ask of a store: what a read or a transaction is handed.
pub trait Store: KeyStore + AuditStore + ApplicationStore + SettingStore + ClockStore {}

impl<T: KeyStore + AuditStore + ApplicationStore + SettingStore + ClockStore> Store for T {}
