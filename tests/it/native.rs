//! The native `/api/v1/keys` family (its contract documents: create, and revoke by numeric
//! id), through the real app in-process.

use actix_web::test::TestRequest;
use apikeyd::domain::grants::{Access, Grants};
use apikeyd::domain::key_format::ApiKey;
use apikeyd::domain::model::KeyId;
use apikeyd::domain::timestamp::Timestamp;
use apikeyd::storage::{AuditFilter, AuditStore};
use serde_json::{json, Value};

use crate::support::{assert_native_error, assert_request_id, bearer, grants, TestApp};

fn create(key: &str, body: Value) -> TestRequest {
    TestRequest::post().uri("/api/v1/keys").insert_header(bearer(key)).set_json(body)
}

fn is_rfc3339_ms(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && s.ends_with('Z')
        && Timestamp::parse_rfc3339(s).is_ok()
}

#[actix_web::test]
async fn create_returns_the_seed_fields_and_the_plaintext_once() {
    let app = TestApp::new().await;
    let r = app.send(create(&app.root, json!({"title": "Production backend"}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body.as_object().unwrap().keys().collect::<Vec<_>>(), ["success", "data", "request_id"]);
    assert_eq!(r.body["success"], true);
    let data = &r.body["data"];
    assert!(data["id"].as_i64().is_some_and(|id| id > 1));
    assert_eq!(data["title"], "Production backend");
    assert_eq!(data["status"], "created");
    assert!(is_rfc3339_ms(data["created_at"].as_str().unwrap()), "{}", data["created_at"]);
    let key = data["api_key"].as_str().unwrap();
    assert!(ApiKey::parse(key).is_ok());
    assert_eq!(data["prefix"], &key[..11]);
    assert_eq!(data["grants"], json!([{"path": "/", "access": "read_write"}]));
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    assert_request_id(&r);

    // The new key authenticates; neither get nor list ever shows the plaintext again.
    let id = data["id"].as_i64().unwrap();
    let got = app.get(&format!("/api/v1/keys/{id}"), key).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["data"]["status"], "active");
    assert_eq!(got.body["data"]["prefix"], &key[..11]);
    assert!(!got.raw.contains(key));
    assert!(got.headers.get("cache-control").is_none());
    let list = app.get("/api/v1/keys", &app.root).await;
    assert_eq!(list.status, 200);
    assert!(!list.raw.contains(key) && !list.raw.contains(&app.root));
    assert!(!list.raw.contains("hash"));
}

#[actix_web::test]
async fn create_applies_the_minting_rules() {
    let app = TestApp::new().await;
    let soon = Timestamp::now().plus_millis(3_600_000);
    let (_, limited) = app.insert_key(Grants::root(), Some(soon));
    // No grants, no expiry: both inherited.
    let r = app.send(create(&limited, json!({"title": "child"}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["data"]["expires_at"], soon.to_string());
    // Later expiry than the creator: 403; earlier: fine.
    let later = soon.plus_millis(1000).to_string();
    assert_native_error(
        &app.send(create(&limited, json!({"title": "c", "expires_at": later}))).await,
        403,
        "forbidden",
    );
    let earlier = soon.plus_millis(-1000).to_string();
    assert_eq!(app.send(create(&limited, json!({"title": "c", "expires_at": earlier}))).await.status, 200);

    // A write-only manager cannot mint read.
    let (_, writer) = app.insert_key(grants(&[("/", Access::Write)]), None);
    let ask_read = json!({"title": "c", "grants": [{"path": "/data", "access": "read"}]});
    assert_native_error(&app.send(create(&writer, ask_read)).await, 403, "forbidden");
    let ask_write = json!({"title": "c", "grants": [{"path": "/data", "access": "write"}]});
    let r = app.send(create(&writer, ask_write)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["grants"], json!([{"path": "/data", "access": "write"}]));
}

#[actix_web::test]
async fn create_refuses_every_bad_body_and_changes_nothing() {
    let app = TestApp::new().await;
    // Every bad title gets the native family's documented answer: invalid_request, "Invalid title".
    let title_rows: Vec<(&str, Value)> = vec![
        ("missing title", json!({})),
        ("missing title, other fields given", json!({"grants": [{"path": "/a", "access": "read"}]})),
        ("empty title", json!({"title": ""})),
        ("blank title", json!({"title": "   "})),
        ("oversized title", json!({"title": "x".repeat(201)})),
        ("oversized title in characters, not bytes", json!({"title": "é".repeat(201)})),
        ("control character in title", json!({"title": "a\u{7}b"})),
        ("number title", json!({"title": 5})),
        ("null title", json!({"title": null})),
        ("boolean title", json!({"title": true})),
        ("list title", json!({"title": ["Production backend"]})),
        ("object title", json!({"title": {"text": "Production backend"}})),
    ];
    for (name, body) in title_rows {
        let r = app.send(create(&app.root, body)).await;
        assert_native_error(&r, 400, "invalid_request");
        assert_eq!(r.body["error"]["message"], "Invalid title", "{name}: {}", r.raw);
    }
    let rows: Vec<(&str, Value, u16, &str)> = vec![
        ("unknown field", json!({"title": "t", "team": "x"}), 400, "invalid_request"),
        ("grants not a list", json!({"title": "t", "grants": "/"}), 400, "invalid_request"),
        ("empty grants", json!({"title": "t", "grants": []}), 400, "invalid_request"),
        (
            "relative grant path",
            json!({"title": "t", "grants": [{"path": "a", "access": "read"}]}),
            400,
            "invalid_request",
        ),
        (
            "dotdot grant path",
            json!({"title": "t", "grants": [{"path": "/a/../b", "access": "read"}]}),
            400,
            "invalid_request",
        ),
        ("bad access", json!({"title": "t", "grants": [{"path": "/a", "access": "admin"}]}), 400, "invalid_request"),
        (
            "grant extra field",
            json!({"title": "t", "grants": [{"path": "/a", "access": "read", "x": 1}]}),
            400,
            "invalid_request",
        ),
        ("bad expiry", json!({"title": "t", "expires_at": "tomorrow"}), 400, "invalid_request"),
        ("past expiry", json!({"title": "t", "expires_at": "2020-01-01T00:00:00Z"}), 400, "invalid_request"),
        ("body is a list", json!([]), 400, "invalid_request"),
    ];
    for (name, body, status, code) in rows {
        let r = app.send(create(&app.root, body)).await;
        assert_native_error(&r, status, code);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.len() > 5 && message != "Invalid title", "{name}: {message}");
    }
    let title_at_limit = "x".repeat(200);
    assert_eq!(app.send(create(&app.root, json!({"title": title_at_limit}))).await.status, 200);
    let wide_title_at_limit = "é".repeat(200);
    assert_eq!(app.send(create(&app.root, json!({"title": wide_title_at_limit}))).await.status, 200);

    let raw = |body: &'static str, ctype: Option<&'static str>| {
        let mut req = TestRequest::post().uri("/api/v1/keys").insert_header(bearer(&app.root)).set_payload(body);
        if let Some(c) = ctype {
            req = req.insert_header(("content-type", c));
        }
        req
    };
    assert_native_error(&app.send(raw("{\"title\": ", Some("application/json"))).await, 400, "invalid_request");
    assert_native_error(&app.send(raw("not json", Some("application/json"))).await, 400, "invalid_request");
    assert_native_error(&app.send(raw("{\"title\":\"t\"}", Some("text/plain"))).await, 415, "unsupported_media_type");
    assert_native_error(&app.send(raw("{\"title\":\"t\"}", None)).await, 415, "unsupported_media_type");
    let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(20_000));
    let r = app
        .send(
            TestRequest::post()
                .uri("/api/v1/keys")
                .insert_header(bearer(&app.root))
                .insert_header(("content-type", "application/json"))
                .set_payload(huge),
        )
        .await;
    assert_native_error(&r, 413, "payload_too_large");

    // Only the root key and the two at-limit keys exist.
    let list = app.get("/api/v1/keys", &app.root).await;
    assert_eq!(list.body["data"]["keys"].as_array().unwrap().len(), 3, "{}", list.raw);
}

#[actix_web::test]
async fn parser_messages_never_echo_a_key() {
    let app = TestApp::new().await;
    for body in [json!({"title": "t", "grants": app.root}), json!({"title": "t", "expires_at": [app.root]})] {
        let r = app.send(create(&app.root, body)).await;
        assert_eq!(r.status, 400);
        assert!(!r.raw.contains(&app.root[3..]), "{}", r.raw);
    }
    let r = app.send(create(&app.root, json!({"title": "t", "expires_at": app.root}))).await;
    assert_eq!(r.status, 400);
    assert!(!r.raw.contains(&app.root[3..]), "{}", r.raw);
}

#[actix_web::test]
async fn list_pages_newest_first_with_a_cursor() {
    let app = TestApp::new().await;
    let mut ids = vec![1];
    for i in 0..4 {
        let (KeyId(id), _) = app.create_key(&app.root, &format!("k{i}"), None, None).await;
        ids.push(id);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut uri = "/api/v1/keys?limit=2".to_owned();
    loop {
        let r = app.get(&uri, &app.root).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        let keys = r.body["data"]["keys"].as_array().unwrap();
        assert!(keys.len() <= 2);
        seen.extend(keys.iter().map(|k| k["id"].as_i64().unwrap()));
        for k in keys {
            for field in ["uuid", "title", "prefix", "grants", "status", "created_at", "expires_at", "last_used_at"] {
                assert!(k.get(field).is_some(), "{field} missing in {k}");
            }
            assert!(k.get("api_key").is_none() && k.get("key_hash").is_none());
        }
        match r.body["data"]["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/keys?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    // Status filter.
    app.send(TestRequest::delete().uri(&format!("/api/v1/keys/{}", ids[0])).insert_header(bearer(&app.root))).await;
    let r = app.get("/api/v1/keys?status=revoked", &app.root).await;
    let revoked: Vec<i64> =
        r.body["data"]["keys"].as_array().unwrap().iter().map(|k| k["id"].as_i64().unwrap()).collect();
    assert_eq!(revoked, vec![ids[0]]);
}

#[actix_web::test]
async fn list_refuses_bad_query_parameters() {
    let app = TestApp::new().await;
    for q in ["limit=0", "limit=201", "limit=-1", "limit=abc", "cursor=abc", "cursor=0", "status=gone", "colour=red"] {
        let r = app.get(&format!("/api/v1/keys?{q}"), &app.root).await;
        assert_native_error(&r, 400, "invalid_request");
    }
    let r = app.get("/api/v1/keys?limit=200", &app.root).await;
    assert_eq!(r.status, 200);
}

#[actix_web::test]
async fn get_reports_unknown_and_malformed_ids() {
    let app = TestApp::new().await;
    let r = app.get("/api/v1/keys/999", &app.root).await;
    assert_native_error(&r, 404, "not_found");
    assert_eq!(r.body["error"]["message"], "API key not found");
    for bad in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        let r = app.get(&format!("/api/v1/keys/{bad}"), &app.root).await;
        assert_native_error(&r, 400, "invalid_request");
    }
    let r = app.get("/api/v1/keys/1", &app.root).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["title"], "root");
    assert_eq!(r.body["data"]["grants"], json!([{"path": "/", "access": "read_write"}]));
}

#[actix_web::test]
async fn revoked_key_fails_from_the_next_request_and_retries_are_safe() {
    let app = TestApp::new().await;
    let (KeyId(id), key) = app.create_key(&app.root, "victim", None, None).await;
    let uri = format!("/api/v1/keys/{id}");
    assert_eq!(app.get("/api/v1/keys", &key).await.status, 200);

    let r = app.send(TestRequest::delete().uri(&uri).insert_header(bearer(&app.root))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["data"], json!({"id": id, "status": "revoked"}));
    assert_eq!(r.body["success"], true);
    assert_request_id(&r);
    let revoke_request_id = r.body["request_id"].as_str().unwrap().to_owned();

    let after = app.get("/api/v1/keys", &key).await;
    assert_native_error(&after, 401, "unauthorized");

    // A retry answers the same and writes no second audit row.
    let again = app.send(TestRequest::delete().uri(&uri).insert_header(bearer(&app.root))).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["data"], json!({"id": id, "status": "revoked"}));
    let mut audit =
        app.conn().list_audit(&AuditFilter { key: Some(KeyId(id)), limit: 10, ..AuditFilter::default() }).unwrap();
    audit.reverse();
    assert_eq!(audit.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), ["create", "revoke"]);
    assert_eq!(audit[1].actor_key_id, Some(KeyId(1)));
    assert_eq!(audit[1].request_id.as_deref(), Some(revoke_request_id.as_str()));

    let got = app.get(&uri, &app.root).await;
    assert_eq!(got.body["data"]["status"], "revoked");
    assert!(got.body["data"]["revoked_at"].is_string());
}

