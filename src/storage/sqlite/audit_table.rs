//! The `audit_log` table: one row per change to a key or an application, written in the
//! same transaction as the change it records; read back as the audit trail and as the change
//! feed of keys.

use rusqlite::{named_params, params, Connection, Row};
use uuid::Uuid;

use super::key_table::{auth_from_row, AUTH_COLUMNS};
use crate::domain::model::{Action, AppId, AuditContext, KeyId};
use crate::domain::timestamp::Timestamp;
use crate::storage::{AuditEntry, AuditEvent, AuditFilter, AuditStore, Change, Interned, StoreError};

impl AuditStore for Connection {
    fn insert_audit(&self, entry: &AuditEntry, ctx: &AuditContext) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO audit_log (at, action, key_id, application_id, actor_key_id, request_id, changes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            ctx.at.millis(),
            entry.action.as_str(),
            entry.key.map(|k| k.0),
            entry.application.map(|a| a.0),
            ctx.actor.map(|k| k.0),
            ctx.request_id,
            entry.changes.as_ref().map(serde_json::Value::to_string),
        ])?;
        Ok(())
    }

    fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT l.id, l.at, l.action, l.key_id, l.application_id, a.uuid, l.actor_key_id, l.request_id, \
                    l.changes \
             FROM audit_log l LEFT JOIN applications a ON a.id = l.application_id \
             WHERE l.id < :before \
               AND (:app IS NULL OR l.application_id = :app) \
               AND (:key IS NULL OR l.key_id = :key) \
               AND (:action IS NULL OR l.action = :action) \
               AND (:since IS NULL OR l.at >= :since) \
             ORDER BY l.id DESC LIMIT :limit",
        )?;
        let rows = stmt.query_map(
            named_params! {
                ":before": filter.before.unwrap_or(i64::MAX),
                ":app": filter.application.map(|a| a.0),
                ":key": filter.key.map(|k| k.0),
                ":action": filter.action.map(Action::as_str),
                ":since": filter.since.map(Timestamp::millis),
                ":limit": filter.limit,
            },
            event_from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn last_audit_id(&self) -> Result<i64, StoreError> {
        Ok(self.prepare_cached("SELECT coalesce(max(id), 0) FROM audit_log")?.query_row([], |r| r.get(0))?)
    }

    /// Each row comes with the current state of the key it changed (hash and authentication
    /// view, as read now: a key changed twice shows its latest state twice), or none for a
    /// row that changed no key. Every change to a key has its audit row (same transaction), so
    /// this is every change, in the commit order of the ids: SQLite has one writer at a time,
    /// and ids are assigned inside it.
    fn changes_since(&self, after: i64, limit: u32, interned: &mut Interned) -> Result<Vec<Change>, StoreError> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT audit_log.id, api_keys.id IS NOT NULL, {AUTH_COLUMNS} \
             FROM audit_log LEFT JOIN api_keys ON api_keys.id = audit_log.key_id \
             WHERE audit_log.id > ?1 ORDER BY audit_log.id LIMIT ?2"
        ))?;
        let mut rows = stmt.query(params![after, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let changed = if row.get::<_, bool>(1)? { Some(auth_from_row(row, 2, interned)?) } else { None };
            out.push((row.get(0)?, changed));
        }
        Ok(out)
    }
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let bad = |col: usize, why: &'static str| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, why.into())
    };
    let action: String = row.get(2)?;
    Ok(AuditEvent {
        id: row.get(0)?,
        at: Timestamp::from_millis(row.get(1)?),
        action: Action::parse(&action).ok_or_else(|| bad(2, "action"))?,
        key_id: row.get::<_, Option<i64>>(3)?.map(KeyId),
        application_id: row.get::<_, Option<i64>>(4)?.map(AppId),
        application_uuid: row
            .get::<_, Option<String>>(5)?
            .map(|u| Uuid::parse_str(&u).map_err(|_| bad(5, "application uuid")))
            .transpose()?,
        actor_key_id: row.get::<_, Option<i64>>(6)?.map(KeyId),
        request_id: row.get(7)?,
        changes: row
            .get::<_, Option<String>>(8)?
            .map(|c| serde_json::from_str(&c).map_err(|_| bad(8, "changes JSON")))
            .transpose()?,
    })
}
