//! Is this key good for this path? The one question every family's authentication and the
//! verify and forward-auth endpoints ask, answered with one code.
//!
//! How keys are found: each check parses the key (the checksum refuses garbage with no I/O),
//! hashes it, and asks the in-memory index (`index`), which answers from a hash map after one
//! 48-byte `pread` of the WAL-index header proves nothing was committed since its last
//! refresh; a miss or a moved header falls through to a SQLite point look-up by the unique
//! `key_hash` index, inline on the worker. Chosen by measurement (BENCHMARKS.md, and the
//! figures in `index`): a pooled SQLite look-up per request reached about 30% of the
//! `/healthz` ceiling, the index about twice that, with revocations by this server or by
//! another process on the same file still honoured from the very next request. Nothing here
//! writes: `last_used_at` goes to `usage`, which writes in batches.

use serde::Serialize;

use crate::db::DbError;
use crate::grants::{Access, GrantPath};
use crate::keys::ApiKey;
use crate::model::{KeyAuth, Scope, Status};
use crate::store::keys::find_key_by_id;
use crate::timestamp::Timestamp;
use crate::AppState;

/// The answer to a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    /// Usable, and (if asked) a grant covers the path and access.
    Valid,
    /// No such key, or not a well-formed key at all.
    NotFound,
    /// Revoked by id.
    Revoked,
    /// Deleted (by value or by the clients family).
    Deleted,
    /// Past its expiry.
    Expired,
    /// Usable, but no grant covers the path and access asked about.
    Forbidden,
    /// The caller has failed too often; try later.
    RateLimited,
}

/// What a caller wants to do, when it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    /// The path.
    pub path: GrantPath,
    /// The access.
    pub access: Access,
}

/// Finds the key `text` names. Malformed text is `None` without touching the database.
pub fn lookup(state: &AppState, text: &str) -> Result<Option<KeyAuth>, DbError> {
    let Ok(key) = ApiKey::parse(text) else { return Ok(None) };
    state.index.find(&state.db, &key.hash())
}

/// Finds the key a credential names: a key itself, or a session JWT minted from one (looked
/// up by id on every use, so the token dies with its key). Anything else is `None`.
pub fn resolve(state: &AppState, text: &str) -> Result<Option<KeyAuth>, DbError> {
    if text.starts_with(crate::keys::PREFIX) {
        return lookup(state, text);
    }
    let Some(session) = state.sessions.check(text) else { return Ok(None) };
    let found = state.db.read_inline(|conn| Ok::<_, DbError>(find_key_by_id(conn, session.id, Scope::Global)?))?;
    Ok(found.filter(|record| record.uuid == session.uuid).map(|record| record.auth()))
}

/// The code for `record` (as found by [`lookup`]) asked about `need` at `now`.
pub fn judge(record: Option<&KeyAuth>, need: Option<&Need>, now: Timestamp) -> Code {
    let Some(k) = record else { return Code::NotFound };
    match k.status {
        Status::Revoked => return Code::Revoked,
        Status::Deleted => return Code::Deleted,
        Status::Active => {}
    }
    if k.is_expired(now) {
        return Code::Expired;
    }
    match need {
        Some(n) if !k.grants.allows(&n.path, n.access) => Code::Forbidden,
        _ => Code::Valid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::Grants;
    use crate::model::KeyId;

    fn record(status: Status, expires_at: Option<i64>) -> KeyAuth {
        KeyAuth {
            id: KeyId(1),
            uuid: uuid::Uuid::nil(),
            grants: std::sync::Arc::new(Grants::single(GrantPath::parse("/data").unwrap(), Access::Read)),
            status,
            expires_at: expires_at.map(Timestamp::from_millis),
            application_id: None,
            application_uuid: None,
        }
    }

    #[test]
    fn codes_table() {
        let now = Timestamp::from_millis(1000);
        let read_data = Need { path: GrantPath::parse("/data/x").unwrap(), access: Access::Read };
        let write_data = Need { path: GrantPath::parse("/data/x").unwrap(), access: Access::Write };
        let read_other = Need { path: GrantPath::parse("/datax").unwrap(), access: Access::Read };
        let rows: Vec<(Option<KeyAuth>, Option<&Need>, Code)> = vec![
            (None, None, Code::NotFound),
            (Some(record(Status::Active, None)), None, Code::Valid),
            (Some(record(Status::Active, None)), Some(&read_data), Code::Valid),
            (Some(record(Status::Active, None)), Some(&write_data), Code::Forbidden),
            (Some(record(Status::Active, None)), Some(&read_other), Code::Forbidden),
            (Some(record(Status::Active, Some(1000))), None, Code::Expired),
            (Some(record(Status::Active, Some(1001))), None, Code::Valid),
            (Some(record(Status::Revoked, None)), None, Code::Revoked),
            (Some(record(Status::Deleted, Some(1))), None, Code::Deleted),
        ];
        for (rec, need, want) in rows {
            assert_eq!(judge(rec.as_ref(), need, now), want, "{rec:?} {need:?}");
        }
    }
}
