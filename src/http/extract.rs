//! Who is calling, and may they do this? Extractors whose type states the privilege a
//! handler needs: [`Caller`] (any usable credential), [`Manager`] (write on `/` in its
//! scope), [`RootManager`] (read_write on `/` and no expiry). Each reads the credential from
//! the headers and hands it to the core (`service::credential`, `service::authority`), which
//! decide; a refusal is rendered in the route's family envelope, chosen by the type
//! parameter.
//!
//! Credentials come from `Authorization: Bearer <key or session JWT>` or
//! `x-user-api-key: <key>`. If both are sent they must agree: two different keys in one
//! request is refused, never guessed.

use std::future::Future;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use crate::error::{ApiError, AuthFailure, Denied, Op};
use crate::http::envelope::{Failure, Family};
use crate::http::request_id::RequestId;
use crate::service::authority::{Actor, Manager as CoreManager};
use crate::service::credential::{authenticate, Accept, Ask, Origin};
use crate::service::limiter::{client_ip, ProxySays};
use crate::service::verdict::{Code, Need};
use crate::service::AppState;

/// The shard-node family's credential header. A `HeaderName` constant: a look-up by `&str`
/// would parse the name again on every request.
pub const USER_API_KEY: HeaderName = HeaderName::from_static("x-user-api-key");
/// Read only when the peer is a trusted proxy.
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Occurs when the credential headers cannot be read as one credential: not UTF-8, a scheme
/// other than Bearer, or two that differ (in one header sent twice, or across the two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// The credential text from the request headers, if any. Every `Authorization` and
/// `x-user-api-key` value must name the same credential: a gateway may append a header the
/// client also sent, and which copy a backend reads differs, so two that differ are refused,
/// never guessed.
pub fn credential(headers: &HeaderMap) -> Result<Option<&str>, Unreadable> {
    let bearers = headers.get_all(AUTHORIZATION).map(|v| {
        let v = v.to_str().map_err(|_| Unreadable)?;
        match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
            _ => Err(Unreadable),
        }
    });
    let keys = headers.get_all(USER_API_KEY).map(|v| v.to_str().map(str::trim).map_err(|_| Unreadable));
    let mut found = None;
    for text in bearers.chain(keys) {
        let text = text?;
        match found {
            Some(seen) if seen != text => return Err(Unreadable),
            _ => found = Some(text),
        }
    }
    Ok(found)
}

/// The client's address, as the failure budget and IP allowlists see it: the peer, or what
/// a trusted proxy says in `X-Forwarded-For` (every copy, as one chain) or `X-Real-IP`.
pub fn client_address(state: &AppState, req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    if state.trusted_proxies.is_empty() {
        return peer;
    }
    let headers = req.headers();
    // A copy that is not text breaks the chain where it stands: nothing left of it is read.
    let forwarded: Vec<&str> = headers.get_all(FORWARDED_FOR).map(|v| v.to_str().unwrap_or("?")).collect();
    let mut real = headers.get_all(REAL_IP);
    let real_ip = match (real.next(), real.next()) {
        (Some(one), None) => one.to_str().ok(),
        _ => None,
    };
    client_ip(peer, ProxySays { forwarded_for: &forwarded, real_ip }, &state.trusted_proxies)
}

/// The app state, which `app()` always registers.
pub fn app_state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal(&"AppState missing from app data"))
}

/// An authenticated caller: its credential names a usable key.
pub struct Caller<F> {
    /// Who acts.
    pub actor: Actor,
    family: PhantomData<F>,
}

impl<F> Caller<F> {
    /// This caller as a manager of keys, if it may be one (`op` names what it asked for).
    pub fn manager(self, op: Op) -> Result<CoreManager, ApiError> {
        self.actor.manager(op)
    }
}

/// A caller that may manage keys: write access to `/` within its scope.
pub struct Manager<F>(pub CoreManager, pub PhantomData<F>);

/// A caller holding a root key: read_write on `/` and no expiry (the shard-node create rule).
pub struct RootManager<F>(pub CoreManager, pub PhantomData<F>);

/// What an extractor's check returns: a future, since a check may wait for the clock's
/// high-water mark to be written (`service::clock`).
type Checking<T, F> = Pin<Box<dyn Future<Output = Result<T, Failure<F>>>>>;

/// Checks the request's credential (any usable key or session).
async fn authenticated(req: HttpRequest) -> Result<Actor, ApiError> {
    authorized(&req, &Need::Usable).await
}

