//! The admin page's handlers: each parses its form or query (`forms`), calls the core through
//! the logged-in manager's scope (`AppState::manage`), and renders a view. A refusal is shown
//! on the page with the core's status and message (4xx); a form that changed something
//! answers 303 to the page that shows the result, except those that show a plaintext key
//! once (create, rotate), which answer it directly with `Cache-Control: no-store`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::forms::{ApplicationForm, AuditPageQuery, Confirmed, CreateForm, KeysQuery, LoginForm};
use super::views::{self, Chrome, KeyNotes, Nav};
use super::{html, redirect, same_origin, session_cookie, set_cookie, AdminError, Page, Submit, ADMIN};
use crate::domain::model::{KeyId, KeyRecord, Scope};
use crate::domain::new_key::Title;
use crate::domain::timestamp::Timestamp;
use crate::error::{ApiError, Op};
use crate::http::extract::{app_state, authenticated_by, client_address};
use crate::service::audit::AuditQuery;
use crate::service::credential;
use crate::service::lifecycle::KeyUpdate;
use crate::service::manage::{Created, PageRequest};
use crate::service::scope::KeyRef;
use crate::service::AppState;

type Reply = Result<HttpResponse, AdminError>;

/// Unused keys: not used for this long (the overview's "unused for 90 days").
const UNUSED_MS: i64 = 90 * 24 * 3600 * 1000;
/// Expiring soon: within this long (the overview's "expiring within 7 days").
const EXPIRING_MS: i64 = 7 * 24 * 3600 * 1000;
/// Audit rows shown on one key's page.
const KEY_HISTORY: u32 = 50;

fn chrome<'a>(page: &'a Page, title: &'a str, current: Nav) -> Chrome<'a> {
    let actor = page.manager.actor();
    let key = actor.key_id().map_or_else(|| "operator".to_owned(), |id| format!("key {id}"));
    let scope = match actor.scope() {
        Scope::Global => "global",
        Scope::Application(_) => "one application",
    };
    Chrome { title, current, csrf: &page.csrf, who: format!("Logged in with {key} ({scope})") }
}

/// GET /admin/login: the login form.
pub async fn login_form() -> HttpResponse {
    html(StatusCode::OK, views::login(None))
}

/// POST /admin/login `api_key=…`: exchanges a key that may manage keys for a page session
/// (the core's login, then the manager check), set as the session cookie; 303 to the
/// overview. 401 for a key that is not usable, 403 for one that may not manage keys, 429
/// once the client is over its failed-authentication budget; the form is shown again.
pub async fn log_in(req: HttpRequest, form: web::Form<LoginForm>) -> Reply {
    same_origin(&req)?;
    let state = app_state(&req)?;
    let refused = |status: StatusCode, message: &str| Ok(html(status, views::login(Some(message))));
    let (token, expires) = match credential::login(state, form.api_key.trim(), || client_address(state, &req)).await {
        Ok(session) => session,
        Err(e @ ApiError::RateLimited { .. }) => {
            return refused(e.status(), "Too many failed attempts: wait a little.")
        }
        Err(ApiError::Unauthenticated(_)) => {
            return refused(StatusCode::UNAUTHORIZED, "That key is not valid (unknown, revoked, disabled or expired).")
        }
        Err(e) => return Err(e.into()),
    };
    match authenticated_by(&req, Some(&token)).await.and_then(|actor| actor.manager(Op::Manage)) {
        Ok(_) => {}
        Err(ApiError::Forbidden(_)) => {
            return refused(StatusCode::FORBIDDEN, "That key may not manage keys: it needs write access to /.")
        }
        Err(e) => return Err(e.into()),
    }
    let now = Timestamp::now();
    let (cookie, _csrf) = state.page_sessions.open(&token, expires, now)?;
    let max_age = (expires.millis() - now.millis()).div_euclid(1000).max(0);
    let mut res = redirect(ADMIN);
    set_cookie(&mut res, &session_cookie(&cookie, max_age, req.app_config().secure()));
    Ok(res)
}

