//! The clients family (seed 003): the caller's own keys (its application's, or every key for
//! a global caller), addressed by UUID, in the `{status, message, data}` envelope, with JWT
//! login. Deletion here is permanent for the secret; the metadata stays, marked deleted.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::body::{no_store, paginate, NewKeyBody, NewUuidKey, PageQuery, UuidKeyPage, UuidKeyView};
use super::session::Session;
use crate::auth::Caller;
use crate::error::schema::ClientsError;
use crate::error::{ApiError, Clients, Failure};
use crate::manage::{self, KeySpec};
use crate::store::keys::list_keys;
use crate::timestamp::Timestamp;
use crate::AppState;

type Reply = Result<HttpResponse, Failure<Clients>>;

/// Most ids one bulk delete may name.
pub const MAX_BULK: usize = 1000;
const BAD_ID: &str = "Invalid API key ID format";

/// The clients family's success envelope.
#[derive(Serialize, ToSchema)]
pub struct ClientsOk<T> {
    /// The HTTP status, mirrored.
    status: u16,
    /// For people.
    #[schema(value_type = String)]
    message: &'static str,
    /// The answer.
    data: T,
}

/// `{"status", "message", "data"}` with the status mirrored in the HTTP status line.
fn envelope(status: StatusCode, message: &'static str, data: impl Serialize) -> HttpResponse {
    HttpResponse::build(status).json(ClientsOk { status: status.as_u16(), message, data })
}

fn require_manage<F>(caller: &Caller<F>, message: &'static str) -> Result<(), ApiError> {
    if caller.key.grants.can_manage() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(message))
    }
}

fn parse_key_id(raw: &str) -> Option<Uuid> {
    (raw.len() == 36).then(|| Uuid::parse_str(raw).ok()).flatten()
}

/// Body of the two login calls.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The key to log in with.
    pub api_key: String,
}

/// POST /api/clients/login `{"api_key"}` — no caller needed: the key is the credential.
/// 200 `{status, message, data: {token, token_type, expires_at}}`; 400 bad body; 401 bad key;
/// 413; 415; 429 too many failed logins.
#[utoipa::path(
    post,
    path = "/api/clients/login",
    tag = "clients",
    request_body = LoginBody,
    responses(
        (status = 200, description = "A session JWT", body = ClientsOk<Session>),
        (status = 400, description = "Malformed body", body = ClientsError),
        (status = 401, description = "Invalid API key", body = ClientsError),
        (status = 413, description = "Body over 16 KiB", body = ClientsError),
        (status = 415, description = "Not JSON", body = ClientsError),
        (status = 429, description = "Too many failed authentications", body = ClientsError),
    )
)]
pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: web::Json<LoginBody>) -> Reply {
    let (token, expires_at) = super::session::issue(&state, &req, &body.api_key)?;
    Ok(no_store(envelope(StatusCode::OK, "Login successful", Session::bearer(token, expires_at))))
}

/// GET /api/clients/api-keys — needs write on `/` in scope. 200 `{api_keys, next_cursor}`;
/// 400 bad query; 401; 403; 429.
#[utoipa::path(
    get,
    path = "/api/clients/api-keys",
    tag = "clients",
    params(PageQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One page of keys", body = ClientsOk<UuidKeyPage>),
        (status = 400, description = "Bad or unknown query parameter", body = ClientsError),
        (status = 401, description = "Invalid JWT token (or key)", body = ClientsError),
        (status = 403, description = "No write on `/`", body = ClientsError),
        (status = 429, description = "Too many failed authentications", body = ClientsError),
    )
)]
pub async fn list_client_keys(
    state: web::Data<AppState>,
    caller: Caller<Clients>,
    query: web::Query<PageQuery>,
) -> Reply {
    require_manage(&caller, "Insufficient permissions to list API keys")?;
    let (limit, cursor) = query.parse()?;
    let scope = caller.key.scope();
    let rows = state.db.read(move |conn| Ok::<_, ApiError>(list_keys(conn, scope, cursor, None, limit + 1)?)).await?;
    let (page, next_cursor) = paginate(rows, limit);
    let now = Timestamp::now();
    let keys: Vec<UuidKeyView> = page.iter().map(|k| UuidKeyView::new(k, now)).collect();
    Ok(envelope(StatusCode::OK, "API Keys retrieved successfully", UuidKeyPage { api_keys: keys, next_cursor }))
}

