//! `GET /readyz` (no auth): the core's readiness (`service::readiness`) as JSON, 200 when
//! ready, 503 with the reasons when not. For a load balancer or an orchestrator's probe;
//! `/healthz` says only that the process answers.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};

use crate::service::readiness::{self, Readiness};
use crate::service::AppState;

/// GET /readyz — no auth. 200 `{"ready": true, "reasons": [], "checks": [...]}` when the key
/// index is loaded and the database takes writes; else 503 with `ready: false` and why.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; `reasons` says why", body = Readiness),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let readiness = readiness::check(&state).await;
    let mut res = if readiness.ready { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    res.insert_header(CacheControl(vec![CacheDirective::NoStore])).json(readiness)
}
