//! The admin page at `/admin`, in-process: the session cookie's flags, the security headers,
//! CSRF and `Origin` refusals (which change nothing), logout, a page session ending when its
//! key is revoked or disabled, scope isolation between applications, form errors as 4xx, the
//! plaintext shown once with `no-store`, and the overview's counts and verification chart.
//! The same flows in a real browser: `admin_browser`.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use apikeyd::domain::grants::{Access, Grants};
use apikeyd::domain::model::{KeyId, Status};
use apikeyd::http::admin::{COOKIE, CSP};
use serde_json::json;

use crate::support::{bearer, grants, TestApp};

/// The host every test request names, and the origin a page of it sends forms from.
const HOST: &str = "apikeyd.test";
const ORIGIN: &str = "http://apikeyd.test";

/// A logged-in page: its cookie's value (a page-session id and the session token) and its
/// CSRF token.
struct Session {
    token: String,
    csrf: String,
}

fn cookie(token: &str) -> (&'static str, String) {
    ("cookie", format!("{COOKIE}={token}"))
}

/// The value of the first `name="csrf" value="…"` in a page.
fn csrf_in(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no csrf field in {html}"));
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The text of the element with id `id` (no nested elements).
fn text_of(html: &str, id: &str) -> String {
    let at = html.find(&format!(r#"id="{id}""#)).unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    rest[start..start + rest[start..].find('<').unwrap()].to_owned()
}

async fn log_in_reply(app: &TestApp, key: &str) -> crate::support::Reply {
    let req = TestRequest::post()
        .uri("/admin/login")
        .insert_header(("host", HOST))
        .insert_header(("origin", ORIGIN))
        .set_form([("api_key", key)]);
    app.send(req).await
}

async fn log_in(app: &TestApp, key: &str) -> Session {
    let r = log_in_reply(app, key).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.raw);
    let set = r.headers.get("set-cookie").expect("a session cookie").to_str().unwrap();
    let token = set.strip_prefix(&format!("{COOKIE}=")).unwrap().split(';').next().unwrap().to_owned();
    let page = page(app, &token, "/admin").await;
    assert_eq!(page.status, 200, "{}", page.raw);
    Session { token, csrf: csrf_in(&page.raw) }
}

async fn page(app: &TestApp, token: &str, uri: &str) -> crate::support::Reply {
    app.send(TestRequest::get().uri(uri).insert_header(("host", HOST)).insert_header(cookie(token))).await
}

/// POSTs `form` to `uri` from the page of `session`, with `csrf` and `origin` as given.
async fn post(
    app: &TestApp,
    session: &Session,
    uri: &str,
    form: &[(&str, &str)],
    csrf: &str,
    origin: &str,
) -> crate::support::Reply {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    fields.push(("csrf", csrf));
    let req = TestRequest::post()
        .uri(uri)
        .insert_header(("host", HOST))
        .insert_header(("origin", origin))
        .insert_header(cookie(&session.token))
        .set_form(fields);
    app.send(req).await
}

async fn submit(app: &TestApp, session: &Session, uri: &str, form: &[(&str, &str)]) -> crate::support::Reply {
    post(app, session, uri, form, &session.csrf, ORIGIN).await
}

fn is_login_redirect(r: &crate::support::Reply) -> bool {
    r.status == StatusCode::SEE_OTHER && r.headers.get("location").is_some_and(|l| l == "/admin/login")
}

#[actix_web::test]
async fn login_sets_an_http_only_same_site_strict_cookie_scoped_to_the_admin_page() {
    let app = TestApp::new().await;
    let r = log_in_reply(&app, &app.root).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.raw);
    assert_eq!(r.headers.get("location").unwrap(), "/admin");
    let set = r.headers.get("set-cookie").unwrap().to_str().unwrap();
    for flag in ["; Path=/admin", "; HttpOnly", "; SameSite=Strict", "; Max-Age="] {
        assert!(set.contains(flag), "{flag} missing from {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag ({set})");
    assert!(!set.contains(&app.root), "the key itself never goes into the cookie");
    // The token in it is the core's session token: the core accepts it as a credential.
    let value = set.strip_prefix(&format!("{COOKIE}=")).unwrap().split(';').next().unwrap();
    let token = value.split_once('.').unwrap().1;
    assert_eq!(app.get("/api/v1/keys/1", token).await.status, 200);
}

#[actix_web::test]
async fn every_admin_answer_carries_a_self_only_csp_and_pages_are_not_cached() {
    let app = TestApp::new().await;
    let s = log_in(&app, &app.root).await;
    for uri in ["/admin", "/admin/keys", "/admin/keys/new", "/admin/keys/1", "/admin/applications", "/admin/audit"] {
        let r = page(&app, &s.token, uri).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.raw);
        assert_eq!(r.headers.get("content-security-policy").unwrap(), CSP, "{uri}");
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store", "{uri}");
        assert_eq!(r.headers.get("x-frame-options").unwrap(), "DENY", "{uri}");
        assert!(!r.raw.contains("<script>") && !r.raw.contains("style="), "{uri}: inline script or style");
        assert!(!r.raw.contains("http://") && !r.raw.contains("https://"), "{uri}: names another host");
    }
    assert!(CSP.contains("default-src 'none'") && CSP.contains("script-src 'self'") && !CSP.contains("unsafe"));
    for uri in ["/admin/login", "/admin/nothing-here", "/admin/assets/admin.js"] {
        let r = app.send(TestRequest::get().uri(uri)).await;
        assert_eq!(r.headers.get("content-security-policy").unwrap(), CSP, "{uri}");
    }
    let script = app.send(TestRequest::get().uri("/admin/assets/admin.js")).await;
    assert_eq!(script.status, 200);
    assert!(script.headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(app.send(TestRequest::get().uri("/admin/assets/other.js")).await.status, 404);
}

#[actix_web::test]
async fn pages_without_a_logged_in_session_send_the_browser_to_the_login_form() {
    let app = TestApp::new().await;
    assert!(is_login_redirect(&app.send(TestRequest::get().uri("/admin")).await));
    assert!(is_login_redirect(&page(&app, "not-a-token", "/admin/keys").await));
    // A valid session token that never logged in to the page is not a page session, alone
    // or behind a made-up page-session id.
    let token = app.login(&app.root).await;
    assert!(is_login_redirect(&page(&app, &format!("made-up.{token}"), "/admin").await));
    let r = page(&app, &token, "/admin").await;
    assert!(is_login_redirect(&r), "{} {}", r.status, r.raw);
    assert!(r.headers.get("set-cookie").unwrap().to_str().unwrap().contains("Max-Age=0"), "cookie cleared");
}

#[actix_web::test]
async fn only_a_key_that_may_manage_keys_logs_in() {
    let app = TestApp::new().await;
    let (_, reader) = app.insert_key(grants(&[("/", Access::Read)]), None);
    let cases: [(&str, StatusCode); 3] = [
        (reader.as_str(), StatusCode::FORBIDDEN),
        ("sk-notakeyatall", StatusCode::UNAUTHORIZED),
        ("", StatusCode::UNAUTHORIZED),
    ];
    for (key, status) in cases {
        let r = log_in_reply(&app, key).await;
        assert_eq!(r.status, status, "{key}: {}", r.raw);
        assert!(r.headers.get("set-cookie").is_none(), "{key}: no session");
        assert!(r.raw.contains(r#"role="alert""#), "{key}: the reason is shown");
        if !key.is_empty() {
            assert!(!r.raw.contains(key), "the key is never echoed");
        }
    }
    // A login form posted from another site is refused before the key is looked at.
    let forged = TestRequest::post()
        .uri("/admin/login")
        .insert_header(("host", HOST))
        .insert_header(("origin", "http://evil.example"))
        .set_form([("api_key", app.root.as_str())]);
    let r = app.send(forged).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get("set-cookie").is_none());
}

#[actix_web::test]
async fn a_form_without_this_pages_csrf_token_or_from_another_origin_is_refused_and_changes_nothing() {
    let app = TestApp::new().await;
    let s = log_in(&app, &app.root).await;
    let (id, key) = app.create_key(&app.root, "target", None, None).await;
    let revoke = format!("/admin/keys/{id}/revoke");
    let other = log_in(&app, &app.root).await;
    let refusals = [
        ("no token", String::new(), ORIGIN),
        ("wrong token", "x".repeat(s.csrf.len()), ORIGIN),
        ("another session's token", other.csrf.clone(), ORIGIN),
        ("another origin", s.csrf.clone(), "http://evil.example"),
        ("an opaque origin", s.csrf.clone(), "null"),
    ];
    for (what, csrf, origin) in refusals {
        let r = post(&app, &s, &revoke, &[], &csrf, origin).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.raw);
        assert_eq!(app.key_record(id).status, Status::Active, "{what} changed the key");
    }
    let r = submit(&app, &s, &revoke, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.raw);
    assert_eq!(app.key_record(id).status, Status::Revoked);
    assert_eq!(app.verify_code(&key).await, "REVOKED");
}

#[actix_web::test]
async fn logout_ends_the_page_session_at_once() {
    let app = TestApp::new().await;
    let s = log_in(&app, &app.root).await;
    let r = submit(&app, &s, "/admin/logout", &[]).await;
    assert!(is_login_redirect(&r), "{} {}", r.status, r.raw);
    assert!(r.headers.get("set-cookie").unwrap().to_str().unwrap().contains("Max-Age=0"));
    assert!(is_login_redirect(&page(&app, &s.token, "/admin").await), "the old cookie no longer opens the page");
    let r = submit(&app, &s, "/admin/keys/1/disable", &[]).await;
    assert!(is_login_redirect(&r), "nor sends a form");
    assert!(app.key_record(KeyId(1)).enabled);
}

#[actix_web::test]
async fn revoking_or_disabling_the_logged_in_key_ends_its_page_session_on_the_next_request() {
    let app = TestApp::new().await;
    let (revoked, revoked_key) = app.create_key(&app.root, "manager one", None, None).await;
    let (disabled, disabled_key) = app.create_key(&app.root, "manager two", None, None).await;
    let one = log_in(&app, &revoked_key).await;
    let two = log_in(&app, &disabled_key).await;
    app.revoke_direct(revoked).await;
    let patch = TestRequest::patch()
        .uri(&format!("/api/v1/keys/{disabled}"))
        .insert_header(bearer(&app.root))
        .set_json(json!({"enabled": false}));
    assert_eq!(app.send(patch).await.status, 200);
    for s in [&one, &two] {
        assert!(is_login_redirect(&page(&app, &s.token, "/admin/keys").await));
    }
    // Enabling the key again does not revive the page session: it was ended.
    let patch = TestRequest::patch()
        .uri(&format!("/api/v1/keys/{disabled}"))
        .insert_header(bearer(&app.root))
        .set_json(json!({"enabled": true}));
    assert_eq!(app.send(patch).await.status, 200);
    assert!(is_login_redirect(&page(&app, &two.token, "/admin").await));
}

#[actix_web::test]
async fn a_deleted_or_expired_logged_in_key_ends_its_page_session_on_the_next_request() {
    let app = TestApp::new().await;
    let in_an_hour = apikeyd::domain::timestamp::Timestamp::now().plus_millis(3_600_000);
    let (expiring, expiring_key) = app.insert_key(Grants::root(), Some(in_an_hour));
    let (_, deleted_key) = app.insert_key(Grants::root(), None);
    let one = log_in(&app, &expiring_key).await;
    let two = log_in(&app, &deleted_key).await;
    app.delete_direct(&deleted_key).await;
    // The key's expiry moves into the past, as time passing would make it.
    let past = apikeyd::domain::timestamp::Timestamp::now().plus_millis(-1_000).millis();
    app.conn().execute("UPDATE api_keys SET expires_at = ?1 WHERE id = ?2", (past, expiring.0)).unwrap();
    for s in [&one, &two] {
        assert!(is_login_redirect(&page(&app, &s.token, "/admin").await));
    }
}

#[actix_web::test]
async fn an_applications_manager_sees_and_changes_only_that_applications_keys() {
    let app = TestApp::new().await;
    let t = app.two_applications();
    let (a_key, _) = app.insert_key_in(Some(t.a.app.id), grants(&[("/data", Access::Read)]), None);
    let (b_key, _) = app.insert_key_in(Some(t.b.app.id), grants(&[("/data", Access::Read)]), None);
    let (global, _) = app.insert_key(grants(&[("/data", Access::Read)]), None);
    let s = log_in(&app, &t.a.admin_key).await;
    let list = page(&app, &s.token, "/admin/keys").await;
    assert_eq!(list.status, 200);
    assert!(list.raw.contains(&format!("/admin/keys/{}\"", a_key.id)), "{}", list.raw);
    for hidden in [b_key.id, global, t.b.admin.id] {
        assert!(!list.raw.contains(&format!("/admin/keys/{hidden}\"")), "key {hidden} shown to A");
        assert_eq!(page(&app, &s.token, &format!("/admin/keys/{hidden}")).await.status, 404);
        let r = submit(&app, &s, &format!("/admin/keys/{hidden}/revoke"), &[]).await;
        assert_eq!(r.status, 404, "{}", r.raw);
        assert_eq!(app.key_record(hidden).status, Status::Active);
    }
    let apps = page(&app, &s.token, "/admin/applications").await;
    assert!(apps.raw.contains(&t.a.app.uuid.to_string()) && !apps.raw.contains(&t.b.app.uuid.to_string()));
    assert!(!apps.raw.contains(r#"action="/admin/applications""#), "no create form for an application's manager");
    let audit = page(&app, &s.token, "/admin/audit").await;
    assert!(!audit.raw.contains(&format!("/admin/keys/{}\"", b_key.id)), "B's audit rows shown to A");
    // Keys A's manager creates land in A.
    let r = submit(&app, &s, "/admin/keys", &[("title", "made by A")]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let made = app.count("SELECT max(id) FROM api_keys");
    assert_eq!(app.key_record(KeyId(made)).application_id, Some(t.a.app.id));
}

#[actix_web::test]
async fn create_shows_the_plaintext_once_uncached_and_the_key_verifies() {
    let app = TestApp::new().await;
    let s = log_in(&app, &app.root).await;
    let form = [
        ("title", "From the page"),
        ("grants", "read:/data\nwrite:/upload"),
        ("owner", "user-7"),
        ("meta", r#"{"team":"edge"}"#),
        ("rate_limit", "10"),
        ("rate_window", "60"),
        ("allowed_ips", "127.0.0.1, 10.0.0.0/8"),
    ];
    let r = submit(&app, &s, "/admin/keys", &form).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    let plaintext = text_of(&r.raw, "plaintext");
    assert!(r.raw.contains("will not be shown again"));
    assert!(r.raw.contains(r#"data-copy="plaintext""#), "a copy button");
    let id = KeyId(app.count("SELECT max(id) FROM api_keys"));
    let record = app.key_record(id);
    assert_eq!(record.title, "From the page");
    assert_eq!(record.owner.as_deref(), Some("user-7"));
    assert_eq!(record.grants, grants(&[("/data", Access::Read), ("/upload", Access::Write)]));
    assert_eq!(record.rate_limit.map(|r| (r.limit, r.window_seconds)), Some((10, 60)));
    let verify = TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": plaintext, "ip": "127.0.0.1"}));
    assert_eq!(app.send(verify).await.body["data"]["code"], "VALID");
    // The key's own page never shows the plaintext again.
    let shown = page(&app, &s.token, &format!("/admin/keys/{id}")).await;
    assert_eq!(shown.status, 200);
    assert!(!shown.raw.contains(&plaintext));
    assert!(shown.raw.contains("user-7") && shown.raw.contains("read:/data") && shown.raw.contains("create"));
}

/// One row of the bad-input table: who submits, the form, the status, what the page says.
type FormCase<'a> = (&'a Session, &'a [(&'a str, &'a str)], StatusCode, &'a str);

#[actix_web::test]
async fn bad_form_input_is_a_4xx_shown_on_the_page_and_changes_nothing() {
    let app = TestApp::new().await;
    let (_, narrow) = app.insert_key(grants(&[("/", Access::Write), ("/data", Access::Read)]), None);
    let root = log_in(&app, &app.root).await;
    let limited = log_in(&app, &narrow).await;
    let before = app.count("SELECT count(*) FROM api_keys");
    let cases: [FormCase<'_>; 8] = [
        (&root, &[("title", "")], StatusCode::BAD_REQUEST, "Invalid title"),
        (&root, &[("title", "x"), ("grants", "read /data")], StatusCode::BAD_REQUEST, "Invalid grants"),
        (&root, &[("title", "x"), ("grants", "read:data")], StatusCode::BAD_REQUEST, "Invalid grants"),
        (&root, &[("title", "x"), ("expires_at", "tomorrow")], StatusCode::BAD_REQUEST, "Invalid expires_at"),
        (&root, &[("title", "x"), ("meta", "[1]")], StatusCode::BAD_REQUEST, "meta"),
        (&root, &[("title", "x"), ("rate_limit", "5")], StatusCode::BAD_REQUEST, "rate limit"),
        (&root, &[("title", "x"), ("allowed_ips", "not-an-ip")], StatusCode::BAD_REQUEST, "allowed_ips"),
        (&limited, &[("title", "x"), ("grants", "read_write:/")], StatusCode::FORBIDDEN, "grants"),
    ];
    for (session, form, status, says) in cases {
        let r = submit(&app, session, "/admin/keys", form).await;
        assert_eq!(r.status, status, "{form:?}: {}", r.raw);
        assert!(r.raw.contains("form-error"), "{form:?}: no error shown");
        assert!(r.raw.to_lowercase().contains(&says.to_lowercase()), "{form:?}: {says:?} not in {}", r.raw);
        assert!(r.raw.contains(r#"name="title""#), "{form:?}: the form is shown again");
    }
    assert_eq!(app.count("SELECT count(*) FROM api_keys"), before, "nothing was created");
    // Bad ids and actions, bad grace and search input: 4xx pages.
    assert_eq!(page(&app, &root.token, "/admin/keys/abc").await.status, 400);
    assert_eq!(page(&app, &root.token, "/admin/keys/999").await.status, 404);
    assert_eq!(page(&app, &root.token, "/admin/keys?status=gone").await.status, 400);
    assert_eq!(page(&app, &root.token, "/admin/keys?cursor=x").await.status, 400);
    assert_eq!(submit(&app, &root, "/admin/keys/1/explode", &[]).await.status, 404);
    let (id, _) = app.create_key(&app.root, "rotate me", None, None).await;
    let r = submit(&app, &root, &format!("/admin/keys/{id}/rotate"), &[("grace_seconds", "-1")]).await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert!(app.key_record(id).rotated_to.is_none());
    // The page's own key cannot revoke itself: the core's 400, shown on the key's page.
    let r = submit(&app, &root, "/admin/keys/1/revoke", &[]).await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert!(r.raw.contains("cannot revoke itself"));
}

#[actix_web::test]
async fn key_actions_disable_enable_rotate_and_delete_go_through_the_core() {
    let app = TestApp::new().await;
    let s = log_in(&app, &app.root).await;
    let (id, key) = app.create_key(&app.root, "lifecycle", None, None).await;
    let act = |name: &str| format!("/admin/keys/{id}/{name}");
    assert_eq!(submit(&app, &s, &act("disable"), &[]).await.status, 303);
    assert_eq!(app.verify_code(&key).await, "DISABLED");
    assert_eq!(submit(&app, &s, &act("enable"), &[]).await.status, 303);
    assert_eq!(app.verify_code(&key).await, "VALID");
    let r = submit(&app, &s, &act("rotate"), &[("grace_seconds", "0")]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    let new_key = text_of(&r.raw, "plaintext");
    assert_eq!(app.verify_code(&new_key).await, "VALID");
    let new_id = app.key_record(id).rotated_to.expect("rotated");
    assert_eq!(submit(&app, &s, &format!("/admin/keys/{new_id}/delete"), &[]).await.status, 303);
    assert_eq!(app.verify_code(&new_key).await, "DELETED");
    let audit = page(&app, &s.token, "/admin/audit").await;
    for action in ["disable", "enable", "rotate", "delete"] {
        assert!(audit.raw.contains(&format!("<td>{action}</td>")), "{action} missing from the audit log");
    }
}

#[actix_web::test]
async fn the_overview_counts_keys_by_standing_and_charts_verifications() {
    let app = TestApp::new().await;
    let (revoked, _) = app.create_key(&app.root, "gone", None, None).await;
    app.revoke_direct(revoked).await;
    let soon = apikeyd::domain::timestamp::Timestamp::now().plus_millis(3 * 24 * 3600 * 1000);
    let (_, expiring) = app.insert_key(Grants::root(), Some(soon));
    for _ in 0..3 {
        assert_eq!(app.verify_code(&expiring).await, "VALID");
    }
    assert_eq!(app.verify_code("sk-notakey").await, "NOT_FOUND", "refusals count as verifications too");
    let s = log_in(&app, &app.root).await;
    let r = page(&app, &s.token, "/admin").await;
    assert_eq!(r.status, 200);
    let card = |n: u64, label: &str| format!(r#"<span class="n">{n}</span>{label}"#);
    assert!(r.raw.contains(&card(2, "Active")), "{}", r.raw);
    assert!(r.raw.contains(&card(1, "Revoked")));
    assert!(r.raw.contains(&card(1, "Expiring within 7 days")));
    assert!(r.raw.contains(&card(4, "Verifications, last hour")));
    assert!(r.raw.contains("<svg") && r.raw.contains("4 verifications in the last hour"));
}
