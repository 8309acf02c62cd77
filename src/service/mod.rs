//! The core every family shares: who may act (`authority`), checking a credential
//! (`credential`, `verdict`), managing keys through a caller's scope (`manage`, `scope`),
//! and the state behind them: the in-memory key index, pending `last_used_at` values, the
//! failed-authentication budget, session tokens and the clock's high-water mark (`clock`);
//! for the admin page, its logged-in sessions (`page_sessions`), key counts (`overview`) and
//! verifications per minute (`throughput`).
//! Nothing here knows HTTP; nothing here names an engine: storage is reached through
//! `storage::Db` and the `Store` traits.

pub mod audit;
pub mod authority;
pub mod clock;
pub mod credential;
pub mod fleet;
pub mod import;
pub mod index;
pub mod lifecycle;
pub mod limiter;
pub mod manage;
pub mod metrics;
pub mod overview;
pub mod page_sessions;
pub mod quota;
pub mod readiness;
pub mod scope;
pub mod sessions;
pub mod throughput;
pub mod usage;
pub mod verdict;

use crate::config::Config;
use crate::domain::key_format::KeyPrefix;
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::storage::Db;

/// What every request handler, and the server's background tasks, can reach.
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Pending `last_used_at` values.
    pub usage: usage::Usage,
    /// Hash -> key, kept coherent with the database (see `index`).
    pub index: index::KeyIndex,
    /// JWT sessions.
    pub sessions: sessions::Sessions,
    /// Failed-authentication budget per client address.
    pub limiter: limiter::FailureLimiter,
    /// Rate windows and credit leases of the keys that have limits.
    pub quota: quota::Quota,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Which headers forward-auth believes.
    pub forward_auth_headers: crate::config::ForwardAuthHeaders,
    /// What new keys start with.
    pub key_prefix: KeyPrefix,
    /// The one-way clock's high-water mark in this database.
    pub clock: clock::ClockMark,
    /// What `/metrics` reports.
    pub metrics: metrics::Metrics,
    /// The admin page's logged-in sessions.
    pub page_sessions: page_sessions::PageSessions,
    /// Verifications per minute over the last hour.
    pub verify_rate: throughput::VerifyRate,
}

impl AppState {
    /// State around an open database, with an empty (read-through) index, configured as
    /// `config` says. Creates the session-signing secret on first use of a database, and
    /// raises the process's clock to the latest time the database has seen.
    pub async fn new(db: Db, config: &Config) -> Result<AppState, ApiError> {
        let key_prefix =
            KeyPrefix::parse(&config.key_prefix).map_err(|e| ApiError::invalid("key_prefix", e.to_string()))?;
        let clock = clock::ClockMark::open(&db, crate::domain::clock::global()).await?;
        let index = index::KeyIndex::open(&db)?;
        let sessions = sessions::Sessions::load(&db, config.jwt_ttl).await?;
        let metrics = metrics::Metrics::new(&db);
        Ok(AppState {
            metrics,
            db,
            usage: usage::Usage::default(),
            index,
            sessions,
            limiter: limiter::FailureLimiter::new(config.failure_burst, config.failure_refill_per_sec),
            quota: quota::Quota::default(),
            trusted_proxies: config.trusted_proxies.clone(),
            forward_auth_headers: config.forward_auth_headers,
            key_prefix,
            clock,
            page_sessions: page_sessions::PageSessions::default(),
            verify_rate: throughput::VerifyRate::new(Timestamp::now()),
        })
    }

    /// `manager`'s management calls on this state's database.
    pub fn manage<'a>(&'a self, manager: &'a authority::Manager) -> manage::Manage<'a> {
        manage::Manage::new(&self.db, manager, &self.key_prefix).serving(&self.quota)
    }

    /// The time to show keys with these expiries at: now, once every expiry shown as passed
    /// is sure to stay passed across a restart (see `clock`).
    pub async fn now_showing(&self, expiries: impl IntoIterator<Item = Option<Timestamp>>) -> Timestamp {
        let now = Timestamp::now();
        if let Some(passed) = expiries.into_iter().flatten().filter(|e| *e <= now).max() {
            self.clock.cover(&self.db, passed, now).await;
        }
        now
    }
}
