//! The fleet's writer-thread engine ([`FleetCommit`]): the one thread that writes a node's
//! SQLite replica, both its own writes and the fleet's changes.
//!
//! A group of writes: in PostgreSQL, BEGIN and `UPDATE fleet_head SET last = last + 1
//! RETURNING last` (the row lock serialises every writer of the fleet; the value is this
//! change's id); apply to the replica every change up to the one before (so the replica equals
//! PostgreSQL, and nobody can change PostgreSQL until we commit); run the jobs on the replica
//! exactly as single-node mode does (each in a savepoint, with the core's own statements and
//! its re-check of the acting key); write the rows they touched into PostgreSQL's tables and
//! the change log; COMMIT PostgreSQL; then COMMIT the replica with its new position. Only then
//! is anyone answered. If PostgreSQL fails, the replica rolls back and the jobs get
//! [`StoreError::Unreachable`] (503): never a local-only write.
//!
//! Between groups (every poll interval, and at each NOTIFY) the thread applies the change log
//! after its position. The ids are gapless and in commit order (a change's id is taken under
//! the lock its commit releases), so "after the last id applied" never skips one; a gap is
//! refused, not stepped over. A replica of another fleet, or a new one, first loads a snapshot.

use std::sync::Arc;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension};
use serde_json::Value as Json;

use super::rows::{self, Table};
use super::{apply_images, ensure_schema, read_table, FleetStatus, Link, CHANNEL};
use crate::config::{
    FLEET_LOG_PAGE, FLEET_POLL_INTERVAL, FLEET_SNAPSHOT_BUDGET, FLEET_SYNC_BUDGET, FLEET_WRITE_BUDGET,
};
use crate::domain::timestamp::Timestamp;
use crate::storage::writer::{deliver, run_jobs, Commit, Job};
use crate::storage::StoreError;

/// The replica's own bookkeeping (not replicated): which fleet it copies and how far.
const POSITION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS fleet_replica (fleet_id TEXT NOT NULL, revision INTEGER NOT NULL) STRICT";

