//! The native family: create, list, get and revoke keys by numeric id under `/api/v1/keys`,
//! and exchange a key for a session token, in the `{success, data, request_id}` envelope.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::bodies::{
    native_ok, no_store, parse_meta, parse_owner, present, KeyFilters, KeyView, LimitsView, LoginBody, NativeOk,
    PageQuery, Session,
};
use super::envelope::schema::NativeError;
use super::envelope::{Failure, Native};
use super::extract::{app_state, client_address, Manager};
use crate::config::MAX_GRACE_SECONDS;
use crate::domain::grants::GrantBody;
use crate::domain::grants::Grants;
use crate::domain::limits::{parse_allowlist, Credits, LimitSettings, RateLimit};
use crate::domain::model::{KeyId, Status};
use crate::domain::new_key::{NewKey, Title};
use crate::domain::timestamp::Timestamp;
use crate::domain::whole::optional_whole;
use crate::error::ApiError;
use crate::service::credential;
use crate::service::lifecycle::KeyUpdate;
use crate::service::scope::KeyRef;
use crate::service::AppState;

type Reply = Result<HttpResponse, Failure<Native>>;

/// The message of every title refusal in this family, whatever was wrong with it.
const INVALID_TITLE: &str = "Invalid title";

/// Body of POST /api/v1/keys.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    /// The key's label. Checked by hand so every wrong shape gets the same "Invalid title"
    /// answer.
    #[schema(schema_with = super::bodies::title_schema, required = true)]
    title: Option<serde_json::Value>,
    /// Within the caller's grants; default the caller's grants.
    #[schema(schema_with = super::bodies::grants_schema)]
    grants: Option<Vec<GrantBody>>,
    /// RFC 3339, in the future and not after the caller's own expiry; default the caller's.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// Who the key belongs to in the caller's system.
    #[schema(schema_with = super::bodies::owner_schema)]
    owner: Option<String>,
    /// Free-form metadata: a JSON object of at most 4 KiB, returned exactly as given.
    #[schema(value_type = Option<Object>)]
    meta: Option<Box<serde_json::value::RawValue>>,
    /// At most `limit` accepted verifications in any `window_seconds`.
    rate_limit: Option<RateLimit>,
    /// Usage credits: each accepted verification spends its cost.
    credits: Option<Credits>,
    /// The networks the key may be used from (1 to 64 CIDRs).
    #[schema(schema_with = super::bodies::allowed_ips_schema)]
    allowed_ips: Option<Vec<String>>,
}

/// `status` of a key just created.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Created {
    /// The only value.
    Created,
}

/// `data` of POST /api/v1/keys: the new key's metadata and, this once, its plaintext.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    id: KeyId,
    uuid: Uuid,
    title: String,
    status: Created,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    prefix: String,
    grants: Vec<GrantBody>,
    #[serde(flatten)]
    limits: LimitsView,
    /// The plaintext key. Shown only here.
    api_key: String,
}

/// POST /api/v1/keys — needs write on `/`. 200 with the plaintext (once); 400 bad body;
/// 401; 403 grants or expiry beyond the caller's; 413; 415; 429 too many failed
/// authentications; 503 write queue full.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "native",
    request_body = CreateKeyBody,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Created; the plaintext is in `api_key`", body = NativeOk<CreatedKey>),
        (status = 400, description = "Malformed JSON, bad or missing title, bad grant, unknown field, past expiry", body = NativeError),
        (status = 403, description = "No write on `/`, or grants or expiry beyond the caller's", body = NativeError),
    )
)]
pub async fn create_key(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Native>,
    body: web::Json<CreateKeyBody>,
) -> Reply {
    let body = body.into_inner();
    // One answer for every bad title: missing, empty, blank, oversized, control characters
    // or not a string.
    let title = Title::from_json(body.title.as_ref()).map_err(|_| ApiError::invalid("title", INVALID_TITLE))?;
    let mut new = NewKey::parse(title, body.grants.as_deref(), body.expires_at.as_deref()).map_err(ApiError::from)?;
    new.owner = body.owner.as_deref().map(parse_owner).transpose()?;
    new.meta = body.meta.as_deref().map(parse_meta).transpose()?;
    new.limits =
        LimitSettings::parse(body.rate_limit, body.credits, body.allowed_ips.as_deref()).map_err(ApiError::from)?;
    let made = state.manage(&manager).create_key(new).await?;
    let record = made.record;
    let limits = LimitsView::new(&record);
    Ok(no_store(native_ok(CreatedKey {
        limits,
        id: record.id,
        uuid: record.uuid,
        grants: record.grants.to_bodies(),
        title: record.title,
        status: Created::Created,
        created_at: record.created_at,
        expires_at: record.expires_at,
        prefix: record.prefix,
        api_key: made.key.expose().to_owned(),
    })))
}

