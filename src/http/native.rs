//! The native family: create, list, get and revoke keys by numeric id under `/api/v1/keys`,
//! and exchange a key for a session token, in the `{success, data, request_id}` envelope.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::bodies::{native_ok, no_store, KeyView, LoginBody, NativeOk, PageQuery, Session};
use super::envelope::schema::NativeError;
use super::envelope::{Failure, Native};
use super::extract::{app_state, client_address, Manager};
use crate::domain::grants::GrantBody;
use crate::domain::model::{KeyId, Status};
use crate::domain::new_key::{NewKey, Title};
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::service::credential;
use crate::service::manage::Manage;
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
    let new = NewKey::parse(title, body.grants.as_deref(), body.expires_at.as_deref()).map_err(ApiError::from)?;
    let made = Manage::new(&state.db, &manager).create_key(new).await?;
    let record = made.record;
    Ok(no_store(native_ok(CreatedKey {
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
/// `status` filters. 200; 400 bad or unknown parameter; 401; 403; 429.
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
    let ListQuery { limit, cursor, status } = query.into_inner();
    let page = PageQuery { limit, cursor }.parse()?;
    let status = status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| ApiError::invalid("status", "status must be active, revoked or deleted"))
        })
        .transpose()?;
    let page = Manage::new(&state.db, &manager).list_keys(None, status, page).await?;
    let now = Timestamp::now();
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
    let record = Manage::new(&state.db, &manager).get_key(KeyRef::Id(parse_id(&id)?)).await?;
    Ok(native_ok(KeyView::new(&record, Timestamp::now())))
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
    let record = Manage::new(&state.db, &manager).revoke_key(KeyRef::Id(parse_id(&id)?)).await?;
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
    let session = credential::login(state, &body.api_key, || client_address(state, &req))?;
    Ok(no_store(native_ok(Session::bearer(session))))
}
