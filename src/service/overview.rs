//! What the admin page's overview shows: how many keys in the manager's scope stand where
//! (counted by the store, through the scope view), and verifications per minute over the last
//! hour (`throughput`). Listing the keys behind a count is `manage::list_keys` with the same
//! filters.

use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::service::manage::Manage;
use crate::service::scope::Scoped;
use crate::storage::KeyCounts;

impl Manage<'_> {
    /// How many keys in scope are active, revoked, deleted, disabled and expired now, and how
    /// many active ones expire within `expiring_within_ms` or went unused for `unused_for_ms`.
    pub async fn count_keys(&self, expiring_within_ms: i64, unused_for_ms: i64) -> Result<KeyCounts, ApiError> {
        let scope = self.manager.actor().scope();
        let now = Timestamp::now();
        let (soon, unused_since) = (now.plus_millis(expiring_within_ms), now.plus_millis(-unused_for_ms));
        self.db.read(move |store| Ok(Scoped::new(store, scope).key_counts(now, soon, unused_since)?)).await
    }
}
