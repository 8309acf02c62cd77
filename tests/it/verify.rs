//! Verification at the edge: the verify API's codes, forward-auth header variants and path
//! tricks, revocation honoured from the very next request whoever made it, and batched
//! `last_used_at`.

use actix_web::test::TestRequest;
use apikeyd::domain::grants::{Access, Grants};
use apikeyd::domain::key_format::ApiKey;
use apikeyd::domain::model::{Action, AuditContext, KeyId};
use apikeyd::domain::timestamp::Timestamp;
use apikeyd::storage::{AuditEntry, AuditStore};
use serde_json::{json, Value};

use crate::support::{assert_native_error, assert_request_id, bearer, grants, insert_fixture_key, TestApp};

fn verify(body: Value) -> TestRequest {
    TestRequest::post().uri("/api/v1/keys/verify").set_json(body)
}

#[actix_web::test]
async fn verify_answers_every_code_with_the_documented_fields() {
    let app = TestApp::new().await;
    let (good_id, good) = app.insert_key(grants(&[("/data", Access::Read)]), None);
    let (revoked_id, revoked) = app.insert_key(Grants::root(), None);
    app.revoke_direct(revoked_id).await;
    let (_, deleted) = app.insert_key(Grants::root(), None);
    app.delete_direct(&deleted).await;
    let (_, expired) = app.insert_key(Grants::root(), Some(Timestamp::now().plus_millis(-1)));
    let unknown = ApiKey::generate().unwrap().expose().to_owned();
    let mut malformed = good.clone();
    malformed.pop();
    malformed.push('!');

    let rows: Vec<(Value, &str)> = vec![
        (json!({"key": good}), "VALID"),
        (json!({"key": good, "path": "/data/file"}), "VALID"),
        (json!({"key": good, "path": "/data", "access": "read"}), "VALID"),
        (json!({"key": good, "path": "/data/file", "access": "write"}), "FORBIDDEN"),
        (json!({"key": good, "path": "/datafile"}), "FORBIDDEN"),
        (json!({"key": good, "access": "read"}), "FORBIDDEN"),
        (json!({"key": unknown}), "NOT_FOUND"),
        (json!({"key": malformed}), "NOT_FOUND"),
        (json!({"key": ""}), "NOT_FOUND"),
        (json!({"key": revoked}), "REVOKED"),
        (json!({"key": deleted}), "DELETED"),
        (json!({"key": expired}), "EXPIRED"),
    ];
    for (body, code) in rows {
        let r = app.send(verify(body.clone())).await;
        assert_eq!(r.status, 200, "{body} -> {}", r.raw);
        assert_eq!(r.body["success"], true);
        let data = r.body["data"].as_object().unwrap();
        let fields: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "valid",
                "code",
                "key_id",
                "key_uuid",
                "application_id",
                "grants",
                "expires_at",
                "owner",
                "meta",
                "enabled",
                "rate_limit",
                "credits"
            ]
        );
        assert_eq!(data["code"], code, "{body}");
        assert_eq!(data["valid"], code == "VALID", "{body}");
        assert_eq!(data["key_id"].is_null(), code == "NOT_FOUND", "{body}");
        assert_request_id(&r);
    }
    let r = app.send(verify(json!({"key": good}))).await;
    assert_eq!(r.body["data"]["key_id"], good_id.0);
    assert_eq!(r.body["data"]["grants"], json!([{"path": "/data", "access": "read"}]));
    assert!(r.body["data"]["key_uuid"].is_string());
}

#[actix_web::test]
async fn verify_refuses_malformed_requests() {
    let app = TestApp::new().await;
    for body in [
        json!({}),
        json!({"key": 5}),
        json!({"key": null}),
        json!({"key": app.root, "path": "relative"}),
        json!({"key": app.root, "path": "/a/../b"}),
        json!({"key": app.root, "access": "admin"}),
        json!({"key": app.root, "extra": 1}),
        json!([app.root]),
    ] {
        assert_native_error(&app.send(verify(body)).await, 400, "invalid_request");
    }
    let raw = TestRequest::post()
        .uri("/api/v1/keys/verify")
        .insert_header(("content-type", "application/json"))
        .set_payload("{\"key\": ");
    assert_native_error(&app.send(raw).await, 400, "invalid_request");
}

