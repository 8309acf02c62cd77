//! `apikeyd fleet import`: moves a single-node SQLite database into an empty PostgreSQL store,
//! every row of every replicated table as it is (ids, UUIDs, hashes, grants, statuses,
//! expiries, applications, audit, `last_used_at`, the session-signing secret), in ONE
//! PostgreSQL transaction: all or nothing. The fleet gets a new id and a reload marker in its
//! change log, so any node already attached reloads the imported state whole.

use std::path::Path;
use std::time::Instant;

use super::rows::{self, REPLICATED};
use super::{apply_images, ensure_schema, Link, Target, CHANNEL};
use crate::domain::timestamp::Timestamp;
use crate::storage::sqlite::open_connection;
use crate::storage::StoreError;

/// Rows written per progress report.
const CHUNK: usize = 500;

/// What an import moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Rows moved, all tables together.
    pub rows: usize,
    /// Keys among them.
    pub keys: usize,
    /// The revision the import is in the change log as.
    pub revision: i64,
}

/// Imports the database at `sqlite` into the PostgreSQL at `url`, which must hold no keys,
/// applications or audit rows yet. `progress(done, total)` is called as rows are written.
pub fn import_sqlite(sqlite: &Path, url: &str, progress: &mut dyn FnMut(usize, usize)) -> Result<Imported, StoreError> {
    if !sqlite.is_file() {
        return Err(StoreError::Config(format!("{} does not exist", sqlite.display())));
    }
    let conn = open_connection(sqlite)?;
    let tables = rows::tables(&conn)?;
    let mut images = Vec::new();
    let mut keys = 0;
    for table in &tables {
        let found = rows::read_all(&conn, table)?;
        if table.name == "api_keys" {
            keys = found.len();
        }
        images.extend(found);
    }
    drop(conn);
    let mut link = Link::new(Target::parse(url)?)?;
    let deadline = Instant::now() + std::time::Duration::from_secs(3600);
    ensure_schema(&mut link, deadline)?;
    let result = (|| {
        link.batch("BEGIN", deadline)?;
        let revision: i64 = link
            .query("UPDATE fleet_head SET last = last + 1 RETURNING last", &[], deadline)?
            .first()
            .map(|r| r.get(0))
            .ok_or(StoreError::Malformed("fleet_head is empty"))?;
        let held: i64 = link
            .query(
                "SELECT (SELECT count(*) FROM api_keys) + (SELECT count(*) FROM applications) \
                 + (SELECT count(*) FROM audit_log)",
                &[],
                deadline,
            )?
            .first()
            .map_or(0, |r| r.get(0));
        if held > 0 {
            return Err(StoreError::Refused(
                "PostgreSQL already holds keys, applications or audit rows: import needs an empty fleet store".into(),
            ));
        }
        for (table, _) in REPLICATED.iter().rev() {
            link.batch(&format!("DELETE FROM {table}"), deadline)?;
        }
        let total = images.len();
        progress(0, total);
        for (i, chunk) in images.chunks(CHUNK).enumerate() {
            apply_images(&mut link, &tables, chunk, deadline)?;
            progress((i * CHUNK + chunk.len()).min(total), total);
        }
        let fleet = uuid::Uuid::new_v4().to_string();
        link.execute("UPDATE fleet_meta SET fleet_id = $1", &[&fleet], deadline)?;
        let payload = serde_json::Value::Array(vec![rows::reload_marker()]).to_string();
        let at = Timestamp::now().millis();
        link.execute(
            "INSERT INTO fleet_changes (id, at, payload) VALUES ($1, $2, $3)",
            &[&revision, &at, &payload],
            deadline,
        )?;
        let text = revision.to_string();
        link.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &text], deadline)?;
        link.batch("COMMIT", deadline)?;
        Ok(Imported { rows: total, keys, revision })
    })();
    if result.is_err() {
        link.rollback(deadline);
    }
    result
}
