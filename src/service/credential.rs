//! Checking a credential: look-up, verdict, `last_used`, failed-authentication budget. The
//! one path every family's authentication, `POST /api/v1/keys/verify`, forward-auth and
//! both login calls take, so they agree on what counts as a failure (`Code::is_failure`):
//! an unknown, malformed, revoked, deleted or expired credential (or none at all), or one
//! used from outside its IP allowlist, spends the client's budget; a good key asking about
//! a path it has no grant for spends nothing. The edge checks (`verify`) also spend the key's
//! own rate limit and credits (`service::quota`); management calls and logins do not.
//!
//! How keys are found: each check parses the key (the checksum refuses garbage with no I/O),
//! hashes it, and asks the in-memory index (`index`), which answers from a hash map after
//! one 48-byte `pread` proves nothing was committed since its last refresh. A session JWT is
//! checked by signature, then its key is read by id on every use, so a token dies with its
//! key. Nothing here writes: `last_used_at` goes to `usage`, which writes in batches; the one
//! exception is the clock's high-water mark, written before an expiry is first reported as
//! passed beyond it (`service::clock`), so that no restart can revive what was refused.

use std::net::IpAddr;

use crate::domain::key_format::{self, ApiKey, KeyHash};
use crate::domain::model::KeyAuth;
use crate::domain::timestamp::Timestamp;
use crate::error::{ApiError, AuthFailure};
use crate::service::quota::{CreditState, RateState};
use crate::service::sessions::SessionCheck;
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

/// Where a key is being used from, for its IP allowlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// From the client of this request (the peer, or what a trusted proxy says).
    Client,
    /// From the address the caller states (verify's `ip`; `None`: not stated).
    Stated(Option<IpAddr>),
}

/// What is asked of a credential.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// The text presented, `None` when nothing usable was presented.
    pub credential: Option<&'a str>,
    /// Which credentials are accepted.
    pub accept: Accept,
    /// What the key must be good for.
    pub need: &'a Need,
    /// Where it is used from.
    pub origin: Origin,
}

/// The outcome of a check.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The verdict; `RateLimited` when the check failed and the client is over its budget,
    /// or the key is over its rate limit.
    pub code: Code,
    /// The key, unless it was not found or the client is over its failure budget.
    pub key: Option<KeyAuth>,
    /// With `RateLimited` and `UsageExceeded` (when the credits refill): seconds until a
    /// retry may succeed.
    pub retry_after: Option<u64>,
    /// The key's rate window, if it has a rate limit and the verdict got that far.
    pub rate: Option<RateState>,
    /// The key's credits, if it has credits and the verdict got that far.
    pub credits: Option<CreditState>,
    /// The instant the verdict holds for.
    pub at: Timestamp,
}

impl Checked {
    fn new(code: Code, key: Option<KeyAuth>, at: Timestamp) -> Checked {
        Checked { code, key, retry_after: None, rate: None, credits: None, at }
    }
}

/// Checks a credential for a call that spends nothing of the key's limits (management calls,
/// login, sessions): the verdict up to the grant, its IP allowlist included. A usable key has
/// its use recorded; a failure spends the budget of the client `client` names (computed only
/// when needed). Errors only when the store cannot be read: never a `Valid` by default.
pub async fn authenticate(
    state: &AppState,
    ask: Ask<'_>,
    client: impl Fn() -> Option<IpAddr>,
) -> Result<Checked, StoreError> {
    let checked = judged(state, ask, &client).await?;
    Ok(settle(state, checked, &client))
}

/// Checks a credential at the edge (`POST /api/v1/keys/verify`, `/auth`): the verdict, then,
/// for a key it accepts, a slot of its rate limit and `cost` of its credits, in that order. A
/// verdict refused by the credits gives its rate slot back: nothing refused spends anything.
pub async fn verify(
    state: &AppState,
    ask: Ask<'_>,
    cost: u64,
    client: impl Fn() -> Option<IpAddr>,
) -> Result<Checked, ApiError> {
    let mut checked = judged(state, ask, &client).await?;
    // The admin page's chart: one relaxed atomic add per verification.
    state.verify_rate.record(checked.at);
    if checked.code == Code::Valid {
        meter(state, &mut checked, cost).await?;
    }
    Ok(settle(state, checked, &client))
}

/// The verdict up to the grant: the one place every family, verify, forward-auth and login
/// judge a credential, so also the one place an expiry judged passed is made durable first.
async fn judged(state: &AppState, ask: Ask<'_>, client: &impl Fn() -> Option<IpAddr>) -> Result<Checked, StoreError> {
    let at = Timestamp::now();
    let (found, session_expired) = match ask.credential {
        Some(text) => resolve(state, text, ask.accept, at)?,
        None => (None, None),
    };
    // The address matters only to a key with an allowlist: worked out only for one.
    let listed = found.as_ref().and_then(KeyAuth::limits).is_some_and(|l| l.allowed_ips.is_some());
    let ip = match ask.origin {
        _ if !listed => None,
        Origin::Client => client(),
        Origin::Stated(ip) => ip,
    };
    let code = judge(found.as_ref(), ask.need, ip, at);
    // An expiry reported as passed must stay passed across a restart (service::clock).
    let key_expired = if code == Code::Expired { found.as_ref().and_then(|k| k.expires_at) } else { None };
    if let Some(passed) = key_expired.max(session_expired) {
        state.clock.cover(&state.db, passed, at).await;
    }
    Ok(Checked::new(code, found, at))
}

