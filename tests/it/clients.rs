//! The clients family (its contract document: JWT login, list, generate, delete by UUID,
//! bulk delete) and JWT sessions: every endpoint and error body, tokens tampered, expired and
//! killed with their key, bulk delete all or nothing. (Token lifetime, expiry and the signing
//! secret over HTTP and the real binary: the sessions module.)

use std::time::Duration;

use actix_web::test::TestRequest;
use apikeyd::domain::grants::{Access, Grants};
use apikeyd::domain::model::KeyId;
use apikeyd::domain::timestamp::Timestamp;
use serde_json::{json, Value};

use crate::support::{assert_client_error, assert_native_error, bearer, grants, TestApp};

/// Rows in the audit log: each create, revoke and delete writes one.
fn audit_rows(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM audit_log")
}

#[actix_web::test]
async fn login_answers_in_both_envelopes() {
    let app = TestApp::new().await;
    let r = app.send(TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": app.root}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], 200);
    assert_eq!(r.body["message"], "Login successful");
    assert_eq!(r.body["data"]["token"].as_str().unwrap().split('.').count(), 3);
    assert!(r.body["data"]["expires_at"].is_string());
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    let r = app.send(TestRequest::post().uri("/api/v1/auth/token").set_json(json!({"api_key": app.root}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["data"]["token_type"], "Bearer");

    let bad = app.send(TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": "sk-nope"}))).await;
    assert_client_error(&bad, 401, "Invalid API key");
    let bad = app.send(TestRequest::post().uri("/api/clients/login").set_json(json!({}))).await;
    assert_client_error(&bad, 400, "Invalid request body: missing field `api_key` at line 1 column 2");
    let bad = app.send(TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": 7}))).await;
    assert_client_error(
        &bad,
        400,
        "Invalid request body: invalid type: integer `7`, expected a string at line 1 column 12",
    );
    let bad = app.send(TestRequest::post().uri("/api/v1/auth/token").set_json(json!({"api_key": 1}))).await;
    assert_native_error(&bad, 400, "invalid_request");
    // A token cannot log in for another token.
    let token = app.login(&app.root).await;
    let again = app.send(TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": token}))).await;
    assert_eq!(again.status, 401);
}

#[actix_web::test]
async fn list_generate_and_delete_one_key() {
    let app = TestApp::new().await;
    let jwt = app.login(&app.root).await;
    let r = app
        .send(
            TestRequest::post()
                .uri("/api/clients/api-keys")
                .insert_header(bearer(&jwt))
                .set_json(json!({"name": "ussd", "grants": [{"path": "/sms", "access": "write"}]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.body["status"], 201);
    assert_eq!(r.body["message"], "API Key generated successfully");
    let id = r.body["data"]["id"].as_str().unwrap().to_owned();
    let key = r.body["data"]["api_key"].as_str().unwrap().to_owned();
    assert_eq!(r.body["data"]["grants"], json!([{"path": "/sms", "access": "write"}]));

    let list = app.get("/api/clients/api-keys", &jwt).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["message"], "API Keys retrieved successfully");
    assert!(list.body["data"]["api_keys"].as_array().unwrap().iter().any(|k| k["id"] == id.as_str()));
    assert!(!list.raw.contains(&key));

    let r = app
        .send(
            TestRequest::delete()
                .uri(&format!("/api/clients/api-keys/{id}"))
                .insert_header(bearer(&jwt))
                .insert_header(("content-type", "application/json")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["status"], 200);
    assert_eq!(r.body["message"], "API Key deleted successfully");
    assert_eq!(r.body["data"]["deleted_id"], id.as_str());
    assert!(r.body["data"]["deleted_at"].is_string());
    assert_eq!(r.body["data"].as_object().unwrap().len(), 2);

    // Permanent for the secret; the metadata stays, marked deleted.
    assert_eq!(app.verify_code(&key).await, "DELETED");
    let list = app.get("/api/clients/api-keys", &jwt).await;
    let row =
        list.body["data"]["api_keys"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).cloned().unwrap();
    assert_eq!(row["status"], "deleted");
    let again =
        app.send(TestRequest::delete().uri(&format!("/api/clients/api-keys/{id}")).insert_header(bearer(&jwt))).await;
    assert_client_error(&again, 404, "API Key not found");
}

#[actix_web::test]
async fn delete_error_bodies_match_the_seed() {
    let app = TestApp::new().await;
    let both = app.two_applications();
    let (a, b_key, a_admin) = (&both.a.app, &both.b.admin, &both.a.admin_key);
    let (a_victim, _) = app.insert_key_in(Some(a.id), Grants::root(), None);
    let (_, a_reader) = app.insert_key_in(Some(a.id), grants(&[("/", Access::Read)]), None);
    let reader_jwt = app.login(&a_reader).await;
    let admin_jwt = app.login(a_admin).await;
    let del = |id: &str, token: &str| {
        TestRequest::delete().uri(&format!("/api/clients/api-keys/{id}")).insert_header(bearer(token))
    };
    let victim = a_victim.uuid.to_string();
    for bad in ["not-a-uuid", "123", "f7fa38ec0e19405c820fbf65912ab4ec"] {
        assert_client_error(&app.send(del(bad, &admin_jwt)).await, 400, "Invalid API key ID format");
    }
    assert_client_error(&app.send(del(&victim, "x.y.z")).await, 401, "Invalid JWT token");
    let r = app.send(TestRequest::delete().uri(&format!("/api/clients/api-keys/{victim}"))).await;
    assert_client_error(&r, 401, "Invalid JWT token");
    assert_client_error(
        &app.send(del(&victim, &reader_jwt)).await,
        403,
        "Insufficient permissions to delete this API key",
    );
    assert_client_error(&app.send(del(&b_key.uuid.to_string(), &admin_jwt)).await, 404, "API Key not found");
    assert_client_error(
        &app.send(del("f7fa38ec-0e19-405c-820f-bf65912ab4ec", &admin_jwt)).await,
        404,
        "API Key not found",
    );
    // Nothing above changed the victim.
    assert_eq!(app.send(del(&victim, &admin_jwt)).await.status, 200);
}

#[actix_web::test]
async fn bulk_delete_is_all_or_nothing() {
    let app = TestApp::new().await;
    let jwt = app.login(&app.root).await;
    let made: Vec<(String, String)> = (0..3)
        .map(|_| {
            let (rec, key) = app.insert_key_in(None, Grants::root(), None);
            (rec.uuid.to_string(), key)
        })
        .collect();
    let bulk = |body: Value| {
        TestRequest::delete().uri("/api/clients/api-keys/bulk").insert_header(bearer(&jwt)).set_json(body)
    };
    let unknown = "a1b2c3d4-e5f6-7890-abcd-ef1234567890";
    let ids = |extra: &[&str]| -> Vec<String> {
        made.iter().map(|(id, _)| id.clone()).chain(extra.iter().map(|s| (*s).to_owned())).collect()
    };

    let audit_before = audit_rows(&app);
    let r = app.send(bulk(json!({"api_key_ids": ids(&[unknown])}))).await;
    assert_client_error(&r, 404, &format!("API Key not found: {unknown}"));
    let r = app.send(bulk(json!({"api_key_ids": ids(&["nope"])}))).await;
    assert_client_error(&r, 400, "Invalid API key ID format: nope");
    let other = "0b5c1e2a-7a3f-4a57-9a57-3f0e9b6f2c11";
    let r = app.send(bulk(json!({"api_key_ids": [unknown, other, "12345"]}))).await;
    assert_client_error(&r, 400, "Invalid API key ID format: 12345");
    let r = app.send(bulk(json!({"api_key_ids": []}))).await;
    assert_client_error(&r, 400, "api_key_ids must name at least one API key");
    let r = app.send(bulk(json!({}))).await;
    assert_client_error(&r, 400, "Invalid request body: missing field `api_key_ids` at line 1 column 2");
    for body in [json!({"api_key_ids": "x"}), json!({"ids": []}), json!({"api_key_ids": [7]})] {
        let r = app.send(bulk(body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {}", r.raw);
        assert!(r.body["message"].as_str().unwrap().starts_with("Invalid request body: "), "{}", r.raw);
    }
    let too_many: Vec<String> = (0..1001).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let r = app.send(bulk(json!({"api_key_ids": too_many}))).await;
    assert_client_error(&r, 400, "api_key_ids may name at most 1000 API keys");
    let at_limit: Vec<String> = (0..1000).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let r = app.send(bulk(json!({"api_key_ids": at_limit.clone()}))).await;
    assert_client_error(&r, 404, &format!("API Key not found: {}", at_limit.join(", ")));
    // Including the caller's own key: refused.
    let me = app.get("/api/v1/keys/1", &app.root).await;
    let my_uuid = me.body["data"]["uuid"].as_str().unwrap().to_owned();
    let r = app.send(bulk(json!({"api_key_ids": ids(&[&my_uuid])}))).await;
    assert_client_error(&r, 400, &format!("The API key used for this request cannot delete itself: {my_uuid}"));
    // Without a credential, and without write on `/`.
    let r = app
        .send(TestRequest::delete().uri("/api/clients/api-keys/bulk").set_json(json!({"api_key_ids": [unknown]})))
        .await;
    assert_client_error(&r, 401, "Invalid JWT token");
    let (_, reader) = app.insert_key(grants(&[("/", Access::Read)]), None);
    let reader_jwt = app.login(&reader).await;
    let audit_before = audit_before + 1; // the reader's own creation
    let r = app
        .send(
            TestRequest::delete()
                .uri("/api/clients/api-keys/bulk")
                .insert_header(bearer(&reader_jwt))
                .set_json(json!({"api_key_ids": ids(&[])})),
        )
        .await;
    assert_client_error(&r, 403, "Insufficient permissions to delete these API keys");
    assert_eq!(audit_rows(&app), audit_before, "no refused call wrote an audit row");

    // Every refused call deleted nothing.
    for (_, key) in &made {
        assert_eq!(app.verify_code(key).await, "VALID");
    }
    let mut with_repeat = ids(&[]);
    with_repeat.push(made[0].0.clone());
    let r = app.send(bulk(json!({"api_key_ids": with_repeat}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["message"], "API Keys deleted successfully");
    assert_eq!(r.body["data"]["deleted_ids"].as_array().unwrap().len(), 3);
    for (_, key) in &made {
        assert_eq!(app.verify_code(key).await, "DELETED");
    }
    // "bulk" is never a key id.
    let r = app.send(TestRequest::delete().uri("/api/clients/api-keys/bulk").insert_header(bearer(&jwt))).await;
    assert_eq!(r.status, 415, "no body: the bulk route answered, not the single-key one: {}", r.raw);
}

#[actix_web::test]
async fn bulk_delete_naming_another_applications_key_names_it_and_changes_nothing() {
    let app = TestApp::new().await;
    let both = app.two_applications();
    let (b_rec, b_key, a_admin) = (&both.b.admin, &both.b.admin_key, &both.a.admin_key);
    let (a_own, a_own_key) = app.insert_key_in(Some(both.a.app.id), Grants::root(), None);
    let a_jwt = app.login(a_admin).await;
    let audit_before = audit_rows(&app);
    let (a_id, b_id) = (a_own.uuid.to_string(), b_rec.uuid.to_string());
    for cred in [a_admin, &a_jwt] {
        let r = app
            .send(
                TestRequest::delete()
                    .uri("/api/clients/api-keys/bulk")
                    .insert_header(bearer(cred))
                    .set_json(json!({"api_key_ids": [a_id, b_id]})),
            )
            .await;
        assert_client_error(&r, 404, &format!("API Key not found: {b_id}"));
    }
    // Nothing was deleted: both keys verify and A's still authenticates.
    for key in [&a_own_key, b_key] {
        assert_eq!(app.verify_code(key).await, "VALID");
    }
    let r = app.get("/api/clients/api-keys", &a_own_key).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(audit_rows(&app), audit_before, "no audit row for a refused bulk delete");
    assert_eq!(app.count("SELECT count(*) FROM api_keys WHERE status != 'active'"), 0);
}

#[actix_web::test]
async fn list_and_generate_error_bodies() {
    let app = TestApp::new().await;
    let (_, reader) = app.insert_key(grants(&[("/", Access::Read)]), None);
    let reader_jwt = app.login(&reader).await;
    let limit = Timestamp::now().plus_millis(86_400_000);
    let (_, narrow) = app.insert_key(grants(&[("/", Access::Write)]), Some(limit));
    let narrow_jwt = app.login(&narrow).await;
    let list = |t: Option<&str>| {
        let req = TestRequest::get().uri("/api/clients/api-keys");
        match t {
            Some(t) => req.insert_header(bearer(t)),
            None => req,
        }
    };
    let generate = |t: Option<&str>, body: Value| {
        let req = TestRequest::post().uri("/api/clients/api-keys").set_json(body);
        match t {
            Some(t) => req.insert_header(bearer(t)),
            None => req,
        }
    };
    for cred in [&reader, &reader_jwt] {
        let r = app.send(list(Some(cred))).await;
        assert_client_error(&r, 403, "Insufficient permissions to list API keys");
        let r = app.send(generate(Some(cred), json!({"name": "x"}))).await;
        assert_client_error(&r, 403, "Insufficient permissions to generate API keys");
    }
    assert_client_error(&app.send(list(None)).await, 401, "Invalid JWT token");
    assert_client_error(&app.send(list(Some("x.y.z"))).await, 401, "Invalid JWT token");
    assert_client_error(&app.send(generate(None, json!({}))).await, 401, "Invalid JWT token");
    let r = app.send(generate(Some(&narrow_jwt), json!({"grants": [{"path": "/", "access": "read_write"}]}))).await;
    assert_client_error(&r, 403, "Requested grants exceed the grants of the calling key");
    let later = limit.plus_millis(1000).to_string();
    let r = app.send(generate(Some(&narrow_jwt), json!({"expires_at": later}))).await;
    assert_client_error(&r, 403, "Requested expiry is later than the calling key's expiry");
    let r = app.send(generate(Some(&narrow_jwt), json!({"expires_at": "2001-01-01T00:00:00Z"}))).await;
    assert_client_error(&r, 400, "expires_at must be in the future");
    let r = app.send(list(Some(&narrow_jwt))).await;
    assert_eq!(r.status, 200, "write on / may list: {}", r.raw);
}

#[actix_web::test]
async fn a_jwt_has_exactly_its_keys_rights_and_dies_with_it() {
    let app = TestApp::new().await;
    let (reader_id, reader) = app.insert_key(grants(&[("/", Access::Read)]), None);
    let reader_jwt = app.login(&reader).await;
    let list = |t: &str| TestRequest::get().uri("/api/v1/keys").insert_header(bearer(t));
    assert_eq!(app.send(list(&reader_jwt)).await.status, 403, "read-only key, read-only token");
    let auth = |t: &str| TestRequest::get().uri("/auth?path=/x").insert_header(bearer(t));
    assert_eq!(app.send(auth(&reader_jwt)).await.status, 200, "a JWT works for forward-auth too");

    let (admin_id, admin) = app.insert_key(Grants::root(), None);
    let admin_jwt = app.login(&admin).await;
    assert_eq!(app.send(list(&admin_jwt)).await.status, 200);
    let r = app
        .send(
            TestRequest::post()
                .uri("/api/v1/keys")
                .insert_header(bearer(&admin_jwt))
                .set_json(json!({"title": "via jwt"})),
        )
        .await;
    assert_eq!(r.status, 200);
    // Revoking the key kills its token from the next request.
    app.revoke_direct(admin_id).await;
    assert_eq!(app.send(list(&admin_jwt)).await.status, 401);
    let r = app.get("/api/clients/api-keys", &admin_jwt).await;
    assert_client_error(&r, 401, "Invalid JWT token");
    // Deleting too.
    app.delete_direct(&reader).await;
    assert_eq!(app.send(auth(&reader_jwt)).await.status, 401);
    let _ = reader_id;
}

#[actix_web::test]
async fn tampered_and_expired_tokens_are_refused() {
    let app = TestApp::new().await;
    let jwt = app.login(&app.root).await;
    let list = |t: &str| TestRequest::get().uri("/api/clients/api-keys").insert_header(bearer(t));
    assert_eq!(app.send(list(&jwt)).await.status, 200);
    let mut flipped = jwt.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    let hs512 = format!("eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.{}.{}", parts[1], parts[2]);
    for bad in [flipped.as_str(), none.as_str(), hs512.as_str(), "a.b.c", "a.b", ""] {
        assert_client_error(&app.send(list(bad)).await, 401, "Invalid JWT token");
    }
    // A token for the same key, issued a lifetime and a second ago: already expired.
    let root = app.key_record(KeyId(1)).auth();
    let ttl = i64::try_from(Duration::from_secs(3600).as_millis()).unwrap();
    let issued = Timestamp::now().plus_millis(-ttl - 1000);
    let (expired, expires_at) = app.state.sessions.issue(&root, issued).unwrap();
    assert!(expires_at < Timestamp::now(), "{expires_at}");
    assert_client_error(&app.send(list(&expired)).await, 401, "Invalid JWT token");
    let (fresh, _) = app.state.sessions.issue(&root, Timestamp::now()).unwrap();
    assert_eq!(app.send(list(&fresh)).await.status, 200, "the same token, unexpired, is accepted");
    // The key itself still works.
    assert_eq!(app.send(list(&app.root)).await.status, 200);
}
