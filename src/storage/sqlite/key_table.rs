//! The `api_keys` table, and `key_usage`, which holds each key's `last_used_at`: the SQLite
//! statements behind [`KeyStore`]. Only `?N` and named parameters, never text pasted into SQL.

use std::sync::Arc;

use rusqlite::{named_params, params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use crate::domain::grants::{GrantBody, Grants};
use crate::domain::key_format::KeyHash;
use crate::domain::limits::{
    parse_allowlist, period_start, Cidr, CreditPolicy, Credits, LimitSettings, Limits, RateLimit, Refill,
    RefillInterval,
};
use crate::domain::model::{AppId, Extras, KeyAuth, KeyId, KeyRecord, Meta, Status};
use crate::domain::timestamp::Timestamp;
use crate::storage::{
    CountAt, CreditTake, Interned, KeyChanges, KeyCounts, KeyFilter, KeyStore, NewKeyRow, StoreError,
};

const COLUMNS: &str = "id, uuid, title, prefix, grants, status, created_at, revoked_at, deleted_at, \
                       expires_at, (SELECT u.last_used_at FROM key_usage u WHERE u.key_id = api_keys.id), \
                       created_by, application_id, \
                       (SELECT a.uuid FROM applications a WHERE a.id = api_keys.application_id), \
                       enabled, owner, meta, rotated_from, rotated_to, \
                       rate_limit, rate_window, \
                       coalesce((SELECT p.credits_remaining FROM api_keys p WHERE p.id = api_keys.credits_pool), \
                                credits_remaining), \
                       credits_refill_amount, credits_refill_interval, credits_version, allowed_ips";

impl KeyStore for Connection {
    fn insert_key_row(&self, row: &NewKeyRow<'_>) -> Result<Option<KeyId>, StoreError> {
        let grants_json = serde_json::to_string(&row.grants.to_bodies())
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let inserted = self
            .prepare_cached(
                "INSERT INTO api_keys (uuid, title, prefix, key_hash, grants, created_at, expires_at, \
             created_by, application_id, owner, meta, rotated_from, rate_limit, rate_window, \
             credits_remaining, credits_refill_amount, credits_refill_interval, credits_period, allowed_ips) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
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
                row.owner,
                row.meta.map(Meta::as_str),
                row.rotated_from.map(|k| k.0),
                row.limits.rate_limit.map(|r| to_sql_int(r.limit)),
                row.limits.rate_limit.map(|r| to_sql_int(r.window_seconds)),
                row.limits.credits.map(|c| to_sql_int(c.remaining)),
                row.limits.credits.and_then(|c| c.refill).map(|r| to_sql_int(r.amount)),
                row.limits.credits.and_then(|c| c.refill).map(|r| interval_text(r.interval)),
                row.limits.credits.and_then(|c| c.refill).map(|r| period_start(r.interval, row.created_at).millis()),
                allowlist_json(row.limits.allowed_ips.as_deref()),
            ]);
        match inserted {
            Ok(_) => Ok(Some(KeyId(self.last_insert_rowid()))),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    && self.find_key_by_hash(row.hash)?.is_some() =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn find_key_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self
            .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = ?1"))?
            .query_row([&hash.0[..]], from_row)
            .optional()?)
    }

    fn find_key_by_id(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self
            .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))?
            .query_row([id.0], from_row)
            .optional()?)
    }

    fn find_key_by_uuid(&self, uuid: Uuid) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self
            .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE uuid = ?1"))?
            .query_row([uuid.to_string()], from_row)
            .optional()?)
    }

    /// Every filter is a parameter of one statement (NULL: not asked), so the statement is
    /// prepared once. The unused filter reads the flushed `last_used_at`, which trails real use
    /// by at most a flush interval and the one-minute resolution (`service::usage`).
    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM api_keys \
             WHERE id < :before \
               AND (:app IS NULL OR application_id = :app) \
               AND (:status IS NULL OR status = :status) \
               AND (:owner IS NULL OR owner = :owner) \
               AND (:text IS NULL OR instr(lower(title), lower(:text)) > 0 OR instr(prefix, :text) > 0) \
               AND (:expiring_after IS NULL OR (expires_at > :expiring_after AND expires_at <= :expiring_until)) \
               AND (:unused_since IS NULL OR coalesce((SELECT u.last_used_at FROM key_usage u \
                                                       WHERE u.key_id = api_keys.id), created_at) < :unused_since) \
             ORDER BY id DESC LIMIT :limit"
        ))?;
        let rows = stmt.query_map(
            named_params! {
                ":before": filter.before.map_or(i64::MAX, |k| k.0),
                ":app": filter.application.map(|a| a.0),
                ":status": filter.status.map(Status::as_str),
                ":owner": filter.owner,
                ":text": filter.text,
                ":expiring_after": filter.expiring.map(|(from, _)| from.millis()),
                ":expiring_until": filter.expiring.map(|(_, until)| until.millis()),
                ":unused_since": filter.unused_since.map(Timestamp::millis),
                ":limit": filter.limit,
            },
            from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One pass over the keys in scope; the unused test reads `key_usage` as `list_keys` does.
    fn count_keys(&self, at: &CountAt) -> Result<KeyCounts, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT coalesce(sum(status = 'active'), 0), coalesce(sum(status = 'revoked'), 0), \
                    coalesce(sum(status = 'deleted'), 0), coalesce(sum(status = 'active' AND enabled = 0), 0), \
                    coalesce(sum(status = 'active' AND expires_at <= :now), 0), \
                    coalesce(sum(status = 'active' AND expires_at > :now AND expires_at <= :soon), 0), \
                    coalesce(sum(status = 'active' AND coalesce((SELECT u.last_used_at FROM key_usage u \
                                  WHERE u.key_id = api_keys.id), created_at) < :unused_since), 0) \
             FROM api_keys WHERE (:app IS NULL OR application_id = :app)",
        )?;
        let params = named_params! {
            ":app": at.application.map(|a| a.0),
            ":now": at.now.millis(),
            ":soon": at.soon.millis(),
            ":unused_since": at.unused_since.millis(),
        };
        let count = |r: &Row<'_>, i: usize| r.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(stmt.query_row(params, |r| {
            Ok(KeyCounts {
                active: count(r, 0)?,
                revoked: count(r, 1)?,
                deleted: count(r, 2)?,
                disabled: count(r, 3)?,
                expired: count(r, 4)?,
                expiring: count(r, 5)?,
                unused: count(r, 6)?,
            })
        })?)
    }

    /// One statement whatever changes: each field is set only when its flag says so.
    fn update_key(&self, id: KeyId, c: &KeyChanges) -> Result<(), StoreError> {
        let credits = c.credits.flatten();
        let refill = credits.and_then(|c| c.refill);
        let grants_json = c
            .grants
            .as_ref()
            .map(|g| serde_json::to_string(&g.to_bodies()))
            .transpose()
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        self.prepare_cached(
            "UPDATE api_keys SET \
                 title = coalesce(?2, title), \
                 grants = coalesce(?3, grants), \
                 expires_at = CASE WHEN ?4 THEN ?5 ELSE expires_at END, \
                 owner = CASE WHEN ?6 THEN ?7 ELSE owner END, \
                 meta = CASE WHEN ?8 THEN ?9 ELSE meta END, \
                 enabled = coalesce(?10, enabled), \
                 rotated_to = coalesce(?11, rotated_to), \
                 rate_limit = CASE WHEN ?12 THEN ?13 ELSE rate_limit END, \
                 rate_window = CASE WHEN ?12 THEN ?14 ELSE rate_window END, \
                 credits_remaining = CASE WHEN ?15 THEN ?16 ELSE credits_remaining END, \
                 credits_refill_amount = CASE WHEN ?15 THEN ?17 ELSE credits_refill_amount END, \
                 credits_refill_interval = CASE WHEN ?15 THEN ?18 ELSE credits_refill_interval END, \
                 credits_period = CASE WHEN ?15 THEN ?19 ELSE credits_period END, \
                 credits_version = credits_version + CASE WHEN ?15 THEN 1 ELSE 0 END, \
                 credits_pool = CASE WHEN ?15 THEN NULL ELSE credits_pool END, \
                 allowed_ips = CASE WHEN ?20 THEN ?21 ELSE allowed_ips END \
             WHERE id = ?1",
        )?
        .execute(params![
            id.0,
            c.title,
            grants_json,
            c.expires_at.is_some(),
            c.expires_at.flatten().map(Timestamp::millis),
            c.owner.is_some(),
            c.owner.clone().flatten(),
            c.meta.is_some(),
            c.meta.as_ref().and_then(|m| m.as_ref().map(|m| m.as_str().to_owned())),
            c.enabled,
            c.rotated_to.map(|k| k.0),
            c.rate_limit.is_some(),
            c.rate_limit.flatten().map(|r| to_sql_int(r.limit)),
            c.rate_limit.flatten().map(|r| to_sql_int(r.window_seconds)),
            c.credits.is_some(),
            credits.map(|c| to_sql_int(c.remaining)),
            refill.map(|r| to_sql_int(r.amount)),
            refill.map(|r| interval_text(r.interval)),
            refill.map(|r| period_start(r.interval, Timestamp::now()).millis()),
            c.allowed_ips.is_some(),
            c.allowed_ips.as_ref().and_then(|a| allowlist_json(a.as_deref())),
        ])?;
        Ok(())
    }

    fn lease_credits(&self, id: KeyId, block: u64, now: Timestamp) -> Result<CreditTake, StoreError> {
        type Row = (i64, Option<i64>, Option<i64>, Option<String>, Option<i64>);
        // A key rotated away spends from its successor's count (`credits_pool`).
        let (pool, remaining, amount, interval, period): Row = self
            .prepare_cached(
                "SELECT p.id, p.credits_remaining, p.credits_refill_amount, p.credits_refill_interval, p.credits_period \
                 FROM api_keys k JOIN api_keys p ON p.id = coalesce(k.credits_pool, k.id) WHERE k.id = ?1",
            )?
            .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
        let Some(mut remaining) = remaining.map(from_sql_int) else { return Ok(CreditTake::default()) };
        let interval = interval.as_deref().map(parse_interval).transpose()?;
        let mut period = period.map(Timestamp::from_millis);
        if let (Some(amount), Some(interval)) = (amount, interval) {
            let current = period_start(interval, now);
            if period.is_none_or(|p| p < current) {
                remaining = from_sql_int(amount);
                period = Some(current);
            }
        }
        let granted = block.min(remaining);
        self.prepare_cached("UPDATE api_keys SET credits_remaining = ?2, credits_period = ?3 WHERE id = ?1")?
            .execute(params![pool, to_sql_int(remaining - granted), period.map(Timestamp::millis)])?;
        Ok(CreditTake { granted, left: remaining - granted, period, interval })
    }

    fn return_credits(
        &self,
        id: KeyId,
        version: u64,
        period: Option<Timestamp>,
        amount: u64,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE api_keys SET credits_remaining = credits_remaining + ?4 \
             WHERE id = (SELECT coalesce(k.credits_pool, k.id) FROM api_keys k WHERE k.id = ?1 AND k.credits_version = ?2) \
               AND credits_period IS ?3 AND credits_remaining IS NOT NULL",
        )?
        .execute(params![id.0, to_sql_int(version), period.map(Timestamp::millis), to_sql_int(amount)])?;
        Ok(())
    }

    fn pool_credits(&self, from: KeyId, to: KeyId) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE api_keys SET credits_pool = ?2 \
             WHERE (id = ?1 OR credits_pool = ?1) AND credits_remaining IS NOT NULL",
        )?
        .execute(params![from.0, to.0])?;
        Ok(())
    }

    fn mark_revoked(&self, id: KeyId, at: Timestamp) -> Result<bool, StoreError> {
        let n = self
            .prepare_cached(
                "UPDATE api_keys SET status = 'revoked', revoked_at = ?2 WHERE id = ?1 AND status = 'active'",
            )?
            .execute(params![id.0, at.millis()])?;
        Ok(n == 1)
    }

    fn mark_deleted(&self, id: KeyId, at: Timestamp) -> Result<bool, StoreError> {
        let n = self
            .prepare_cached(
                "UPDATE api_keys SET status = 'deleted', deleted_at = ?2 WHERE id = ?1 AND status <> 'deleted'",
            )?
            .execute(params![id.0, at.millis()])?;
        Ok(n == 1)
    }

    /// Never backward: flushes may arrive out of order.
    fn touch_last_used(&self, id: KeyId, at: Timestamp) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO key_usage (key_id, last_used_at) VALUES (?1, ?2) \
             ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at \
             WHERE excluded.last_used_at > key_usage.last_used_at",
        )?
        .execute(params![id.0, at.millis()])?;
        Ok(())
    }

    /// One B-tree step, where `count(*)` reads a whole index: at a million keys on a cold page
    /// cache that was most of a second of start-up.
    fn any_keys(&self) -> Result<bool, StoreError> {
        Ok(self.query_row("SELECT EXISTS (SELECT 1 FROM api_keys)", [], |r| r.get(0))?)
    }

    /// One B-tree step; an upper bound on the number of keys since rows are never removed.
    fn max_key_id(&self) -> Result<i64, StoreError> {
        Ok(self.query_row("SELECT coalesce(max(id), 0) FROM api_keys", [], |r| r.get(0))?)
    }

    /// Pages for warming the in-memory index, keyed by hash. Rows share grants through
    /// `interned`: each distinct grants text is parsed once and its `Arc` reused.
    fn load_auth_page(
        &self,
        after: KeyId,
        limit: u32,
        interned: &mut Interned,
    ) -> Result<Vec<(KeyHash, KeyAuth)>, StoreError> {
        let mut stmt =
            self.prepare_cached(&format!("SELECT {AUTH_COLUMNS} FROM api_keys WHERE id > ?1 ORDER BY id LIMIT ?2"))?;
        let mut rows = stmt.query(params![after.0, limit])?;
        let mut out = Vec::with_capacity(limit as usize);
        while let Some(row) = rows.next()? {
            out.push(auth_from_row(row, 0, interned)?);
        }
        Ok(out)
    }
}

