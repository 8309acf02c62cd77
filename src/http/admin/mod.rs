//! The admin page at `/admin`: server-rendered HTML (`views`, written with maud) and one small
//! script and style sheet compiled into the binary (`assets`), so the page needs nothing but
//! this server and makes no request to any other host; its `Content-Security-Policy` allows
//! only itself. This module owns the page's session handling: logging in with a key that may
//! manage keys (the core's login, `service::credential::login`), the session token in an
//! `HttpOnly; SameSite=Strict` cookie (`Secure` under TLS), the page-session list and CSRF
//! tokens (`service::page_sessions`), the `Origin` check, and the extractors that make them
//! unavoidable ([`Page`] for every page, [`Submit`] for every form that changes something).
//! What may be done, and to which keys, is the core's: handlers (`pages`) call the same scoped
//! management functions the API families call, after parsing forms with the same domain
//! parsers (`forms`).

mod assets;
mod forms;
mod pages;
mod views;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{middleware as actix_middleware, web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;

use crate::domain::key_format::redact;
use crate::domain::timestamp::Timestamp;
use crate::error::{ApiError, Op};
use crate::http::extract::{app_state, authenticated_by};
use crate::service::authority::Manager;
use crate::service::page_sessions::{same_token, token_of};
use crate::service::AppState;

/// Where the admin page lives.
pub const ADMIN: &str = "/admin";
/// The cookie holding the page's session token.
pub const COOKIE: &str = "apikeyd_admin";
/// The page's Content-Security-Policy: only this origin, no inline script or style, no
/// frames, forms only to itself.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Registers the admin page's routes under [`ADMIN`], with its security headers on every
/// answer (its own 404 included).
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Referrer-Policy is same-origin, not no-referrer: under no-referrer a browser sends
    // `Origin: null` with the page's own forms, which the Origin check must refuse.
    let headers = actix_middleware::DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add(("cross-origin-opener-policy", "same-origin"))
        .add(("cross-origin-resource-policy", "same-origin"));
    cfg.service(
        web::scope(ADMIN)
            .wrap(headers)
            .app_data(web::FormConfig::default().limit(crate::config::MAX_BODY_BYTES).error_handler(|err, _| {
                AdminError::Api(ApiError::invalid_body(format!("Invalid form: {}", redact(&err.to_string())))).into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                AdminError::Api(ApiError::invalid_body(format!("Invalid query string: {}", redact(&err.to_string()))))
                    .into()
            }))
            .route("", web::get().to(pages::overview))
            .route("/", web::get().to(pages::overview))
            .route("/login", web::get().to(pages::login_form))
            .route("/login", web::post().to(pages::log_in))
            .route("/logout", web::post().to(pages::log_out))
            .route("/keys", web::get().to(pages::list_keys))
            .route("/keys", web::post().to(pages::create_key))
            .route("/keys/new", web::get().to(pages::new_key_form))
            .route("/keys/{id}", web::get().to(pages::show_key))
            .route("/keys/{id}/{action}", web::post().to(pages::change_key))
            .route("/applications", web::get().to(pages::list_applications))
            .route("/applications", web::post().to(pages::create_application))
            .route("/audit", web::get().to(pages::audit_log))
            .route("/assets/{name}", web::get().to(assets::serve))
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<HttpResponse, AdminError> {
    Err(AdminError::Api(ApiError::NotFound(crate::error::Missing::Route)))
}

/// Why a page was not served.
#[derive(Debug)]
pub enum AdminError {
    /// Occurs when no logged-in page session comes with the request, or its key may no longer
    /// be used (revoked, disabled, expired, deleted): back to the login form, cookie cleared.
    LoggedOut,
    /// Occurs when a form that changes something comes from another site (its `Origin`, or
    /// its CSRF token, is not this page's).
    Forged,
    /// Occurs when the core refuses (a 4xx with its message), or cannot answer.
    Api(ApiError),
}

impl From<ApiError> for AdminError {
    fn from(e: ApiError) -> AdminError {
        AdminError::Api(e)
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::LoggedOut => f.write_str("not logged in"),
            AdminError::Forged => f.write_str("cross-site request refused"),
            AdminError::Api(e) => f.write_str(&e.message()),
        }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::LoggedOut => StatusCode::SEE_OTHER,
            AdminError::Forged => StatusCode::FORBIDDEN,
            AdminError::Api(e) => e.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AdminError::LoggedOut => {
                let mut res = redirect(&format!("{ADMIN}/login"));
                set_cookie(&mut res, &clear_cookie());
                res
            }
            AdminError::Forged => html(
                StatusCode::FORBIDDEN,
                views::problem(
                    "Request refused",
                    "This form did not come from this page. Reload the page and try again.",
                ),
            ),
            AdminError::Api(e) => {
                if e.status().is_server_error() {
                    log::warn!("admin page: {e:?}");
                }
                let title = e.status().canonical_reason().unwrap_or("Error");
                html(e.status(), views::problem(title, &e.message()))
            }
        }
    }
}

