//! Fleet mode at the HTTP edge: the middleware that honours `x-apikeyd-min-revision` (wait at
//! most a second for this node to apply it, else 503 in the family's envelope), refuses verify
//! and `/auth` past `--max-staleness`, and stamps `x-apikeyd-revision` on every answer
//! (`GET /readyz` reports freshness through `service::readiness`). The middleware is only
//! wrapped around the app in fleet mode, so a single node's requests never pass it. The judgements are the core's (`service::fleet`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error};

use crate::error::ApiError;
use crate::http::envelope::render_for_path;
use crate::service::{fleet, AppState};

/// Request header: do not answer before this node has applied this revision.
pub const MIN_REVISION: &str = "x-apikeyd-min-revision";
/// Response header: the revision this node had applied when it answered (for a write, its own
/// revision or a later one).
pub const REVISION: &str = "x-apikeyd-revision";

/// Middleware (fleet mode only): see the module doc.
pub async fn revisions(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let refusal = match min_revision(&req) {
        Err(e) => Some(e),
        Ok(Some(wanted)) => fleet::wait_for_revision(&state.db, wanted).await.err(),
        Ok(None) => None,
    };
    let refusal = refusal.or_else(|| {
        let edge = req.path() == "/auth" || req.path() == "/api/v1/keys/verify";
        if edge {
            fleet::ensure_fresh_enough(&state.db).err()
        } else {
            None
        }
    });
    let mut res = match refusal {
        Some(e) => {
            let body = render_for_path(req.path(), e);
            req.into_response(body).map_into_right_body()
        }
        None => next.call(req).await?.map_into_left_body(),
    };
    if let Some(revision) = fleet::applied_revision(&state.db) {
        if let Ok(v) = HeaderValue::from_str(&revision.to_string()) {
            res.headers_mut().insert(HeaderName::from_static(REVISION), v);
        }
    }
    Ok(res)
}

/// The `x-apikeyd-min-revision` header: absent, or a non-negative integer (else 400).
fn min_revision(req: &ServiceRequest) -> Result<Option<i64>, ApiError> {
    let Some(value) = req.headers().get(MIN_REVISION) else { return Ok(None) };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .map(Some)
        .ok_or_else(|| ApiError::invalid_body(format!("{MIN_REVISION} must be a non-negative integer")))
}
