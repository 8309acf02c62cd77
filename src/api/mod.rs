//! Every route, listed once. Each family lives in its own file and renders errors in its own
//! envelope; the extractor configs below make JSON, query and payload failures, unknown
//! routes and wrong methods go through the same envelopes.

mod applications;
mod body;
mod clients;
mod native;
mod session;
mod shard;
mod verify;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse, Resource};

use crate::config::{MAX_BODY_BYTES, MAX_BULK_BODY_BYTES};
use crate::error::{render_for_path, ApiError, Applications, Clients, Failure, Family, Native, Shard};

/// Registers every route. Used by `main` and by the tests, so both serve the same app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .service(web::resource("/auth").app_data(query_config::<Native>()).route(web::route().to(verify::forward_auth)))
        .service(
            web::scope("/api/v1/applications")
                .app_data(json_config::<Applications>())
                .app_data(query_config::<Applications>())
                .service(
                    resource::<Applications>("", &[Method::GET, Method::POST])
                        .route(web::get().to(applications::list_applications))
                        .route(web::post().to(applications::create_application)),
                )
                .service(
                    resource::<Applications>("/{id}", &[Method::GET])
                        .route(web::get().to(applications::get_application)),
                )
                .service(
                    resource::<Applications>("/{id}/api-keys", &[Method::GET, Method::POST])
                        .route(web::get().to(applications::list_keys_of_application))
                        .route(web::post().to(applications::create_key)),
                )
                .service(
                    resource::<Applications>("/{id}/api-keys/{keyId}", &[Method::DELETE])
                        .route(web::delete().to(applications::revoke_key)),
                )
                .default_service(web::to(unknown_route)),
        )
        .service(
            web::scope("/api/clients")
                .app_data(json_config::<Clients>())
                .app_data(query_config::<Clients>())
                .service(resource::<Clients>("/login", &[Method::POST]).route(web::post().to(clients::login)))
                .service(
                    resource::<Clients>("/api-keys", &[Method::GET, Method::POST])
                        .route(web::get().to(clients::list_client_keys))
                        .route(web::post().to(clients::generate_client_key)),
                )
                // Registered before /{api_key_id}, so "bulk" is never read as a key id.
                .service(
                    resource::<Clients>("/api-keys/bulk", &[Method::DELETE])
                        .app_data(json_config::<Clients>().limit(MAX_BULK_BODY_BYTES))
                        .route(web::delete().to(clients::bulk_delete_client_keys)),
                )
                .service(
                    resource::<Clients>("/api-keys/{api_key_id}", &[Method::DELETE])
                        .route(web::delete().to(clients::delete_client_key)),
                )
                .default_service(web::to(unknown_route)),
        )
        .service(
            web::scope("/api/v1")
                .app_data(json_config::<Native>())
                .app_data(query_config::<Native>())
                .service(
                    resource::<Native>("/keys", &[Method::GET, Method::POST])
                        .route(web::get().to(native::list_keys))
                        .route(web::post().to(native::create_key)),
                )
                .service(resource::<Native>("/keys/verify", &[Method::POST]).route(web::post().to(verify::verify_key)))
                .service(
                    resource::<Native>("/auth/token", &[Method::POST]).route(web::post().to(session::create_token)),
                )
                .service(
                    resource::<Native>("/keys/{id}", &[Method::GET, Method::DELETE])
                        .route(web::get().to(native::get_key))
                        .route(web::delete().to(native::revoke_key)),
                )
                .default_service(web::to(unknown_route)),
        )
        .service(
            resource::<Shard>("/api-key", &[Method::POST, Method::DELETE])
                .app_data(json_config::<Shard>())
                .app_data(query_config::<Shard>())
                .route(web::post().to(shard::create_key))
                .route(web::delete().to(shard::delete_key_by_value)),
        )
        .default_service(web::to(unknown_route));
}

/// GET /healthz: no auth, no database work. 200 `ok`. The benchmark's ceiling.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Any unmatched path: 404 in the envelope of the family the path belongs to.
async fn unknown_route(req: HttpRequest) -> HttpResponse {
    render_for_path(req.path(), ApiError::NotFound("No such route".into()))
}

/// A resource whose unmatched methods answer 405 with `Allow`, in family `F`'s envelope.
fn resource<F: Family>(path: &str, allowed: &'static [Method]) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(Failure::<F>::from(ApiError::MethodNotAllowed(allowed)))
    }))
}

fn json_config<F: Family>() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _req| Failure::<F>::from(ApiError::from_json(&err)).into())
}

fn query_config<F: Family>() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let message = format!("Invalid query string: {}", crate::keys::redact(&err.to_string()));
        Failure::<F>::from(ApiError::BadRequest { code: "invalid_request", message, field: None }).into()
    })
}
