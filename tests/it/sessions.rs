//! JWT sessions over HTTP and through the real binary: the lifetime login advertises (default
//! and configured by flag or environment), expiry to the millisecond, death with an expiring
//! key, foreign and unsigned tokens, and the signing secret: kept across restarts, never logged.

use actix_web::test::TestRequest;
use apikeyd::config::Config;
use apikeyd::domain::grants::Grants;
use apikeyd::domain::model::{KeyAuth, KeyId};
use apikeyd::domain::timestamp::Timestamp;
use base64::Engine;
use serde_json::{json, Value};

use crate::support::binary::Server;
use crate::support::{assert_invalid_jwt, bearer, TestApp};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const HOUR_MS: i64 = 3_600_000;

/// The stored key `id`, as authentication sees it.
fn stored_auth(app: &TestApp, id: KeyId) -> KeyAuth {
    app.key_record(id).auth()
}

/// The claims of a token, read without checking it.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap()
}

/// `expires_at` lies within one lifetime of [before, after], rounded down to whole seconds as
/// the token's `exp` is, and is exactly the token's `exp` in milliseconds.
fn assert_lifetime(token: &str, expires_at: &str, before: Timestamp, after: Timestamp, ttl_ms: i64) {
    let at = Timestamp::parse_rfc3339(expires_at).unwrap();
    let (low, high) = (before.millis() + ttl_ms - 1000, after.millis() + ttl_ms);
    assert!(low < at.millis() && at.millis() <= high, "expires_at {expires_at} not in ({low}, {high}]");
    assert_eq!(claims(token)["exp"].as_i64().unwrap() * 1000, at.millis(), "the token's exp is what login says");
}

fn list(token: &str) -> TestRequest {
    TestRequest::get().uri("/api/clients/api-keys").insert_header(bearer(token))
}

#[actix_web::test]
async fn login_advertises_the_default_one_hour_lifetime() {
    let app = TestApp::with_config(Config::default()).await;
    for uri in ["/api/clients/login", "/api/v1/auth/token"] {
        let before = Timestamp::now();
        let r = app.send(TestRequest::post().uri(uri).set_json(json!({"api_key": app.root}))).await;
        let after = Timestamp::now();
        assert_eq!(r.status, 200, "{}", r.raw);
        let token = r.body["data"]["token"].as_str().unwrap();
        assert_lifetime(token, r.body["data"]["expires_at"].as_str().unwrap(), before, after, HOUR_MS);
    }
}

#[actix_web::test]
async fn an_expired_token_is_refused_from_its_advertised_expiry() {
    let app = TestApp::new().await;
    let root = stored_auth(&app, KeyId(1));
    let (long_ago, _) = app.state.sessions.issue(&root, Timestamp::now().plus_millis(-2 * HOUR_MS)).unwrap();
    assert_invalid_jwt(&app.send(list(&long_ago)).await);
    // Cut at the start of this second: its advertised expiry has just passed, though its
    // `exp` claim (whole seconds) still names the current second.
    let now = Timestamp::now();
    let second_start = Timestamp::from_millis(now.millis().div_euclid(1000) * 1000);
    let cut = KeyAuth { expires_at: Some(second_start), ..root.clone() };
    let (just_expired, advertised) = app.state.sessions.issue(&cut, now).unwrap();
    assert_eq!(advertised, second_start);
    assert_invalid_jwt(&app.send(list(&just_expired)).await);
    // The same key's fresh token works: the refusals above were for expiry alone.
    let (fresh, _) = app.state.sessions.issue(&root, Timestamp::now()).unwrap();
    assert_eq!(app.send(list(&fresh)).await.status, 200);
}

#[actix_web::test]
async fn a_token_naming_a_key_id_with_another_uuid_is_refused() {
    let app = TestApp::new().await;
    let root = stored_auth(&app, KeyId(1));
    // Signed with the server's own secret, naming the root key's id but another UUID.
    let other = KeyAuth { uuid: uuid::Uuid::new_v4(), ..root.clone() };
    let (mismatched, _) = app.state.sessions.issue(&other, Timestamp::now()).unwrap();
    assert_invalid_jwt(&app.send(list(&mismatched)).await);
    let (matching, _) = app.state.sessions.issue(&root, Timestamp::now()).unwrap();
    assert_eq!(app.send(list(&matching)).await.status, 200);
}