/// The columns [`auth_from_row`] reads, in its order, for a query on `api_keys`.
pub(super) const AUTH_COLUMNS: &str = "api_keys.key_hash, api_keys.id, api_keys.uuid, api_keys.grants, \
     api_keys.status, api_keys.expires_at, api_keys.application_id, \
     (SELECT a.uuid FROM applications a WHERE a.id = api_keys.application_id), \
     api_keys.enabled, api_keys.owner, api_keys.meta, api_keys.rate_limit, api_keys.rate_window, \
     api_keys.credits_remaining, api_keys.credits_refill_amount, api_keys.credits_refill_interval, \
     api_keys.credits_version, api_keys.allowed_ips";

/// A key's hash and authentication view from [`AUTH_COLUMNS`], starting at column `at`.
pub(super) fn auth_from_row(row: &Row<'_>, at: usize, interned: &mut Interned) -> rusqlite::Result<(KeyHash, KeyAuth)> {
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
        enabled: row.get(at + 8)?,
        extras: {
            let limits = limits_at(row, at + 11)?;
            let version: i64 = row.get(at + 16)?;
            let limits = Limits {
                rate_limit: limits.rate_limit,
                credits: limits.credits.map(|c| CreditPolicy { version: version.unsigned_abs(), refill: c.refill }),
                allowed_ips: limits.allowed_ips,
            };
            Extras::of(row.get(at + 9)?, meta_at(row, at + 10)?, limits)
        },
    };
    Ok((KeyHash(hash), auth))
}

