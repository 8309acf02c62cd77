//! The OpenAPI 3.1 document of every route, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and response types' `ToSchema` derives, and served at
//! `GET /openapi.json` (no auth). The routes themselves are listed in `api::ROUTES`;
//! tests/openapi.rs checks that the two agree.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::auth::USER_API_KEY;

/// The document. Schemas are collected from the paths' bodies; security schemes are added
/// by [`SecuritySchemes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "apikeyd",
        description = "API keys in a local SQLite file, served over HTTP in four API shapes (families). \
            Each family renders errors in its own envelope. Every response carries `x-request-id`. \
            Unknown routes answer 404 and wrong methods 405 with `Allow`, in the family's envelope; \
            request headers over 8 KiB answer 431."
    ),
    paths(
        super::healthz,
        serve,
        super::verify::forward_auth,
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
        super::verify::verify_key,
        super::session::create_token,
        super::native::get_key,
        super::native::revoke_key,
        super::shard::create_key,
        super::shard::delete_key_by_value,
    ),
    modifiers(&SecuritySchemes, &OptionalBody),
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
