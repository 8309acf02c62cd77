//! Who is calling, and may they do this? Extractors whose type states the privilege a
//! handler needs: [`Caller`] (any usable key), [`Manager`] (write on `/` in its scope),
//! [`RootCaller`] (read_write on `/` and no expiry). A failed check is rendered in the
//! route's family envelope, chosen by the type parameter.
//!
//! Credentials come from `Authorization: Bearer <key or session JWT>` or
//! `x-user-api-key: <key>`. If both
//! are sent they must agree: two different keys in one request is refused, never guessed.
//! The checksum is checked before any database work, so garbage costs no look-up.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use crate::error::{ApiError, Failure, Family};
use crate::limit::client_ip;
use crate::model::KeyAuth;
use crate::request_id::RequestId;
use crate::store::audit::AuditContext;
use crate::timestamp::Timestamp;
use crate::{verify, AppState};

/// The shard-node family's credential header. A `HeaderName` constant: a look-up by `&str`
/// would parse the name again on every request.
pub const USER_API_KEY: HeaderName = HeaderName::from_static("x-user-api-key");
/// The one 401 message for a failed credential: which check failed is never said.
pub const UNAUTHORIZED: &str = "API key required or invalid API key";

/// An authenticated caller: its key is active and not expired.
pub struct Caller<F> {
    /// The caller's key.
    pub key: KeyAuth,
    /// The request's id, for audit rows.
    pub request_id: Option<String>,
    family: PhantomData<F>,
}

impl<F> Caller<F> {
    /// The audit context for a change this caller makes now.
    pub fn audit(&self) -> AuditContext {
        AuditContext { actor: Some(self.key.id), request_id: self.request_id.clone(), at: Timestamp::now() }
    }
}

/// A caller that may manage keys: write access to `/` within its scope.
pub struct Manager<F>(pub Caller<F>);

/// A caller holding a root key: read_write on `/` and no expiry (the shard-node create rule).
pub struct RootCaller<F>(pub Caller<F>);

/// The credential text from the request headers, if any.
pub(crate) fn credential(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let bearer = match headers.get(AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| ApiError::Unauthorized(UNAUTHORIZED))?;
            match v.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
                _ => return Err(ApiError::Unauthorized(UNAUTHORIZED)),
            }
        }
    };
    let header_key = match headers.get(USER_API_KEY) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| ApiError::Unauthorized(UNAUTHORIZED))?.trim()),
    };
    match (bearer, header_key) {
        (Some(a), Some(b)) if a != b => Err(ApiError::Unauthorized(UNAUTHORIZED)),
        (a, b) => Ok(a.or(b)),
    }
}

/// Records a failed credential from this request's client. `Some(seconds)` when the client
/// is over its failure budget and must be answered as rate limited (see `limit`).
pub(crate) fn over_failure_budget(state: &AppState, req: &HttpRequest) -> Option<u64> {
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let ip = client_ip(req.peer_addr().map(|a| a.ip()), forwarded, &state.trusted_proxies)?;
    state.limiter.record_failure(ip).err()
}

/// Checks the request's credential; a failure spends the client's failure budget.
async fn authenticate(req: &HttpRequest) -> Result<KeyAuth, ApiError> {
    let state =
        req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal(&"AppState missing from app data"))?;
    check_credential(state, req).map_err(|e| match e {
        ApiError::Unauthorized(_) => match over_failure_budget(state, req) {
            Some(retry_after) => ApiError::RateLimited { retry_after },
            None => e,
        },
        other => other,
    })
}

/// Checks the request's key or JWT: checksum first, then the index (see `verify`).
fn check_credential(state: &AppState, req: &HttpRequest) -> Result<KeyAuth, ApiError> {
    let text = credential(req.headers())?.ok_or(ApiError::Unauthorized(UNAUTHORIZED))?;
    let now = Timestamp::now();
    let found = verify::resolve(state, text)?;
    match verify::judge(found.as_ref(), None, now) {
        verify::Code::Valid => {
            let record = found.ok_or_else(|| ApiError::internal(&"valid without a record"))?;
            state.usage.record(record.id, now);
            Ok(record)
        }
        _ => Err(ApiError::Unauthorized(UNAUTHORIZED)),
    }
}

type Extracted<T, F> = Pin<Box<dyn Future<Output = Result<T, Failure<F>>>>>;

impl<F: Family> FromRequest for Caller<F> {
    type Error = Failure<F>;
    type Future = Extracted<Self, F>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let key = authenticate(&req).await?;
            let request_id = req.extensions().get::<RequestId>().map(|id| id.as_str().to_owned());
            Ok(Caller { key, request_id, family: PhantomData })
        })
    }
}

impl<F: Family> FromRequest for Manager<F> {
    type Error = Failure<F>;
    type Future = Extracted<Self, F>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::<F>::from_request(req, payload);
        Box::pin(async move {
            let caller = caller.await?;
            if !caller.key.grants.can_manage() {
                return Err(ApiError::Forbidden("Managing API keys requires write access to /").into());
            }
            Ok(Manager(caller))
        })
    }
}

impl<F: Family> FromRequest for RootCaller<F> {
    type Error = Failure<F>;
    type Future = Extracted<Self, F>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::<F>::from_request(req, payload);
        Box::pin(async move {
            let caller = caller.await?;
            if !caller.key.grants.is_root() || caller.key.expires_at.is_some() {
                return Err(ApiError::Forbidden("This call requires a root key (read_write on /, no expiry)").into());
            }
            Ok(RootCaller(caller))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    type Row<'a> = (&'a [(&'a str, &'a str)], Result<Option<&'a str>, ()>);

    #[test]
    fn credential_sources_table() {
        let cases: &[Row<'_>] = &[
            (&[], Ok(None)),
            (&[("authorization", "Bearer abc")], Ok(Some("abc"))),
            (&[("authorization", "bearer abc")], Ok(Some("abc"))),
            (&[("x-user-api-key", "abc")], Ok(Some("abc"))),
            (&[("authorization", "Bearer abc"), ("x-user-api-key", "abc")], Ok(Some("abc"))),
            (&[("authorization", "Bearer abc"), ("x-user-api-key", "xyz")], Err(())),
            (&[("authorization", "Basic abc")], Err(())),
            (&[("authorization", "abc")], Err(())),
        ];
        for (pairs, expected) in cases {
            let map = headers(pairs);
            let got = credential(&map).map_err(|_| ());
            assert_eq!(&got, expected, "{pairs:?}");
        }
    }
}
