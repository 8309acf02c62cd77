//! The HTTP layer: every route, listed once, and the app built from them. Each family lives
//! in its own file (`native`, `applications`, `clients`, `shard`; `edge` for verify and
//! forward-auth) and only parses requests and renders answers: the rules are the core's
//! (`service`). `envelope` renders errors per family, `extract` turns credentials into
//! callers, `middleware` gives every request an id, header limits and an access-log line;
//! `connection` serves connections and holds each to its limits (request deadline,
//! pipelining, watchdog, connections per client address); `admin` is the admin page at
//! `/admin` (HTML, not an API family). The extractor configs below make
//! JSON, query and payload failures, unknown routes and wrong methods go through the same
//! envelopes.

pub mod admin;
mod applications;
mod audit;
pub mod bodies;
mod clients;
pub mod connection;
mod edge;
pub mod envelope;
pub mod extract;
pub mod fleet;
pub mod metrics;
pub mod middleware;
mod native;
pub mod openapi;
mod readyz;
pub mod request_id;
mod shard;
pub mod tls;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{middleware as actix_middleware, web, App, Error, HttpRequest, HttpResponse, Resource};

use crate::config::{MAX_BODY_BYTES, MAX_BULK_BODY_BYTES};
use crate::error::{ApiError, Missing};
use crate::service::AppState;
use envelope::{render_for_path, Applications, Clients, Failure, Family, Native, Shard};

/// The whole application: state, request ids and access log, every route. `main` and the
/// tests build it alike, so both serve exactly the same routes and middleware.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    // Fleet mode only: a single node's requests never pass the fleet middleware.
    let in_fleet = state.db.fleet().is_some();
    App::new()
        .app_data(state)
        .wrap(actix_middleware::Condition::new(in_fleet, actix_middleware::from_fn(fleet::revisions)))
        .wrap(actix_middleware::from_fn(middleware::request_context))
        .configure(configure)
}

/// Registers what the separate metrics listener (`--metrics-bind`) serves: `GET /metrics`
/// with no credential, and nothing else (404 for any other path). The server builds that
/// app as `App::new().app_data(state).configure(metrics_only)`.
pub fn metrics_only(cfg: &mut web::ServiceConfig) {
    cfg.service(resource::<Native>("", metrics::METRICS_PATH).route(web::get().to(metrics::open_metrics)))
        .default_service(web::to(unknown_route));
}

/// The route template a request matched, as a metrics label: its entry in [`ROUTES`] for
/// `pattern` (what actix's `match_pattern` gives), or `unmatched`. Never the request's path.
pub fn route_template(pattern: Option<&str>) -> &'static str {
    pattern.and_then(|p| ROUTES.iter().find(|r| r.path == p)).map_or("unmatched", |r| r.path)
}

/// One route: its path (actix and OpenAPI write `{param}` alike) and the methods it answers.
#[derive(Debug)]
pub struct Route {
    /// Full path pattern.
    pub path: &'static str,
    /// Methods served; any other answers 405 with these in `Allow`.
    pub methods: &'static [Method],
}

/// Where the applications family lives.
pub const APPLICATIONS: &str = "/api/v1/applications";
/// Where the clients family lives.
pub const CLIENTS: &str = "/api/clients";
/// Where the native family lives.
pub const NATIVE: &str = "/api/v1";
/// Where the shard-node family lives.
pub const SHARD: &str = "/api-key";
/// The one route whose body may be larger than [`MAX_BODY_BYTES`].
const BULK_DELETE: &str = "/api/clients/api-keys/bulk";

