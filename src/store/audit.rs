//! The `audit_log` table: one row per create, revoke and delete of a key, written in the
//! same transaction as the change it records; and `application_audit`, the same for
//! applications.

use rusqlite::{params, Connection};

use crate::keys::KeyHash;
use crate::model::KeyAuth;
use crate::store::keys::{auth_from_row, Interned, AUTH_COLUMNS};

use crate::model::{AppId, KeyId};
use crate::timestamp::Timestamp;

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A key was made.
    Create,
    /// A key was revoked by id.
    Revoke,
    /// A key was deleted (by value, or by the clients family).
    Delete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Revoke => "revoke",
            Action::Delete => "delete",
        }
    }
}

/// Who did it and under which request.
#[derive(Clone, Debug)]
pub struct AuditContext {
    /// The authenticated key, `None` for bootstrap and the offline CLI.
    pub actor: Option<KeyId>,
    /// The HTTP request id, `None` outside HTTP.
    pub request_id: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// Appends one audit row.
pub fn insert_audit(conn: &Connection, action: Action, key: KeyId, ctx: &AuditContext) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, action, key_id, actor_key_id, request_id) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![ctx.at.millis(), action.as_str(), key.0, ctx.actor.map(|k| k.0), ctx.request_id])?;
    Ok(())
}

/// Appends the audit row of a new application.
pub fn insert_application_audit(conn: &Connection, app: AppId, ctx: &AuditContext) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO application_audit (at, action, application_id, actor_key_id, request_id) \
         VALUES (?1, 'create', ?2, ?3, ?4)",
    )?
    .execute(params![ctx.at.millis(), app.0, ctx.actor.map(|k| k.0), ctx.request_id])?;
    Ok(())
}

/// One stored audit row, for tests and the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// `create`, `revoke` or `delete`.
    pub action: String,
    /// The key acted on.
    pub key_id: KeyId,
    /// The actor.
    pub actor_key_id: Option<KeyId>,
    /// The request.
    pub request_id: Option<String>,
}

/// Every audit row for one key, oldest first.
pub fn audit_for_key(conn: &Connection, key: KeyId) -> rusqlite::Result<Vec<AuditRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT action, key_id, actor_key_id, request_id FROM audit_log WHERE key_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([key.0], |r| {
        Ok(AuditRow {
            action: r.get(0)?,
            key_id: KeyId(r.get(1)?),
            actor_key_id: r.get::<_, Option<i64>>(2)?.map(KeyId),
            request_id: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The newest audit row's id (0 for none): where a reader of the change feed starts.
pub fn last_audit_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(id), 0) FROM audit_log")?.query_row([], |r| r.get(0))
}

/// The change feed: audit rows after `after`, oldest first, at most `limit`, each with the
/// current state of the key it changed (hash and authentication view, as read now: a key
/// changed twice shows its latest state twice). Every change to a key has its audit row
/// (same transaction), so this is every change, in commit order of the ids.
pub fn changes_since(
    conn: &Connection,
    after: i64,
    limit: u32,
    interned: &mut Interned,
) -> rusqlite::Result<Vec<(i64, KeyHash, KeyAuth)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT audit_log.id, {AUTH_COLUMNS} FROM audit_log JOIN api_keys ON api_keys.id = audit_log.key_id \
         WHERE audit_log.id > ?1 ORDER BY audit_log.id LIMIT ?2"
    ))?;
    let mut rows = stmt.query(params![after, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let (hash, auth) = auth_from_row(row, 1, interned)?;
        out.push((row.get(0)?, hash, auth));
    }
    Ok(out)
}