/// Checks the request's credential for `need`: a usable key or session, one of whose grants
/// covers `need` (403 [`Denied::NoGrant`] when none does).
pub async fn authorized(req: &HttpRequest, need: &Need) -> Result<Actor, ApiError> {
    let text = credential(req.headers()).ok().flatten();
    checked(req, text, need).await
}

/// Checks `text` (a key or a session JWT; `None`: nothing usable presented) as the credential
/// of `req`: the check every management call makes, also used by the admin page for the
/// session token its cookie holds.
pub async fn authenticated_by(req: &HttpRequest, text: Option<&str>) -> Result<Actor, ApiError> {
    checked(req, text, &Need::Usable).await
}

/// The one credential check behind every extractor: `text` for `need`, through the core.
async fn checked(req: &HttpRequest, text: Option<&str>, need: &Need) -> Result<Actor, ApiError> {
    let state = app_state(req)?;
    let ask = Ask { credential: text, accept: Accept::KeyOrSession, need, origin: Origin::Client };
    let checked = authenticate(state, ask, || client_address(state, req)).await?;
    match (checked.code, checked.key, checked.retry_after) {
        (Code::Valid, Some(key), _) => {
            let request_id = req.extensions().get::<RequestId>().map(|id| id.as_str().to_owned());
            Ok(Actor::key(&key, request_id))
        }
        (_, _, Some(retry_after)) => Err(ApiError::RateLimited { retry_after }),
        (Code::Forbidden, Some(_), _) => Err(ApiError::Forbidden(Denied::NoGrant)),
        _ => Err(ApiError::Unauthenticated(AuthFailure::Credential)),
    }
}

impl<F: Family + 'static> FromRequest for Caller<F> {
    type Error = Failure<F>;
    type Future = Checking<Self, F>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            authenticated(req).await.map(|actor| Caller { actor, family: PhantomData }).map_err(Failure::from)
        })
    }
}

impl<F: Family + 'static> FromRequest for Manager<F> {
    type Error = Failure<F>;
    type Future = Checking<Self, F>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let manager = authenticated(req).await.and_then(|actor| actor.manager(Op::Manage));
            manager.map(|m| Manager(m, PhantomData)).map_err(Failure::from)
        })
    }
}

impl<F: Family + 'static> FromRequest for RootManager<F> {
    type Error = Failure<F>;
    type Future = Checking<Self, F>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let manager = authenticated(req).await.and_then(Actor::root_manager);
            manager.map(|m| RootManager(m, PhantomData)).map_err(Failure::from)
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

    type Row<'a> = (&'a [(&'a str, &'a str)], Result<Option<&'a str>, Unreadable>);

    #[test]
    fn credential_sources_table() {
        let cases: &[Row<'_>] = &[
            (&[], Ok(None)),
            (&[("authorization", "Bearer abc")], Ok(Some("abc"))),
            (&[("authorization", "bearer abc")], Ok(Some("abc"))),
            (&[("x-user-api-key", "abc")], Ok(Some("abc"))),
            (&[("authorization", "Bearer abc"), ("x-user-api-key", "abc")], Ok(Some("abc"))),
            (&[("authorization", "Bearer abc"), ("x-user-api-key", "xyz")], Err(Unreadable)),
            (&[("authorization", "Basic abc")], Err(Unreadable)),
            (&[("authorization", "abc")], Err(Unreadable)),
            // The same header twice: equal copies are one credential, different ones none.
            (&[("x-user-api-key", "abc"), ("x-user-api-key", "abc")], Ok(Some("abc"))),
            (&[("x-user-api-key", "abc"), ("x-user-api-key", "xyz")], Err(Unreadable)),
            (&[("x-user-api-key", "xyz"), ("x-user-api-key", "abc")], Err(Unreadable)),
            (&[("authorization", "Bearer abc"), ("authorization", "Bearer xyz")], Err(Unreadable)),
            (&[("authorization", "Bearer abc"), ("authorization", "Basic abc")], Err(Unreadable)),
            (&[("authorization", "Bearer abc"), ("x-user-api-key", "abc"), ("x-user-api-key", "xyz")], Err(Unreadable)),
        ];
        for (pairs, expected) in cases {
            let map = headers(pairs);
            let got = credential(&map);
            assert_eq!(&got, expected, "{pairs:?}");
        }
    }
}
