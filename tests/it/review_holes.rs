//! The holes a hostile review found, one regression test each (docs/RELIABILITY.md lists
//! them): forward-auth believing client-supplied headers, ambiguous paths passing
//! forward-auth, two copies of one credential header, a weaker key acting on a stronger one,
//! session tokens echoed in errors, and a forged first X-Forwarded-For copy. Each test fails
//! on the code before its fix.

use actix_web::test::TestRequest;
use apikeyd::config::{Config, ForwardAuthHeaders};
use apikeyd::domain::grants::Access;
use apikeyd::domain::grants::Grants;
use apikeyd::domain::timestamp::Timestamp;
use serde_json::json;

use crate::support::{bearer, grants, TestApp};

/// `/auth` with `key` and these extra headers: the status alone.
async fn auth(app: &TestApp, key: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = TestRequest::get().uri("/auth").insert_header(("x-user-api-key", key));
    for (name, value) in headers {
        req = req.append_header((*name, *value));
    }
    app.send(req).await.status.as_u16()
}

const TRAEFIK_ADMIN: [(&str, &str); 2] = [("X-Forwarded-Uri", "/admin"), ("X-Forwarded-Method", "DELETE")];
const SPOOFED_PUBLIC: [(&str, &str); 2] = [("X-Original-URI", "/public/x"), ("X-Original-Method", "GET")];

#[actix_web::test]
async fn a_client_cannot_choose_its_verdict_by_adding_the_other_gateways_headers() {
    let app = TestApp::new().await;
    let (_, key) = app.insert_key(grants(&[("/public", Access::Read)]), None);
    let both: Vec<(&str, &str)> = TRAEFIK_ADMIN.iter().chain(SPOOFED_PUBLIC.iter()).copied().collect();
    assert_eq!(auth(&app, &key, &TRAEFIK_ADMIN).await, 403, "the real request is refused");
    // The reproduction: Traefik's pair plus a client-added X-Original pair answered 200.
    assert_eq!(auth(&app, &key, &both).await, 403, "auto: the two pairs disagree");
    assert_eq!(auth(&app, &key, &SPOOFED_PUBLIC).await, 200, "auto: one pair alone is believed");
    // Agreeing pairs are fine; two copies of one header that disagree are not.
    let agreeing = [("X-Original-URI", "/public/x"), ("X-Forwarded-Uri", "/public/x")];
    assert_eq!(auth(&app, &key, &agreeing).await, 200);
    let copies = [("X-Original-URI", "/public/x"), ("X-Original-URI", "/admin")];
    assert_eq!(auth(&app, &key, &copies).await, 403);
    let methods = [("X-Original-URI", "/public/x"), ("X-Original-Method", "GET"), ("X-Forwarded-Method", "POST")];
    assert_eq!(auth(&app, &key, &methods).await, 403);

    // Naming the gateway's pair: the other pair is never read.
    let forwarded =
        TestApp::with_config(Config { forward_auth_headers: ForwardAuthHeaders::Forwarded, ..Config::default() }).await;
    let (_, key) = forwarded.insert_key(grants(&[("/public", Access::Read)]), None);
    assert_eq!(auth(&forwarded, &key, &both).await, 403, "forwarded: judged on /admin DELETE");
    assert_eq!(auth(&forwarded, &key, &SPOOFED_PUBLIC).await, 403, "forwarded: X-Original-* ignored");
    let real = [("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Method", "GET"), ("X-Original-URI", "/admin")];
    assert_eq!(auth(&forwarded, &key, &real).await, 200);
    let original =
        TestApp::with_config(Config { forward_auth_headers: ForwardAuthHeaders::Original, ..Config::default() }).await;
    let (_, key) = original.insert_key(grants(&[("/public", Access::Read)]), None);
    assert_eq!(auth(&original, &key, &both).await, 200, "original: nginx's pair alone decides");
    assert_eq!(auth(&original, &key, &TRAEFIK_ADMIN).await, 403, "original: X-Forwarded-* ignored (path /)");
}

#[actix_web::test]
async fn paths_that_backends_may_read_differently_are_refused_by_forward_auth() {
    let app = TestApp::new().await;
    let (_, key) = app.insert_key(grants(&[("/data", Access::Read)]), None);
    // Each answered 200 before: Tomcat and Spring read the first two as /admin.
    for uri in
        ["/data/..;/admin", "/data/%2e%2e;/admin", "/data#/../admin", "/data/%EF%BC%8E%EF%BC%8E/admin", "/data/x;a=b"]
    {
        assert_eq!(auth(&app, &key, &[("X-Original-URI", uri)]).await, 403, "{uri}");
    }
    for path in ["/data/..;/admin", "/data/%EF%BC%8E%EF%BC%8E/admin"] {
        let encoded = path.replace(';', "%3B").replace('/', "%2F");
        let req =
            TestRequest::get().uri(&format!("/auth?path={encoded}")).insert_header(("x-user-api-key", key.as_str()));
        assert_eq!(app.send(req).await.status, 403, "?path={path}");
    }
    // Beside them, what stays allowed.
    for uri in ["/data/report.csv", "/data/caf%C3%A9", "/data/a?x=..;/admin"] {
        assert_eq!(auth(&app, &key, &[("X-Original-URI", uri)]).await, 200, "{uri}");
    }
}

