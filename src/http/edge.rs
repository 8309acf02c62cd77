//! Verification at the edge: `POST /api/v1/keys/verify` answers "is this key good (for this
//! path)?" in the native envelope, and `/auth` answers the same question for gateways
//! (nginx `auth_request`, Traefik `ForwardAuth`, Caddy `forward_auth`) with a bare status.
//! The key being checked is the credential; no caller key is needed.

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::bodies::{native_ok, NativeOk};
use super::envelope::schema::NativeError;
use super::envelope::{Failure, Native};
use super::extract::{client_address, credential};
use crate::config::{ForwardAuthHeaders, MAX_VERIFY_COST};
use crate::domain::grants::{Access, GrantBody, GrantPath, Grants};
use crate::domain::model::{KeyId, Meta};
use crate::domain::timestamp::Timestamp;
use crate::domain::whole::optional_whole;
use crate::error::ApiError;
use crate::service::credential::{verify, Accept, Ask, Checked, Origin};
use crate::service::metrics::Endpoint;
use crate::service::verdict::{Code, Need};
use crate::service::AppState;

/// Body of POST /api/v1/keys/verify.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The key to check (any text: a malformed key answers `NOT_FOUND`).
    key: String,
    /// Path the key must cover; default `/` when only `access` is given.
    #[schema(schema_with = optional_path_schema)]
    path: Option<String>,
    /// Access the key must hold on `path`; default read when only `path` is given.
    access: Option<Access>,
    /// Credits this use costs, 0 to 1,000 (default 1); 0 checks that some are left.
    #[schema(schema_with = cost_schema)]
    #[serde(default, deserialize_with = "optional_whole")]
    cost: Option<u64>,
    /// The address the key is being used from (IPv4 or IPv6): a key with an IP allowlist is
    /// refused without it.
    #[schema(schema_with = super::bodies::ip_schema)]
    ip: Option<String>,
}

fn cost_schema() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(MAX_VERIFY_COST))
        .build()
}

/// A grant path, or null.
fn optional_path_schema() -> utoipa::openapi::schema::Object {
    let mut schema = crate::domain::grants::path_schema();
    schema.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    schema
}

/// POST /api/v1/keys/verify — no caller key. 200 with `{valid, code, key_id, key_uuid,
/// application_id, grants, expires_at, owner, meta, enabled, rate_limit, credits}` for every
/// well-formed request, whatever the key; 400 malformed JSON, a missing `key`, an invalid
/// `path` or `ip`, a `cost` out of range; 5xx if the store cannot be read (never `valid: true`
/// by default). With `path` or `access`, the key must also hold a grant covering them (access
/// defaults to read, path to `/`). A key with limits is checked in this order: unknown →
/// revoked/deleted → disabled → expired → `ip` in its allowlist (`IP_NOT_ALLOWED`; no `ip`
/// is refused) → grant (`FORBIDDEN`) → rate limit (`RATE_LIMITED`) → `cost` credits
/// (`USAGE_EXCEEDED`); a refusal spends neither. 413; 415. Too many failed checks from one
/// client answer 200 with code `RATE_LIMITED`, no key, and `Retry-After`.
#[utoipa::path(
    post,
    path = "/api/v1/keys/verify",
    tag = "verify",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "The verdict, whatever the key", body = NativeOk<Verdict>,
            headers(
                ("Retry-After" = Option<u64>, description = "With code RATE_LIMITED, or USAGE_EXCEEDED for credits that refill: seconds until a retry may succeed"),
                ("RateLimit-Limit" = Option<u64>, description = "For a key with a rate limit: verdicts allowed per window"),
                ("RateLimit-Remaining" = Option<u64>, description = "For a key with a rate limit: left in the current window"),
                ("RateLimit-Reset" = Option<u64>, description = "For a key with a rate limit: seconds until one more is allowed"),
            )),
        (status = 400, description = "Malformed JSON, missing `key`, invalid `path` or `ip`, `cost` out of range", body = NativeError),
        (status = 500, description = "The store could not be read (never `valid: true`)", body = NativeError),
    )
)]
pub async fn verify_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<VerifyBody>,
) -> Result<HttpResponse, Failure<Native>> {
    let body = body.into_inner();
    let need = match (&body.path, body.access) {
        (None, None) => Need::Usable,
        (path, access) => {
            let path = match path {
                Some(p) => GrantPath::parse(p).map_err(|e| ApiError::invalid("path", format!("Invalid path: {e}")))?,
                None => GrantPath::root(),
            };
            Need::On { path, access: access.unwrap_or(Access::Read) }
        }
    };
    let cost = body.cost.unwrap_or(1);
    if cost > MAX_VERIFY_COST {
        return Err(ApiError::invalid("cost", format!("cost must be between 0 and {MAX_VERIFY_COST}")).into());
    }
    let ip = body
        .ip
        .as_deref()
        .map(|ip| {
            ip.trim().parse::<IpAddr>().map_err(|_| ApiError::invalid("ip", "ip must be an IPv4 or IPv6 address"))
        })
        .transpose()?;
    let ask = Ask { credential: Some(&body.key), accept: Accept::Key, need: &need, origin: Origin::Stated(ip) };
    let checked = verify(&state, ask, cost, || client_address(&state, &req)).await?;
    state.metrics.verdict(Endpoint::Verify, checked.code);
    let (code, key) = (checked.code, checked.key.as_ref());
    let mut res = native_ok(Verdict {
        valid: code == Code::Valid,
        code,
        key_id: key.map(|k| k.id),
        key_uuid: key.map(|k| k.uuid),
        application_id: key.and_then(|k| k.application_uuid),
        grants: key.map(|k| &*k.grants),
        expires_at: key.and_then(|k| k.expires_at),
        owner: key.and_then(|k| k.owner()),
        meta: key.and_then(|k| k.meta()),
        enabled: key.map(|k| k.enabled),
        rate_limit: checked.rate.map(|r| RateView {
            limit: r.limit,
            remaining: r.remaining,
            reset_at: checked.at.plus_millis(i64::try_from(r.reset_ms).unwrap_or(i64::MAX)),
        }),
        credits: checked.credits.map(|c| CreditsView { remaining: c.remaining }),
    });
    limit_headers(res.headers_mut(), &checked);
    Ok(res)
}

