//! A store seen through one caller's scope. Every look-up the core makes on a caller's
//! behalf goes through [`Scoped`], built from the caller's [`Scope`]: a key or application
//! outside it is not found, exactly like one that does not exist. The unscoped store is
//! used only to re-check the acting key itself (`authority`) and by the key index.

use uuid::Uuid;

use crate::domain::key_format::KeyHash;
use crate::domain::model::{Application, KeyId, KeyRecord, Scope, Status};
use crate::domain::timestamp::Timestamp;
use crate::error::{ApiError, Missing};
use crate::storage::{CountAt, KeyCounts, KeyFilter, Store, StoreError};

/// Which keys a listing returns, beyond the caller's scope.
#[derive(Clone, Debug, Default)]
pub struct KeyQuery {
    /// Only this application's keys (it must be in scope).
    pub application: Option<Uuid>,
    /// Only keys with this status.
    pub status: Option<Status>,
    /// Only keys with this owner.
    pub owner: Option<String>,
    /// Only keys whose title (any case) or display prefix holds this text.
    pub text: Option<String>,
    /// Only keys that expire within this many milliseconds from now (not already expired).
    pub expiring_within_ms: Option<i64>,
    /// Only keys not used (never used: not created) for this many milliseconds.
    pub unused_for_ms: Option<i64>,
}

/// How a family names the key a request acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// By numeric id (native family, command line).
    Id(KeyId),
    /// By UUID (clients family).
    Uuid(Uuid),
    /// By UUID, inside an application named by UUID (applications family).
    InApplication {
        /// The application's UUID.
        application: Uuid,
        /// The key's UUID.
        key: Uuid,
    },
}

/// A store bound to a scope.
pub struct Scoped<'a> {
    store: &'a dyn Store,
    scope: Scope,
}

impl<'a> Scoped<'a> {
    /// `store` as seen from `scope`.
    pub fn new(store: &'a dyn Store, scope: Scope) -> Scoped<'a> {
        Scoped { store, scope }
    }

    /// The store itself, for writes on records found through this view.
    pub fn store(&self) -> &'a dyn Store {
        self.store
    }

    fn visible(&self, found: Option<KeyRecord>) -> Option<KeyRecord> {
        found.filter(|k| self.scope.contains(k.application_id))
    }

    /// The key `target` names, if it exists in scope (`Ok(None)` otherwise). An application
    /// named by `target` that is out of scope is 404 `Application`.
    pub fn key(&self, target: &KeyRef) -> Result<Option<KeyRecord>, ApiError> {
        Ok(match target {
            KeyRef::Id(id) => self.visible(self.store.find_key_by_id(*id)?),
            KeyRef::Uuid(uuid) => self.visible(self.store.find_key_by_uuid(*uuid)?),
            KeyRef::InApplication { application, key } => {
                let app = self.application(*application)?;
                self.visible(self.store.find_key_by_uuid(*key)?).filter(|k| k.application_id == Some(app.id))
            }
        })
    }

    /// The key whose plaintext hashes to `hash`, if it exists in scope.
    pub fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.visible(self.store.find_key_by_hash(hash)?))
    }

    /// Up to `limit` keys in scope that `query` selects at `now`, with ids below `before`,
    /// newest first. A named application must be in scope.
    pub fn keys(
        &self,
        query: &KeyQuery,
        now: Timestamp,
        before: Option<KeyId>,
        limit: u32,
    ) -> Result<Vec<KeyRecord>, ApiError> {
        let application = match query.application {
            Some(uuid) => Some(self.application(uuid)?.id),
            None => self.scope.application(),
        };
        let filter = KeyFilter {
            application,
            status: query.status,
            owner: query.owner.clone(),
            text: query.text.clone(),
            expiring: query.expiring_within_ms.map(|ms| (now, now.plus_millis(ms))),
            unused_since: query.unused_for_ms.map(|ms| now.plus_millis(-ms)),
            before,
            limit,
        };
        Ok(self.store.list_keys(&filter)?)
    }

    /// How many keys in scope stand where at `now`: expiring means in `(now, soon]`, unused
    /// means not used since `unused_since`.
    pub fn key_counts(
        &self,
        now: Timestamp,
        soon: Timestamp,
        unused_since: Timestamp,
    ) -> Result<KeyCounts, StoreError> {
        self.store.count_keys(&CountAt { application: self.scope.application(), now, soon, unused_since })
    }

    /// The application with this UUID, if it is in scope (404 otherwise).
    pub fn application(&self, uuid: Uuid) -> Result<Application, ApiError> {
        match self.store.find_application_by_uuid(uuid)? {
            Some(app) if self.scope.contains(Some(app.id)) => Ok(app),
            _ => Err(ApiError::NotFound(Missing::Application)),
        }
    }

    /// Every application in scope, newest first.
    pub fn applications(&self) -> Result<Vec<Application>, StoreError> {
        self.store.list_applications(self.scope.application())
    }
}
