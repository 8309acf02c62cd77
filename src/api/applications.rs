//! The applications family (seed 001): tenants and their keys, addressed by UUID, errors as
//! `{error, message, code, details}`. A key of an application sees and manages only that
//! application; a global key with write on `/` manages every application.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::body::{no_store, paginate, NewKeyBody, NewUuidKey, PageQuery, UuidKeyPage, UuidKeyView};
use crate::auth::Manager;
use crate::error::schema::ApplicationsError;
use crate::error::{ApiError, Applications, Failure};
use crate::manage::{self, KeySpec};
use crate::model::{Application, Scope};
use crate::store::applications::{insert_application, list_applications as select_applications};
use crate::store::audit::insert_application_audit;
use crate::store::keys::{find_key_by_uuid, list_keys};
use crate::timestamp::Timestamp;
use crate::AppState;

type Reply = Result<HttpResponse, Failure<Applications>>;

/// Parses a UUID path segment; `field` names it in the 400's details.
pub fn parse_uuid(raw: &str, field: &'static str) -> Result<Uuid, ApiError> {
    // Only the hyphenated 36-character form: the one the seed shows and every client sends.
    if raw.len() != 36 {
        return Err(ApiError::invalid(field, format!("{field} must be a UUID")));
    }
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid(field, format!("{field} must be a UUID")))
}

/// Body of POST /api/v1/applications.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApplicationBody {
    /// The application's label.
    #[schema(schema_with = super::body::title_schema, required = true)]
    name: Option<serde_json::Value>,
}

/// Body of GET /api/v1/applications.
#[derive(Serialize, ToSchema)]
pub struct ApplicationList {
    /// Every application in the caller's scope.
    applications: Vec<Application>,
}

/// Body of DELETE /api/v1/applications/{id}/api-keys/{keyId}: `{}`.
#[derive(Serialize, ToSchema)]
pub struct Empty {}

/// POST /api/v1/applications — needs a global key with write on `/`. 201 `{id, name,
/// created_at}`; 400; 401; 403 (also for an application's own keys); 413; 415; 429; 503.
#[utoipa::path(
    post,
    path = "/api/v1/applications",
    tag = "applications",
    request_body = CreateApplicationBody,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = Application),
        (status = 400, description = "Bad body", body = ApplicationsError),
        (status = 401, description = "Missing or bad credential", body = ApplicationsError),
        (status = 403, description = "Not a global key with write on `/`", body = ApplicationsError),
        (status = 413, description = "Body over 16 KiB", body = ApplicationsError),
        (status = 415, description = "Not JSON", body = ApplicationsError),
        (status = 429, description = "Too many failed authentications", body = ApplicationsError),
        (status = 503, description = "Write queue full", body = ApplicationsError),
    )
)]
pub async fn create_application(
    state: web::Data<AppState>,
    Manager(caller): Manager<Applications>,
    body: web::Json<CreateApplicationBody>,
) -> Reply {
    if caller.key.scope() != Scope::Global {
        return Err(ApiError::Forbidden("Only a global key can create applications").into());
    }
    let name = manage::validate_title(body.name.as_ref(), "name")?;
    let ctx = caller.audit();
    let app = state
        .db
        .write(move |conn| {
            let app = insert_application(conn, Uuid::new_v4(), &name, ctx.at)?;
            insert_application_audit(conn, app.id, &ctx)?;
            Ok::<_, ApiError>(app)
        })
        .await?;
    Ok(HttpResponse::Created().json(app))
}

/// GET /api/v1/applications — needs write on `/`. 200 `{applications: [...]}`: every
/// application for a global key, its own for an application's key. 401; 403; 429.
#[utoipa::path(
    get,
    path = "/api/v1/applications",
    tag = "applications",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The applications in scope", body = ApplicationList),
        (status = 401, description = "Missing or bad credential", body = ApplicationsError),
        (status = 403, description = "No write on `/`", body = ApplicationsError),
        (status = 429, description = "Too many failed authentications", body = ApplicationsError),
    )
)]
pub async fn list_applications(state: web::Data<AppState>, Manager(caller): Manager<Applications>) -> Reply {
    let only = caller.key.application_id;
    let apps = state.db.read(move |conn| Ok::<_, ApiError>(select_applications(conn, only)?)).await?;
    Ok(HttpResponse::Ok().json(ApplicationList { applications: apps }))
}

/// GET /api/v1/applications/{id} — needs write on `/` in scope. 200; 400 not a UUID; 401;
/// 403; 404; 429.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}",
    tag = "applications",
    params(("id" = Uuid, Path, description = "The application's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The application", body = Application),
        (status = 400, description = "id is not a UUID", body = ApplicationsError),
        (status = 401, description = "Missing or bad credential", body = ApplicationsError),
        (status = 403, description = "No write on `/`", body = ApplicationsError),
        (status = 404, description = "No such application in scope", body = ApplicationsError),
        (status = 429, description = "Too many failed authentications", body = ApplicationsError),
    )
)]
pub async fn get_application(
    state: web::Data<AppState>,
    Manager(caller): Manager<Applications>,
    id: web::Path<String>,
) -> Reply {
    let uuid = parse_uuid(&id, "id")?;
    let scope = caller.key.scope();
    let app = state.db.read(move |conn| manage::application_in_scope(conn, uuid, scope)).await?;
    Ok(HttpResponse::Ok().json(app))
}

