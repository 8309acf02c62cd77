//! The `api_keys` table, and `key_usage`, which holds each key's `last_used_at`.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{named_params, params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use crate::grants::{GrantBody, Grants};
use crate::keys::KeyHash;
use crate::model::{AppId, KeyAuth, KeyId, KeyRecord, Scope, Status};
use crate::timestamp::Timestamp;

const COLUMNS: &str = "id, uuid, title, prefix, grants, status, created_at, revoked_at, deleted_at, \
                       expires_at, (SELECT u.last_used_at FROM key_usage u WHERE u.key_id = api_keys.id), \
                       created_by, application_id, \
                       (SELECT a.uuid FROM applications a WHERE a.id = api_keys.application_id)";

/// What a new row holds; the id is assigned by SQLite.
#[derive(Debug)]
pub struct NewKeyRow<'a> {
    /// Public UUID.
    pub uuid: Uuid,
    /// Label.
    pub title: &'a str,
    /// Display prefix.
    pub prefix: &'a str,
    /// SHA-256 of the plaintext.
    pub hash: &'a KeyHash,
    /// Grants.
    pub grants: &'a Grants,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// The key that made it.
    pub created_by: Option<KeyId>,
    /// Its application.
    pub application_id: Option<AppId>,
}

/// Inserts a new active key and returns its record.
pub fn insert_key(conn: &Connection, row: &NewKeyRow<'_>) -> rusqlite::Result<KeyRecord> {
    let grants_json = serde_json::to_string(&row.grants.to_bodies())
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.prepare_cached(
        "INSERT INTO api_keys (uuid, title, prefix, key_hash, grants, created_at, expires_at, \
         created_by, application_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        row.uuid.to_string(),
        row.title,
        row.prefix,
        &row.hash.0[..],
        grants_json,
        row.created_at.millis(),
        row.expires_at.map(Timestamp::millis),
        row.created_by.map(|k| k.0),
        row.application_id.map(|a| a.0),
    ])?;
    let id = KeyId(conn.last_insert_rowid());
    find_key_by_id(conn, id, Scope::Global)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

/// The key whose plaintext hashes to `hash`, in any status.
pub fn find_key_by_hash(conn: &Connection, hash: &KeyHash) -> rusqlite::Result<Option<KeyRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = ?1"))?
        .query_row([&hash.0[..]], from_row)
        .optional()
}

/// The key with this id, if it lies in `scope`.
pub fn find_key_by_id(conn: &Connection, id: KeyId, scope: Scope) -> rusqlite::Result<Option<KeyRecord>> {
    let found = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))?
        .query_row([id.0], from_row)
        .optional()?;
    Ok(found.filter(|k| k.in_scope(scope)))
}

/// The key with this UUID, if it lies in `scope`.
pub fn find_key_by_uuid(conn: &Connection, uuid: Uuid, scope: Scope) -> rusqlite::Result<Option<KeyRecord>> {
    let found = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE uuid = ?1"))?
        .query_row([uuid.to_string()], from_row)
        .optional()?;
    Ok(found.filter(|k| k.in_scope(scope)))
}

/// Up to `limit` keys in `scope` with ids below `before` (all when `None`), newest first.
pub fn list_keys(
    conn: &Connection,
    scope: Scope,
    before: Option<KeyId>,
    status: Option<Status>,
    limit: u32,
) -> rusqlite::Result<Vec<KeyRecord>> {
    let app = match scope {
        Scope::Global => None,
        Scope::Application(app) => Some(app.0),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys \
         WHERE id < :before \
           AND (:app IS NULL OR application_id = :app) \
           AND (:status IS NULL OR status = :status) \
         ORDER BY id DESC LIMIT :limit"
    ))?;
    let rows = stmt.query_map(
        named_params! {
            ":before": before.map_or(i64::MAX, |k| k.0),
            ":app": app,
            ":status": status.map(Status::as_str),
            ":limit": limit,
        },
        from_row,
    )?;
    rows.collect()
}

/// Marks an active key revoked. Returns false when the key was not active.
pub fn mark_revoked(conn: &Connection, id: KeyId, at: Timestamp) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("UPDATE api_keys SET status = 'revoked', revoked_at = ?2 WHERE id = ?1 AND status = 'active'")?
        .execute(params![id.0, at.millis()])?;
    Ok(n == 1)
}

/// Marks a key deleted (from active or revoked). Returns false when it was already deleted.
pub fn mark_deleted(conn: &Connection, id: KeyId, at: Timestamp) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE api_keys SET status = 'deleted', deleted_at = ?2 WHERE id = ?1 AND status <> 'deleted'",
        )?
        .execute(params![id.0, at.millis()])?;
    Ok(n == 1)
}