/// The replica's position: (fleet id, revision applied), if it is a replica at all.
pub(crate) fn local_position(conn: &Connection) -> Result<Option<(String, i64)>, StoreError> {
    conn.execute_batch(POSITION_TABLE)?;
    Ok(conn.query_row("SELECT fleet_id, revision FROM fleet_replica", [], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
}

fn set_position(conn: &Connection, fleet: &str, revision: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM fleet_replica", [])?;
    conn.execute("INSERT INTO fleet_replica (fleet_id, revision) VALUES (?1, ?2)", rusqlite::params![fleet, revision])?;
    Ok(())
}

/// The [`Commit`] of a fleet node.
pub(crate) struct FleetCommit {
    link: Link,
    tables: Vec<Table>,
    status: Arc<FleetStatus>,
    /// The fleet's id, once PostgreSQL was reached and its schema checked.
    fleet: Option<String>,
    /// The revision the replica has applied (what `fleet_replica` holds).
    cursor: i64,
    /// Announce changes with NOTIFY.
    notify: bool,
}

impl FleetCommit {
    /// The engine for the replica on `conn`, reaching PostgreSQL through `link`.
    pub(crate) fn new(conn: &Connection, link: Link, status: Arc<FleetStatus>) -> Result<FleetCommit, StoreError> {
        rows::install_capture(conn)?;
        let tables = rows::tables(conn)?;
        let cursor = local_position(conn)?.map_or(0, |(_, r)| r);
        Ok(FleetCommit { link, tables, status, fleet: None, cursor, notify: true })
    }

    /// Makes sure PostgreSQL's schema is current and the replica copies this fleet (loading a
    /// snapshot if it copies none or another); returns the fleet id.
    fn attach(&mut self, conn: &Connection) -> Result<String, StoreError> {
        if let Some(id) = &self.fleet {
            return Ok(id.clone());
        }
        let id = ensure_schema(&mut self.link, Instant::now() + FLEET_SNAPSHOT_BUDGET)?;
        if local_position(conn)?.map(|(f, _)| f).as_deref() != Some(id.as_str()) {
            self.snapshot(conn, &id)?;
        }
        self.fleet = Some(id.clone());
        Ok(id)
    }

    /// Replaces the replica's rows by PostgreSQL's, read in one repeatable-read transaction.
    fn snapshot(&mut self, conn: &Connection, fleet: &str) -> Result<(), StoreError> {
        let deadline = Instant::now() + FLEET_SNAPSHOT_BUDGET;
        self.link.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", deadline)?;
        let read = (|| {
            let head: i64 =
                self.link.query("SELECT last FROM fleet_head", &[], deadline)?.first().map_or(0, |r| r.get(0));
            let mut images = Vec::new();
            for table in &self.tables {
                images.extend(read_table(&mut self.link, table, deadline)?);
            }
            Ok::<_, StoreError>((head, images))
        })();
        self.link.rollback(deadline);
        let (head, images) = read?;
        in_sqlite_transaction(conn, || {
            rows::clear_all(conn)?;
            rows::apply(conn, &self.tables, &images)?;
            set_position(conn, fleet, head)
        })?;
        log::info!("fleet replica loaded from a snapshot at revision {head} ({} rows)", images.len());
        self.cursor = head;
        self.status.set_applied(head);
        Ok(())
    }

    /// Applies the change log after the replica's position, up to `upto` if given (`upto` is
    /// given under the write lock, inside an open PostgreSQL transaction: a reload found then
    /// fails the group, to be retried, since a snapshot needs a transaction of its own).
    fn catch_up(&mut self, conn: &Connection, upto: Option<i64>, deadline: Instant) -> Result<(), StoreError> {
        let mut fleet = self.attach(conn)?;
        loop {
            if upto.is_some_and(|u| self.cursor >= u) {
                return Ok(());
            }
            let page = FLEET_LOG_PAGE;
            let rows = self.link.query(
                "SELECT id, payload FROM fleet_changes WHERE id > $1 ORDER BY id LIMIT $2",
                &[&self.cursor, &page],
                deadline,
            )?;
            let count = rows.len();
            if count == 0 {
                return Ok(());
            }
            let mut next = self.cursor;
            let mut images = Vec::new();
            for row in &rows {
                let id: i64 = row.get(0);
                if id != next + 1 {
                    // Never step over a change: the log is gapless by construction, so this is
                    // a damaged log; start over from a snapshot.
                    log::error!("fleet change log has a gap after {next} (next is {id}); reloading a snapshot");
                    self.fleet = None;
                    set_position_out_of_band(conn)?;
                    return Err(StoreError::Malformed("gap in the fleet change log"));
                }
                let payload: String = row.get(1);
                let parsed: Vec<Json> =
                    serde_json::from_str(&payload).map_err(|_| StoreError::Malformed("unreadable fleet change"))?;
                if parsed.iter().any(rows::is_reload_marker) {
                    break;
                }
                images.extend(parsed);
                next = id;
            }
            let reload = next < rows.last().map_or(next, |r| r.get::<_, i64>(0));
            if next > self.cursor {
                in_sqlite_transaction(conn, || {
                    rows::apply(conn, &self.tables, &images)?;
                    set_position(conn, &fleet, next)
                })?;
                self.cursor = next;
                self.status.set_applied(next);
            }
            if reload {
                // `fleet import` replaced the fleet's contents (and its id): load them whole.
                if upto.is_some() {
                    return Err(StoreError::Unreachable("the fleet was reloaded; retry".into()));
                }
                self.fleet = None;
                fleet = self.attach(conn)?;
                continue;
            }
            if count < usize::try_from(page).unwrap_or(usize::MAX) {
                return Ok(());
            }
        }
    }

    /// The write path of the module doc, up to (not including) the answers.
    fn write_group(&mut self, conn: &Connection, group: Vec<Box<dyn Job>>) {
        let deadline = Instant::now() + FLEET_WRITE_BUDGET;
        let begun = self.begin_locked(conn, deadline);
        let revision = match begun {
            Ok(r) => r,
            Err(e) => {
                self.link.rollback(deadline);
                fail_all(group, &e);
                return;
            }
        };
        if let Err(e) =
            conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::from).and_then(|()| rows::clear_capture(conn))
        {
            self.link.rollback(deadline);
            rollback_sqlite(conn);
            fail_all(group, &e);
            return;
        }
        let (replies, broken) = run_jobs(conn, group);
        let outcome = match broken {
            Some(reason) => Err(StoreError::NotCommitted(reason)),
            None => self.publish(conn, revision, deadline),
        };
        if outcome.is_err() {
            self.link.rollback(deadline);
            rollback_sqlite(conn);
        }
        deliver(replies, &outcome);
    }

    /// BEGIN in PostgreSQL, take the fleet's write lock (and the next change id), and bring
    /// the replica up to the change before it.
    fn begin_locked(&mut self, conn: &Connection, deadline: Instant) -> Result<i64, StoreError> {
        // Most of the way without the lock, so the locked part is short.
        self.catch_up(conn, None, deadline)?;
        self.link.batch("BEGIN", deadline)?;
        let revision: i64 = self
            .link
            .query("UPDATE fleet_head SET last = last + 1 RETURNING last", &[], deadline)?
            .first()
            .map(|r| r.get(0))
            .ok_or(StoreError::Malformed("fleet_head is empty"))?;
        self.catch_up(conn, Some(revision - 1), deadline)?;
        if self.cursor != revision - 1 {
            return Err(StoreError::Malformed("replica could not reach the fleet's head"));
        }
        Ok(revision)
    }

    /// Sends what the jobs touched to PostgreSQL, commits there, then commits the replica.
    fn publish(&mut self, conn: &Connection, revision: i64, deadline: Instant) -> Result<(), StoreError> {
        let images = rows::captured(conn, &self.tables)?;
        if images.is_empty() {
            // Nothing changed: no revision is used (the counter's increment rolls back).
            self.link.rollback(deadline);
            conn.execute_batch("COMMIT")?;
            return Ok(());
        }
        let fleet = self.fleet.clone().ok_or(StoreError::Malformed("fleet not attached"))?;
        set_position(conn, &fleet, revision)?;
        apply_images(&mut self.link, &self.tables, &images, deadline)?;
        let payload = Json::Array(images).to_string();
        let at = Timestamp::now().millis();
        self.link.execute(
            "INSERT INTO fleet_changes (id, at, payload) VALUES ($1, $2, $3)",
            &[&revision, &at, &payload],
            deadline,
        )?;
        if self.notify {
            let text = revision.to_string();
            self.link.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &text], deadline)?;
        }
        self.link.batch("COMMIT", deadline)?;
        // Durable in PostgreSQL now: from here on the write is acknowledged, whatever happens to
        // the replica (which the next sync would repair).
        if let Err(e) = conn.execute_batch("COMMIT") {
            log::error!("fleet replica commit failed after PostgreSQL committed revision {revision}: {e}");
            rollback_sqlite(conn);
            self.fleet = None;
            let _ = self.catch_up(conn, Some(revision), Instant::now() + FLEET_SYNC_BUDGET);
            return Ok(());
        }
        self.cursor = revision;
        self.status.set_applied(revision);
        self.status.synced();
        Ok(())
    }
}