/// Query of GET /api/v1/keys.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size: its default and range are written into the document by `openapi::PageSize`.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]*[1-9][0-9]*$", max_length = 18)]
    cursor: Option<String>,
    /// Only keys with this status.
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    /// Only keys that expire within this long from now (`7d`, `12h`, `30m`, `90s`, `2w`),
    /// not those already expired.
    #[param(pattern = "^[0-9]{1,6}[smhdw]$")]
    expiring_within: Option<String>,
    /// Only keys not used for this long (a key never used counts from its creation), as of
    /// the last `last_used_at` flush.
    #[param(pattern = "^[0-9]{1,6}[smhdw]$")]
    unused_for: Option<String>,
    /// Only keys with this owner.
    owner: Option<String>,
    /// Only keys whose title (any case) or display prefix contains this text.
    q: Option<String>,
}

/// `data` of GET /api/v1/keys.
#[derive(Serialize, ToSchema)]
pub struct KeyPage {
    /// Newest first.
    keys: Vec<KeyView>,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// GET /api/v1/keys — needs write on `/`. Keys in the caller's scope, newest first,
/// `limit` (1..=200, default 50) per page; pass `next_cursor` back as `cursor` for the next page;
/// `status`, `expiring_within`, `unused_for`, `owner` and `q` filter, combined. 200; 400 bad or
/// unknown parameter; 401; 403; 429.
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "native",
    params(ListQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One page of keys", body = NativeOk<KeyPage>),
        (status = 400, description = "Bad or unknown query parameter", body = NativeError),
        (status = 403, description = "No write on `/`", body = NativeError),
    )
)]
pub async fn list_keys(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Native>,
    query: web::Query<ListQuery>,
) -> Reply {
    let ListQuery { limit, cursor, status, expiring_within, unused_for, owner, q } = query.into_inner();
    let page = PageQuery { limit, cursor }.parse()?;
    let query = KeyFilters { status, expiring_within, unused_for, owner, q }.parse()?;
    let page = state.manage(&manager).list_keys(query, page).await?;
    let now = state.now_showing(page.keys.iter().map(|k| k.expires_at)).await;
    let keys: Vec<KeyView> = page.keys.iter().map(|k| KeyView::new(k, now)).collect();
    Ok(native_ok(KeyPage { keys, next_cursor: page.next_cursor }))
}

/// GET /api/v1/keys/{id} — needs write on `/`. 200 metadata; 400 non-numeric id; 401; 403;
/// 404; 429.
#[utoipa::path(
    get,
    path = "/api/v1/keys/{id}",
    tag = "native",
    params(("id" = i64, Path, minimum = 1, description = "The key's numeric id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The key's metadata", body = NativeOk<KeyView>),
        (status = 400, description = "id is not a positive integer", body = NativeError),
        (status = 403, description = "No write on `/`", body = NativeError),
        (status = 404, description = "No such key in the caller's scope", body = NativeError),
    )
)]
pub async fn get_key(state: web::Data<AppState>, Manager(manager, _): Manager<Native>, id: web::Path<String>) -> Reply {
    let record = state.manage(&manager).get_key(KeyRef::Id(parse_id(&id)?)).await?;
    let now = state.now_showing([record.expires_at]).await;
    Ok(native_ok(KeyView::new(&record, now)))
}

/// DELETE /api/v1/keys/{id} — needs write on `/`. 200 `{id, status: "revoked"}` (also for a
/// key already revoked, so retries are safe); 400 non-numeric id or the caller's own key
/// (`cannot_revoke_current_key`); 401; 403; 404 `not_found`; 409 `key_deleted`; 429; 503.
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "native",
    params(("id" = i64, Path, minimum = 1, description = "The key's numeric id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Revoked (or already revoked)", body = NativeOk<RevokedKey>),
        (status = 400, description = "id is not a positive integer, or is the caller's own key", body = NativeError),
        (status = 403, description = "No write on `/`", body = NativeError),
        (status = 404, description = "No such key in the caller's scope", body = NativeError),
        (status = 409, description = "The key is deleted", body = NativeError),
    )
)]
pub async fn revoke_key(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Native>,
    id: web::Path<String>,
) -> Reply {
    let record = state.manage(&manager).revoke_key(KeyRef::Id(parse_id(&id)?)).await?;
    Ok(native_ok(RevokedKey { id: record.id, status: Revoked::Revoked }))
}

