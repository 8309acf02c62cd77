//! Success bodies shared by the families: how a key's metadata is shown, and the native
//! success envelope. A key's hash never appears here, and its plaintext appears only in the
//! create responses, which also send `Cache-Control: no-store`.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::error::ApiError;
use crate::grants::{GrantBody, Grants};
use crate::manage::validate_title;
use crate::model::{KeyId, KeyRecord, Status};
use crate::request_id;
use crate::timestamp::Timestamp;

/// A key's metadata, as every list and get shows it.
#[derive(Serialize)]
pub struct KeyView {
    id: KeyId,
    uuid: Uuid,
    title: String,
    prefix: String,
    grants: Vec<GrantBody>,
    status: Status,
    expired: bool,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
    deleted_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
    created_by: Option<KeyId>,
}

impl KeyView {
    /// The view of `k` at time `now` (which decides `expired`).
    pub fn new(k: &KeyRecord, now: Timestamp) -> KeyView {
        KeyView {
            id: k.id,
            uuid: k.uuid,
            title: k.title.clone(),
            prefix: k.prefix.clone(),
            grants: k.grants.to_bodies(),
            status: k.status,
            expired: k.is_expired(now),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            deleted_at: k.deleted_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            created_by: k.created_by,
        }
    }
}

/// A key's metadata as the UUID-addressed families (applications, clients) show it: `id` is
/// the UUID, `name` the title.
#[derive(Serialize)]
pub struct UuidKeyView {
    id: Uuid,
    name: String,
    prefix: String,
    grants: Vec<GrantBody>,
    status: Status,
    expired: bool,
    application_id: Option<Uuid>,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
    deleted_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
}

impl UuidKeyView {
    /// The view of `k` at time `now`.
    pub fn new(k: &KeyRecord, now: Timestamp) -> UuidKeyView {
        UuidKeyView {
            id: k.uuid,
            name: k.title.clone(),
            prefix: k.prefix.clone(),
            grants: k.grants.to_bodies(),
            status: k.status,
            expired: k.is_expired(now),
            application_id: k.application_uuid,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            deleted_at: k.deleted_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// Body of the UUID families' key creation (`POST /api/v1/applications/{id}/api-keys`,
/// `POST /api/clients/api-keys`): every field optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    name: Option<serde_json::Value>,
    grants: Option<Vec<GrantBody>>,
    expires_at: Option<String>,
}

impl NewKeyBody {
    /// Validated title (default "api key"), grants and expiry.
    pub fn parse(&self) -> Result<(String, Option<Grants>, Option<Timestamp>), ApiError> {
        let title = match &self.name {
            None => "api key".to_owned(),
            Some(v) => validate_title(Some(v), "name")?,
        };
        let (grants, expires_at) = parse_grants_and_expiry(self.grants.as_deref(), self.expires_at.as_deref())?;
        Ok((title, grants, expires_at))
    }
}

/// Parses optional grants and expiry as every create call takes them.
pub fn parse_grants_and_expiry(
    grants: Option<&[GrantBody]>,
    expires_at: Option<&str>,
) -> Result<(Option<Grants>, Option<Timestamp>), ApiError> {
    let grants = grants
        .map(|g| Grants::from_bodies(g).map_err(|e| ApiError::invalid("grants", format!("Invalid grants: {e}"))))
        .transpose()?;
    let expires_at = expires_at
        .map(|s| {
            Timestamp::parse_rfc3339(s).map_err(|e| ApiError::invalid("expires_at", format!("Invalid expires_at: {e}")))
        })
        .transpose()?;
    Ok((grants, expires_at))
}

/// `?limit=&cursor=` of every list call.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// Validated page size (1..=200, default 50) and cursor (a key id).
    pub fn parse(&self) -> Result<(u32, Option<KeyId>), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(ApiError::invalid("limit", format!("limit must be between 1 and {MAX_PAGE_SIZE}")));
        }
        let cursor = self
            .cursor
            .as_deref()
            .map(|c| KeyId::parse(c).ok_or_else(|| ApiError::invalid("cursor", "Invalid cursor")))
            .transpose()?;
        Ok((limit, cursor))
    }
}

/// Cuts a page fetched with `limit + 1` rows to `limit`, with the cursor for the next page.
pub fn paginate(mut rows: Vec<KeyRecord>, limit: u32) -> (Vec<KeyRecord>, Option<String>) {
    let limit = limit as usize;
    let next = if rows.len() > limit { rows.get(limit - 1).map(|k| k.id.to_string()) } else { None };
    rows.truncate(limit);
    (rows, next)
}

/// The native success envelope, serialised straight from typed data (no intermediate
/// `serde_json::Value`, which costs measurable time on the verify hot path).
#[derive(Serialize)]
struct NativeOk<T> {
    success: bool,
    data: T,
    request_id: String,
}

/// `{"success": true, "data": ..., "request_id": ...}` with status 200.
pub fn native_ok(data: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(NativeOk { success: true, data, request_id: request_id::current() })
}

/// Marks a response that carries a plaintext key as never to be cached.
pub fn no_store(mut res: HttpResponse) -> HttpResponse {
    let value = CacheControl(vec![CacheDirective::NoStore]);
    if let Ok(v) = actix_web::http::header::TryIntoHeaderValue::try_into_value(value) {
        res.headers_mut().insert(actix_web::http::header::CACHE_CONTROL, v);
    }
    res
}