/// `rate_limit` in a verify answer.
#[derive(Serialize, ToSchema)]
pub struct RateView {
    /// Verdicts allowed per window.
    limit: u64,
    /// Left in the current window.
    remaining: u64,
    /// When one more is allowed again (the oldest counted part of the window leaves).
    reset_at: Timestamp,
}

/// `credits` in a verify answer.
#[derive(Serialize, ToSchema)]
pub struct CreditsView {
    /// Credits left after this verdict.
    remaining: u64,
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// `Retry-After`, and for a key with a rate limit the IETF `RateLimit-Limit`,
/// `RateLimit-Remaining` and `RateLimit-Reset` (seconds) fields: one writer for verify's
/// answers and /auth's.
fn limit_headers(headers: &mut HeaderMap, checked: &Checked) {
    let mut put = |name: HeaderName, n: u64| headers.insert(name, HeaderValue::from(n));
    if let Some(seconds) = checked.retry_after {
        put(RETRY_AFTER, seconds);
    }
    if let Some(rate) = checked.rate {
        put(RATELIMIT_LIMIT, rate.limit);
        put(RATELIMIT_REMAINING, rate.remaining);
        put(RATELIMIT_RESET, rate.reset_ms.div_ceil(1000));
    }
}

/// The `data` of a verify response. The key's fields are null when `code` is `NOT_FOUND` or
/// `RATE_LIMITED`. Borrows the key's grants: the answer is written once, straight from the
/// index entry.
#[derive(Serialize, ToSchema)]
pub struct Verdict<'a> {
    /// True exactly when `code` is `VALID`.
    valid: bool,
    /// Why.
    #[schema(schema_with = code_schema)]
    code: Code,
    key_id: Option<KeyId>,
    key_uuid: Option<Uuid>,
    application_id: Option<Uuid>,
    #[schema(value_type = Option<Vec<GrantBody>>)]
    grants: Option<&'a Grants>,
    expires_at: Option<Timestamp>,
    /// Who the key belongs to, if set: what a gateway passes on as the caller's identity.
    owner: Option<&'a str>,
    /// The key's metadata, exactly as given, if set.
    #[schema(value_type = Option<Object>)]
    meta: Option<&'a Meta>,
    /// False while the key is disabled.
    enabled: Option<bool>,
    /// The key's rate window, when it has a rate limit and the verdict got that far.
    rate_limit: Option<RateView>,
    /// The key's credits, when it has credits and the verdict got that far.
    credits: Option<CreditsView>,
}

