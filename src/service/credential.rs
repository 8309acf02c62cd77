//! Checking a credential: look-up, verdict, `last_used`, failed-authentication budget. The
//! one path every family's authentication, `POST /api/v1/keys/verify`, forward-auth and
//! both login calls take, so they agree on what counts as a failure (`Code::is_failure`):
//! an unknown, malformed, revoked, deleted or expired credential (or none at all) spends the
//! client's budget; a good key asking about a path it has no grant for spends nothing.
//!
//! How keys are found: each check parses the key (the checksum refuses garbage with no I/O),
//! hashes it, and asks the in-memory index (`index`), which answers from a hash map after
//! one 48-byte `pread` proves nothing was committed since its last refresh. A session JWT is
//! checked by signature, then its key is read by id on every use, so a token dies with its
//! key. Nothing here writes: `last_used_at` goes to `usage`, which writes in batches.

use std::net::IpAddr;

use crate::domain::key_format::{self, ApiKey, KeyHash};
use crate::domain::model::KeyAuth;
use crate::domain::timestamp::Timestamp;
use crate::error::{ApiError, AuthFailure};
use crate::service::verdict::{judge, Code, Need};
use crate::service::AppState;
use crate::storage::StoreError;

/// Which credentials a call accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// A key only (verify, login: a session cannot be exchanged for another).
    Key,
    /// A key or a session JWT minted from one (every management call, forward-auth).
    KeyOrSession,
}

/// The outcome of a check.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The verdict; `RateLimited` when the check failed and the client is over its budget.
    pub code: Code,
    /// The key, unless it was not found or the answer is `RateLimited`.
    pub key: Option<KeyAuth>,
    /// With `RateLimited`: seconds until the client may retry.
    pub retry_after: Option<u64>,
    /// The instant the verdict holds for.
    pub at: Timestamp,
}

/// Checks `credential` (the text presented, `None` when nothing usable was presented) for
/// `need`. A usable key has its use recorded; a failure spends the budget of the client
/// `client` names (computed only then). Errors only when the store cannot be read: never a
/// `Valid` by default.
pub fn authenticate(
    state: &AppState,
    credential: Option<&str>,
    accept: Accept,
    need: &Need,
    client: impl FnOnce() -> Option<IpAddr>,
) -> Result<Checked, StoreError> {
    let at = Timestamp::now();
    let found = match credential {
        Some(text) => resolve(state, text, accept)?,
        None => None,
    };
    let code = judge(found.as_ref(), need, at);
    if code == Code::Valid {
        if let Some(key) = &found {
            state.usage.record(key.id, at);
        }
    }
    if code.is_failure() {
        if let Some(retry_after) = client().and_then(|ip| state.limiter.record_failure(ip).err()) {
            return Ok(Checked { code: Code::RateLimited, key: None, retry_after: Some(retry_after), at });
        }
    }
    Ok(Checked { code, key: found, retry_after: None, at })
}

/// Exchanges a key for a session JWT and its advertised expiry. 401 for anything but a
/// usable key; 429 once the client is over its failure budget.
pub fn login(
    state: &AppState,
    api_key: &str,
    client: impl FnOnce() -> Option<IpAddr>,
) -> Result<(String, Timestamp), ApiError> {
    let checked = authenticate(state, Some(api_key), Accept::Key, &Need::Usable, client)?;
    match (checked.code, checked.key, checked.retry_after) {
        (Code::Valid, Some(key), _) => state.sessions.issue(&key, checked.at).map_err(|e| ApiError::internal(&e)),
        (_, _, Some(retry_after)) => Err(ApiError::RateLimited { retry_after }),
        _ => Err(ApiError::Unauthenticated(AuthFailure::Login)),
    }
}

/// The key `text` names: a key of ours (a mistyped one, refused by the checksum, names
/// none, with no look-up), the key of a session JWT (when accepted), or a key imported in
/// another format, found by the hash of its text.
fn resolve(state: &AppState, text: &str, accept: Accept) -> Result<Option<KeyAuth>, StoreError> {
    if let Ok(key) = ApiKey::parse(text) {
        return state.index.find(&state.db, &key.hash());
    }
    if key_format::has_key_shape(text) {
        return Ok(None);
    }
    if accept == Accept::KeyOrSession && text.starts_with(key_format::JWT_PREFIX) {
        let Some(session) = state.sessions.check(text) else { return Ok(None) };
        let found = state.db.read_inline(|store| store.find_key_by_id(session.id))?;
        return Ok(found.filter(|record| record.uuid == session.uuid).map(|record| record.auth()));
    }
    if !key_format::may_be_imported(text) {
        return Ok(None);
    }
    state.index.find(&state.db, &KeyHash::of_text(text))
}