/// POST /api/clients/api-keys — needs write on `/` in scope. 201 with the key's metadata and
/// `api_key` (the plaintext, this once); 400; 401; 403 no write on `/`, or grants or expiry
/// beyond the caller's; 413; 415; 429; 503.
#[utoipa::path(
    post,
    path = "/api/clients/api-keys",
    tag = "clients",
    request_body = NewKeyBody,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created; the plaintext is in `data.api_key`", body = ClientsOk<NewUuidKey>),
        (status = 400, description = "Bad body", body = ClientsError),
        (status = 401, description = "Invalid JWT token (or key)", body = ClientsError),
        (status = 403, description = "No write on `/`, or grants or expiry beyond the caller's", body = ClientsError),
        (status = 413, description = "Body over 16 KiB", body = ClientsError),
        (status = 415, description = "Not JSON", body = ClientsError),
        (status = 429, description = "Too many failed authentications", body = ClientsError),
        (status = 503, description = "Write queue full", body = ClientsError),
    )
)]
pub async fn generate_client_key(
    state: web::Data<AppState>,
    caller: Caller<Clients>,
    body: web::Json<NewKeyBody>,
) -> Reply {
    require_manage(&caller, "Insufficient permissions to generate API keys")?;
    let (title, grants, expires_at) = body.parse()?;
    let ctx = caller.audit();
    let spec = KeySpec::minted_by(&caller.key, title, grants, expires_at, ctx.at)?;
    let key = manage::generate_key()?;
    let stored = key.clone();
    let record = state.db.write(move |conn| manage::insert_new_key(conn, &spec, &stored, &ctx)).await?;
    let view = NewUuidKey { view: UuidKeyView::new(&record, record.created_at), api_key: key.expose().to_owned() };
    Ok(no_store(envelope(StatusCode::CREATED, "API Key generated successfully", view)))
}

/// DELETE /api/clients/api-keys/{api_key_id} — needs write on `/` in scope. 200
/// `{deleted_id, deleted_at}`; 400 "Invalid API key ID format" (or the caller's own key);
/// 401 "Invalid JWT token"; 403 "Insufficient permissions to delete this API key";
/// 404 "API Key not found" (also another application's key, or one already deleted); 429; 503.
#[utoipa::path(
    delete,
    path = "/api/clients/api-keys/{api_key_id}",
    tag = "clients",
    params(("api_key_id" = Uuid, Path, description = "The key's UUID")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Deleted", body = ClientsOk<DeletedClientKey>),
        (status = 400, description = "Invalid API key ID format, or the caller's own key", body = ClientsError),
        (status = 401, description = "Invalid JWT token (or key)", body = ClientsError),
        (status = 403, description = "Insufficient permissions to delete this API key", body = ClientsError),
        (status = 404, description = "API Key not found", body = ClientsError),
        (status = 429, description = "Too many failed authentications", body = ClientsError),
        (status = 503, description = "Write queue full", body = ClientsError),
    )
)]
pub async fn delete_client_key(state: web::Data<AppState>, caller: Caller<Clients>, id: web::Path<String>) -> Reply {
    require_manage(&caller, "Insufficient permissions to delete this API key")?;
    let uuid = parse_key_id(&id).ok_or_else(|| ApiError::invalid("api_key_id", BAD_ID))?;
    let deleted = delete(&state, &caller, vec![uuid]).await.map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::NotFound("API Key not found".into()),
        other => other,
    })?;
    let first = deleted.first().ok_or_else(|| ApiError::internal(&"nothing deleted"))?;
    Ok(envelope(
        StatusCode::OK,
        "API Key deleted successfully",
        DeletedClientKey { deleted_id: first.uuid, deleted_at: first.deleted_at },
    ))
}

