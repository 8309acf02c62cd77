//! The clients family (seed 003) and JWT sessions: every endpoint and error body, tokens
//! tampered, expired and killed with their key, bulk delete all or nothing.

mod common;

use std::time::Duration;

use actix_web::test::{self, TestRequest};
use apikeyd::grants::{Access, Grants};
use common::{bearer, grants, send, Reply, TestEnv};
use serde_json::{json, Value};

fn assert_client_error(r: &Reply, status: u16, message: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.raw);
    assert_eq!(r.body, json!({"status": status, "message": message, "data": null}), "{}", r.raw);
    common::assert_request_id(r);
}

async fn login<S, B>(app: &S, key: &str) -> String
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let r = send(app, TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": key}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    r.body["data"]["token"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn login_answers_in_both_envelopes() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let r = send(&app, TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": env.root}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], 200);
    assert_eq!(r.body["message"], "Login successful");
    assert_eq!(r.body["data"]["token"].as_str().unwrap().split('.').count(), 3);
    assert!(r.body["data"]["expires_at"].is_string());
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    let r = send(&app, TestRequest::post().uri("/api/v1/auth/token").set_json(json!({"api_key": env.root}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["data"]["token_type"], "Bearer");

    let bad = send(&app, TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": "sk-nope"}))).await;
    assert_client_error(&bad, 401, "Invalid API key");
    let bad = send(&app, TestRequest::post().uri("/api/clients/login").set_json(json!({}))).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["data"], Value::Null);
    let bad = send(&app, TestRequest::post().uri("/api/v1/auth/token").set_json(json!({"api_key": 1}))).await;
    common::assert_native_error(&bad, 400, "invalid_request");
    // A token cannot log in for another token.
    let token = login(&app, &env.root).await;
    let again = send(&app, TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": token}))).await;
    assert_eq!(again.status, 401);
}

#[actix_web::test]
async fn list_generate_and_delete_one_key() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let jwt = login(&app, &env.root).await;
    let r = send(
        &app,
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

    let list = send(&app, TestRequest::get().uri("/api/clients/api-keys").insert_header(bearer(&jwt))).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["message"], "API Keys retrieved successfully");
    assert!(list.body["data"]["api_keys"].as_array().unwrap().iter().any(|k| k["id"] == id.as_str()));
    assert!(!list.raw.contains(&key));

    let r = send(
        &app,
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
    let v = send(&app, TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key}))).await;
    assert_eq!(v.body["data"]["code"], "DELETED");
    let list = send(&app, TestRequest::get().uri("/api/clients/api-keys").insert_header(bearer(&jwt))).await;
    let row =
        list.body["data"]["api_keys"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).cloned().unwrap();
    assert_eq!(row["status"], "deleted");
    let again =
        send(&app, TestRequest::delete().uri(&format!("/api/clients/api-keys/{id}")).insert_header(bearer(&jwt))).await;
    assert_client_error(&again, 404, "API Key not found");
}

#[actix_web::test]
async fn delete_error_bodies_match_the_seed() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let a = env.create_app("A");
    let b = env.create_app("B");
    let (b_key, _) = env.insert_key_in(Some(b.id), Grants::root(), None);
    let (a_victim, _) = env.insert_key_in(Some(a.id), Grants::root(), None);
    let (_, a_reader) = env.insert_key_in(Some(a.id), grants(&[("/", Access::Read)]), None);
    let (_, a_admin) = env.insert_key_in(Some(a.id), Grants::root(), None);
    let reader_jwt = login(&app, &a_reader).await;
    let admin_jwt = login(&app, &a_admin).await;
    let del = |id: &str, token: &str| {
        TestRequest::delete().uri(&format!("/api/clients/api-keys/{id}")).insert_header(bearer(token))
    };
    let victim = a_victim.uuid.to_string();
    for bad in ["not-a-uuid", "123", "f7fa38ec0e19405c820fbf65912ab4ec"] {
        assert_client_error(&send(&app, del(bad, &admin_jwt)).await, 400, "Invalid API key ID format");
    }
    assert_client_error(&send(&app, del(&victim, "x.y.z")).await, 401, "Invalid JWT token");
    let r = send(&app, TestRequest::delete().uri(&format!("/api/clients/api-keys/{victim}"))).await;
    assert_client_error(&r, 401, "Invalid JWT token");
    assert_client_error(
        &send(&app, del(&victim, &reader_jwt)).await,
        403,
        "Insufficient permissions to delete this API key",
    );
    assert_client_error(&send(&app, del(&b_key.uuid.to_string(), &admin_jwt)).await, 404, "API Key not found");
    assert_client_error(
        &send(&app, del("f7fa38ec-0e19-405c-820f-bf65912ab4ec", &admin_jwt)).await,
        404,
        "API Key not found",
    );
    // Nothing above changed the victim.
    assert_eq!(send(&app, del(&victim, &admin_jwt)).await.status, 200);
}