impl Commit for FleetCommit {
    fn commit_group(&mut self, conn: &Connection, group: Vec<Box<dyn Job>>) {
        // A caller that gave up (its deadline passed) was answered 503 already: never run it.
        let group: Vec<_> = group.into_iter().filter(|j| !j.abandoned()).collect();
        if !group.is_empty() {
            self.write_group(conn, group);
        }
    }

    fn idle_every(&self) -> Option<std::time::Duration> {
        Some(FLEET_POLL_INTERVAL)
    }

    fn idle(&mut self, conn: &Connection) {
        match self.catch_up(conn, None, Instant::now() + FLEET_SYNC_BUDGET) {
            Ok(()) => self.status.synced(),
            Err(e) => log::debug!("fleet sync failed (serving the last applied state): {e}"),
        }
    }
}

impl FleetCommit {
    /// Turns off NOTIFY (poll-only fleets, for measuring the poll alone).
    pub(crate) fn without_notify(mut self) -> FleetCommit {
        self.notify = false;
        self
    }
}

/// Marks the replica as copying no fleet, so the next sync loads a snapshot.
fn set_position_out_of_band(conn: &Connection) -> Result<(), StoreError> {
    conn.execute("DELETE FROM fleet_replica", [])?;
    Ok(())
}

fn in_sqlite_transaction(conn: &Connection, work: impl FnOnce() -> Result<(), StoreError>) -> Result<(), StoreError> {
    // Rows arrive in an order that may not satisfy foreign keys until all are in.
    conn.execute_batch("BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON;")?;
    match work().and_then(|()| conn.execute_batch("COMMIT").map_err(StoreError::from)) {
        Ok(()) => Ok(()),
        Err(e) => {
            rollback_sqlite(conn);
            Err(e)
        }
    }
}

fn rollback_sqlite(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            log::error!("replica rollback failed: {e}");
        }
    }
}

fn fail_all(group: Vec<Box<dyn Job>>, e: &StoreError) {
    for job in group {
        job.fail(e.again());
    }
}