#[actix_web::test]
async fn revocation_and_deletion_are_honoured_from_the_next_verify() {
    let app = TestApp::new().await;
    // Over HTTP: verify (now cached), revoke, verify again.
    let (KeyId(id), key) = app.create_key(&app.root, "v", None, None).await;
    assert_eq!(app.verify_code(&key).await, "VALID");
    assert_eq!(app.verify_code(&key).await, "VALID");
    let r = app.send(TestRequest::delete().uri(&format!("/api/v1/keys/{id}")).insert_header(bearer(&app.root))).await;
    assert_eq!(r.status, 200);
    assert_eq!(app.verify_code(&key).await, "REVOKED");

    // Deleted by value over HTTP.
    let (_, doomed) = app.insert_key(Grants::root(), None);
    assert_eq!(app.verify_code(&doomed).await, "VALID");
    let del = TestRequest::delete().uri(&format!("/api-key?value={doomed}")).insert_header(bearer(&app.root));
    assert_eq!(app.send(del).await.status, 200);
    assert_eq!(app.verify_code(&doomed).await, "DELETED");

    // Revoked through another connection (as another process would): the cached VALID must
    // not survive, on verify, on forward-auth, or on a management call.
    let (other_id, other) = app.insert_key(Grants::root(), None);
    assert_eq!(app.verify_code(&other).await, "VALID");
    let list = || TestRequest::get().uri("/api/v1/keys").insert_header(bearer(&other));
    assert_eq!(app.send(list()).await.status, 200);
    app.revoke_direct(other_id).await;
    assert_eq!(app.verify_code(&other).await, "REVOKED");
    assert_eq!(app.send(list()).await.status, 401);
    let auth = TestRequest::get().uri("/auth").insert_header(("x-user-api-key", other.as_str()));
    assert_eq!(app.send(auth).await.status, 401);
}

#[actix_web::test]
async fn a_warmed_index_still_sees_changes_made_elsewhere() {
    let app = TestApp::cold().await;
    let keys: Vec<_> = (0..50).map(|_| app.insert_key(Grants::root(), None)).collect();
    let loaded = app.state.index.warm(&app.state.db).unwrap();
    assert_eq!(loaded, 51, "root plus 50");
    assert_eq!(app.state.index.len(), 51);
    for (id, _) in keys.iter().step_by(5) {
        app.revoke_direct(*id).await;
    }
    for (i, (_, key)) in keys.iter().enumerate() {
        let want = if i % 5 == 0 { "REVOKED" } else { "VALID" };
        assert_eq!(app.verify_code(key).await, want, "key {i}");
    }
}

#[actix_web::test]
async fn a_complete_index_answers_misses_itself_and_learns_new_keys_from_the_feed() {
    let app = TestApp::cold().await;
    let index = &app.state.index;
    let unknown = || ApiKey::generate().unwrap().expose().to_owned();
    // Cold: a miss must ask SQLite, since the key might exist.
    assert!(!index.is_complete());
    let before = index.database_lookups();
    assert_eq!(app.verify_code(&unknown()).await, "NOT_FOUND");
    assert_eq!(index.database_lookups(), before + 1);

    index.warm(&app.state.db).unwrap();
    assert!(index.is_complete());
    let before = index.database_lookups();
    for _ in 0..20 {
        assert_eq!(app.verify_code(&unknown()).await, "NOT_FOUND");
    }
    // Keys made and changed by another connection (as `apikeyd keys create` / `keys revoke`
    // would) arrive through the change feed alone.
    let (made_id, made) = app.insert_key(Grants::root(), None);
    assert_eq!(app.verify_code(&made).await, "VALID");
    app.revoke_direct(made_id).await;
    assert_eq!(app.verify_code(&made).await, "REVOKED");
    assert_eq!(index.database_lookups(), before, "no look-up asked SQLite");
}

