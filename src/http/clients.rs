//! The clients family: the caller's own keys (its application's, or every key for a global
//! caller), addressed by UUID under `/api/clients`, in the `{status, message, data}`
//! envelope, with JWT login. Deletion here is permanent for the secret; the metadata stays,
//! marked deleted.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::bodies::{no_store, LoginBody, NewKeyBody, NewUuidKey, PageQuery, Session, UuidKeyPage, UuidKeyView};
use super::envelope::schema::ClientsError;
use super::envelope::{Clients, Failure};
use super::extract::{app_state, client_address, Caller};
use crate::config::{MAX_BAD_IDS_SHOWN, MAX_BAD_ID_CHARS, MAX_BULK};
use crate::domain::key_format::redact;
use crate::domain::timestamp::Timestamp;
use crate::error::{ApiError, Op};
use crate::service::credential;
use crate::service::manage::KeyQuery;
use crate::service::scope::KeyRef;
use crate::service::AppState;

type Reply = Result<HttpResponse, Failure<Clients>>;

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

/// A key id as this family writes it: a hyphenated UUID.
fn parse_key_id(raw: &str) -> Option<Uuid> {
    (raw.len() == 36).then(|| Uuid::parse_str(raw).ok()).flatten()
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
        (status = 429, description = "Too many failed authentications", body = ClientsError),
    )
)]
pub async fn login(req: HttpRequest, body: web::Json<LoginBody>) -> Reply {
    let state = app_state(&req)?;
    let session = credential::login(state, &body.api_key, || client_address(state, &req)).await?;
    Ok(no_store(envelope(StatusCode::OK, "Login successful", Session::bearer(session))))
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
        (status = 403, description = "No write on `/`", body = ClientsError),
    )
)]
pub async fn list_client_keys(
    state: web::Data<AppState>,
    caller: Caller<Clients>,
    query: web::Query<PageQuery>,
) -> Reply {
    let manager = caller.manager(Op::ListKeys)?;
    let page = state.manage(&manager).list_keys(KeyQuery::default(), query.parse()?).await?;
    let now = state.now_showing(page.keys.iter().map(|k| k.expires_at)).await;
    let keys: Vec<UuidKeyView> = page.keys.iter().map(|k| UuidKeyView::new(k, now)).collect();
    Ok(envelope(
        StatusCode::OK,
        "API Keys retrieved successfully",
        UuidKeyPage { api_keys: keys, next_cursor: page.next_cursor },
    ))
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
        (status = 403, description = "No write on `/`, or grants or expiry beyond the caller's", body = ClientsError),
    )
)]
pub async fn generate_client_key(
    state: web::Data<AppState>,
    caller: Caller<Clients>,
    body: web::Json<NewKeyBody>,
) -> Reply {
    let manager = caller.manager(Op::CreateKey)?;
    let made = state.manage(&manager).create_key(body.into_inner().parse()?).await?;
    let view = UuidKeyView::new(&made.record, made.record.created_at);
    Ok(no_store(envelope(
        StatusCode::CREATED,
        "API Key generated successfully",
        NewUuidKey { view, api_key: made.key.expose().to_owned() },
    )))
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
        (status = 403, description = "Insufficient permissions to delete this API key", body = ClientsError),
        (status = 404, description = "API Key not found", body = ClientsError),
    )
)]
pub async fn delete_client_key(state: web::Data<AppState>, caller: Caller<Clients>, id: web::Path<String>) -> Reply {
    let manager = caller.manager(Op::DeleteKey)?;
    let uuid = parse_key_id(&id).ok_or_else(|| ApiError::invalid("api_key_id", BAD_ID))?;
    let deleted = state.manage(&manager).delete_key(KeyRef::Uuid(uuid)).await?;
    Ok(envelope(
        StatusCode::OK,
        "API Key deleted successfully",
        DeletedClientKey { deleted_id: deleted.uuid, deleted_at: deleted.deleted_at },
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
    #[schema(schema_with = super::bodies::bulk_ids_schema)]
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
        (status = 403, description = "No write on `/`", body = ClientsError),
        (status = 404, description = "An unknown, out-of-scope or deleted id (named); nothing deleted", body = ClientsError),
    )
)]
pub async fn bulk_delete_client_keys(
    state: web::Data<AppState>,
    caller: Caller<Clients>,
    body: web::Json<BulkBody>,
) -> Reply {
    let manager = caller.manager(Op::DeleteKeys)?;
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
        let shown: Vec<String> = bad
            .iter()
            .take(MAX_BAD_IDS_SHOWN)
            .map(|b| redact(&b.chars().take(MAX_BAD_ID_CHARS).collect::<String>()))
            .collect();
        return Err(ApiError::invalid("api_key_ids", format!("{BAD_ID}: {}", shown.join(", "))).into());
    }
    let mut uuids: Vec<Uuid> = raw.iter().filter_map(|r| parse_key_id(r)).collect();
    let mut seen = std::collections::HashSet::new();
    uuids.retain(|u| seen.insert(*u));
    let deleted = state.manage(&manager).delete_keys(uuids).await?;
    let deleted_at = deleted.first().and_then(|k| k.deleted_at);
    let ids: Vec<Uuid> = deleted.iter().map(|k| k.uuid).collect();
    Ok(envelope(StatusCode::OK, "API Keys deleted successfully", DeletedClientKeys { deleted_ids: ids, deleted_at }))
}