/// The stored metadata in column `col`, re-checked as it is read.
fn meta_at(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<Meta>> {
    row.get::<_, Option<String>>(col)?
        .map(|text| {
            Meta::parse(&text)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e)))
        })
        .transpose()
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    // Columns 19 to 25: the limits (with the credits' generation at 24).
    let limits = limits_at(row, 19)?;
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
        enabled: row.get(14)?,
        owner: row.get(15)?,
        meta: meta_at(row, 16)?,
        rotated_from: row.get::<_, Option<i64>>(17)?.map(KeyId),
        rotated_to: row.get::<_, Option<i64>>(18)?.map(KeyId),
        rate_limit: limits.rate_limit,
        credits: limits.credits,
        credits_version: row.get::<_, i64>(24)?.unsigned_abs(),
        allowed_ips: limits.allowed_ips,
    })
}

/// The limit columns starting at `at`: rate_limit, rate_window, credits_remaining,
/// credits_refill_amount, credits_refill_interval, (credits_version), allowed_ips.
fn limits_at(row: &Row<'_>, at: usize) -> rusqlite::Result<LimitSettings> {
    let bad = |col: usize, why: &'static str| {
        rusqlite::Error::FromSqlConversionFailure(at + col, rusqlite::types::Type::Text, why.into())
    };
    let int =
        |col: usize| -> rusqlite::Result<Option<u64>> { Ok(row.get::<_, Option<i64>>(at + col)?.map(from_sql_int)) };
    let rate_limit = match (int(0)?, int(1)?) {
        (Some(limit), Some(window_seconds)) => Some(RateLimit { limit, window_seconds }),
        _ => None,
    };
    let refill = match (int(3)?, row.get::<_, Option<String>>(at + 4)?) {
        (Some(amount), Some(interval)) => {
            Some(Refill { amount, interval: parse_interval(&interval).map_err(|_| bad(4, "refill interval"))? })
        }
        _ => None,
    };
    let credits = int(2)?.map(|remaining| Credits { remaining, refill });
    let allowed_ips = row
        .get::<_, Option<String>>(at + 6)?
        .map(|text| {
            let list: Vec<String> = serde_json::from_str(&text).map_err(|_| bad(6, "allowed_ips JSON"))?;
            parse_allowlist(&list).map_err(|_| bad(6, "allowed_ips"))
        })
        .transpose()?;
    Ok(LimitSettings { rate_limit, credits, allowed_ips })
}

