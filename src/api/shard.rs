//! The shard-node `/api-key` family (seed 004): create with a permissions bitmask and one
//! path, delete by the key's value. The seed leaves response bodies open; ours are
//! documented in the README. Errors are `{"error": code, "message", "request_id"}`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::body::no_store;
use crate::auth::{Manager, RootCaller};
use crate::config::MAX_BODY_BYTES;
use crate::error::{ApiError, Failure, Shard};
use crate::grants::{Access, GrantPath, Grants};
use crate::keys::ApiKey;
use crate::manage::{self, KeySpec};
use crate::timestamp::Timestamp;
use crate::AppState;

type Reply = Result<HttpResponse, Failure<Shard>>;

/// `expiration_date` meaning "never" (Go's zero `time.Time`).
const NEVER: &str = "0001-01-01T00:00:00Z";

/// Body of POST /api-key; all three fields are required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    permissions: u8,
    path: String,
    expiration_date: String,
}

/// POST /api-key — needs a root key (read_write on `/`, no expiry). 200
/// `{value, id, uuid, path, permissions, expiration_date, created_at}`; 400; 401; 403; 413; 415.
pub async fn create_key(
    state: web::Data<AppState>,
    RootCaller(caller): RootCaller<Shard>,
    body: web::Json<CreateBody>,
) -> Reply {
    let access = Access::from_bits(body.permissions)
        .ok_or_else(|| ApiError::invalid("permissions", "permissions must be 1 (read), 2 (write) or 3 (read+write)"))?;
    let path = GrantPath::parse(&body.path).map_err(|e| ApiError::invalid("path", format!("Invalid path: {e}")))?;
    let expiry = Timestamp::parse_rfc3339(&body.expiration_date)
        .map_err(|e| ApiError::invalid("expiration_date", format!("Invalid expiration_date: {e}")))?;
    let never = Timestamp::parse_rfc3339(NEVER).map_err(|e| ApiError::internal(&e))?;
    let expires_at = (expiry != never).then_some(expiry);
    let ctx = caller.audit();
    let title = format!("shard key {path}");
    let grants = Some(Grants::single(path.clone(), access));
    let spec = KeySpec::minted_by(&caller.key, title, grants, expires_at, ctx.at)?;
    let key = manage::generate_key()?;
    let stored = key.clone();
    let record = state.db.write(move |conn| manage::insert_new_key(conn, &spec, &stored, &ctx)).await?;
    Ok(no_store(HttpResponse::Ok().json(serde_json::json!({
        "value": key.expose(),
        "id": record.id,
        "uuid": record.uuid,
        "path": path.as_str(),
        "permissions": access.bits(),
        "expiration_date": record.expires_at.map_or_else(|| NEVER.to_owned(), |t| t.to_string()),
        "created_at": record.created_at,
    }))))
}

/// `?value=` of DELETE /api-key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueQuery {
    value: Option<String>,
}

/// JSON body of DELETE /api-key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueBody {
    value: Option<String>,
}

/// DELETE /api-key — needs write on `/`. The key to delete comes as `{"value"}` or
/// `?value=` (the seed's own clients send the query and no body); both given and different
/// is 400. 200 `{id, uuid, status: "deleted", deleted_at}`; 400 missing, empty or malformed
/// value, or the caller's own key; 401; 403; 404 no such active key in the caller's scope.
pub async fn delete_key_by_value(
    state: web::Data<AppState>,
    Manager(caller): Manager<Shard>,
    query: web::Query<ValueQuery>,
    payload: web::Payload,
) -> Reply {
    let body = read_small_body(payload).await?;
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<ValueBody>(&body).map_err(|e| ApiError::from_serde(&e))?.value
    };
    let value = match (query.into_inner().value, from_body) {
        (Some(q), Some(b)) if q != b => {
            return Err(ApiError::invalid("value", "value given in both query and body, and they differ").into())
        }
        (q, b) => q.or(b),
    };
    let value = value.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::invalid("value", "value is required"))?;
    let key = ApiKey::parse(&value).map_err(|_| ApiError::invalid("value", "value is not a well-formed API key"))?;
    let ctx = caller.audit();
    let scope = caller.key.scope();
    let current = Some(caller.key.id);
    let record = state.db.write(move |conn| manage::delete_key_by_value(conn, scope, current, &key, &ctx)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": record.id,
        "uuid": record.uuid,
        "status": "deleted",
        "deleted_at": record.deleted_at,
    })))
}

/// Reads an optional body of at most [`MAX_BODY_BYTES`]; more is 413.
async fn read_small_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::invalid("body", "Request body could not be read")),
        Err(_limit_exceeded) => Err(ApiError::PayloadTooLarge),
    }
}
