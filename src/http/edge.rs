//! Verification at the edge: `POST /api/v1/keys/verify` answers "is this key good (for this
//! path)?" in the native envelope, and `/auth` answers the same question for gateways
//! (nginx `auth_request`, Traefik `ForwardAuth`, Caddy `forward_auth`) with a bare status.
//! The key being checked is the credential; no caller key is needed.

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
use crate::config::ForwardAuthHeaders;
use crate::domain::grants::{Access, GrantBody, GrantPath, Grants};
use crate::domain::model::{KeyId, Meta};
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::service::credential::{authenticate, Accept};
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
}

/// A grant path, or null.
fn optional_path_schema() -> utoipa::openapi::schema::Object {
    let mut schema = crate::domain::grants::path_schema();
    schema.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    schema
}

/// POST /api/v1/keys/verify — no caller key. 200 with `{valid, code, key_id, key_uuid,
/// application_id, grants, expires_at, owner, meta, enabled}` for every well-formed request, whatever the key;
/// 400 malformed JSON, a missing `key`, or an invalid `path`; 5xx if the store cannot be read
/// (never `valid: true` by default). With `path` or `access`, the key must also hold a grant
/// covering them (access defaults to read, path to `/`). 413; 415. Too many failed checks from
/// one client answer 200 with code `RATE_LIMITED` and `Retry-After`.
#[utoipa::path(
    post,
    path = "/api/v1/keys/verify",
    tag = "verify",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "The verdict, whatever the key", body = NativeOk<Verdict>,
            headers(("Retry-After" = Option<u64>, description = "With code RATE_LIMITED: seconds until the client may retry"))),
        (status = 400, description = "Malformed JSON, missing `key`, invalid `path`", body = NativeError),
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
    let checked = authenticate(&state, Some(&body.key), Accept::Key, &need, || client_address(&state, &req))?;
    let (code, key, retry_after) = (checked.code, checked.key.as_ref(), checked.retry_after);
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
    });
    if let Some(seconds) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    Ok(res)
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
/// slashes), or headers that disagree; 429 too many failed credentials from this client.
/// Empty bodies, except a malformed `?access=`, which is 400 in the native envelope.
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
            )),
        (status = 400, description = "Malformed `?access=` (native error body)", body = NativeError),
        (status = 401, description = "Missing or bad key (empty body)"),
        (status = 403, description = "No grant covers it, the path does not normalise cleanly or is ambiguous, or the gateway's headers disagree (empty body)"),
        (status = 429, description = "Too many failed credentials (empty body)",
            headers(("Retry-After" = u64, description = "Seconds until the client may retry"))),
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
    let checked = authenticate(&state, text, Accept::KeyOrSession, &need, || client_address(&state, &req))?;
    Ok(match (checked.code, checked.key) {
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
        (Code::Forbidden, _) => HttpResponse::Forbidden().finish(),
        (Code::RateLimited, _) => HttpResponse::TooManyRequests()
            .insert_header((RETRY_AFTER, checked.retry_after.unwrap_or(1).to_string()))
            .finish(),
        _ => HttpResponse::Unauthorized().finish(),
    })
}