fn to_sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql_int(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn interval_text(i: RefillInterval) -> &'static str {
    match i {
        RefillInterval::Daily => "daily",
        RefillInterval::Monthly => "monthly",
    }
}

fn parse_interval(text: &str) -> Result<RefillInterval, StoreError> {
    match text {
        "daily" => Ok(RefillInterval::Daily),
        "monthly" => Ok(RefillInterval::Monthly),
        _ => Err(StoreError::Malformed("credits_refill_interval")),
    }
}

fn allowlist_json(list: Option<&[Cidr]>) -> Option<String> {
    list.map(|l| serde_json::Value::from(l.iter().map(ToString::to_string).collect::<Vec<_>>()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::key_format::ApiKey;

    fn conn() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_connection(&dir.path().join("t.db")).unwrap();
        (dir, conn)
    }

    fn insert(conn: &Connection, app: Option<AppId>) -> (ApiKey, KeyRecord) {
        let key = ApiKey::generate().unwrap();
        let rec = conn
            .insert_key(&NewKeyRow {
                uuid: Uuid::new_v4(),
                title: "t",
                prefix: &key.display_prefix(),
                hash: &key.hash(),
                grants: &Grants::root(),
                created_at: Timestamp::from_millis(1_000),
                expires_at: None,
                created_by: None,
                application_id: app,
                owner: None,
                meta: None,
                rotated_from: None,
                limits: &LimitSettings::default(),
            })
            .unwrap();
        (key, rec)
    }

    fn page(application: Option<AppId>, before: Option<KeyId>, status: Option<Status>, limit: u32) -> KeyFilter {
        KeyFilter { application, status, before, limit, ..KeyFilter::default() }
    }

    #[test]
    fn inserted_key_is_found_by_hash_and_id() {
        let (_d, conn) = conn();
        let (key, rec) = insert(&conn, None);
        assert_eq!(conn.find_key_by_hash(&key.hash()).unwrap(), Some(rec.clone()));
        assert_eq!(conn.find_key_by_id(rec.id).unwrap(), Some(rec.clone()));
        assert_eq!(conn.find_key_by_uuid(rec.uuid).unwrap(), Some(rec.clone()));
        assert_eq!(rec.status, Status::Active);
        assert_eq!(rec.grants, Grants::root());
    }

    #[test]
    fn revoke_and_delete_change_status_once() {
        let (_d, conn) = conn();
        let (_k, rec) = insert(&conn, None);
        assert!(conn.mark_revoked(rec.id, Timestamp::from_millis(5)).unwrap());
        assert!(!conn.mark_revoked(rec.id, Timestamp::from_millis(6)).unwrap());
        assert!(conn.mark_deleted(rec.id, Timestamp::from_millis(7)).unwrap());
        assert!(!conn.mark_deleted(rec.id, Timestamp::from_millis(8)).unwrap());
        let got = conn.find_key_by_id(rec.id).unwrap().unwrap();
        assert_eq!(got.status, Status::Deleted);
        assert_eq!(got.revoked_at, Some(Timestamp::from_millis(5)));
        assert_eq!(got.deleted_at, Some(Timestamp::from_millis(7)));
    }

    #[test]
    fn listing_is_newest_first_and_pages_by_id() {
        let (_d, conn) = conn();
        let ids: Vec<KeyId> = (0..5).map(|_| insert(&conn, None).1.id).collect();
        let first = conn.list_keys(&page(None, None, None, 2)).unwrap();
        assert_eq!(first.iter().map(|k| k.id).collect::<Vec<_>>(), vec![ids[4], ids[3]]);
        let next = conn.list_keys(&page(None, Some(ids[3]), None, 10)).unwrap();
        assert_eq!(next.iter().map(|k| k.id).collect::<Vec<_>>(), vec![ids[2], ids[1], ids[0]]);
        conn.mark_revoked(ids[1], Timestamp::from_millis(9)).unwrap();
        let revoked = conn.list_keys(&page(None, None, Some(Status::Revoked), 10)).unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].id, ids[1]);
    }

    #[test]
    fn an_application_filter_lists_only_that_applications_keys() {
        let (_d, conn) = conn();
        conn.execute("INSERT INTO applications (id, uuid, name, created_at) VALUES (1, '123e4567-e89b-12d3-a456-426614174000', 'A', 0)", []).unwrap();
        let (_k, _global) = insert(&conn, None);
        let (_k, in_app) = insert(&conn, Some(AppId(1)));
        let listed = conn.list_keys(&page(Some(AppId(1)), None, None, 10)).unwrap();
        assert_eq!(listed.iter().map(|k| k.id).collect::<Vec<_>>(), vec![in_app.id]);
        assert_eq!(conn.list_keys(&page(None, None, None, 10)).unwrap().len(), 2);
    }
}
