//! Reading the audit trail: every change to a key or an application, by every family and the
//! command line, newest first, seen through the caller's scope (an application's manager sees
//! only its application's rows).

use crate::domain::model::{Action, KeyId};
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::service::manage::{cut_page, Manage, PageRequest};
use crate::storage::{AuditEvent, AuditFilter};

/// Which rows a listing returns, beyond the caller's scope.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Only rows of this key.
    pub key: Option<KeyId>,
    /// Only this action.
    pub action: Option<Action>,
    /// Only rows at or after this instant.
    pub since: Option<Timestamp>,
}

/// One page of audit rows, newest first, and the cursor of the next.
#[derive(Debug)]
pub struct AuditPage {
    /// The rows.
    pub events: Vec<AuditEvent>,
    /// Pass back as the cursor for the next page.
    pub next_cursor: Option<String>,
}

impl Manage<'_> {
    /// One page of the audit rows in scope that `query` selects.
    pub async fn list_audit(&self, query: AuditQuery, page: PageRequest) -> Result<AuditPage, ApiError> {
        let filter = AuditFilter {
            application: self.manager.actor().scope().application(),
            key: query.key,
            action: query.action,
            since: query.since,
            before: page.cursor,
            limit: page.limit + 1,
        };
        let rows = self.db.read(move |store| Ok::<_, ApiError>(store.list_audit(&filter)?)).await?;
        let (events, next_cursor) = cut_page(rows, page.limit, |e| e.id);
        Ok(AuditPage { events, next_cursor })
    }
}