/// Moves the key's `last_used_at` forward to `at` (never backward: flushes may arrive out of
/// order).
pub fn touch_last_used(conn: &Connection, id: KeyId, at: Timestamp) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO key_usage (key_id, last_used_at) VALUES (?1, ?2) \
         ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at \
         WHERE excluded.last_used_at > key_usage.last_used_at",
    )?
    .execute(params![id.0, at.millis()])?;
    Ok(())
}

/// The columns [`auth_from_row`] reads, in its order, for a query on `api_keys`.
pub(crate) const AUTH_COLUMNS: &str = "api_keys.key_hash, api_keys.id, api_keys.uuid, api_keys.grants, \
     api_keys.status, api_keys.expires_at, api_keys.application_id, \
     (SELECT a.uuid FROM applications a WHERE a.id = api_keys.application_id)";

/// Grants texts already parsed, shared by every key that has them.
pub type Interned = HashMap<String, Arc<Grants>>;

/// Up to `limit` keys' authentication views with ids above `after`, in id order, keyed by
/// hash: pages for warming the in-memory index. Rows share grants through `interned`: each
/// distinct grants text is parsed once and its `Arc` reused, which keeps a million keys with
/// a few distinct grant sets small.
pub fn load_auth_page(
    conn: &Connection,
    after: KeyId,
    limit: u32,
    interned: &mut Interned,
) -> rusqlite::Result<Vec<(KeyHash, KeyAuth)>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {AUTH_COLUMNS} FROM api_keys WHERE id > ?1 ORDER BY id LIMIT ?2"))?;
    let mut rows = stmt.query(params![after.0, limit])?;
    let mut out = Vec::with_capacity(limit as usize);
    while let Some(row) = rows.next()? {
        out.push(auth_from_row(row, 0, interned)?);
    }
    Ok(out)
}

/// A key's hash and authentication view from [`AUTH_COLUMNS`], starting at column `at`.
pub(crate) fn auth_from_row(row: &Row<'_>, at: usize, interned: &mut Interned) -> rusqlite::Result<(KeyHash, KeyAuth)> {
    let bad = |col: usize, why: &str| {
        rusqlite::Error::FromSqlConversionFailure(at + col, rusqlite::types::Type::Text, why.to_owned().into())
    };
    let hash: Vec<u8> = row.get(at)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| bad(0, "hash length"))?;
    let grants_text: String = row.get(at + 3)?;
    let grants = match interned.get(&grants_text) {
        Some(g) => Arc::clone(g),
        None => {
            let bodies: Vec<GrantBody> = serde_json::from_str(&grants_text).map_err(|_| bad(3, "grants JSON"))?;
            let g = Arc::new(Grants::from_bodies(&bodies).map_err(|_| bad(3, "grants"))?);
            interned.insert(grants_text, Arc::clone(&g));
            g
        }
    };
    let uuid: String = row.get(at + 2)?;
    let status: String = row.get(at + 4)?;
    let auth = KeyAuth {
        id: KeyId(row.get(at + 1)?),
        uuid: Uuid::parse_str(&uuid).map_err(|_| bad(2, "uuid"))?,
        grants,
        status: Status::parse(&status).ok_or_else(|| bad(4, "status"))?,
        expires_at: row.get::<_, Option<i64>>(at + 5)?.map(Timestamp::from_millis),
        application_id: row.get::<_, Option<i64>>(at + 6)?.map(AppId),
        application_uuid: row
            .get::<_, Option<String>>(at + 7)?
            .map(|u| Uuid::parse_str(&u).map_err(|_| bad(7, "application uuid")))
            .transpose()?,
    };
    Ok((KeyHash(hash), auth))
}

/// True when any key exists. One B-tree step, where `count(*)` reads a whole index: at a
/// million keys on a cold page cache that was most of a second of start-up.
pub fn any_keys(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM api_keys)", [], |r| r.get(0))
}

