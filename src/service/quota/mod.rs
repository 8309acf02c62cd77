//! Enforcing what a key may spend, on this node, in the microseconds of the verdict: rate
//! windows in memory (`window`) and credits leased from the database in blocks (`lease`).
//! A refused verdict spends neither: `credential` gives back a rate slot taken for a verdict
//! the credits then refuse.

mod lease;
mod window;

use std::time::Instant;

pub use lease::CreditState;
pub use window::RateState;

use crate::domain::limits::{CreditPolicy, RateLimit};
use crate::domain::model::KeyId;
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::storage::Db;

/// The node's rate windows and credit leases.
pub struct Quota {
    started: Instant,
    windows: window::Windows,
    leases: lease::Leases,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota { started: Instant::now(), windows: window::Windows::default(), leases: lease::Leases::default() }
    }
}

impl Quota {
    /// Milliseconds on the monotonic clock, which rate windows count in.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Takes one rate slot for `key` at `now_ms`.
    pub fn take_rate(&self, key: KeyId, config: RateLimit, now_ms: u64) -> Result<RateState, RateState> {
        self.windows.take(key, config, now_ms)
    }

    /// Gives back a slot taken at `now_ms` for a verdict refused later.
    pub fn give_back_rate(&self, key: KeyId, now_ms: u64) {
        self.windows.give_back(key, now_ms);
    }

    /// Spends `cost` credits of `key` (see `lease`).
    pub async fn spend_credits(
        &self,
        db: &Db,
        key: KeyId,
        policy: CreditPolicy,
        cost: u64,
        now: Timestamp,
    ) -> Result<Result<CreditState, CreditState>, ApiError> {
        self.leases.spend(db, key, policy, cost, now).await
    }

    /// Credits of `key` this node holds unspent: what a key's metadata adds to the
    /// database's count.
    pub fn unspent(&self, key: KeyId) -> u64 {
        self.leases.unspent(key)
    }

    /// Gives every unspent lease back to the database (a clean stop).
    pub async fn give_back_leases(&self, db: &Db) {
        self.leases.give_back(db).await;
    }
}