/// POST /admin/logout: ends the page session and clears its cookie; 303 to the login form.
pub async fn log_out(req: HttpRequest, submit: Submit<Confirmed>) -> Reply {
    submit.page.close(app_state(&req)?);
    Err(AdminError::LoggedOut)
}

/// GET /admin: key counts in the manager's scope and verifications per minute.
pub async fn overview(state: web::Data<AppState>, page: Page) -> Reply {
    let counts = state.manage(&page.manager).count_keys(EXPIRING_MS, UNUSED_MS).await?;
    let hour = state.verify_rate.last_hour(Timestamp::now());
    Ok(html(StatusCode::OK, views::overview(&chrome(&page, "Overview", Nav::Overview), &counts, &hour)))
}

/// GET /admin/keys: one page of the keys in scope that the search selects.
pub async fn list_keys(state: web::Data<AppState>, page: Page, query: web::Query<KeysQuery>) -> Reply {
    let query = query.into_inner();
    let shown = chrome(&page, "Keys", Nav::Keys);
    let (filters, request) = match query.parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            return Ok(html(e.status(), views::keys(&shown, &query, &[], None, Timestamp::now(), Some(&e.message()))))
        }
    };
    let found = state.manage(&page.manager).list_keys(filters, request).await?;
    let now = state.now_showing(found.keys.iter().map(|k| k.expires_at)).await;
    let next = found.next_cursor.as_deref();
    Ok(html(StatusCode::OK, views::keys(&shown, &query, &found.keys, next, now, None)))
}

/// GET /admin/keys/new: the create form.
pub async fn new_key_form(page: Page) -> Reply {
    let form = CreateForm::default();
    Ok(html(StatusCode::OK, views::new_key(&chrome(&page, "Create a key", Nav::NewKey), &form, None)))
}

/// POST /admin/keys: makes a key as `POST /api/v1/keys` does, and shows its plaintext once;
/// a refusal shows the form again, as typed, with the reason.
pub async fn create_key(state: web::Data<AppState>, submit: Submit<CreateForm>) -> Reply {
    let Submit { page, form } = submit;
    let made = match form.parse() {
        Ok(new) => state.manage(&page.manager).create_key(new).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(made) => Ok(plaintext_page(&page, "Key created", made)),
        Err(e) if e.status().is_client_error() => {
            let view = views::new_key(&chrome(&page, "Create a key", Nav::NewKey), &form, Some(&e.message()));
            Ok(html(e.status(), view))
        }
        Err(e) => Err(e.into()),
    }
}

fn plaintext_page(page: &Page, title: &str, made: Created) -> HttpResponse {
    // `html` sends Cache-Control: no-store: this answer is the only one with the plaintext.
    html(StatusCode::OK, views::created(&chrome(page, title, Nav::Keys), &made.record, made.key.expose()))
}

fn key_id(raw: &str) -> Result<KeyId, ApiError> {
    KeyId::parse(raw).ok_or_else(|| ApiError::invalid("id", "id must be a positive integer"))
}

/// One key's page: its record and history, with `error` from the last action.
async fn key_page(state: &AppState, page: &Page, id: KeyId, status: StatusCode, error: Option<&str>) -> Reply {
    let manage = state.manage(&page.manager);
    let record: KeyRecord = manage.get_key(KeyRef::Id(id)).await?;
    let history = manage
        .list_audit(
            AuditQuery { key: Some(id), ..AuditQuery::default() },
            PageRequest { limit: KEY_HISTORY, cursor: None },
        )
        .await?;
    let now = state.now_showing([record.expires_at]).await;
    let title = format!("Key: {}", record.title);
    let view = views::key(&chrome(page, &title, Nav::Keys), &record, &history.events, now, KeyNotes { error });
    Ok(html(status, view))
}

/// GET /admin/keys/{id}: one key in scope (404 otherwise).
pub async fn show_key(state: web::Data<AppState>, page: Page, id: web::Path<String>) -> Reply {
    key_page(&state, &page, key_id(&id)?, StatusCode::OK, None).await
}