/// POST /api/v1/applications/{id}/api-keys — needs write on `/` in scope. 201 with the key's
/// metadata and `api_key` (the plaintext, this once); 400; 401; 403 grants or expiry beyond
/// the caller's; 404 application not in scope; 413; 415; 429; 503.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/api-keys",
    tag = "applications",
    params(("id" = Uuid, Path, description = "The application's id")),
    request_body = NewKeyBody,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created; the plaintext is in `api_key`", body = NewUuidKey),
        (status = 400, description = "id not a UUID, or bad body", body = ApplicationsError),
        (status = 401, description = "Missing or bad credential", body = ApplicationsError),
        (status = 403, description = "No write on `/`, or grants or expiry beyond the caller's", body = ApplicationsError),
        (status = 404, description = "No such application in scope", body = ApplicationsError),
        (status = 413, description = "Body over 16 KiB", body = ApplicationsError),
        (status = 415, description = "Not JSON", body = ApplicationsError),
        (status = 429, description = "Too many failed authentications", body = ApplicationsError),
        (status = 503, description = "Write queue full", body = ApplicationsError),
    )
)]
pub async fn create_key(
    state: web::Data<AppState>,
    Manager(caller): Manager<Applications>,
    id: web::Path<String>,
    body: web::Json<NewKeyBody>,
) -> Reply {
    let uuid = parse_uuid(&id, "id")?;
    let (title, grants, expires_at) = body.parse()?;
    let ctx = caller.audit();
    let now = ctx.at;
    let mut spec = KeySpec::minted_by(&caller.key, title, grants, expires_at, now)?;
    let scope = caller.key.scope();
    let key = manage::generate_key()?;
    let stored = key.clone();
    let record = state
        .db
        .write(move |conn| {
            let app = manage::application_in_scope(conn, uuid, scope)?;
            spec.application_id = Some(app.id);
            manage::insert_new_key(conn, &spec, &stored, &ctx)
        })
        .await?;
    let view = NewUuidKey { view: UuidKeyView::new(&record, now), api_key: key.expose().to_owned() };
    Ok(no_store(HttpResponse::Created().json(view)))
}

/// GET /api/v1/applications/{id}/api-keys — needs write on `/` in scope. 200 `{api_keys,
/// next_cursor}`, newest first, never a plaintext or hash; 400; 401; 403; 404; 429.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{id}/api-keys",
    tag = "applications",
    params(("id" = Uuid, Path, description = "The application's id"), PageQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One page of the application's keys", body = UuidKeyPage),
        (status = 400, description = "id not a UUID, or bad query", body = ApplicationsError),
        (status = 401, description = "Missing or bad credential", body = ApplicationsError),
        (status = 403, description = "No write on `/`", body = ApplicationsError),
        (status = 404, description = "No such application in scope", body = ApplicationsError),
        (status = 429, description = "Too many failed authentications", body = ApplicationsError),
    )
)]
pub async fn list_keys_of_application(
    state: web::Data<AppState>,
    Manager(caller): Manager<Applications>,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Reply {
    let uuid = parse_uuid(&id, "id")?;
    let (limit, cursor) = query.parse()?;
    let scope = caller.key.scope();
    let rows = state
        .db
        .read(move |conn| {
            let app = manage::application_in_scope(conn, uuid, scope)?;
            Ok::<_, ApiError>(list_keys(conn, Scope::Application(app.id), cursor, None, limit + 1)?)
        })
        .await?;
    let (page, next_cursor) = paginate(rows, limit);
    let now = Timestamp::now();
    let keys: Vec<UuidKeyView> = page.iter().map(|k| UuidKeyView::new(k, now)).collect();
    Ok(HttpResponse::Ok().json(UuidKeyPage { api_keys: keys, next_cursor }))
}

/// DELETE /api/v1/applications/{id}/api-keys/{keyId} — needs write on `/` in scope. Revokes
/// the key: it fails from the next request, the application's other keys keep working.
/// 200 `{}` (also when already revoked); 400 `id`/`keyId` not a UUID, or the caller's own
/// key; 401; 403; 404 (also a key of another application, or a deleted one); 429; 503.
#[utoipa::path(
    delete,
    path = "/api/v1/applications/{id}/api-keys/{keyId}",
    tag = "applications",
    params(
        ("id" = Uuid, Path, description = "The application's id"),
        ("keyId" = Uuid, Path, description = "The key's UUID"),
    ),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Revoked (or already revoked)", body = Empty),
        (status = 400, description = "id or keyId not a UUID, or the caller's own key", body = ApplicationsError),
        (status = 401, description = "Missing or bad credential", body = ApplicationsError),
        (status = 403, description = "No write on `/`", body = ApplicationsError),
        (status = 404, description = "No such application or key in scope, or a deleted key", body = ApplicationsError),
        (status = 429, description = "Too many failed authentications", body = ApplicationsError),
        (status = 503, description = "Write queue full", body = ApplicationsError),
    )
)]
pub async fn revoke_key(
    state: web::Data<AppState>,
    Manager(caller): Manager<Applications>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (app_raw, key_raw) = path.into_inner();
    let app_uuid = parse_uuid(&app_raw, "id")?;
    let key_uuid = parse_uuid(&key_raw, "keyId")?;
    let ctx = caller.audit();
    let scope = caller.key.scope();
    let current = Some(caller.key.id);
    state
        .db
        .write(move |conn| {
            let app = manage::application_in_scope(conn, app_uuid, scope)?;
            let key = find_key_by_uuid(conn, key_uuid, Scope::Application(app.id))?
                .filter(|k| k.status != crate::model::Status::Deleted)
                .ok_or_else(|| ApiError::NotFound("API key not found".into()))?;
            manage::revoke_key(conn, Scope::Application(app.id), current, key.id, &ctx)
        })
        .await
        .map_err(|e| match e {
            ApiError::BadRequest { code: "cannot_revoke_current_key", message, .. } => {
                ApiError::BadRequest { code: "cannot_revoke_current_key", message, field: Some("keyId") }
            }
            other => other,
        })?;
    Ok(HttpResponse::Ok().json(Empty {}))
}
