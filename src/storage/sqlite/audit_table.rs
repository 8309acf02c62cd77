//! The `audit_log` table: one row per create, revoke and delete of a key, written in the
//! same transaction as the change it records; read back as the change feed of keys.

use rusqlite::{params, Connection};

use super::key_table::{auth_from_row, AUTH_COLUMNS};
use crate::domain::model::{Action, AuditContext, KeyId};
use crate::storage::{AuditRow, AuditStore, Change, Interned, StoreError};

impl AuditStore for Connection {
    fn insert_audit(&self, action: Action, key: KeyId, ctx: &AuditContext) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO audit_log (at, action, key_id, actor_key_id, request_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![ctx.at.millis(), action.as_str(), key.0, ctx.actor.map(|k| k.0), ctx.request_id])?;
        Ok(())
    }

    fn audit_for_key(&self, key: KeyId) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self.prepare_cached(
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
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn last_audit_id(&self) -> Result<i64, StoreError> {
        Ok(self.prepare_cached("SELECT coalesce(max(id), 0) FROM audit_log")?.query_row([], |r| r.get(0))?)
    }

    /// Each row comes with the current state of the key it changed (hash and authentication
    /// view, as read now: a key changed twice shows its latest state twice). Every change to a
    /// key has its audit row (same transaction), so this is every change, in the commit order
    /// of the ids: SQLite has one writer at a time, and ids are assigned inside it.
    fn changes_since(&self, after: i64, limit: u32, interned: &mut Interned) -> Result<Vec<Change>, StoreError> {
        let mut stmt = self.prepare_cached(&format!(
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
}