/// `status` of a key just revoked.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Revoked {
    /// The only value.
    Revoked,
}

/// `data` of DELETE /api/v1/keys/{id}.
#[derive(Serialize, ToSchema)]
pub struct RevokedKey {
    id: KeyId,
    status: Revoked,
}

/// Body of PATCH /api/v1/keys/{id}: any of the fields; absent ones stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBody {
    /// New label.
    #[schema(schema_with = super::bodies::optional_title_schema)]
    title: Option<serde_json::Value>,
    /// New grants: narrowing is always allowed, widening only within the caller's grants.
    #[schema(schema_with = super::bodies::grants_schema)]
    grants: Option<Vec<GrantBody>>,
    /// New expiry (RFC 3339, in the future, not after the caller's own); `null` clears it,
    /// only for a caller whose own key never expires.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Option<String>>,
    /// New owner; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = super::bodies::owner_schema)]
    owner: Option<Option<String>>,
    /// New metadata (a JSON object, at most 4 KiB, returned as given); `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    meta: Option<Option<Box<serde_json::value::RawValue>>>,
    /// False disables the key (verify answers `DISABLED`, its sessions stop), true enables it.
    enabled: Option<bool>,
    /// New rate limit; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<RateLimit>>,
    /// New credits (set afresh, even if equal); `null` removes them.
    #[serde(default, deserialize_with = "present")]
    credits: Option<Option<Credits>>,
    /// New IP allowlist; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = super::bodies::allowed_ips_schema)]
    allowed_ips: Option<Option<Vec<String>>>,
}

impl UpdateKeyBody {
    fn parse(self) -> Result<KeyUpdate, ApiError> {
        let title = self
            .title
            .map(|v| Title::from_json(Some(&v)).map_err(|_| ApiError::invalid("title", INVALID_TITLE)))
            .transpose()?;
        let grants = self
            .grants
            .map(|g| Grants::from_bodies(&g).map_err(|e| ApiError::invalid("grants", format!("Invalid grants: {e}"))))
            .transpose()?;
        let expires_at = self
            .expires_at
            .map(|at| {
                at.map(|t| {
                    Timestamp::parse_rfc3339(&t)
                        .map_err(|e| ApiError::invalid("expires_at", format!("Invalid expires_at: {e}")))
                })
                .transpose()
            })
            .transpose()?;
        let owner = self.owner.map(|o| o.as_deref().map(parse_owner).transpose()).transpose()?;
        let meta = self.meta.map(|m| m.as_deref().map(parse_meta).transpose()).transpose()?;
        let rate_limit = self.rate_limit.map(|r| r.map(RateLimit::check).transpose()).transpose()?;
        let credits = self.credits.map(|c| c.map(Credits::check).transpose()).transpose()?;
        let allowed_ips = self.allowed_ips.map(|l| l.as_deref().map(parse_allowlist).transpose()).transpose()?;
        Ok(KeyUpdate {
            title,
            grants,
            expires_at,
            owner,
            meta,
            enabled: self.enabled,
            rate_limit,
            credits,
            allowed_ips,
        })
    }
}