#[actix_web::test]
async fn bulk_delete_is_all_or_nothing() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let jwt = login(&app, &env.root).await;
    let made: Vec<(String, String)> = (0..3)
        .map(|_| {
            let (rec, key) = env.insert_key_in(None, Grants::root(), None);
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

    let r = send(&app, bulk(json!({"api_key_ids": ids(&[unknown])}))).await;
    assert_eq!(r.status, 404, "{}", r.raw);
    assert!(r.body["message"].as_str().unwrap().contains(unknown), "names the offending id: {}", r.raw);
    assert_eq!(r.body["data"], Value::Null);
    let r = send(&app, bulk(json!({"api_key_ids": ids(&["nope"])}))).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["message"].as_str().unwrap().starts_with("Invalid API key ID format")
            && r.body["message"].as_str().unwrap().contains("nope")
    );
    for body in [json!({"api_key_ids": []}), json!({}), json!({"api_key_ids": "x"}), json!({"ids": []})] {
        assert_eq!(send(&app, bulk(body)).await.status, 400);
    }
    let too_many: Vec<String> = (0..1001).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    assert_eq!(send(&app, bulk(json!({"api_key_ids": too_many}))).await.status, 400);
    let at_limit: Vec<String> = (0..1000).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    assert_eq!(send(&app, bulk(json!({"api_key_ids": at_limit}))).await.status, 404, "1000 is allowed (and unknown)");
    // Including the caller's own key: refused.
    let me = send(&app, TestRequest::get().uri("/api/v1/keys/1").insert_header(bearer(&env.root))).await;
    let my_uuid = me.body["data"]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(send(&app, bulk(json!({"api_key_ids": ids(&[&my_uuid])}))).await.status, 400);

    // Every refused call deleted nothing.
    for (_, key) in &made {
        let v = send(&app, TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key}))).await;
        assert_eq!(v.body["data"]["code"], "VALID");
    }
    let mut with_repeat = ids(&[]);
    with_repeat.push(made[0].0.clone());
    let r = send(&app, bulk(json!({"api_key_ids": with_repeat}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["message"], "API Keys deleted successfully");
    assert_eq!(r.body["data"]["deleted_ids"].as_array().unwrap().len(), 3);
    for (_, key) in &made {
        let v = send(&app, TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key}))).await;
        assert_eq!(v.body["data"]["code"], "DELETED");
    }
    // "bulk" is never a key id.
    let r = send(&app, TestRequest::delete().uri("/api/clients/api-keys/bulk").insert_header(bearer(&jwt))).await;
    assert_eq!(r.status, 415, "no body: the bulk route answered, not the single-key one: {}", r.raw);
}

#[actix_web::test]
async fn a_jwt_has_exactly_its_keys_rights_and_dies_with_it() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let (reader_id, reader) = env.insert_key(grants(&[("/", Access::Read)]), None);
    let reader_jwt = login(&app, &reader).await;
    let list = |t: &str| TestRequest::get().uri("/api/v1/keys").insert_header(bearer(t));
    assert_eq!(send(&app, list(&reader_jwt)).await.status, 403, "read-only key, read-only token");
    let auth = |t: &str| TestRequest::get().uri("/auth?path=/x").insert_header(bearer(t));
    assert_eq!(send(&app, auth(&reader_jwt)).await.status, 200, "a JWT works for forward-auth too");

    let (admin_id, admin) = env.insert_key(Grants::root(), None);
    let admin_jwt = login(&app, &admin).await;
    assert_eq!(send(&app, list(&admin_jwt)).await.status, 200);
    let r = send(
        &app,
        TestRequest::post().uri("/api/v1/keys").insert_header(bearer(&admin_jwt)).set_json(json!({"title": "via jwt"})),
    )
    .await;
    assert_eq!(r.status, 200);
    // Revoking the key kills its token from the next request.
    env.revoke_direct(admin_id);
    assert_eq!(send(&app, list(&admin_jwt)).await.status, 401);
    let r = send(&app, TestRequest::get().uri("/api/clients/api-keys").insert_header(bearer(&admin_jwt))).await;
    assert_client_error(&r, 401, "Invalid JWT token");
    // Deleting too.
    env.delete_direct(&reader);
    assert_eq!(send(&app, auth(&reader_jwt)).await.status, 401);
    let _ = reader_id;
}

#[actix_web::test]
async fn tampered_and_expired_tokens_are_refused() {
    let env = TestEnv::with_jwt_ttl(Duration::from_secs(1));
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let jwt = login(&app, &env.root).await;
    let list = |t: &str| TestRequest::get().uri("/api/clients/api-keys").insert_header(bearer(t));
    assert_eq!(send(&app, list(&jwt)).await.status, 200);
    let mut flipped = jwt.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    let hs512 = format!("eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.{}.{}", parts[1], parts[2]);
    for bad in [flipped.as_str(), none.as_str(), hs512.as_str(), "a.b.c", "a.b", ""] {
        assert_client_error(&send(&app, list(bad)).await, 401, "Invalid JWT token");
    }
    // The configured lifetime is 1 s: wait it out (bounded) and the token is refused.
    std::thread::sleep(Duration::from_millis(2100));
    assert_client_error(&send(&app, list(&jwt)).await, 401, "Invalid JWT token");
    // The key itself still works.
    assert_eq!(send(&app, list(&env.root)).await.status, 200);
}