#[actix_web::test]
async fn a_key_cannot_revoke_itself_and_keeps_working() {
    let app = TestApp::new().await;
    let r = app.send(TestRequest::delete().uri("/api/v1/keys/1").insert_header(bearer(&app.root))).await;
    assert_native_error(&r, 400, "cannot_revoke_current_key");
    let r = app.get("/api/v1/keys/1", &app.root).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["status"], "active");
}

#[actix_web::test]
async fn revoke_answers_404_400_and_409() {
    let app = TestApp::new().await;
    let r = app.send(TestRequest::delete().uri("/api/v1/keys/13").insert_header(bearer(&app.root))).await;
    assert_native_error(&r, 404, "not_found");
    assert_eq!(r.body["error"]["message"], "API key not found");
    let r = app.send(TestRequest::delete().uri("/api/v1/keys/abc").insert_header(bearer(&app.root))).await;
    assert_native_error(&r, 400, "invalid_request");
    let (id, key) = app.insert_key(Grants::root(), None);
    app.delete_direct(&key).await;
    let r =
        app.send(TestRequest::delete().uri(&format!("/api/v1/keys/{}", id.0)).insert_header(bearer(&app.root))).await;
    assert_native_error(&r, 409, "key_deleted");
}

#[actix_web::test]
async fn unknown_routes_and_wrong_methods_use_the_envelope() {
    let app = TestApp::new().await;
    assert_native_error(&app.send(TestRequest::get().uri("/api/v1/nothing")).await, 404, "not_found");
    assert_native_error(&app.send(TestRequest::get().uri("/api/v1/keys/")).await, 404, "not_found");
    let r = app.send(TestRequest::put().uri("/api/v1/keys").insert_header(bearer(&app.root))).await;
    assert_native_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers.get("allow").unwrap(), "GET, POST");
    let r = app.send(TestRequest::post().uri("/api/v1/keys/1").insert_header(bearer(&app.root))).await;
    assert_native_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers.get("allow").unwrap(), "GET, PATCH, DELETE");
    let r = app.send(TestRequest::get().uri("/healthz")).await;
    assert_eq!((r.status.as_u16(), r.raw.as_str()), (200, "ok"));
}

