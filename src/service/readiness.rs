//! Is this server ready to take traffic? A list of named checks, each passed or failed with
//! its reason; ready when every one passed. `GET /readyz` renders it (`http::readyz`); a new
//! condition (e.g. "a fleet node's sync is fresh") is one more [`Check`] pushed in [`check`].

use serde::Serialize;
use utoipa::ToSchema;

use crate::service::{fleet, AppState};

/// One condition of readiness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Check {
    /// What was checked: `key_index`, `database_writable`, in a fleet `fleet_sync`.
    pub name: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// Why not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Check {
    fn passed(name: &'static str) -> Check {
        Check { name, ok: true, reason: None }
    }

    fn failed(name: &'static str, reason: impl Into<String>) -> Check {
        Check { name, ok: false, reason: Some(reason.into()) }
    }
}

/// The outcome: ready exactly when every check passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Readiness {
    /// True when every check passed.
    pub ready: bool,
    /// The reasons of the checks that failed (empty when ready).
    pub reasons: Vec<String>,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Readiness {
    /// The readiness these checks make.
    pub fn of(checks: Vec<Check>) -> Readiness {
        let reasons: Vec<String> = checks.iter().filter_map(|c| c.reason.clone()).collect();
        Readiness { ready: checks.iter().all(|c| c.ok), reasons, checks }
    }
}

/// Checks `state` now: the key index has loaded every key (until then each miss costs a SQLite
/// read, and a flood of unknown keys would reach the database), and the database takes a
/// write transaction (its write lock can be had and a commit goes through).
pub async fn check(state: &AppState) -> Readiness {
    let mut checks = Vec::new();
    checks.push(if state.index.is_complete() {
        Check::passed("key_index")
    } else {
        Check::failed("key_index", "the key index is still loading")
    });
    checks.push(match state.db.probe_write().await {
        Ok(()) => Check::passed("database_writable"),
        Err(e) => {
            log::warn!("readiness: the database is not writable: {e}");
            Check::failed("database_writable", "the database cannot be written")
        }
    });
    // In a fleet: synced with PostgreSQL within --stale-after (`service::fleet`).
    if let Some(fresh) = fleet::freshness(&state.db) {
        checks.push(if fresh.ready {
            Check::passed("fleet_sync")
        } else {
            Check::failed("fleet_sync", fresh.reasons.join("; "))
        });
    }
    Readiness::of(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passed() {
        let ready = Readiness::of(vec![Check::passed("a"), Check::passed("b")]);
        assert!(ready.ready && ready.reasons.is_empty());
        let not = Readiness::of(vec![Check::passed("a"), Check::failed("b", "b is down")]);
        assert!(!not.ready);
        assert_eq!(not.reasons, ["b is down"]);
    }
}