/// PATCH /api/v1/keys/{id} — needs write on `/`, on a key the caller could have minted.
/// Changes any of `title`, `grants`, `expires_at`, `owner`, `meta`, `enabled`, from the next
/// request on; every change is audited with what changed. 200 the key's metadata; 400 bad
/// body or unknown field; 401; 403 widening beyond the caller's grants or expiry, or a key
/// beyond the caller's; 404; 409 a revoked or deleted key; 429; 503.
#[utoipa::path(
    patch,
    path = "/api/v1/keys/{id}",
    tag = "native",
    params(("id" = i64, Path, minimum = 1, description = "The key's numeric id")),
    request_body = UpdateKeyBody,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The key's metadata after the change", body = NativeOk<KeyView>),
        (status = 400, description = "id is not a positive integer, bad or unknown field, past expiry", body = NativeError),
        (status = 403, description = "No write on `/`, widening beyond the caller's grants or expiry, or a key beyond the caller's", body = NativeError),
        (status = 404, description = "No such key in the caller's scope", body = NativeError),
        (status = 409, description = "The key is revoked or deleted", body = NativeError),
    )
)]
pub async fn update_key(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Native>,
    id: web::Path<String>,
    body: web::Json<UpdateKeyBody>,
) -> Reply {
    let id = parse_id(&id)?;
    let update = body.into_inner().parse()?;
    let record = state.manage(&manager).update_key(KeyRef::Id(id), update).await?;
    let now = state.now_showing([record.expires_at]).await;
    Ok(native_ok(KeyView::new(&record, now)))
}

/// Body of POST /api/v1/keys/{id}/rotate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old key keeps working.
    #[schema(schema_with = super::bodies::grace_schema)]
    #[serde(default, deserialize_with = "optional_whole")]
    grace_seconds: Option<u64>,
}

/// `data` of POST /api/v1/keys/{id}/rotate: the new key's metadata and, this once, its
/// plaintext.
#[derive(Serialize, ToSchema)]
pub struct RotatedKey {
    /// The new key.
    #[serde(flatten)]
    key: KeyView,
    /// The plaintext of the new key. Shown only here.
    api_key: String,
}

/// POST /api/v1/keys/{id}/rotate `{"grace_seconds": N}` (0 to 2,592,000, default 0) — needs
/// write on `/`, on a key the caller could have minted. Makes a new key with the same title,
/// grants, owner, meta, application and expiry; the old key works until `now + grace` (never
/// past its own expiry), then verifies `EXPIRED`. Rotating a key already rotated rotates the
/// newest of its line. 200 the new key with its plaintext (once); 400; 401; 403; 404; 409 a
/// revoked or deleted key; 429; 503.
#[utoipa::path(
    post,
    path = "/api/v1/keys/{id}/rotate",
    tag = "native",
    params(("id" = i64, Path, minimum = 1, description = "The key's numeric id")),
    request_body = RotateBody,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Rotated; the new plaintext is in `api_key`", body = NativeOk<RotatedKey>),
        (status = 400, description = "id is not a positive integer, or grace_seconds out of range", body = NativeError),
        (status = 403, description = "No write on `/`, or a key beyond the caller's", body = NativeError),
        (status = 404, description = "No such key in the caller's scope", body = NativeError),
        (status = 409, description = "The key is revoked or deleted", body = NativeError),
    )
)]
pub async fn rotate_key(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Native>,
    id: web::Path<String>,
    body: web::Json<RotateBody>,
) -> Reply {
    let id = parse_id(&id)?;
    let grace = body.grace_seconds.unwrap_or(0);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid(
            "grace_seconds",
            format!("grace_seconds must be between 0 and {MAX_GRACE_SECONDS}"),
        )
        .into());
    }
    let made = state.manage(&manager).rotate_key(KeyRef::Id(id), grace * 1000).await?;
    let key = KeyView::new(&made.record, state.now_showing([made.record.expires_at]).await);
    Ok(no_store(native_ok(RotatedKey { key, api_key: made.key.expose().to_owned() })))
}

fn parse_id(raw: &str) -> Result<KeyId, ApiError> {
    KeyId::parse(raw).ok_or_else(|| ApiError::invalid("id", "id must be a positive integer"))
}

/// POST /api/v1/auth/token `{"api_key"}` — 200 `{token, token_type, expires_at}` in the
/// native envelope; 400; 401; 415; 429 too many failed logins.
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    tag = "native",
    request_body = LoginBody,
    responses(
        (status = 200, description = "A session JWT", body = NativeOk<Session>),
        (status = 400, description = "Malformed body", body = NativeError),
        (status = 401, description = "Not a usable key", body = NativeError),
        (status = 429, description = "Too many failed authentications", body = NativeError),
    )
)]
pub async fn create_token(req: HttpRequest, body: web::Json<LoginBody>) -> Reply {
    let state = app_state(&req)?;
    let session = credential::login(state, &body.api_key, || client_address(state, &req)).await?;
    Ok(no_store(native_ok(Session::bearer(session))))
}