#[actix_web::test]
async fn credentials_are_read_from_either_header_and_must_agree() {
    let app = TestApp::new().await;
    let list = || TestRequest::get().uri("/api/v1/keys");
    assert_eq!(app.send(list().insert_header(("x-user-api-key", app.root.as_str()))).await.status, 200);
    assert_eq!(app.send(list().insert_header(bearer(&app.root))).await.status, 200);
    let (_, other) = app.insert_key(Grants::root(), None);
    let both = list().insert_header(bearer(&app.root)).insert_header(("x-user-api-key", other.as_str()));
    assert_native_error(&app.send(both).await, 401, "unauthorized");
    let basic = list().insert_header(("Authorization", format!("Basic {}", app.root)));
    assert_native_error(&app.send(basic).await, 401, "unauthorized");
    let r = app.send(list()).await;
    assert_native_error(&r, 401, "unauthorized");
    assert_eq!(r.body["error"]["message"], "API key required or invalid API key");
}

#[actix_web::test]
async fn headers_over_the_limit_are_refused_with_431() {
    let app = TestApp::new().await;
    let limit = apikeyd::config::MAX_HEADER_BYTES;
    // "x-pad" plus its value make up the whole header block (TestRequest adds no others).
    let at_limit = "a".repeat(limit - "x-pad".len());
    let r = app.send(TestRequest::get().uri("/healthz").insert_header(("x-pad", at_limit.as_str()))).await;
    assert_eq!(r.status, 200);
    let over = "a".repeat(limit - "x-pad".len() + 1);
    let r = app.send(TestRequest::get().uri("/api/v1/keys").insert_header(("x-pad", over.as_str()))).await;
    assert_native_error(&r, 431, "headers_too_large");
}
