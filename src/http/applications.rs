//! The applications family: tenants and their keys under `/api/v1/applications`, addressed
//! by UUID, errors as `{error, message, code, details}`. A key of an application sees and
//! manages only that application; a global key with write on `/` manages every application.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::bodies::{no_store, NewKeyBody, NewUuidKey, PageQuery, UuidKeyPage, UuidKeyView};
use super::envelope::schema::ApplicationsError;
use super::envelope::{Applications, Failure};
use super::extract::Manager;
use crate::domain::model::Application;
use crate::domain::new_key::Title;
use crate::error::ApiError;
use crate::service::manage::KeyQuery;
use crate::service::scope::KeyRef;
use crate::service::AppState;

type Reply = Result<HttpResponse, Failure<Applications>>;

/// Parses a UUID path segment; `field` names it in the 400's details.
pub fn parse_uuid(raw: &str, field: &'static str) -> Result<Uuid, ApiError> {
    // Only the hyphenated 36-character form: the one the family's contract shows and every client sends.
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
    #[schema(schema_with = super::bodies::title_schema, required = true)]
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
        (status = 403, description = "Not a global key with write on `/`", body = ApplicationsError),
    )
)]
pub async fn create_application(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Applications>,
    body: web::Json<CreateApplicationBody>,
) -> Reply {
    // Refused before the body is looked at, as for every other privilege check.
    manager.clone().global()?;
    let name =
        Title::from_json(body.name.as_ref()).map_err(|e| ApiError::invalid("name", format!("Invalid name: {e}")))?;
    let app = state.manage(&manager).create_application(name).await?;
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
        (status = 403, description = "No write on `/`", body = ApplicationsError),
    )
)]
pub async fn list_applications(state: web::Data<AppState>, Manager(manager, _): Manager<Applications>) -> Reply {
    let apps = state.manage(&manager).list_applications().await?;
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
        (status = 403, description = "No write on `/`", body = ApplicationsError),
        (status = 404, description = "No such application in scope", body = ApplicationsError),
    )
)]
pub async fn get_application(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Applications>,
    id: web::Path<String>,
) -> Reply {
    let app = state.manage(&manager).get_application(parse_uuid(&id, "id")?).await?;
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
        (status = 403, description = "No write on `/`, or grants or expiry beyond the caller's", body = ApplicationsError),
        (status = 404, description = "No such application in scope", body = ApplicationsError),
    )
)]
pub async fn create_key(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Applications>,
    id: web::Path<String>,
    body: web::Json<NewKeyBody>,
) -> Reply {
    let uuid = parse_uuid(&id, "id")?;
    let mut new = body.into_inner().parse()?;
    new.application = Some(uuid);
    let made = state.manage(&manager).create_key(new).await?;
    let view = NewUuidKey {
        view: UuidKeyView::new(&made.record, made.record.created_at),
        api_key: made.key.expose().to_owned(),
    };
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
        (status = 403, description = "No write on `/`", body = ApplicationsError),
        (status = 404, description = "No such application in scope", body = ApplicationsError),
    )
)]
pub async fn list_keys_of_application(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Applications>,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Reply {
    let uuid = parse_uuid(&id, "id")?;
    let query_keys = KeyQuery { application: Some(uuid), ..KeyQuery::default() };
    let page = state.manage(&manager).list_keys(query_keys, query.parse()?).await?;
    let now = state.now_showing(page.keys.iter().map(|k| k.expires_at)).await;
    let keys: Vec<UuidKeyView> = page.keys.iter().map(|k| UuidKeyView::new(k, now)).collect();
    Ok(HttpResponse::Ok().json(UuidKeyPage { api_keys: keys, next_cursor: page.next_cursor }))
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
        (status = 403, description = "No write on `/`", body = ApplicationsError),
        (status = 404, description = "No such application or key in scope, or a deleted key", body = ApplicationsError),
    )
)]
pub async fn revoke_key(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Applications>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (app_raw, key_raw) = path.into_inner();
    let target =
        KeyRef::InApplication { application: parse_uuid(&app_raw, "id")?, key: parse_uuid(&key_raw, "keyId")? };
    state.manage(&manager).revoke_key(target).await?;
    Ok(HttpResponse::Ok().json(Empty {}))
}
