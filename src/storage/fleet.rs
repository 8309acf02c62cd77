//! What a fleet node knows of itself, shared by the storage engines and the layers above:
//! its configuration ([`FleetConfig`], whose Debug never shows a password) and its place in
//! the fleet ([`FleetStatus`]: revision applied, last successful sync), set by the writer
//! thread of `postgres::replica` and read by `service::fleet`. Pure types: no engine here.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How a node reaches the fleet's PostgreSQL and how it judges its own freshness.
#[derive(Clone)]
pub struct FleetConfig {
    /// Connection URL or key=value string (may hold a password: never printed).
    pub url: String,
    /// Past this without a successful sync the node is not ready (`GET /readyz` 503).
    pub stale_after: Duration,
    /// Past this without a successful sync verify and `/auth` answer 503 (off: `None`).
    pub max_staleness: Option<Duration>,
    /// Listen for NOTIFY (off: poll only, for measuring the poll alone).
    pub listen: bool,
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfig")
            .field("url", &redact_url(&self.url))
            .field("stale_after", &self.stale_after)
            .field("max_staleness", &self.max_staleness)
            .field("listen", &self.listen)
            .finish()
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    if let Some(rest) = url.split_once("://").map(|(_, r)| r) {
        let scheme = &url[..url.len() - rest.len()];
        let (auth, tail) = match rest.find('@') {
            Some(at) if rest[..at].find('/').is_none() => (&rest[..at], &rest[at..]),
            _ => return url.to_owned(),
        };
        let user = auth.split(':').next().unwrap_or("");
        let shown = if auth.contains(':') { format!("{user}:***") } else { user.to_owned() };
        return format!("{scheme}{shown}{tail}");
    }
    url.split_whitespace()
        .map(|w| if w.to_ascii_lowercase().starts_with("password=") { "password=***" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a node knows of its own place in the fleet: the revision its replica has applied, and
/// when it last heard from PostgreSQL. Shared by the writer thread (which sets it) and the
/// HTTP layer (which reads it).
pub struct FleetStatus {
    base: Instant,
    applied: tokio::sync::watch::Sender<i64>,
    /// Milliseconds after `base` of the last successful sync; `u64::MAX` for never.
    last_sync_ms: AtomicU64,
    config: FleetConfig,
}

impl fmt::Debug for FleetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetStatus").field("applied", &self.applied()).field("config", &self.config).finish()
    }
}

impl FleetStatus {
    /// A node that has applied `applied` and not synced yet.
    pub fn new(config: FleetConfig, applied: i64) -> FleetStatus {
        FleetStatus {
            base: Instant::now(),
            applied: tokio::sync::watch::Sender::new(applied),
            last_sync_ms: AtomicU64::new(u64::MAX),
            config,
        }
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The newest revision this node's replica (and so its index) has applied.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    /// Records that the replica has applied `revision` (never moving back).
    pub fn set_applied(&self, revision: i64) {
        self.applied.send_if_modified(|r| {
            let newer = revision > *r;
            if newer {
                *r = revision;
            }
            newer
        });
    }

    /// Records a successful sync with PostgreSQL, now.
    pub fn synced(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_sync_ms.store(ms, Ordering::SeqCst);
    }

    /// How long ago the last successful sync was; `None` if there was none yet.
    pub fn since_last_sync(&self) -> Option<Duration> {
        let ms = self.last_sync_ms.load(Ordering::SeqCst);
        (ms != u64::MAX).then(|| self.base.elapsed().saturating_sub(Duration::from_millis(ms)))
    }

    /// Waits until revision `revision` is applied, at most `limit`; true when it is.
    pub async fn wait_applied(&self, revision: i64, limit: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        let reached = tokio::time::timeout(limit, rx.wait_for(|r| *r >= revision)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Waits (blocking) until the first successful sync, at most `limit`; true when it came.
    pub fn wait_first_sync(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while self.since_last_sync().is_none() {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_redacted_urls_or_debug() {
        for (url, shown) in [
            ("postgres://app:s3cret@db:5432/keys?sslmode=require", "postgres://app:***@db:5432/keys?sslmode=require"),
            ("postgres://app@db/keys", "postgres://app@db/keys"),
            ("host=/tmp user=app password=s3cret dbname=k", "host=/tmp user=app password=*** dbname=k"),
        ] {
            assert_eq!(redact_url(url), shown);
            let config = FleetConfig {
                url: url.to_owned(),
                stale_after: Duration::from_secs(5),
                max_staleness: None,
                listen: true,
            };
            assert!(!format!("{config:?}").contains("s3cret"));
        }
    }
}
