//! The clients family (seed 003): the caller's own keys (its application's, or every key for
//! a global caller), addressed by UUID, in the `{status, message, data}` envelope, with JWT
//! login. Deletion here is permanent for the secret; the metadata stays, marked deleted.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::body::{no_store, paginate, NewKeyBody, PageQuery, UuidKeyView};
use crate::auth::Caller;
use crate::error::{ApiError, Clients, Failure};
use crate::manage::{self, KeySpec};
use crate::store::keys::list_keys;
use crate::timestamp::Timestamp;
use crate::AppState;

type Reply = Result<HttpResponse, Failure<Clients>>;

/// Most ids one bulk delete may name.
pub const MAX_BULK: usize = 1000;
const BAD_ID: &str = "Invalid API key ID format";

/// `{"status", "message", "data"}` with the status mirrored in the HTTP status line.
fn envelope(status: StatusCode, message: &str, data: impl Serialize) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "status": status.as_u16(), "message": message, "data": data }))
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The key to log in with.
    pub api_key: String,
}

/// POST /api/clients/login `{"api_key"}` — no caller needed: the key is the credential.
/// 200 `{status, message, data: {token, expires_at}}`; 400 bad body; 401 bad key.
pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: web::Json<LoginBody>) -> Reply {
    let (token, expires_at) = super::session::issue(&state, &req, &body.api_key)?;
    Ok(no_store(envelope(
        StatusCode::OK,
        "Login successful",
        serde_json::json!({ "token": token, "token_type": "Bearer", "expires_at": expires_at }),
    )))
}

/// GET /api/clients/api-keys — needs write on `/` in scope. 200 `{api_keys, next_cursor}`.
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
    Ok(envelope(
        StatusCode::OK,
        "API Keys retrieved successfully",
        serde_json::json!({ "api_keys": keys, "next_cursor": next_cursor }),
    ))
}

/// POST /api/clients/api-keys — needs write on `/` in scope. 201 with the key's metadata and
/// `api_key` (the plaintext, this once); 400; 401; 403.
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
    let mut view =
        serde_json::to_value(UuidKeyView::new(&record, record.created_at)).map_err(|e| ApiError::internal(&e))?;
    view["api_key"] = serde_json::Value::from(key.expose());
    Ok(no_store(envelope(StatusCode::CREATED, "API Key generated successfully", view)))
}

/// DELETE /api/clients/api-keys/{api_key_id} — needs write on `/` in scope. 200
/// `{deleted_id, deleted_at}`; 400 "Invalid API key ID format" (or the caller's own key);
/// 401 "Invalid JWT token"; 403 "Insufficient permissions to delete this API key";
/// 404 "API Key not found" (also another application's key, or one already deleted).
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
        serde_json::json!({ "deleted_id": first.uuid, "deleted_at": first.deleted_at }),
    ))
}

/// Body of DELETE /api/clients/api-keys/bulk.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    api_key_ids: Vec<String>,
}

/// DELETE /api/clients/api-keys/bulk `{"api_key_ids": [...]}` — needs write on `/` in
/// scope. All or nothing, in one transaction: 200 `{deleted_ids, deleted_at}`; 400 empty,
/// over 1000, or any malformed id (named); 404 any unknown, out-of-scope or already deleted
/// id (named), and then nothing is deleted. Repeated ids count once.
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
    Ok(envelope(
        StatusCode::OK,
        "API Keys deleted successfully",
        serde_json::json!({ "deleted_ids": ids, "deleted_at": deleted_at }),
    ))
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
