//! The native `/api/v1/keys` family (seeds 000 and 002): create, list, get and revoke by
//! numeric id, in the `{success, data, request_id}` envelope.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::body::{native_ok, no_store, paginate, parse_grants_and_expiry, KeyView, PageQuery};
use crate::auth::Manager;
use crate::error::{ApiError, Failure, Native};
use crate::grants::GrantBody;
use crate::manage::{self, KeySpec};
use crate::model::{KeyId, Status};
use crate::store::keys::{find_key_by_id, list_keys as select_keys};
use crate::timestamp::Timestamp;
use crate::AppState;

type Reply = Result<HttpResponse, Failure<Native>>;

/// Body of POST /api/v1/keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    /// Checked by hand so every wrong shape gets the same "Invalid title" answer.
    title: Option<serde_json::Value>,
    grants: Option<Vec<GrantBody>>,
    expires_at: Option<String>,
}

/// POST /api/v1/keys — needs write on `/`. 200 with the plaintext (once); 400 bad body;
/// 401; 403 grants or expiry beyond the caller's; 413; 415.
pub async fn create_key(
    state: web::Data<AppState>,
    Manager(caller): Manager<Native>,
    body: web::Json<CreateKeyBody>,
) -> Reply {
    let body = body.into_inner();
    let title = manage::validate_title(body.title.as_ref(), "title")?;
    let (grants, expires_at) = parse_grants_and_expiry(body.grants.as_deref(), body.expires_at.as_deref())?;
    let ctx = caller.audit();
    let spec = KeySpec::minted_by(&caller.key, title, grants, expires_at, ctx.at)?;
    let key = manage::generate_key()?;
    let stored = key.clone();
    let record = state.db.write(move |conn| manage::insert_new_key(conn, &spec, &stored, &ctx)).await?;
    Ok(no_store(native_ok(serde_json::json!({
        "id": record.id,
        "uuid": record.uuid,
        "title": record.title,
        "status": "created",
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "prefix": record.prefix,
        "grants": record.grants.to_bodies(),
        "api_key": key.expose(),
    }))))
}

/// Query of GET /api/v1/keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    status: Option<String>,
}

/// GET /api/v1/keys — needs write on `/`. Keys in the caller's scope, newest first,
/// `limit` (1..=200, default 50) per page; pass `next_cursor` back as `cursor` for the next page;
/// `status` filters.
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
    Ok(native_ok(serde_json::json!({ "keys": keys, "next_cursor": next_cursor })))
}

/// GET /api/v1/keys/{id} — needs write on `/`. 200 metadata; 400 non-numeric id; 404.
pub async fn get_key(state: web::Data<AppState>, Manager(caller): Manager<Native>, id: web::Path<String>) -> Reply {
    let id = parse_id(&id)?;
    let scope = caller.key.scope();
    let found = state.db.read(move |conn| Ok::<_, ApiError>(find_key_by_id(conn, id, scope)?)).await?;
    let record = found.ok_or(ApiError::NotFound("API key not found".into()))?;
    Ok(native_ok(KeyView::new(&record, Timestamp::now())))
}

/// DELETE /api/v1/keys/{id} — needs write on `/`. 200 `{id, status: "revoked"}` (also for a
/// key already revoked, so retries are safe); 400 non-numeric id or the caller's own key
/// (`cannot_revoke_current_key`); 404 `not_found`; 409 `key_deleted`.
pub async fn revoke_key(state: web::Data<AppState>, Manager(caller): Manager<Native>, id: web::Path<String>) -> Reply {
    let id = parse_id(&id)?;
    let ctx = caller.audit();
    let scope = caller.key.scope();
    let current = Some(caller.key.id);
    let record = state.db.write(move |conn| manage::revoke_key(conn, scope, current, id, &ctx)).await?;
    Ok(native_ok(serde_json::json!({ "id": record.id, "status": "revoked" })))
}

fn parse_id(raw: &str) -> Result<KeyId, ApiError> {
    KeyId::parse(raw).ok_or_else(|| ApiError::invalid("id", "id must be a positive integer"))
}
