//! The shard-node `/api-key` family (its contract document: delete by key value), through
//! the real app in-process.

use actix_web::test::TestRequest;
use apikeyd::domain::grants::{Access, Grants};
use apikeyd::domain::key_format::ApiKey;
use apikeyd::domain::timestamp::Timestamp;
use serde_json::{json, Value};

use crate::support::{assert_shard_error, grants, mangle, TestApp};

const NEVER: &str = "0001-01-01T00:00:00Z";

fn create(caller: &str, body: Value) -> TestRequest {
    TestRequest::post().uri("/api-key").insert_header(("x-user-api-key", caller)).set_json(body)
}

/// As the shard family's documented Go and TypeScript clients send it: `?value=`, JSON content type, no body.
fn delete_by_query(caller: &str, value: &str) -> TestRequest {
    let encoded: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
    TestRequest::delete()
        .uri(&format!("/api-key?value={encoded}"))
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-user-api-key", caller))
}

fn delete_by_body(caller: &str, body: Value) -> TestRequest {
    TestRequest::delete().uri("/api-key").insert_header(("x-user-api-key", caller)).set_json(body)
}

#[actix_web::test]
async fn root_creates_a_path_scoped_key_with_a_bitmask() {
    let app = TestApp::new().await;
    let r = app.send(create(&app.root, json!({"permissions": 2, "path": "/uploads/", "expiration_date": NEVER}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    let value = r.body["value"].as_str().unwrap();
    assert!(ApiKey::parse(value).is_ok());
    assert_eq!(r.body["path"], "/uploads");
    assert_eq!(r.body["permissions"], 2);
    assert_eq!(r.body["expiration_date"], NEVER);
    assert!(r.body["id"].is_i64() && r.body["uuid"].is_string() && r.body["created_at"].is_string());
    let id = r.body["id"].as_i64().unwrap();
    let got = app.get(&format!("/api/v1/keys/{id}"), &app.root).await;
    assert_eq!(got.body["data"]["grants"], json!([{"path": "/uploads", "access": "write"}]));
    assert_eq!(got.body["data"]["expires_at"], Value::Null);
    // A write-only key on /uploads manages nothing.
    let r = app.get("/api/v1/keys", value).await;
    assert_eq!(r.status, 403);

    let when = Timestamp::now().plus_millis(86_400_000);
    let r =
        app.send(create(&app.root, json!({"permissions": 3, "path": "/", "expiration_date": when.to_string()}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["expiration_date"], when.to_string());
}

#[actix_web::test]
async fn create_needs_a_root_key() {
    let app = TestApp::new().await;
    let body = json!({"permissions": 1, "path": "/a", "expiration_date": NEVER});
    let (_, write_only_root) = app.insert_key(grants(&[("/", Access::Write)]), None);
    let (_, expiring_root) = app.insert_key(Grants::root(), Some(Timestamp::now().plus_millis(3_600_000)));
    let (_, reader) = app.insert_key(grants(&[("/", Access::Read)]), None);
    for caller in [&write_only_root, &expiring_root, &reader] {
        assert_shard_error(&app.send(create(caller, body.clone())).await, 403, "forbidden");
    }
    let r = app.send(TestRequest::post().uri("/api-key").set_json(body)).await;
    assert_shard_error(&r, 401, "unauthorized");
}

#[actix_web::test]
async fn create_refuses_bad_bodies() {
    let app = TestApp::new().await;
    let rows = [
        json!({"permissions": 0, "path": "/a", "expiration_date": NEVER}),
        json!({"permissions": 4, "path": "/a", "expiration_date": NEVER}),
        json!({"permissions": "3", "path": "/a", "expiration_date": NEVER}),
        json!({"permissions": -1, "path": "/a", "expiration_date": NEVER}),
        json!({"permissions": 3, "path": "a", "expiration_date": NEVER}),
        json!({"permissions": 3, "path": "/a/../b", "expiration_date": NEVER}),
        json!({"permissions": 3, "path": "/a//b", "expiration_date": NEVER}),
        json!({"permissions": 3, "path": "/a", "expiration_date": "never"}),
        json!({"permissions": 3, "path": "/a", "expiration_date": "2020-01-01T00:00:00Z"}),
        json!({"path": "/a", "expiration_date": NEVER}),
        json!({"permissions": 3, "expiration_date": NEVER}),
        json!({"permissions": 3, "path": "/a"}),
        json!({"permissions": 3, "path": "/a", "expiration_date": NEVER, "extra": true}),
    ];
    for body in rows {
        let r = app.send(create(&app.root, body.clone())).await;
        assert_shard_error(&r, 400, "invalid_request");
    }
    let list = app.get("/api/v1/keys", &app.root).await;
    assert_eq!(list.body["data"]["keys"].as_array().unwrap().len(), 1, "nothing was created");
}

#[actix_web::test]
async fn delete_by_query_value_as_the_seed_client_sends_it() {
    let app = TestApp::new().await;
    let (id, victim) = app.insert_key(grants(&[("/data", Access::Read)]), None);
    let r = app.send(delete_by_query(&app.root, &victim)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["id"], id.0);
    assert_eq!(r.body["status"], "deleted");
    assert!(r.body["deleted_at"].is_string() && r.body["uuid"].is_string());
    assert!(!r.raw.contains(&victim));
    // Gone from the next request; the metadata stays, marked deleted.
    let r = app.get("/api/v1/keys", &victim).await;
    assert_eq!(r.status, 401);
    let r = app.get(&format!("/api/v1/keys/{}", id.0), &app.root).await;
    assert_eq!(r.body["data"]["status"], "deleted");
    // A retry finds no active key: 404, and nothing changes.
    assert_shard_error(&app.send(delete_by_query(&app.root, &victim)).await, 404, "not_found");
}

#[actix_web::test]
async fn delete_by_body_value_and_both_forms_together() {
    let app = TestApp::new().await;
    // The documented table form: JSON body, no query.
    let (a_id, a) = app.insert_key(Grants::root(), None);
    let r = app.send(delete_by_body(&app.root, json!({"value": a}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!((r.body["id"].as_i64(), r.body["status"].as_str()), (Some(a_id.0), Some("deleted")));
    assert_eq!(app.get("/api/v1/keys", &a).await.status, 401);
    assert_shard_error(&app.send(delete_by_body(&app.root, json!({"value": a}))).await, 404, "not_found");

    let (_, b) = app.insert_key(Grants::root(), None);
    let (_, c) = app.insert_key(Grants::root(), None);
    let same = delete_by_query(&app.root, &b).set_json(json!({"value": b}));
    assert_eq!(app.send(same).await.status, 200);
    assert_eq!(app.get("/api/v1/keys", &b).await.status, 401);
    // Query and body name different keys (both real, both deletable): refused, neither deleted.
    let (_, d) = app.insert_key(Grants::root(), None);
    let differ = delete_by_query(&app.root, &c).set_json(json!({"value": d}));
    let r = app.send(differ).await;
    assert_shard_error(&r, 400, "invalid_request");
    assert_eq!(r.body["message"], "value given in both query and body, and they differ");
    assert_eq!(app.get("/api/v1/keys", &d).await.status, 200);
    // c survived the refused request.
    assert_eq!(app.get("/api/v1/keys", &c).await.status, 200);
}

#[actix_web::test]
async fn delete_error_rows() {
    let app = TestApp::new().await;
    let (revoked_id, revoked) = app.insert_key(Grants::root(), None);
    app.revoke_direct(revoked_id).await;
    let unknown = ApiKey::generate().unwrap().expose().to_owned();
    let (_, target) = app.insert_key(Grants::root(), None);
    let (_, reader) = app.insert_key(grants(&[("/", Access::Read)]), None);
    let (_, sub_writer) = app.insert_key(grants(&[("/data", Access::ReadWrite)]), None);
    let mangled = mangle(&target);

    let bare = || TestRequest::delete().uri("/api-key").insert_header(("x-user-api-key", app.root.as_str()));
    assert_shard_error(&app.send(bare()).await, 400, "invalid_request");
    assert_shard_error(&app.send(bare().uri("/api-key?value=")).await, 400, "invalid_request");
    assert_shard_error(&app.send(delete_by_body(&app.root, json!({"value": ""}))).await, 400, "invalid_request");
    assert_shard_error(&app.send(delete_by_body(&app.root, json!({}))).await, 400, "invalid_request");
    assert_shard_error(&app.send(delete_by_body(&app.root, json!({"value": 5}))).await, 400, "invalid_request");
    assert_shard_error(&app.send(delete_by_body(&app.root, json!({"key": target}))).await, 400, "invalid_request");
    assert_shard_error(&app.send(bare().uri("/api-key?valu=x")).await, 400, "invalid_request");
    let not_json = bare().insert_header(("content-type", "application/json")).set_payload("value=x");
    assert_shard_error(&app.send(not_json).await, 400, "invalid_request");
    // Not shaped like a key: 400. Shaped like one but failing its checksum (a typo): it names
    // no key, 404, as an unknown key does; the key it was mistyped from is untouched.
    let r = app.send(delete_by_query(&app.root, &target[..target.len() - 1])).await;
    assert_shard_error(&r, 400, "invalid_request");
    assert_eq!(r.body["message"], "value is not a well-formed API key");
    let r = app.send(delete_by_query(&app.root, &mangled)).await;
    assert_shard_error(&r, 404, "not_found");
    assert_eq!(r.body["message"], "No such active API key");
    assert_eq!(app.get("/api/v1/keys", &target).await.status, 200);
    assert_shard_error(&app.send(delete_by_query(&app.root, &app.root)).await, 400, "cannot_delete_current_key");
    assert_shard_error(&app.send(delete_by_query(&app.root, &unknown)).await, 404, "not_found");
    assert_shard_error(&app.send(delete_by_query(&app.root, &revoked)).await, 404, "not_found");
    assert_shard_error(&app.send(delete_by_query(&reader, &target)).await, 403, "forbidden");
    assert_shard_error(&app.send(delete_by_query(&sub_writer, &target)).await, 403, "forbidden");
    assert_shard_error(&app.send(delete_by_query("sk-nope", &target)).await, 401, "unauthorized");
    let anonymous = TestRequest::delete().uri("/api-key").set_json(json!({"value": target}));
    assert_shard_error(&app.send(anonymous).await, 401, "unauthorized");
    let huge = bare().insert_header(("content-type", "application/json")).set_payload(vec![b' '; 17_000]);
    assert_shard_error(&app.send(huge).await, 413, "payload_too_large");
    let r = app.send(TestRequest::put().uri("/api-key").insert_header(("x-user-api-key", app.root.as_str()))).await;
    assert_shard_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers.get("allow").unwrap(), "POST, DELETE");
    assert_shard_error(&app.send(TestRequest::get().uri("/api-key/extra")).await, 404, "not_found");

    // After all that, the target still works.
    assert_eq!(app.get("/api/v1/keys", &target).await.status, 200);
}

#[actix_web::test]
async fn create_answers_413_415_and_405_in_the_shard_envelope() {
    let app = TestApp::new().await;
    let post = || TestRequest::post().uri("/api-key").insert_header(("x-user-api-key", app.root.as_str()));
    let body = json!({"permissions": 1, "path": "/a", "expiration_date": NEVER}).to_string();
    // Over the 16 KiB body limit (a valid JSON object, padded with whitespace).
    let huge = format!("{}{}", " ".repeat(apikeyd::config::MAX_BODY_BYTES), body);
    let r = app.send(post().insert_header(("content-type", "application/json")).set_payload(huge)).await;
    assert_shard_error(&r, 413, "payload_too_large");
    for ctype in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut req = post().set_payload(body.clone());
        if let Some(c) = ctype {
            req = req.insert_header(("content-type", c));
        }
        let r = app.send(req).await;
        assert_shard_error(&r, 415, "unsupported_media_type");
    }
    let r = app.send(TestRequest::get().uri("/api-key").insert_header(("x-user-api-key", app.root.as_str()))).await;
    assert_shard_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers.get("allow").unwrap(), "POST, DELETE");
    // None of them created a key; the same body as JSON does.
    let list = app.get("/api/v1/keys", &app.root).await;
    assert_eq!(list.body["data"]["keys"].as_array().unwrap().len(), 1, "{}", list.raw);
    let ok = app.send(post().insert_header(("content-type", "application/json")).set_payload(body)).await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
}

#[actix_web::test]
async fn a_long_path_gives_a_title_within_the_limit() {
    let app = TestApp::new().await;
    let limit = apikeyd::config::MAX_TITLE_CHARS;
    // 1,024 bytes of two-byte characters: 512 characters, far over the title limit.
    let long = format!("/{}x", "é".repeat(511));
    assert_eq!(long.len(), apikeyd::config::MAX_PATH_LEN);
    let fits = format!("/{}", "p".repeat(limit - "shard key /".len()));
    for (path, want) in [
        (long.clone(), format!("{}…", format!("shard key {long}").chars().take(limit - 1).collect::<String>())),
        (fits.clone(), format!("shard key {fits}")),
        ("/uploads".to_owned(), "shard key /uploads".to_owned()),
    ] {
        let r = app.send(create(&app.root, json!({"permissions": 3, "path": path, "expiration_date": NEVER}))).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body["path"], path.as_str(), "the grant keeps the whole path");
        let id = r.body["id"].as_i64().unwrap();
        let got = app.get(&format!("/api/v1/keys/{id}"), &app.root).await;
        let title = got.body["data"]["title"].as_str().unwrap();
        assert_eq!(title, want);
        assert!(title.chars().count() <= limit, "{} characters", title.chars().count());
        assert_eq!(got.body["data"]["grants"], json!([{"path": path, "access": "read_write"}]));
    }
}
