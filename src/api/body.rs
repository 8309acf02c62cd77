//! Success bodies shared by the families: how a key's metadata is shown, and the native
//! success envelope. A key's hash never appears here, and its plaintext appears only in the
//! create responses, which also send `Cache-Control: no-store`.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::config::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_TITLE_CHARS};
use crate::error::ApiError;
use crate::grants::{GrantBody, Grants};
use crate::manage::validate_title;
use crate::model::{KeyId, KeyRecord, Status};
use crate::request_id;
use crate::timestamp::Timestamp;

/// A key's metadata, as every list and get shows it.
#[derive(Serialize, ToSchema)]
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
#[derive(Serialize, ToSchema)]
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
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// The key's label; default `api key`.
    #[schema(schema_with = optional_title_schema)]
    name: Option<serde_json::Value>,
    /// Within the caller's grants; default the caller's grants.
    #[schema(min_items = 1, max_items = 32)]
    grants: Option<Vec<GrantBody>>,
    /// RFC 3339, in the future and not after the caller's own expiry; default the caller's.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
}

/// The keys of one page of a UUID family's list, and the cursor for the next.
#[derive(Serialize, ToSchema)]
pub struct UuidKeyPage {
    /// Newest first.
    pub api_keys: Vec<UuidKeyView>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A key just made by a UUID family: its metadata and, this once, its plaintext.
#[derive(Serialize, ToSchema)]
pub struct NewUuidKey {
    /// The metadata.
    #[serde(flatten)]
    pub view: UuidKeyView,
    /// The plaintext key. Shown only here.
    pub api_key: String,
}

/// What `validate_title` accepts: 1 to 200 characters, no control characters, not blank.
/// (The length counts the trimmed text; the document's `maxLength` counts it all.)
pub fn title_schema() -> utoipa::openapi::schema::Object {
    title_builder(SchemaType::Type(Type::String)).build()
}

/// [`title_schema`], or null (the default applies).
pub fn optional_title_schema() -> utoipa::openapi::schema::Object {
    title_builder(SchemaType::from_iter([Type::String, Type::Null])).build()
}

fn title_builder(schema_type: SchemaType) -> ObjectBuilder {
    const NOT_CONTROL: &str = r"[^\x00-\x1F\x7F-\x9F]";
    ObjectBuilder::new()
        .schema_type(schema_type)
        .min_length(Some(1))
        .max_length(Some(MAX_TITLE_CHARS))
        .pattern(Some(format!(r"^{NOT_CONTROL}*[^\s\x00-\x1F\x7F-\x9F]{NOT_CONTROL}*$")))
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
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]*[1-9][0-9]*$", max_length = 18)]
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
#[derive(Serialize, ToSchema)]
pub struct NativeOk<T> {
    /// Always true.
    success: bool,
    /// The answer.
    data: T,
    /// The `x-request-id` of this request.
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