#[actix_web::test]
async fn a_jwt_dies_when_its_key_expires() {
    let app = TestApp::new().await;
    let (id, key) = app.insert_key(Grants::root(), Some(Timestamp::now().plus_millis(24 * HOUR_MS)));
    let token = app.login(&key).await;
    assert_eq!(app.send(list(&token)).await.status, 200);
    // The key expires (set in the file directly). Every use of a token reads its key's row by
    // id (`service::credential`), so the next request sees it, while the token's own exp is an hour
    // away.
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let past = Timestamp::now().plus_millis(-1000).millis();
    assert_eq!(conn.execute("UPDATE api_keys SET expires_at = ?1 WHERE id = ?2", [past, id.0]).unwrap(), 1);
    assert!(claims(&token)["exp"].as_i64().unwrap() * 1000 > Timestamp::now().millis() + HOUR_MS - 5000);
    assert_invalid_jwt(&app.send(list(&token)).await);
    let r = app.get("/api/v1/keys", &token).await;
    assert_eq!(r.status, 401, "{}", r.raw);

    // And a token that outlives an already expired key's row (minted as if the key had no
    // expiry) is refused too: the key's expiry, not the token's, decides.
    let (expired_id, _) = app.insert_key(Grants::root(), Some(Timestamp::now().plus_millis(-1000)));
    let unexpiring = KeyAuth { expires_at: None, ..stored_auth(&app, expired_id) };
    let (token, _) = app.state.sessions.issue(&unexpiring, Timestamp::now()).unwrap();
    assert_invalid_jwt(&app.send(list(&token)).await);
}

#[actix_web::test]
async fn a_token_signed_with_another_secret_or_none_is_refused() {
    let app = TestApp::new().await;
    let other = TestApp::new().await;
    let root = stored_auth(&app, KeyId(1));
    // Names this server's root key, but signed by another server's secret.
    let (foreign, _) = other.state.sessions.issue(&root, Timestamp::now()).unwrap();
    assert_invalid_jwt(&app.send(list(&foreign)).await);
    let (own, _) = app.state.sessions.issue(&root, Timestamp::now()).unwrap();
    assert_eq!(app.send(list(&own)).await.status, 200, "the same claims, signed here");
    assert_eq!(claims(&foreign), claims(&own));
    // Unsigned: the same valid claims under `alg: none`, with and without the old signature.
    let parts: Vec<&str> = own.split('.').collect();
    let none = B64URL.encode(r#"{"alg":"none","typ":"JWT"}"#);
    for token in [format!("{none}.{}.", parts[1]), format!("{none}.{}.{}", parts[1], parts[2])] {
        assert_invalid_jwt(&app.send(list(&token)).await);
    }
}

fn list_over_http(server: &Server, token: &str) -> u16 {
    server.get("/api/clients/api-keys", token)
}

fn assert_binary_lifetime(server: &Server, expected_ms: i64) {
    let root = server.printed_root_key().unwrap();
    let before = Timestamp::now();
    let r = server.login_reply(&root);
    let after = Timestamp::now();
    let token = r["data"]["token"].as_str().unwrap();
    assert_lifetime(token, r["data"]["expires_at"].as_str().unwrap(), before, after, expected_ms);
    assert_eq!(list_over_http(server, token), 200);
}

#[test]
fn jwt_lifetime_defaults_to_one_hour_in_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(&dir.path().join("k.db"), &[], &[]);
    assert_binary_lifetime(&server, HOUR_MS);
}

#[test]
fn jwt_ttl_flag_sets_the_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(&dir.path().join("k.db"), &["--jwt-ttl", "5"], &[]);
    assert_binary_lifetime(&server, 5000);
}

#[test]
fn jwt_ttl_environment_variable_sets_the_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(&dir.path().join("k.db"), &[], &[("APIKEYD_JWT_TTL", "5")]);
    assert_binary_lifetime(&server, 5000);
}

#[test]
fn the_signing_secret_survives_a_restart_and_is_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let trace = [("RUST_LOG", "trace")];
    let first = Server::start_with_args(&db, &[], &trace);
    let root = first.printed_root_key().unwrap();
    let token = first.login_reply(&root)["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(list_over_http(&first, &token), 200);
    assert_eq!(list_over_http(&first, "x.y.z"), 401);
    let mut logged = first.stop_and_collect_stderr();

    let second = Server::start_with_args(&db, &[], &trace);
    assert_eq!(list_over_http(&second, &token), 200, "a token from before the restart still works");
    let again = second.login_reply(&root)["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(list_over_http(&second, &again), 200);
    logged.push_str(&second.stop_and_collect_stderr());
    // The capture really is at trace level, and covers the requests made.
    assert!(logged.contains("TRACE"), "no trace output captured:\n{logged}");
    assert!(logged.contains("POST /api/clients/login 200"), "{logged}");

    let conn = rusqlite::Connection::open(&db).unwrap();
    let secret: Vec<u8> =
        conn.query_row("SELECT value FROM settings WHERE name = 'jwt_hs256_secret'", [], |r| r.get(0)).unwrap();
    assert_eq!(secret.len(), 32);
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut forms: Vec<String> = vec![hex.clone(), hex.to_uppercase(), format!("{secret:?}")];
    forms.extend(engines.iter().map(|e| e.encode(&secret)));
    // Halves too, so a truncated or split rendering is caught.
    for half in secret.chunks(16) {
        let h: String = half.iter().map(|b| format!("{b:02x}")).collect();
        forms.push(h.to_uppercase());
        forms.push(h);
        forms.extend(engines.iter().map(|e| e.encode(half)));
    }
    for form in &forms {
        assert!(!logged.contains(form.as_str()), "the secret appears in the log as {form}");
    }
}