/// Every [`Code`], as the document lists them.
fn code_schema() -> utoipa::openapi::schema::Object {
    let names = Code::ALL.iter().filter_map(|c| serde_json::to_value(c).ok());
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names)).build()
}

/// Query fallbacks of /auth, for gateways that cannot set headers.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForwardQuery {
    /// Path asked about when no `X-Original-URI` / `X-Forwarded-Uri` is sent; default `/`.
    /// One that does not normalise cleanly is 403.
    path: Option<String>,
    /// Access asked about when no `X-Original-Method` / `X-Forwarded-Method` is sent; default read.
    access: Option<Access>,
}

// Header names as constants: looking a header up by `&str` parses the name on every call.
const ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
/// The key's owner, on a 200 from `/auth`.
const X_KEY_OWNER: HeaderName = HeaderName::from_static("x-key-owner");

/// What the gateway says of one fact (the request's URI, or its method).
#[derive(Debug, PartialEq, Eq)]
enum Told {
    /// Nothing: fall back to the query.
    Nothing,
    /// This value.
    Value(String),
    /// Something that cannot be believed: not text, or copies that disagree.
    Unbelievable,
}

/// What the headers `names` say, every copy of each: all copies of all of them must agree.
fn told(headers: &HeaderMap, names: &[&HeaderName]) -> Told {
    let mut found: Option<&str> = None;
    for value in names.iter().flat_map(|n| headers.get_all(*n)) {
        let Ok(text) = value.to_str() else { return Told::Unbelievable };
        match found {
            Some(seen) if seen != text => return Told::Unbelievable,
            _ => found = Some(text),
        }
    }
    found.map_or(Told::Nothing, |t| Told::Value(t.to_owned()))
}

/// The request's URI and method as the configured gateway reports them.
fn reported(headers: &HeaderMap, mode: ForwardAuthHeaders) -> (Told, Told) {
    match mode {
        ForwardAuthHeaders::Original => (told(headers, &[&ORIGINAL_URI]), told(headers, &[&ORIGINAL_METHOD])),
        ForwardAuthHeaders::Forwarded => (told(headers, &[&FORWARDED_URI]), told(headers, &[&FORWARDED_METHOD])),
        ForwardAuthHeaders::Auto => {
            (told(headers, &[&ORIGINAL_URI, &FORWARDED_URI]), told(headers, &[&ORIGINAL_METHOD, &FORWARDED_METHOD]))
        }
    }
}