/// Waits (bounded) until the index is complete.
fn until_complete(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !app.state.index.is_complete() {
        assert!(std::time::Instant::now() < deadline, "the index was not warmed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[actix_web::test]
async fn an_oversized_feed_clears_the_index_which_stays_right_and_warms_again() {
    let app = TestApp::cold().await;
    // The server's background warmer: it warms once, then waits to be signalled.
    let warmer = app.state.clone();
    std::thread::spawn(move || warmer.index.keep_warm(&warmer.db));
    until_complete(&app);
    let (kept_id, kept) = app.insert_key(Grants::root(), None);
    assert_eq!(app.verify_code(&kept).await, "VALID");
    // A bulk load by another process: more changes than the index applies one by one.
    let mut conn = app.conn();
    let tx = conn.transaction().unwrap();
    let bulk: Vec<ApiKey> = (0..10_001)
        .map(|_| {
            let key = ApiKey::generate().unwrap();
            insert_fixture_key(&tx, &key, &Grants::root(), None, None);
            key
        })
        .collect();
    tx.execute("UPDATE api_keys SET status = 'revoked', revoked_at = 1 WHERE id = ?1", [kept_id.0]).unwrap();
    let ctx = AuditContext { actor: None, request_id: None, at: Timestamp::now() };
    let entry = AuditEntry { action: Action::Revoke, key: Some(kept_id), application: None, changes: None };
    tx.insert_audit(&entry, &ctx).unwrap();
    tx.commit().unwrap();
    // The next look-ups clear the map and stay right: the revoke is seen, bulk keys are found.
    assert_eq!(app.verify_code(&kept).await, "REVOKED");
    assert_eq!(app.verify_code(bulk[7].expose()).await, "VALID");
    // The clear signalled the warmer, which had finished its first warming: it warms again.
    until_complete(&app);
    assert_eq!(app.state.index.len(), 10_003, "root, kept and the bulk keys");
    assert_eq!(app.verify_code(bulk[9_999].expose()).await, "VALID");
    assert_eq!(app.verify_code(&kept).await, "REVOKED");
}

/// One forward-auth case: headers, query string, expected status.
type AuthCase<'a> = (&'a [(&'a str, &'a str)], &'a str, u16);

#[actix_web::test]
async fn forward_auth_reads_every_gateways_headers() {
    let app = TestApp::new().await;
    let (reader_id, reader) = app.insert_key(grants(&[("/data", Access::Read)]), None);
    let (_, writer) = app.insert_key(grants(&[("/data", Access::ReadWrite)]), None);
    let (revoked_id, revoked) = app.insert_key(Grants::root(), None);
    app.revoke_direct(revoked_id).await;
    let r = reader.as_str();
    let w = writer.as_str();
    let bearer_r = format!("Bearer {reader}");
    let cases: &[AuthCase<'_>] = &[
        // nginx auth_request
        (&[("x-user-api-key", r), ("x-original-uri", "/data/a.txt"), ("x-original-method", "GET")], "", 200),
        (
            &[("x-user-api-key", r), ("x-original-uri", "/data/a.txt?download=1"), ("x-original-method", "HEAD")],
            "",
            200,
        ),
        (&[("x-user-api-key", r), ("x-original-uri", "/data/a.txt"), ("x-original-method", "POST")], "", 403),
        (&[("x-user-api-key", r), ("x-original-uri", "/data/a.txt"), ("x-original-method", "DELETE")], "", 403),
        (&[("x-user-api-key", w), ("x-original-uri", "/data/a.txt"), ("x-original-method", "PUT")], "", 200),
        (&[("x-user-api-key", r), ("x-original-uri", "/other"), ("x-original-method", "GET")], "", 403),
        // Traefik ForwardAuth / Caddy forward_auth
        (&[("authorization", &bearer_r), ("x-forwarded-uri", "/data/x"), ("x-forwarded-method", "GET")], "", 200),
        (&[("authorization", &bearer_r), ("x-forwarded-uri", "/data/x"), ("x-forwarded-method", "PATCH")], "", 403),
        (&[("authorization", &bearer_r), ("x-forwarded-uri", "/datax"), ("x-forwarded-method", "GET")], "", 403),
        // Query fallbacks
        (&[("x-user-api-key", r)], "path=/data/q", 200),
        (&[("x-user-api-key", r)], "path=/data/q&access=write", 403),
        (&[("x-user-api-key", w)], "path=/data/q&access=read_write", 200),
        (&[("x-user-api-key", r)], "path=/elsewhere", 403),
        (&[("x-user-api-key", r)], "", 403), // no path: "/" is asked, and not granted
        // Headers win over the query
        (&[("x-user-api-key", r), ("x-original-uri", "/other")], "path=/data/q", 403),
        // Bad keys
        (&[("x-original-uri", "/data/a")], "", 401),
        (&[("x-user-api-key", "sk-nope"), ("x-original-uri", "/data/a")], "", 401),
        (&[("x-user-api-key", &revoked), ("x-original-uri", "/data/a")], "", 401),
        (&[("x-user-api-key", r), ("authorization", "Bearer sk-other")], "", 401),
        // Paths that must never widen a grant
        (&[("x-user-api-key", r), ("x-original-uri", "/data/../admin")], "", 403),
        (&[("x-user-api-key", r), ("x-original-uri", "/data/%2e%2e/admin")], "", 403),
        (&[("x-user-api-key", r), ("x-original-uri", "/data%2F..%2Fadmin")], "", 403),
        (&[("x-user-api-key", r), ("x-original-uri", "/data%2fsecret")], "", 403),
        (&[("x-user-api-key", r), ("x-original-uri", "/data/%252e%252e/admin")], "", 403),
        (&[("x-user-api-key", r), ("x-original-uri", "/data//x")], "", 403),
        (&[("x-user-api-key", r), ("x-original-uri", "/data/./x")], "", 403),
        (&[("x-user-api-key", r), ("x-original-uri", "/data\\..\\admin")], "", 403),
        (&[("x-user-api-key", r), ("x-original-uri", "/data/%zz")], "", 403),
        (&[("x-user-api-key", r)], "path=/data/../admin", 403),
        (&[("x-user-api-key", r)], "path=/data/%252e%252e", 403),
        (&[("x-user-api-key", r), ("x-original-uri", "/data/caf%C3%A9")], "", 200),
    ];
    for (i, (headers, query, want)) in cases.iter().enumerate() {
        for method in ["GET", "POST"] {
            let uri = if query.is_empty() { "/auth".to_owned() } else { format!("/auth?{query}") };
            let mut req = TestRequest::default().method(method.parse().unwrap()).uri(&uri);
            for (k, v) in headers.iter() {
                req = req.insert_header((*k, *v));
            }
            let r = app.send(req).await;
            assert_eq!(r.status.as_u16(), *want, "case {i}: {headers:?} ?{query} via {method}");
            assert!(r.raw.is_empty(), "forward-auth bodies are empty: {}", r.raw);
            if *want == 200 {
                assert!(r.headers.get("x-key-id").is_some());
            }
        }
    }
    let ok = TestRequest::get().uri("/auth?path=/data").insert_header(("x-user-api-key", r));
    let res = app.send(ok).await;
    assert_eq!(res.headers.get("x-key-id").unwrap(), &reader_id.0.to_string());
    assert!(res.headers.get("x-key-application").is_none());
}

#[actix_web::test]
async fn last_used_at_is_batched_not_written_per_request() {
    let app = TestApp::new().await;
    let (id, key) = app.insert_key(grants(&[("/data", Access::Read)]), None);
    let stored = || {
        let conn = app.conn();
        conn.query_row("SELECT (SELECT last_used_at FROM key_usage WHERE key_id = ?1)", [id.0], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .unwrap()
    };
    let before = Timestamp::now();
    for _ in 0..20 {
        assert_eq!(app.verify_code(&key).await, "VALID");
        let auth = TestRequest::get().uri("/auth?path=/data").insert_header(("x-user-api-key", key.as_str()));
        assert_eq!(app.send(auth).await.status, 200);
    }
    assert_eq!(stored(), None, "nothing is written on the request path");
    assert_eq!(app.state.usage.pending(), 1, "forty uses, one pending value");
    // A failed verification is not a use.
    let (other_id, other) = app.insert_key(grants(&[("/data", Access::Read)]), None);
    app.send(verify(json!({"key": other, "path": "/etc"}))).await;
    assert_eq!(app.state.usage.pending(), 1);
    assert_eq!(app.state.usage.flush(&app.state.db).await.unwrap(), 1);
    let written = stored().expect("written by the flush");
    assert!(written >= before.millis() && written <= Timestamp::now().millis());
    let r = app.get(&format!("/api/v1/keys/{}", id.0), &app.root).await;
    assert_eq!(r.body["data"]["last_used_at"], Timestamp::from_millis(written).to_string());
    let r = app.get(&format!("/api/v1/keys/{}", other_id.0), &app.root).await;
    assert_eq!(r.body["data"]["last_used_at"], Value::Null);
}

#[actix_web::test]
async fn a_flush_larger_than_one_chunk_writes_every_pending_value() {
    let app = TestApp::new().await;
    let now = Timestamp::now();
    let n = apikeyd::config::USAGE_FLUSH_CHUNK * 2 + 500;
    for id in 1..=n {
        app.state.usage.record(KeyId(i64::try_from(id).unwrap()), now);
    }
    assert_eq!(app.state.usage.flush(&app.state.db).await.unwrap(), n);
    let conn = app.conn();
    let (rows, at): (i64, i64) = conn
        .query_row("SELECT count(*), min(last_used_at) FROM key_usage", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((rows, at), (i64::try_from(n).unwrap(), now.millis()));
    assert_eq!(app.state.usage.pending(), 0);
}
