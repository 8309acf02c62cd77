//! `GET /metrics`: every metric in the Prometheus text format (`service::metrics`). On the
//! main listener it needs a credential with read on `/metrics`; on the `--metrics-bind`
//! listener (`metrics_app`, which serves nothing else) it needs none.

use actix_web::{web, HttpRequest, HttpResponse};

use super::envelope::schema::NativeError;
use super::envelope::{Failure, Native};
use super::extract::{app_state, authorized};
use crate::domain::grants::{Access, GrantPath};
use crate::error::ApiError;
use crate::service::metrics::{render, CONTENT_TYPE};
use crate::service::verdict::Need;
use crate::service::AppState;

/// Where the metrics are served, and the grant path a key needs read on to scrape them.
pub const METRICS_PATH: &str = "/metrics";

/// GET /metrics — needs read on `/metrics`. 200 the Prometheus text format; 401; 403 no grant
/// covers `/metrics`; 429.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Every metric, Prometheus text format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 403, description = "No grant covers read on `/metrics`", body = NativeError),
    )
)]
pub async fn metrics(req: HttpRequest) -> Result<HttpResponse, Failure<Native>> {
    let path = GrantPath::parse(METRICS_PATH).map_err(|e| ApiError::internal(&e))?;
    authorized(&req, &Need::On { path, access: Access::Read }).await?;
    scrape(app_state(&req)?).await
}

/// The metrics, for whoever reaches the separate metrics listener.
pub async fn open_metrics(state: web::Data<AppState>) -> Result<HttpResponse, Failure<Native>> {
    scrape(&state).await
}

async fn scrape(state: &AppState) -> Result<HttpResponse, Failure<Native>> {
    let text = render(state).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}