/// The highest key id (0 for none): an upper bound on the number of keys, found in one
/// B-tree step, since rows are never removed.
pub fn max_key_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM api_keys", [], |r| r.get(0))
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let bad = |col: usize, why: &str| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, why.to_owned().into())
    };
    let uuid: String = row.get(1)?;
    let grants_json: String = row.get(4)?;
    let bodies: Vec<GrantBody> = serde_json::from_str(&grants_json).map_err(|_| bad(4, "grants JSON"))?;
    let status: String = row.get(5)?;
    let ts = |col: usize| -> rusqlite::Result<Option<Timestamp>> {
        Ok(row.get::<_, Option<i64>>(col)?.map(Timestamp::from_millis))
    };
    Ok(KeyRecord {
        id: KeyId(row.get(0)?),
        uuid: Uuid::parse_str(&uuid).map_err(|_| bad(1, "uuid"))?,
        title: row.get(2)?,
        prefix: row.get(3)?,
        grants: Grants::from_bodies(&bodies).map_err(|_| bad(4, "grants"))?,
        status: Status::parse(&status).ok_or_else(|| bad(5, "status"))?,
        created_at: Timestamp::from_millis(row.get(6)?),
        revoked_at: ts(7)?,
        deleted_at: ts(8)?,
        expires_at: ts(9)?,
        last_used_at: ts(10)?,
        created_by: row.get::<_, Option<i64>>(11)?.map(KeyId),
        application_id: row.get::<_, Option<i64>>(12)?.map(AppId),
        application_uuid: row
            .get::<_, Option<String>>(13)?
            .map(|u| Uuid::parse_str(&u).map_err(|_| bad(13, "application uuid")))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ApiKey;

    fn conn() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open_connection(&dir.path().join("t.db")).unwrap();
        (dir, conn)
    }

    fn insert(conn: &Connection, app: Option<AppId>) -> (ApiKey, KeyRecord) {
        let key = ApiKey::generate().unwrap();
        let rec = insert_key(
            conn,
            &NewKeyRow {
                uuid: Uuid::new_v4(),
                title: "t",
                prefix: &key.display_prefix(),
                hash: &key.hash(),
                grants: &Grants::root(),
                created_at: Timestamp::from_millis(1_000),
                expires_at: None,
                created_by: None,
                application_id: app,
            },
        )
        .unwrap();
        (key, rec)
    }

    #[test]
    fn inserted_key_is_found_by_hash_and_id() {
        let (_d, conn) = conn();
        let (key, rec) = insert(&conn, None);
        assert_eq!(find_key_by_hash(&conn, &key.hash()).unwrap(), Some(rec.clone()));
        assert_eq!(find_key_by_id(&conn, rec.id, Scope::Global).unwrap(), Some(rec.clone()));
        assert_eq!(rec.status, Status::Active);
        assert_eq!(rec.grants, Grants::root());
    }

    #[test]
    fn revoke_and_delete_change_status_once() {
        let (_d, conn) = conn();
        let (_k, rec) = insert(&conn, None);
        assert!(mark_revoked(&conn, rec.id, Timestamp::from_millis(5)).unwrap());
        assert!(!mark_revoked(&conn, rec.id, Timestamp::from_millis(6)).unwrap());
        assert!(mark_deleted(&conn, rec.id, Timestamp::from_millis(7)).unwrap());
        assert!(!mark_deleted(&conn, rec.id, Timestamp::from_millis(8)).unwrap());
        let got = find_key_by_id(&conn, rec.id, Scope::Global).unwrap().unwrap();
        assert_eq!(got.status, Status::Deleted);
        assert_eq!(got.revoked_at, Some(Timestamp::from_millis(5)));
        assert_eq!(got.deleted_at, Some(Timestamp::from_millis(7)));
    }

    #[test]
    fn listing_is_newest_first_and_pages_by_id() {
        let (_d, conn) = conn();
        let ids: Vec<KeyId> = (0..5).map(|_| insert(&conn, None).1.id).collect();
        let first = list_keys(&conn, Scope::Global, None, None, 2).unwrap();
        assert_eq!(first.iter().map(|k| k.id).collect::<Vec<_>>(), vec![ids[4], ids[3]]);
        let next = list_keys(&conn, Scope::Global, Some(ids[3]), None, 10).unwrap();
        assert_eq!(next.iter().map(|k| k.id).collect::<Vec<_>>(), vec![ids[2], ids[1], ids[0]]);
        mark_revoked(&conn, ids[1], Timestamp::from_millis(9)).unwrap();
        let revoked = list_keys(&conn, Scope::Global, None, Some(Status::Revoked), 10).unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].id, ids[1]);
    }

    #[test]
    fn application_scope_hides_other_keys() {
        let (_d, conn) = conn();
        conn.execute("INSERT INTO applications (id, uuid, name, created_at) VALUES (1, '123e4567-e89b-12d3-a456-426614174000', 'A', 0)", []).unwrap();
        let (_k, global) = insert(&conn, None);
        let (_k, in_app) = insert(&conn, Some(AppId(1)));
        let scope = Scope::Application(AppId(1));
        assert_eq!(find_key_by_id(&conn, global.id, scope).unwrap(), None);
        assert!(find_key_by_id(&conn, in_app.id, scope).unwrap().is_some());
        assert_eq!(list_keys(&conn, scope, None, None, 10).unwrap().len(), 1);
        assert_eq!(list_keys(&conn, Scope::Global, None, None, 10).unwrap().len(), 2);
    }
}
