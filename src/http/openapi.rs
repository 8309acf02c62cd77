//! The OpenAPI 3.1 document of every route, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and response types' `ToSchema` derives, and served at
//! `GET /openapi.json` (no auth). The routes themselves are listed in `http::ROUTES`; the
//! integration tests check that the two agree. The error responses every operation of a
//! kind has (401 and 429 where a credential is needed, 413 and 415 where a JSON body is
//! taken, 503 where it writes) are added once, by [`CommonResponses`], with the limits
//! from `config`.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::config::DEFAULT_PAGE_SIZE;
use crate::http::bodies::page_limit_schema;
use crate::http::envelope::FamilyName;
use crate::http::extract::USER_API_KEY;

/// The document. Schemas are collected from the paths' bodies; security schemes are added
/// by [`SecuritySchemes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "apikeyd",
        description = "API keys in a local SQLite file, served over HTTP in four API shapes (families). \
            Each family renders errors in its own envelope. Every response carries `x-request-id`. \
            Unknown routes answer 404 and wrong methods 405 with `Allow`, in the family's envelope; \
            request headers over 8 KiB answer 431. A body that has not arrived within the request deadline \
            answers 408, and a connection past its client address's cap 503 with `Retry-After`, in the route's \
            envelope; both close the connection."
    ),
    paths(
        super::healthz,
        super::fleet::readyz,
        serve,
        super::edge::forward_auth,
        super::applications::list_applications,
        super::applications::create_application,
        super::applications::get_application,
        super::applications::list_keys_of_application,
        super::applications::create_key,
        super::applications::revoke_key,
        super::clients::login,
        super::clients::list_client_keys,
        super::clients::generate_client_key,
        super::clients::bulk_delete_client_keys,
        super::clients::delete_client_key,
        super::native::list_keys,
        super::native::create_key,
        super::edge::verify_key,
        super::native::create_token,
        super::native::get_key,
        super::native::update_key,
        super::native::revoke_key,
        super::native::rotate_key,
        super::audit::list_audit,
        super::shard::create_key,
        super::shard::delete_key_by_value,
    ),
    modifiers(&SecuritySchemes, &OptionalBody, &CommonResponses, &PageSize),
    tags(
        (name = "native", description = "`/api/v1/keys…`: `{success, data, request_id}` envelope"),
        (name = "verify", description = "Verification at the edge"),
        (name = "applications", description = "`/api/v1/applications…`: tenants and their keys"),
        (name = "clients", description = "`/api/clients…`: `{status, message, data}` envelope"),
        (name = "shard", description = "`/api-key`: the shard-node family"),
        (name = "health", description = "Liveness and this document"),
    )
)]
pub struct ApiDoc;

/// Adds the two ways to present a credential. Operations that need one list both as
/// alternatives; the rest (verify, login, token, healthz, this document) list none.
pub struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`sk-…`) or a session JWT from a login call"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                USER_API_KEY.as_str(),
                "An API key (`sk-…`); if sent with `Authorization`, both must name the same key",
            ))),
        );
    }
}

/// Marks DELETE /api-key's body as optional. utoipa makes a body optional only when its type
/// is an `Option`, which would also document a JSON `null` body, and that is refused (400).
pub struct OptionalBody;

impl Modify for OptionalBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let body = openapi
            .paths
            .paths
            .get_mut("/api-key")
            .and_then(|p| p.delete.as_mut())
            .and_then(|op| op.request_body.as_mut());
        if let Some(body) = body {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// Adds to every operation of a family the error responses its kind of operation has, in
/// the family's error schema, unless the operation documents that status itself: 401 and
/// 429 where a credential is needed, 413 (with the route's body limit) wherever a body is
/// taken and 415 where that body is required JSON, 503 where a credentialed call writes.
/// Forward-auth answers with bare statuses and documents its own.
pub struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path == "/auth" {
                continue;
            }
            let family = FamilyName::of_path(path);
            let operations = [
                (HttpMethod::Get, &mut item.get),
                (HttpMethod::Post, &mut item.post),
                (HttpMethod::Put, &mut item.put),
                (HttpMethod::Patch, &mut item.patch),
                (HttpMethod::Delete, &mut item.delete),
            ];
            for (method, op) in operations {
                if let Some(op) = op.as_mut() {
                    add_common_responses(op, method, path, family);
                }
            }
        }
    }
}

fn add_common_responses(op: &mut Operation, method: HttpMethod, path: &str, family: FamilyName) {
    let credentialed = op.security.is_some();
    let body = op.request_body.as_ref().map(|b| b.required != Some(Required::False));
    let writes = credentialed && matches!(method, HttpMethod::Post | HttpMethod::Delete);
    let kib = super::body_limit(path) / 1024;
    let wanted: [(bool, &str, String); 5] = [
        (credentialed, "401", credential_failure(family).to_owned()),
        (body.is_some(), "413", format!("Body over {kib} KiB")),
        (body == Some(true), "415", "Not JSON".to_owned()),
        (credentialed, "429", "Too many failed authentications".to_owned()),
        (writes, "503", "Write queue full".to_owned()),
    ];
    for (applies, status, description) in wanted {
        if applies && !op.responses.responses.contains_key(status) {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name(family.error_schema()))).build();
            let response = ResponseBuilder::new().description(description).content("application/json", content).build();
            op.responses.responses.insert(status.to_owned(), response.into());
        }
    }
}

/// Writes every listing's `limit` parameter from `config`: its default in the description,
/// its range in the schema (`bodies::page_limit_schema`).
pub struct PageSize;

impl Modify for PageSize {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let Some(params) = item.get.as_mut().and_then(|op| op.parameters.as_mut()) else { continue };
            for param in params.iter_mut().filter(|p| p.name == "limit" && p.parameter_in == ParameterIn::Query) {
                param.description = Some(format!("Page size (default {DEFAULT_PAGE_SIZE})."));
                param.schema = Some(page_limit_schema().into());
            }
        }
    }
}

/// How a family's 401 is described.
fn credential_failure(family: FamilyName) -> &'static str {
    match family {
        FamilyName::Clients => "Invalid JWT token (or key)",
        _ => "Missing or bad credential",
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        // Serialising a tree of strings, numbers and maps cannot fail.
        ApiDoc::openapi().to_json().expect("the OpenAPI document serialises")
    })
}

/// GET /openapi.json — no auth. 200 this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    responses((status = 200, description = "This document", body = Object, content_type = "application/json"))
)]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document())
}
