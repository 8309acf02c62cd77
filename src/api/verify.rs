//! Verification at the edge: `POST /api/v1/keys/verify` answers "is this key good (for this
//! path)?" in the native envelope, and `/auth` answers the same question for gateways
//! (nginx `auth_request`, Traefik `ForwardAuth`, Caddy `forward_auth`) with a bare status.
//! The key being checked is the credential; no caller key is needed.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::body::native_ok;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};

use crate::auth::{credential, over_failure_budget};
use crate::error::{ApiError, Failure, Native};
use crate::grants::{Access, GrantBody, GrantPath};
use crate::model::KeyId;
use crate::timestamp::Timestamp;
use crate::verify::{self, Code, Need};
use crate::AppState;

/// Body of POST /api/v1/keys/verify.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    key: String,
    path: Option<String>,
    access: Option<Access>,
}

/// POST /api/v1/keys/verify — no caller key. 200 with `{valid, code, key_id, key_uuid,
/// application_id, grants, expires_at}` for every well-formed request, whatever the key;
/// 400 malformed JSON, a missing `key`, or an invalid `path`; 5xx if the store cannot be read
/// (never `valid: true` by default). With `path` or `access`, the key must also hold a grant
/// covering them (access defaults to read, path to `/`).
pub async fn verify_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<VerifyBody>,
) -> Result<HttpResponse, Failure<Native>> {
    let body = body.into_inner();
    let need = match (&body.path, body.access) {
        (None, None) => None,
        (path, access) => {
            let path = match path {
                Some(p) => GrantPath::parse(p).map_err(|e| ApiError::invalid("path", format!("Invalid path: {e}")))?,
                None => GrantPath::root(),
            };
            Some(Need { path, access: access.unwrap_or(Access::Read) })
        }
    };
    let now = Timestamp::now();
    let found = verify::lookup(&state, &body.key)?;
    let mut code = verify::judge(found.as_ref(), need.as_ref(), now);
    let mut retry_after = None;
    if matches!(code, Code::NotFound | Code::Revoked | Code::Deleted | Code::Expired) {
        retry_after = over_failure_budget(&state, &req);
        if retry_after.is_some() {
            code = Code::RateLimited;
        }
    }
    let key = found.as_ref().filter(|_| !matches!(code, Code::NotFound | Code::RateLimited));
    if let (Code::Valid, Some(k)) = (code, key) {
        state.usage.record(k.id, now);
    }
    let mut res = native_ok(Verdict {
        valid: code == Code::Valid,
        code,
        key_id: key.map(|k| k.id),
        key_uuid: key.map(|k| k.uuid),
        application_id: key.and_then(|k| k.application_uuid),
        grants: key.map(|k| k.grants.to_bodies()),
        expires_at: key.and_then(|k| k.expires_at),
    });
    if let Some(seconds) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    Ok(res)
}

/// The `data` of a verify response.
#[derive(Serialize)]
struct Verdict {
    valid: bool,
    code: Code,
    key_id: Option<KeyId>,
    key_uuid: Option<Uuid>,
    application_id: Option<Uuid>,
    grants: Option<Vec<GrantBody>>,
    expires_at: Option<Timestamp>,
}

/// Query fallbacks of /auth, for gateways that cannot set headers.
#[derive(Deserialize)]
pub struct ForwardQuery {
    path: Option<String>,
    access: Option<Access>,
}

const ORIGINAL_URI: [&str; 2] = ["x-original-uri", "x-forwarded-uri"];
const ORIGINAL_METHOD: [&str; 2] = ["x-original-method", "x-forwarded-method"];

/// /auth, any method — forward-auth for gateways. Key from `x-user-api-key` or
/// `Authorization: Bearer`; path from `X-Original-URI`, `X-Forwarded-Uri` or `?path=`; access
/// from `X-Original-Method` / `X-Forwarded-Method` (GET, HEAD, OPTIONS read, anything else
/// write) or `?access=`, default read. 200 with `X-Key-Id` (and `X-Key-Application`) when a
/// grant covers it; 401 missing or bad key; 403 no grant covers it, or a path that does not
/// normalise cleanly. Empty bodies.
pub async fn forward_auth(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ForwardQuery>,
) -> Result<HttpResponse, Failure<Native>> {
    let header = |names: [&str; 2]| {
        names.iter().find_map(|n| req.headers().get(*n)).map(|v| v.to_str().map(str::to_owned).map_err(|_| ()))
    };
    let refuse = || match over_failure_budget(&state, &req) {
        Some(seconds) => HttpResponse::TooManyRequests().insert_header((RETRY_AFTER, seconds.to_string())).finish(),
        None => HttpResponse::Unauthorized().finish(),
    };
    let Ok(Some(text)) = credential(req.headers()) else { return Ok(refuse()) };
    let now = Timestamp::now();
    let found = verify::resolve(&state, text)?;
    let Some(key) = found.filter(|k| verify::judge(Some(k), None, now) == Code::Valid) else {
        return Ok(refuse());
    };
    let path = match header(ORIGINAL_URI) {
        Some(Ok(uri)) => GrantPath::from_request_uri(&uri),
        Some(Err(())) => return Ok(HttpResponse::Forbidden().finish()),
        // The query extractor has already decoded the value once: parse, never decode again.
        None => query
            .path
            .as_deref()
            .map_or(Ok(GrantPath::root()), |p| GrantPath::parse(p.split(['?', '#']).next().unwrap_or(""))),
    };
    let access = match header(ORIGINAL_METHOD) {
        Some(Ok(method)) => Access::for_method(&method),
        Some(Err(())) => Access::Write,
        None => query.access.unwrap_or(Access::Read),
    };
    let Ok(path) = path else { return Ok(HttpResponse::Forbidden().finish()) };
    if verify::judge(Some(&key), Some(&Need { path, access }), now) != Code::Valid {
        return Ok(HttpResponse::Forbidden().finish());
    }
    state.usage.record(key.id, now);
    let mut res = HttpResponse::Ok();
    res.insert_header(("X-Key-Id", key.id.to_string()));
    if let Some(app) = key.application_uuid {
        res.insert_header(("X-Key-Application", app.to_string()));
    }
    Ok(res.finish())
}