/// POST /admin/keys/{id}/{action}: `disable`, `enable`, `revoke`, `delete` (303 back to the
/// key) or `rotate` (the new key's plaintext, once), through the same core calls as the
/// native family's PATCH, DELETE and rotate. A refusal shows the key page with the reason.
pub async fn change_key(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    submit: Submit<Confirmed>,
) -> Reply {
    let (raw_id, action) = path.into_inner();
    let id = key_id(&raw_id)?;
    let Submit { page, form } = submit;
    let manage = state.manage(&page.manager);
    let target = KeyRef::Id(id);
    let switch = |enabled| KeyUpdate { enabled: Some(enabled), ..KeyUpdate::default() };
    let done = match action.as_str() {
        "disable" => manage.update_key(target, switch(false)).await.map(|_| ()),
        "enable" => manage.update_key(target, switch(true)).await.map(|_| ()),
        "revoke" => manage.revoke_key(target).await.map(|_| ()),
        "delete" => manage.delete_key(target).await.map(|_| ()),
        "rotate" => match form.grace() {
            Ok(grace) => match manage.rotate_key(target, grace * 1000).await {
                Ok(made) => return Ok(plaintext_page(&page, "Key rotated", made)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        _ => return Err(ApiError::NotFound(crate::error::Missing::Route).into()),
    };
    match done {
        Ok(()) => Ok(redirect(&format!("{ADMIN}/keys/{id}"))),
        // The key itself is gone from view: say so on its own.
        Err(e @ ApiError::NotFound(_)) => Err(e.into()),
        Err(e) if e.status().is_client_error() => key_page(&state, &page, id, e.status(), Some(&e.message())).await,
        Err(e) => Err(e.into()),
    }
}

/// GET /admin/applications: the applications in scope.
pub async fn list_applications(state: web::Data<AppState>, page: Page) -> Reply {
    applications_page(&state, &page, StatusCode::OK, None).await
}

async fn applications_page(state: &AppState, page: &Page, status: StatusCode, error: Option<&str>) -> Reply {
    let apps = state.manage(&page.manager).list_applications().await?;
    let can_create = page.manager.clone().global().is_ok();
    let view = views::applications(&chrome(page, "Applications", Nav::Applications), &apps, can_create, error);
    Ok(html(status, view))
}

/// POST /admin/applications `name=…`: makes an application (a global manager only, as in
/// the applications family); 303 back to the list, or the list with the reason.
pub async fn create_application(state: web::Data<AppState>, submit: Submit<ApplicationForm>) -> Reply {
    let Submit { page, form } = submit;
    let made = match Title::parse(&form.name) {
        Ok(name) => state.manage(&page.manager).create_application(name).await.map(|_| ()),
        Err(e) => Err(ApiError::invalid("name", format!("Invalid name: {e}"))),
    };
    match made {
        Ok(()) => Ok(redirect(&format!("{ADMIN}/applications"))),
        Err(e) if e.status().is_client_error() => {
            applications_page(&state, &page, e.status(), Some(&e.message())).await
        }
        Err(e) => Err(e.into()),
    }
}

/// GET /admin/audit: one page of the audit rows in scope, newest first.
pub async fn audit_log(state: web::Data<AppState>, page: Page, query: web::Query<AuditPageQuery>) -> Reply {
    let request = query.parse()?;
    let found = state.manage(&page.manager).list_audit(AuditQuery::default(), request).await?;
    let view = views::audit(&chrome(&page, "Audit log", Nav::Audit), &found.events, found.next_cursor.as_deref());
    Ok(html(StatusCode::OK, view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::admin::COOKIE;

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_under_tls() {
        let plain = session_cookie("tok", 60, false);
        assert!(plain.starts_with(&format!("{COOKIE}=tok;")));
        assert!(plain.contains("; HttpOnly") && plain.contains("; SameSite=Strict") && !plain.contains("Secure"));
        assert!(session_cookie("tok", 60, true).ends_with("; Secure"));
    }
}
