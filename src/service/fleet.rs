//! Fleet mode's questions about this node, answered from its `FleetStatus` (kept by the
//! storage layer's writer thread): is it fresh enough to be ready, to verify at all (under
//! `--max-staleness`), and has it applied a revision a client needs. Nothing here touches the
//! network: every answer is from memory.

use std::time::Duration;

use serde::Serialize;

use crate::config::MIN_REVISION_WAIT;
use crate::error::ApiError;
use crate::storage::Db;

/// A fleet node's freshness, as `GET /readyz` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Freshness {
    /// True when the node has synced with PostgreSQL within `--stale-after`.
    pub ready: bool,
    /// Always `"fleet"`.
    pub mode: &'static str,
    /// The revision its replica has applied.
    pub revision: i64,
    /// Milliseconds since its last successful sync (`None`: never since start).
    pub last_sync_ms_ago: Option<u64>,
    /// Why it is not ready (empty when ready).
    pub reasons: Vec<String>,
}

/// The node's freshness; `None` for a single node (not in a fleet).
pub fn freshness(db: &Db) -> Option<Freshness> {
    let fleet = db.fleet()?;
    let since = fleet.since_last_sync();
    let stale_after = fleet.config().stale_after;
    let mut reasons = Vec::new();
    match since {
        None => reasons.push("not synced with PostgreSQL since start".to_owned()),
        Some(ago) if ago > stale_after => reasons.push(format!(
            "last sync with PostgreSQL {} ms ago, beyond --stale-after ({} ms)",
            ago.as_millis(),
            stale_after.as_millis()
        )),
        Some(_) => {}
    }
    Some(Freshness {
        ready: reasons.is_empty(),
        mode: "fleet",
        revision: fleet.applied(),
        last_sync_ms_ago: since.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        reasons,
    })
}

/// Under `--max-staleness`: refuses (503) when the node's last sync is older than the bound,
/// so gateways fail closed. Single nodes and fleets without the bound always pass.
pub fn ensure_fresh_enough(db: &Db) -> Result<(), ApiError> {
    let Some(fleet) = db.fleet() else { return Ok(()) };
    let Some(bound) = fleet.config().max_staleness else { return Ok(()) };
    match fleet.since_last_sync() {
        Some(ago) if ago <= bound => Ok(()),
        _ => Err(ApiError::StoreUnavailable { retry_after: 1 }),
    }
}

/// Waits until the node has applied `revision` (`x-apikeyd-min-revision`), at most
/// [`MIN_REVISION_WAIT`]; 503 if it has not by then. A single node has no revisions: any is met.
pub async fn wait_for_revision(db: &Db, revision: i64) -> Result<(), ApiError> {
    let Some(fleet) = db.fleet() else { return Ok(()) };
    if fleet.wait_applied(revision, MIN_REVISION_WAIT).await {
        Ok(())
    } else {
        Err(ApiError::StoreUnavailable { retry_after: 1 })
    }
}

/// The revision the node has applied, for `x-apikeyd-revision`; `None` for a single node.
pub fn applied_revision(db: &Db) -> Option<i64> {
    db.fleet().map(crate::storage::postgres::FleetStatus::applied)
}

/// What `wait_for_revision` and the stale bounds are measured against, for tests.
pub fn stale_after(db: &Db) -> Option<Duration> {
    db.fleet().map(|f| f.config().stale_after)
}