/// A logged-in page request: its session token passed the page-session list and the core's
/// credential check, and its key may manage keys. The only way a page handler gets a
/// [`Manager`].
pub struct Page {
    /// Who acts, bounded to its scope by the core.
    pub manager: Manager,
    /// This page session's CSRF token, for the forms the page shows.
    pub csrf: String,
    /// The cookie's value, naming the page session (for logout).
    cookie: String,
}

impl Page {
    /// Ends this page session.
    fn close(&self, state: &AppState) {
        state.page_sessions.close(&self.cookie);
    }
}

/// The value of the admin cookie in `req`'s `Cookie` headers, if any.
fn cookie_value(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

async fn page(req: HttpRequest) -> Result<Page, AdminError> {
    let state = app_state(&req)?;
    let cookie = cookie_value(&req).ok_or(AdminError::LoggedOut)?;
    let csrf = state.page_sessions.csrf(&cookie, Timestamp::now()).ok_or(AdminError::LoggedOut)?;
    let token = token_of(&cookie).ok_or(AdminError::LoggedOut)?;
    let manager = match authenticated_by(&req, Some(token)).await.and_then(|actor| actor.manager(Op::Manage)) {
        Ok(manager) => manager,
        Err(ApiError::RateLimited { retry_after }) => return Err(ApiError::RateLimited { retry_after }.into()),
        Err(ApiError::Unauthenticated(_) | ApiError::Forbidden(_)) => {
            state.page_sessions.close(&cookie);
            return Err(AdminError::LoggedOut);
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Page { manager, csrf, cookie })
}

impl FromRequest for Page {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Page, AdminError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(page(req.clone()))
    }
}

/// A form that carries a CSRF token.
pub trait Guarded {
    /// The token the form carried.
    fn csrf(&self) -> &str;
}

/// A logged-in page's submission of a form that changes something: same origin, and carrying
/// this page session's CSRF token. Every state-changing admin handler takes one.
pub struct Submit<T> {
    /// The page it came from.
    pub page: Page,
    /// The form, parsed.
    pub form: T,
}

/// Refuses a request another site's page made: an `Origin` (sent by browsers with every
/// form POST) other than this host, or `Sec-Fetch-Site: cross-site`.
fn same_origin(req: &HttpRequest) -> Result<(), AdminError> {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN) {
        let authority = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest);
        if authority.is_none() || authority != host {
            return Err(AdminError::Forged);
        }
    }
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site") {
        return Err(AdminError::Forged);
    }
    Ok(())
}

impl<T: Guarded + DeserializeOwned + 'static> FromRequest for Submit<T> {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Submit<T>, AdminError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let form = web::Form::<T>::from_request(&req, payload);
        Box::pin(async move {
            same_origin(&req)?;
            let page = page(req).await?;
            // A refusal of the form is already an AdminError (the FormConfig above).
            let form =
                form.await.map_err(|e| AdminError::Api(ApiError::invalid_body(redact(&e.to_string()))))?.into_inner();
            if !same_token(form.csrf(), &page.csrf) {
                return Err(AdminError::Forged);
            }
            Ok(Submit { page, form })
        })
    }
}

/// An HTML answer with `status`.
fn html(status: StatusCode, markup: maud::Markup) -> HttpResponse {
    let mut res = HttpResponse::build(status).content_type("text/html; charset=utf-8").body(markup.into_string());
    // Pages show key metadata (and once, a plaintext): never kept by a cache.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// 303 to `location` (after a form, so reloading does not resubmit it).
fn redirect(location: &str) -> HttpResponse {
    let mut res = HttpResponse::SeeOther().finish();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// The cookie that holds `value` (a page session and its token) for `max_age_secs`: script cannot read it, no other site's
/// request carries it, and under TLS it never travels in clear.
fn session_cookie(value: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path={ADMIN}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}")
}

/// The cookie that clears the session cookie.
fn clear_cookie() -> String {
    format!("{COOKIE}=; Path={ADMIN}; Max-Age=0; HttpOnly; SameSite=Strict")
}

fn set_cookie(res: &mut HttpResponse, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}
