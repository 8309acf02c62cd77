//! The native `/api/v1/keys` family (seeds 000 and 002): create, list, get and revoke by
//! numeric id, in the `{success, data, request_id}` envelope.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::body::{native_ok, no_store, paginate, parse_grants_and_expiry, KeyView, NativeOk, PageQuery};
use crate::auth::Manager;
use crate::error::schema::NativeError;
use crate::error::{ApiError, Failure, Native};
use crate::grants::GrantBody;
use crate::manage::{self, KeySpec};
use crate::model::{KeyId, Status};
use crate::store::keys::{find_key_by_id, list_keys as select_keys};
use crate::timestamp::Timestamp;
use crate::AppState;

type Reply = Result<HttpResponse, Failure<Native>>;

/// The message of every title refusal, exactly as seed 002's error example shows it.
const INVALID_TITLE: &str = "Invalid title";

/// Body of POST /api/v1/keys.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    /// The key's label. Checked by hand so every wrong shape gets the same "Invalid title"
    /// answer.
    #[schema(schema_with = super::body::title_schema, required = true)]
    title: Option<serde_json::Value>,
    /// Within the caller's grants; default the caller's grants.
    #[schema(min_items = 1, max_items = 32)]
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
        (status = 401, description = "Missing or bad credential", body = NativeError),
        (status = 403, description = "No write on `/`, or grants or expiry beyond the caller's", body = NativeError),
        (status = 413, description = "Body over 16 KiB", body = NativeError),
        (status = 415, description = "Not JSON", body = NativeError),
        (status = 429, description = "Too many failed authentications", body = NativeError),
        (status = 503, description = "Write queue full", body = NativeError),
    )
)]
pub async fn create_key(
    state: web::Data<AppState>,
    Manager(caller): Manager<Native>,
    body: web::Json<CreateKeyBody>,
) -> Reply {
    let body = body.into_inner();
    // Seed 002's one answer for every bad title: missing, empty, blank, oversized, control
    // characters or not a string. (The other families keep validate_title's own message.)
    let title =
        manage::validate_title(body.title.as_ref(), "title").map_err(|_| ApiError::invalid("title", INVALID_TITLE))?;
    let (grants, expires_at) = parse_grants_and_expiry(body.grants.as_deref(), body.expires_at.as_deref())?;
    let ctx = caller.audit();
    let spec = KeySpec::minted_by(&caller.key, title, grants, expires_at, ctx.at)?;
    let key = manage::generate_key()?;
    let stored = key.clone();
    let record = state.db.write(move |conn| manage::insert_new_key(conn, &spec, &stored, &ctx)).await?;
    Ok(no_store(native_ok(CreatedKey {
        id: record.id,
        uuid: record.uuid,
        grants: record.grants.to_bodies(),
        title: record.title,
        status: Created::Created,
        created_at: record.created_at,
        expires_at: record.expires_at,
        prefix: record.prefix,
        api_key: key.expose().to_owned(),
    })))
}

/// Query of GET /api/v1/keys.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
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
        (status = 401, description = "Missing or bad credential", body = NativeError),
        (status = 403, description = "No write on `/`", body = NativeError),
        (status = 429, description = "Too many failed authentications", body = NativeError),
    )
)]
pub async fn list_keys(
    state: web::Data<AppState>,
    Manager(caller): Manager<Native>,
    query: web::Query<ListQuery>,
) -> Reply {
    let ListQuery { limit, cursor, status } = query.into_inner();
    let (limit, cursor) = PageQuery { limit, cursor }.parse()?;
    let status = status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| ApiError::invalid("status", "status must be active, revoked or deleted"))
        })
        .transpose()?;
    let scope = caller.key.scope();
    let rows =
        state.db.read(move |conn| Ok::<_, ApiError>(select_keys(conn, scope, cursor, status, limit + 1)?)).await?;
    let (page, next_cursor) = paginate(rows, limit);
    let now = Timestamp::now();
    let keys: Vec<KeyView> = page.iter().map(|k| KeyView::new(k, now)).collect();
    Ok(native_ok(KeyPage { keys, next_cursor }))
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
        (status = 401, description = "Missing or bad credential", body = NativeError),
        (status = 403, description = "No write on `/`", body = NativeError),
        (status = 404, description = "No such key in the caller's scope", body = NativeError),
        (status = 429, description = "Too many failed authentications", body = NativeError),
    )
)]
pub async fn get_key(state: web::Data<AppState>, Manager(caller): Manager<Native>, id: web::Path<String>) -> Reply {
    let id = parse_id(&id)?;
    let scope = caller.key.scope();
    let found = state.db.read(move |conn| Ok::<_, ApiError>(find_key_by_id(conn, id, scope)?)).await?;
    let record = found.ok_or(ApiError::NotFound("API key not found".into()))?;
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
        (status = 401, description = "Missing or bad credential", body = NativeError),
        (status = 403, description = "No write on `/`", body = NativeError),
        (status = 404, description = "No such key in the caller's scope", body = NativeError),
        (status = 409, description = "The key is deleted", body = NativeError),
        (status = 429, description = "Too many failed authentications", body = NativeError),
        (status = 503, description = "Write queue full", body = NativeError),
    )
)]
pub async fn revoke_key(state: web::Data<AppState>, Manager(caller): Manager<Native>, id: web::Path<String>) -> Reply {
    let id = parse_id(&id)?;
    let ctx = caller.audit();
    let scope = caller.key.scope();
    let current = Some(caller.key.id);
    let record = state.db.write(move |conn| manage::revoke_key(conn, scope, current, id, &ctx)).await?;
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