/// /auth, any method — forward-auth for gateways. Key from `x-user-api-key` or
/// `Authorization: Bearer`; path from `X-Original-URI` (nginx) or `X-Forwarded-Uri`
/// (Traefik, Caddy), else `?path=`; access from `X-Original-Method` / `X-Forwarded-Method`
/// (GET, HEAD, OPTIONS read, anything else write), else `?access=`, default read. Which pair
/// is believed is `--forward-auth-headers` (`original`, `forwarded`, or `auto`: either, and
/// both present and disagreeing is 403). 200 with `X-Key-Id` (and `X-Key-Application`) when
/// a grant covers it; 401 missing or bad key; 403 no grant covers it, a path that does not
/// normalise cleanly or that backends may read differently (`;`, `#`, look-alike dots and
/// slashes), headers that disagree, or a client address outside the key's IP allowlist (the
/// peer's, or a `--trusted-proxy`'s `X-Forwarded-For` / `X-Real-IP`); 429 the key is over its
/// rate limit or out of credits (each accepted request spends 1), or too many failed
/// credentials from this client, with `Retry-After`. A key with a rate limit has its
/// `RateLimit-*` headers on 200 and 429. Empty bodies, except a malformed `?access=`, which
/// is 400 in the native envelope.
#[utoipa::path(
    method(get, post, put, patch, delete, head, options),
    path = "/auth",
    tag = "verify",
    params(
        ForwardQuery,
        ("X-Original-URI" = Option<String>, Header, description = "The request's URI (nginx `$request_uri`); wins over `?path=`; believed unless `--forward-auth-headers forwarded`"),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "The request's URI (Traefik, Caddy); believed unless `--forward-auth-headers original`"),
        ("X-Original-Method" = Option<String>, Header, description = "The request's method: GET, HEAD, OPTIONS read; anything else writes"),
        ("X-Forwarded-Method" = Option<String>, Header, description = "The request's method (Traefik, Caddy)"),
    ),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A grant covers the path and access",
            headers(
                ("X-Key-Id" = i64, description = "The key's numeric id"),
                ("X-Key-Application" = Option<Uuid>, description = "The key's application, if any"),
                ("X-Key-Owner" = Option<String>, description = "The key's owner, when set"),
                ("RateLimit-Limit" = Option<u64>, description = "For a key with a rate limit: requests allowed per window"),
                ("RateLimit-Remaining" = Option<u64>, description = "For a key with a rate limit: left in the current window"),
                ("RateLimit-Reset" = Option<u64>, description = "For a key with a rate limit: seconds until one more is allowed"),
            )),
        (status = 400, description = "Malformed `?access=` (native error body)", body = NativeError),
        (status = 401, description = "Missing or bad key (empty body)"),
        (status = 403, description = "No grant covers it, the path does not normalise cleanly or is ambiguous, the gateway's headers disagree, or the client is outside the key's IP allowlist (empty body)"),
        (status = 429, description = "The key is over its rate limit or out of credits, or too many failed credentials (empty body)",
            headers(
                ("Retry-After" = Option<u64>, description = "Seconds until a retry may succeed (absent for credits that never refill)"),
                ("RateLimit-Limit" = Option<u64>, description = "For a key with a rate limit"),
                ("RateLimit-Remaining" = Option<u64>, description = "For a key with a rate limit"),
                ("RateLimit-Reset" = Option<u64>, description = "For a key with a rate limit"),
            )),
    )
)]
pub async fn forward_auth(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ForwardQuery>,
) -> Result<HttpResponse, Failure<Native>> {
    let (uri, method) = reported(req.headers(), state.forward_auth_headers);
    let path = match uri {
        Told::Value(uri) => GrantPath::from_request_uri(&uri).map_err(drop),
        Told::Unbelievable => Err(()),
        // The query extractor has already decoded the value once: parse, never decode again.
        Told::Nothing => query.path.as_deref().map_or(Ok(GrantPath::root()), |p| {
            GrantPath::from_request_path(p.split('?').next().unwrap_or("")).map_err(drop)
        }),
    };
    let access = match method {
        Told::Value(method) => Ok(Access::for_method(&method)),
        Told::Unbelievable => Err(()),
        Told::Nothing => Ok(query.access.unwrap_or(Access::Read)),
    };
    // A path that does not normalise cleanly is a need no grant covers: 403 for a good key.
    // So are headers that cannot be believed: not text, or copies that disagree.
    let need = match (path, access) {
        (Ok(path), Ok(access)) => Need::On { path, access },
        _ => Need::Unmatchable,
    };
    let text = credential(req.headers()).ok().flatten();
    let ask = Ask { credential: text, accept: Accept::KeyOrSession, need: &need, origin: Origin::Client };
    let checked = verify(&state, ask, 1, || client_address(&state, &req)).await?;
    state.metrics.verdict(Endpoint::ForwardAuth, checked.code);
    let mut res = match (checked.code, &checked.key) {
        (Code::Valid, Some(key)) => {
            let mut res = HttpResponse::Ok();
            res.insert_header(("X-Key-Id", key.id.to_string()));
            if let Some(app) = key.application_uuid {
                res.insert_header(("X-Key-Application", app.to_string()));
            }
            // An owner that is not a valid header value (non-visible bytes) is left out
            // rather than mangled: the application still gets X-Key-Id.
            if let Some(owner) = key.owner().and_then(|o| HeaderValue::from_str(o).ok()) {
                res.insert_header((X_KEY_OWNER, owner));
            }
            res.finish()
        }
        (Code::Forbidden | Code::IpNotAllowed, _) => HttpResponse::Forbidden().finish(),
        (Code::RateLimited | Code::UsageExceeded, _) => HttpResponse::TooManyRequests().finish(),
        _ => HttpResponse::Unauthorized().finish(),
    };
    limit_headers(res.headers_mut(), &checked);
    Ok(res)
}