#[actix_web::test]
async fn two_different_copies_of_one_credential_header_are_refused_whichever_comes_first() {
    let app = TestApp::new().await;
    let (_, reader) = app.insert_key(grants(&[("/", Access::Read)]), None);
    for (first, second) in [(&reader, &app.root), (&app.root, &reader)] {
        let req = TestRequest::get()
            .uri("/api/v1/keys")
            .append_header(("x-user-api-key", first.as_str()))
            .append_header(("x-user-api-key", second.as_str()));
        let r = app.send(req).await;
        assert_eq!(r.status, 401, "{}", r.raw);
        let req = TestRequest::get().uri("/api/v1/keys").append_header(bearer(first)).append_header(bearer(second));
        assert_eq!(app.send(req).await.status, 401);
    }
    let same = TestRequest::get()
        .uri("/api/v1/keys")
        .append_header(("x-user-api-key", app.root.as_str()))
        .append_header(("x-user-api-key", app.root.as_str()));
    assert_eq!(app.send(same).await.status, 200, "two equal copies are one credential");
}

#[actix_web::test]
async fn a_weaker_manager_cannot_remove_a_stronger_key_and_the_last_root_key_stays() {
    let app = TestApp::new().await;
    // The reproduction: write on / expiring in an hour deleted the never-expiring root key.
    let hour = Timestamp::now().plus_millis(3_600_000);
    let (_, weaker) = app.insert_key(grants(&[("/", Access::Write)]), Some(hour));
    let r = app
        .send(
            TestRequest::delete()
                .uri(&format!("/api-key?value={}", app.root))
                .insert_header(("x-user-api-key", weaker.as_str())),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.raw);
    let r = app.send(TestRequest::delete().uri("/api/v1/keys/1").insert_header(bearer(&weaker))).await;
    assert_eq!(r.status, 403, "{}", r.raw);
    assert_eq!(app.verify_code(&app.root).await, "VALID");
    // Only another root key could remove a root key; it then remains itself, and nothing
    // but a root key can act on it.
    let (_, second_root) = app.insert_key(Grants::root(), None);
    let r = app.send(TestRequest::delete().uri("/api/v1/keys/1").insert_header(bearer(&second_root))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let (_, expiring_root) = app.create_key(&second_root, "expiring", None, Some(hour)).await;
    let second_id = app
        .conn()
        .query_row("SELECT max(id) FROM api_keys WHERE expires_at IS NULL AND status = 'active'", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    let r = app
        .send(TestRequest::delete().uri(&format!("/api/v1/keys/{second_id}")).insert_header(bearer(&expiring_root)))
        .await;
    assert_eq!(r.status, 403, "{}", r.raw);
    let r = app
        .send(TestRequest::delete().uri(&format!("/api/v1/keys/{second_id}")).insert_header(bearer(&second_root)))
        .await;
    assert_eq!(r.status, 400, "not itself either: {}", r.raw);
    assert_eq!(app.verify_code(&second_root).await, "VALID");
}

#[actix_web::test]
async fn session_tokens_are_redacted_from_error_messages() {
    let app = TestApp::new().await;
    let jwt = app.login(&app.root).await;
    let r = app.send(TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": "x", "access": jwt}))).await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert!(!r.raw.contains(&jwt[..40]), "a session token echoed: {}", r.raw);
    assert!(r.raw.contains("[redacted]"), "{}", r.raw);
}

/// Found while adding IP allowlists: behind a trusted proxy that appends the client's address
/// as a second `X-Forwarded-For` header (rather than to the client's own), only the first
/// copy was read, so a client could name any address it liked and spread its failures over
/// fresh failure budgets forever. Every copy is now one chain, read from the right.
#[actix_web::test]
async fn a_forged_first_forwarded_for_header_does_not_buy_a_fresh_failure_budget() {
    let config = Config {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        failure_burst: 3,
        failure_refill_per_sec: 1,
        ..Config::default()
    };
    let app = TestApp::with_config(config).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let forged = format!("198.51.100.{i}");
        let req = TestRequest::get()
            .uri("/auth")
            .peer_addr("127.0.0.1:40000".parse().unwrap())
            .insert_header(("x-user-api-key", "sk-made-up"))
            .append_header(("x-forwarded-for", forged.as_str()))
            .append_header(("x-forwarded-for", "203.0.113.9"));
        statuses.push(app.send(req).await.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429], "one client, one budget, whatever it claims");
}
