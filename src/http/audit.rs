//! `GET /api/v1/audit` (native family): the audit trail, newest first, in the caller's scope.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::bodies::{native_ok, AuditEventView, NativeOk, PageQuery};
use super::envelope::schema::NativeError;
use super::envelope::{Failure, Native};
use super::extract::Manager;
use crate::domain::model::{Action, KeyId};
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::service::audit::AuditQuery;
use crate::service::AppState;

/// Query of GET /api/v1/audit.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditListQuery {
    /// Page size: its default and range are written into the document by `openapi::PageSize`.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]*[1-9][0-9]*$", max_length = 18)]
    cursor: Option<String>,
    /// Only rows of this key (numeric id).
    #[param(pattern = "^[0-9]*[1-9][0-9]*$", max_length = 18)]
    key_id: Option<String>,
    /// Only this action.
    #[param(value_type = Option<Action>)]
    action: Option<String>,
    /// Only rows at or after this RFC 3339 instant.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
}

/// `data` of GET /api/v1/audit.
#[derive(Serialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    events: Vec<AuditEventView>,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// GET /api/v1/audit — needs write on `/`. Every change to a key or an application made by
/// any family or the command line, newest first; an application's key sees only its
/// application's rows. `key_id`, `action` and `since` filter, `limit` and `cursor` page.
/// 200; 400 bad or unknown parameter; 401; 403; 429.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "native",
    params(AuditListQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One page of the audit trail", body = NativeOk<AuditList>),
        (status = 400, description = "Bad or unknown query parameter", body = NativeError),
        (status = 403, description = "No write on `/`", body = NativeError),
    )
)]
pub async fn list_audit(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Native>,
    query: web::Query<AuditListQuery>,
) -> Result<HttpResponse, Failure<Native>> {
    let AuditListQuery { limit, cursor, key_id, action, since } = query.into_inner();
    let page = PageQuery { limit, cursor }.parse()?;
    let query = AuditQuery {
        key: key_id
            .as_deref()
            .map(|k| KeyId::parse(k).ok_or_else(|| ApiError::invalid("key_id", "key_id must be a positive integer")))
            .transpose()?,
        action: action
            .as_deref()
            .map(|a| Action::parse(a).ok_or_else(|| ApiError::invalid("action", format!("Invalid action: {a}"))))
            .transpose()?,
        since: since
            .as_deref()
            .map(|s| Timestamp::parse_rfc3339(s).map_err(|e| ApiError::invalid("since", format!("Invalid since: {e}"))))
            .transpose()?,
    };
    let page = state.manage(&manager).list_audit(query, page).await?;
    let events = page.events.iter().map(AuditEventView::new).collect();
    Ok(native_ok(AuditList { events, next_cursor: page.next_cursor }))
}