/// The largest body the route at `path` accepts.
pub fn body_limit(path: &str) -> usize {
    if path == BULK_DELETE {
        MAX_BULK_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// What `/auth` answers: any method. These are the ones the OpenAPI document lists.
const ANY: &[Method] =
    &[Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD, Method::OPTIONS];

/// Every route the app serves, once. [`configure`] takes each resource's methods (and so its
/// `Allow` header) from here and refuses to register a path missing from it; tests/it/openapi.rs
/// checks that the app serves exactly these (method, path) pairs and that the OpenAPI
/// document lists exactly these.
pub const ROUTES: &[Route] = &[
    Route { path: "/healthz", methods: &[Method::GET] },
    Route { path: "/readyz", methods: &[Method::GET] },
    Route { path: "/metrics", methods: &[Method::GET] },
    Route { path: "/openapi.json", methods: &[Method::GET] },
    Route { path: "/auth", methods: ANY },
    Route { path: "/api/v1/applications", methods: &[Method::GET, Method::POST] },
    Route { path: "/api/v1/applications/{id}", methods: &[Method::GET] },
    Route { path: "/api/v1/applications/{id}/api-keys", methods: &[Method::GET, Method::POST] },
    Route { path: "/api/v1/applications/{id}/api-keys/{keyId}", methods: &[Method::DELETE] },
    Route { path: "/api/clients/login", methods: &[Method::POST] },
    Route { path: "/api/clients/api-keys", methods: &[Method::GET, Method::POST] },
    Route { path: "/api/clients/api-keys/bulk", methods: &[Method::DELETE] },
    Route { path: "/api/clients/api-keys/{api_key_id}", methods: &[Method::DELETE] },
    Route { path: "/api/v1/keys", methods: &[Method::GET, Method::POST] },
    Route { path: "/api/v1/keys/verify", methods: &[Method::POST] },
    Route { path: "/api/v1/auth/token", methods: &[Method::POST] },
    Route { path: "/api/v1/keys/{id}", methods: &[Method::GET, Method::PATCH, Method::DELETE] },
    Route { path: "/api/v1/keys/{id}/rotate", methods: &[Method::POST] },
    Route { path: "/api/v1/audit", methods: &[Method::GET] },
    Route { path: "/api-key", methods: &[Method::POST, Method::DELETE] },
];

/// Registers every route.
fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource::<Native>("", "/healthz").route(web::get().to(healthz)))
        .service(resource::<Native>("", "/readyz").route(web::get().to(readyz::readyz)))
        .service(resource::<Native>("", metrics::METRICS_PATH).route(web::get().to(metrics::metrics)))
        .service(resource::<Native>("", "/openapi.json").route(web::get().to(openapi::serve)))
        .service(
            resource::<Native>("", "/auth")
                .app_data(query_config::<Native>())
                .route(web::route().to(edge::forward_auth)),
        )
        .service(
            web::scope(APPLICATIONS)
                .app_data(json_config::<Applications>())
                .app_data(query_config::<Applications>())
                .service(
                    resource::<Applications>(APPLICATIONS, "")
                        .route(web::get().to(applications::list_applications))
                        .route(web::post().to(applications::create_application)),
                )
                .service(
                    resource::<Applications>(APPLICATIONS, "/{id}").route(web::get().to(applications::get_application)),
                )
                .service(
                    resource::<Applications>(APPLICATIONS, "/{id}/api-keys")
                        .route(web::get().to(applications::list_keys_of_application))
                        .route(web::post().to(applications::create_key)),
                )
                .service(
                    resource::<Applications>(APPLICATIONS, "/{id}/api-keys/{keyId}")
                        .route(web::delete().to(applications::revoke_key)),
                )
                .default_service(web::to(unknown_route)),
        )
        .service(
            web::scope(CLIENTS)
                .app_data(json_config::<Clients>())
                .app_data(query_config::<Clients>())
                .service(resource::<Clients>(CLIENTS, "/login").route(web::post().to(clients::login)))
                .service(
                    resource::<Clients>(CLIENTS, "/api-keys")
                        .route(web::get().to(clients::list_client_keys))
                        .route(web::post().to(clients::generate_client_key)),
                )
                // Registered before /{api_key_id}, so "bulk" is never read as a key id.
                .service(
                    resource::<Clients>(CLIENTS, "/api-keys/bulk")
                        .app_data(json_config::<Clients>().limit(body_limit(BULK_DELETE)))
                        .route(web::delete().to(clients::bulk_delete_client_keys)),
                )
                .service(
                    resource::<Clients>(CLIENTS, "/api-keys/{api_key_id}")
                        .route(web::delete().to(clients::delete_client_key)),
                )
                .default_service(web::to(unknown_route)),
        )
        .service(
            web::scope(NATIVE)
                .app_data(json_config::<Native>())
                .app_data(query_config::<Native>())
                .service(
                    resource::<Native>(NATIVE, "/keys")
                        .route(web::get().to(native::list_keys))
                        .route(web::post().to(native::create_key)),
                )
                .service(resource::<Native>(NATIVE, "/keys/verify").route(web::post().to(edge::verify_key)))
                .service(resource::<Native>(NATIVE, "/auth/token").route(web::post().to(native::create_token)))
                .service(
                    resource::<Native>(NATIVE, "/keys/{id}")
                        .route(web::get().to(native::get_key))
                        .route(web::patch().to(native::update_key))
                        .route(web::delete().to(native::revoke_key)),
                )
                .service(resource::<Native>(NATIVE, "/keys/{id}/rotate").route(web::post().to(native::rotate_key)))
                .service(resource::<Native>(NATIVE, "/audit").route(web::get().to(audit::list_audit)))
                .default_service(web::to(unknown_route)),
        )
        .service(
            resource::<Shard>("", SHARD)
                .app_data(json_config::<Shard>())
                .app_data(query_config::<Shard>())
                .route(web::post().to(shard::create_key))
                .route(web::delete().to(shard::delete_key_by_value)),
        )
        // The admin page's HTML routes: not an API, so not in ROUTES or the OpenAPI document.
        .configure(admin::configure)
        .default_service(web::to(unknown_route));
}

/// GET /healthz: no auth, no database work. 200 `ok`. The benchmark's ceiling.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "Serving", body = String, content_type = "text/plain", example = "ok"))
)]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Any unmatched path: 404 in the envelope of the family the path belongs to.
async fn unknown_route(req: HttpRequest) -> HttpResponse {
    render_for_path(req.path(), ApiError::NotFound(Missing::Route))
}

/// The resource at `path` inside `scope`, whose unmatched methods answer 405 with `Allow`
/// (its methods in [`ROUTES`]), in family `F`'s envelope.
///
/// # Panics
/// When `scope` + `path` is not in [`ROUTES`]: a route the document would not list. Every
/// test builds the app, so this cannot reach a release unnoticed.
fn resource<F: Family>(scope: &str, path: &str) -> Resource {
    let full = format!("{scope}{path}");
    let allowed = ROUTES
        .iter()
        .find(|r| r.path == full)
        .map(|r| r.methods)
        .unwrap_or_else(|| panic!("route {full} is registered but missing from api::ROUTES"));
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(Failure::<F>::from(ApiError::MethodNotAllowed(allowed)))
    }))
}

fn json_config<F: Family>() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _req| Failure::<F>::from(envelope::from_json_error(&err)).into())
}

fn query_config<F: Family>() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let message = format!("Invalid query string: {}", crate::domain::key_format::redact(&err.to_string()));
        Failure::<F>::from(ApiError::invalid_body(message)).into()
    })
}