/// Rate limit, then credits, for an accepted key.
async fn meter(state: &AppState, checked: &mut Checked, cost: u64) -> Result<(), ApiError> {
    let Some(key) = checked.key.as_ref() else { return Ok(()) };
    let Some(limits) = key.limits() else { return Ok(()) };
    let (id, credits) = (key.id, limits.credits);
    let now_ms = state.quota.now_ms();
    if let Some(rate_limit) = limits.rate_limit {
        match state.quota.take_rate(id, rate_limit, now_ms) {
            Ok(rate) => checked.rate = Some(rate),
            Err(rate) => {
                checked.rate = Some(rate);
                checked.code = Code::RateLimited;
                checked.retry_after = Some(rate.reset_ms.div_ceil(1000).max(1));
                return Ok(());
            }
        }
    }
    if let Some(policy) = credits {
        match state.quota.spend_credits(&state.db, id, policy, cost, checked.at).await? {
            Ok(spent) => checked.credits = Some(spent),
            Err(short) => {
                if checked.rate.is_some() {
                    state.quota.give_back_rate(id, now_ms);
                    checked.rate = checked.rate.map(|r| RateState { remaining: r.remaining + 1, ..r });
                }
                checked.credits = Some(short);
                checked.code = Code::UsageExceeded;
                checked.retry_after = short
                    .refills_at
                    .map(|at| u64::try_from(at.millis() - checked.at.millis()).unwrap_or(0).div_ceil(1000).max(1));
            }
        }
    }
    Ok(())
}

/// Records the use of an accepted key, or spends the client's failure budget.
fn settle(state: &AppState, mut checked: Checked, client: &impl Fn() -> Option<IpAddr>) -> Checked {
    if checked.code == Code::Valid {
        if let Some(key) = &checked.key {
            state.usage.record(key.id, checked.at);
        }
    }
    if checked.code.is_failure() {
        if let Some(retry_after) = client().and_then(|ip| state.limiter.record_failure(ip).err()) {
            state.metrics.denial();
            checked = Checked { retry_after: Some(retry_after), ..Checked::new(Code::RateLimited, None, checked.at) };
        }
    }
    checked
}

/// Exchanges a key for a session JWT and its advertised expiry. 401 for anything but a
/// usable key (used from its allowlist); 429 once the client is over its failure budget.
pub async fn login(
    state: &AppState,
    api_key: &str,
    client: impl Fn() -> Option<IpAddr>,
) -> Result<(String, Timestamp), ApiError> {
    let ask = Ask { credential: Some(api_key), accept: Accept::Key, need: &Need::Usable, origin: Origin::Client };
    let checked = authenticate(state, ask, client).await?;
    match (checked.code, checked.key, checked.retry_after) {
        (Code::Valid, Some(key), _) => state.sessions.issue(&key, checked.at).map_err(|e| ApiError::internal(&e)),
        (_, _, Some(retry_after)) => Err(ApiError::RateLimited { retry_after }),
        _ => Err(ApiError::Unauthenticated(AuthFailure::Login)),
    }
}

/// The key `text` names at `now`: a key of ours (a mistyped one, refused by the checksum,
/// names none, with no look-up), the key of a session JWT (when accepted), or a key imported
/// in another format, found by the hash of its text; and when `text` is a session whose
/// expiry has passed, that expiry.
fn resolve(
    state: &AppState,
    text: &str,
    accept: Accept,
    now: Timestamp,
) -> Result<(Option<KeyAuth>, Option<Timestamp>), StoreError> {
    if let Ok(key) = ApiKey::parse(text) {
        return Ok((state.index.find(&state.db, &key.hash())?, None));
    }
    if key_format::has_key_shape(text) {
        return Ok((None, None));
    }
    if accept == Accept::KeyOrSession && text.starts_with(key_format::JWT_PREFIX) {
        let session = match state.sessions.judge_at(text, now) {
            SessionCheck::Valid(session) => session,
            SessionCheck::Expired(at) => return Ok((None, Some(at))),
            SessionCheck::Invalid => return Ok((None, None)),
        };
        let found = state.db.read_inline(|store| store.find_key_by_id(session.id))?;
        return Ok((found.filter(|record| record.uuid == session.uuid).map(|record| record.auth()), None));
    }
    if !key_format::may_be_imported(text) {
        return Ok((None, None));
    }
    Ok((state.index.find(&state.db, &KeyHash::of_text(text))?, None))
}