/// `data` of DELETE /api/clients/api-keys/{api_key_id}.
#[derive(Serialize, ToSchema)]
pub struct DeletedClientKey {
    deleted_id: Uuid,
    deleted_at: Option<Timestamp>,
}

/// `data` of DELETE /api/clients/api-keys/bulk.
#[derive(Serialize, ToSchema)]
pub struct DeletedClientKeys {
    deleted_ids: Vec<Uuid>,
    deleted_at: Option<Timestamp>,
}

/// Body of DELETE /api/clients/api-keys/bulk.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// The keys to delete (repeats count once).
    #[schema(value_type = Vec<Uuid>, min_items = 1, max_items = 1000)]
    api_key_ids: Vec<String>,
}

/// DELETE /api/clients/api-keys/bulk `{"api_key_ids": [...]}` — needs write on `/` in
/// scope. All or nothing, in one transaction: 200 `{deleted_ids, deleted_at}`; 400 empty,
/// over 1000, or any malformed id (named); 404 any unknown, out-of-scope or already deleted
/// id (named), and then nothing is deleted. Repeated ids count once. 401; 403; 413 over
/// 64 KiB; 415; 429; 503.
#[utoipa::path(
    delete,
    path = "/api/clients/api-keys/bulk",
    tag = "clients",
    request_body = BulkBody,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "All deleted", body = ClientsOk<DeletedClientKeys>),
        (status = 400, description = "Empty, over 1000, or a malformed id (named)", body = ClientsError),
        (status = 401, description = "Invalid JWT token (or key)", body = ClientsError),
        (status = 403, description = "No write on `/`", body = ClientsError),
        (status = 404, description = "An unknown, out-of-scope or deleted id (named); nothing deleted", body = ClientsError),
        (status = 413, description = "Body over 64 KiB", body = ClientsError),
        (status = 415, description = "Not JSON", body = ClientsError),
        (status = 429, description = "Too many failed authentications", body = ClientsError),
        (status = 503, description = "Write queue full", body = ClientsError),
    )
)]
pub async fn bulk_delete_client_keys(
    state: web::Data<AppState>,
    caller: Caller<Clients>,
    body: web::Json<BulkBody>,
) -> Reply {
    require_manage(&caller, "Insufficient permissions to delete these API keys")?;
    let raw = body.into_inner().api_key_ids;
    if raw.is_empty() {
        return Err(ApiError::invalid("api_key_ids", "api_key_ids must name at least one API key").into());
    }
    if raw.len() > MAX_BULK {
        return Err(
            ApiError::invalid("api_key_ids", format!("api_key_ids may name at most {MAX_BULK} API keys")).into()
        );
    }
    let bad: Vec<&str> = raw.iter().filter(|r| parse_key_id(r).is_none()).map(String::as_str).collect();
    if !bad.is_empty() {
        let shown: Vec<String> =
            bad.iter().take(20).map(|b| crate::keys::redact(&b.chars().take(64).collect::<String>())).collect();
        return Err(ApiError::invalid("api_key_ids", format!("{BAD_ID}: {}", shown.join(", "))).into());
    }
    let mut uuids: Vec<Uuid> = raw.iter().filter_map(|r| parse_key_id(r)).collect();
    let mut seen = std::collections::HashSet::new();
    uuids.retain(|u| seen.insert(*u));
    let deleted = delete(&state, &caller, uuids).await?;
    let deleted_at = deleted.first().and_then(|k| k.deleted_at);
    let ids: Vec<Uuid> = deleted.iter().map(|k| k.uuid).collect();
    Ok(envelope(StatusCode::OK, "API Keys deleted successfully", DeletedClientKeys { deleted_ids: ids, deleted_at }))
}

async fn delete(
    state: &AppState,
    caller: &Caller<Clients>,
    uuids: Vec<Uuid>,
) -> Result<Vec<crate::model::KeyRecord>, ApiError> {
    let ctx = caller.audit();
    let scope = caller.key.scope();
    let current = Some(caller.key.id);
    state.db.write(move |conn| manage::delete_keys(conn, scope, current, &uuids, &ctx)).await
}
