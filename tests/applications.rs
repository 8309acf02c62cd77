//! The applications family (seed 001), asserted field by field.

mod common;

use actix_web::test::{self, TestRequest};
use apikeyd::grants::{Access, Grants};
use common::{bearer, grants, send, Reply, TestEnv};
use serde_json::{json, Value};

const SEED_UUID: &str = "123e4567-e89b-12d3-a456-426614174000";

/// The seed's body for `status`, whole: `{error, message, code}`.
fn seed_body(status: u16) -> Value {
    let (error, message) = match status {
        400 => ("Bad Request", "The request contains invalid parameters or malformed data"),
        401 => ("Unauthorized", "Authentication required. Please provide a valid API token"),
        403 => ("Forbidden", "You don't have permission to access this resource"),
        404 => ("Not Found", "The requested resource was not found"),
        _ => panic!("unexpected status {status}"),
    };
    json!({"error": error, "message": message, "code": status})
}

/// A 401, 403 or 404 exactly as the seed writes it.
fn assert_app_error(r: &Reply, status: u16) {
    assert_ne!(status, 400, "a 400 carries details: use assert_details");
    assert_eq!(r.status.as_u16(), status, "{}", r.raw);
    assert_eq!(r.body, seed_body(status), "{}", r.raw);
    common::assert_request_id(r);
}

/// A 400 exactly as the seed writes it, with one detail naming `field` and saying `message`.
fn assert_details(r: &Reply, field: &str, message: &str) {
    assert_eq!(r.status, 400, "{}", r.raw);
    let mut expected = seed_body(400);
    expected["details"] = json!([{"field": field, "message": message}]);
    assert_eq!(r.body, expected, "{}", r.raw);
    common::assert_request_id(r);
}

const BAD_NAME: &str = "Invalid name: a non-empty string of at most 200 characters is required";

#[actix_web::test]
async fn applications_are_created_listed_and_fetched() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let r = send(
        &app,
        TestRequest::post()
            .uri("/api/v1/applications")
            .insert_header(bearer(&env.root))
            .set_json(json!({"name": "Acme"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(r.body["name"], "Acme");
    assert!(r.body["created_at"].is_string());
    assert_eq!(r.body.as_object().unwrap().len(), 3);

    let list = send(&app, TestRequest::get().uri("/api/v1/applications").insert_header(bearer(&env.root))).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["applications"][0]["id"], id.as_str());
    let got =
        send(&app, TestRequest::get().uri(&format!("/api/v1/applications/{id}")).insert_header(bearer(&env.root)))
            .await;
    assert_eq!(got.body, r.body);

    let bad_bodies = [
        (json!({}), "name", BAD_NAME),
        (json!({"name": ""}), "name", BAD_NAME),
        (json!({"name": "   "}), "name", BAD_NAME),
        (json!({"name": 7}), "name", BAD_NAME),
        (
            json!({"name": "x", "owner": "y"}),
            "body",
            "Invalid request body: unknown field `owner`, expected `name` at line 1 column 19",
        ),
    ];
    for (body, field, message) in bad_bodies {
        let r =
            send(&app, TestRequest::post().uri("/api/v1/applications").insert_header(bearer(&env.root)).set_json(body))
                .await;
        assert_details(&r, field, message);
    }
    let r =
        send(&app, TestRequest::get().uri("/api/v1/applications/not-a-uuid").insert_header(bearer(&env.root))).await;
    assert_details(&r, "id", "id must be a UUID");
    let r = send(
        &app,
        TestRequest::get().uri(&format!("/api/v1/applications/{SEED_UUID}")).insert_header(bearer(&env.root)),
    )
    .await;
    assert_app_error(&r, 404);
    assert_app_error(&send(&app, TestRequest::get().uri("/api/v1/applications")).await, 401);
    let (_, reader) = env.insert_key(grants(&[("/", Access::Read)]), None);
    assert_app_error(
        &send(&app, TestRequest::get().uri("/api/v1/applications").insert_header(bearer(&reader))).await,
        403,
    );
}

#[actix_web::test]
async fn an_application_key_sees_only_its_own_application_and_cannot_create_one() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let a = env.create_app("A");
    let b = env.create_app("B");
    let (_, a_admin) = env.insert_key_in(Some(a.id), Grants::root(), None);
    let list = send(&app, TestRequest::get().uri("/api/v1/applications").insert_header(bearer(&a_admin))).await;
    let ids: Vec<&str> =
        list.body["applications"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [a.uuid.to_string()]);
    let r =
        send(&app, TestRequest::get().uri(&format!("/api/v1/applications/{}", b.uuid)).insert_header(bearer(&a_admin)))
            .await;
    assert_app_error(&r, 404);
    let r = send(
        &app,
        TestRequest::post().uri("/api/v1/applications").insert_header(bearer(&a_admin)).set_json(json!({"name": "C"})),
    )
    .await;
    assert_app_error(&r, 403);
}

#[actix_web::test]
async fn keys_are_created_listed_and_revoked_per_application() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let a = env.create_app("A");
    let keys_uri = format!("/api/v1/applications/{}/api-keys", a.uuid);
    let mut made = Vec::new();
    for name in ["one", "two"] {
        let r = send(
            &app,
            TestRequest::post()
                .uri(&keys_uri)
                .insert_header(bearer(&env.root))
                .set_json(json!({"name": name, "grants": [{"path": "/files", "access": "read"}]})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.raw);
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
        assert_eq!(r.body["name"], name);
        assert_eq!(r.body["application_id"], a.uuid.to_string());
        assert_eq!(r.body["grants"], json!([{"path": "/files", "access": "read"}]));
        made.push((r.body["id"].as_str().unwrap().to_owned(), r.body["api_key"].as_str().unwrap().to_owned()));
    }
    let r = send(&app, TestRequest::post().uri(&keys_uri).insert_header(bearer(&env.root)).set_json(json!({}))).await;
    assert_eq!(r.status, 201, "name is optional");

    let list = send(&app, TestRequest::get().uri(&keys_uri).insert_header(bearer(&env.root))).await;
    assert_eq!(list.status, 200);
    let listed = list.body["api_keys"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for (_, plaintext) in &made {
        assert!(!list.raw.contains(plaintext.as_str()));
    }
    assert!(listed.iter().all(|k| k.get("api_key").is_none() && k["application_id"] == a.uuid.to_string()));

    // Revoke "one": it fails from the next request; "two" keeps working.
    let (one_id, one_key) = &made[0];
    let (_, two_key) = &made[1];
    let verify = |k: &str| TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": k}));
    assert_eq!(send(&app, verify(one_key)).await.body["data"]["code"], "VALID");
    let r =
        send(&app, TestRequest::delete().uri(&format!("{keys_uri}/{one_id}")).insert_header(bearer(&env.root))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body, json!({}));
    common::assert_request_id(&r);
    assert_eq!(send(&app, verify(one_key)).await.body["data"]["code"], "REVOKED");
    assert_eq!(send(&app, verify(two_key)).await.body["data"]["code"], "VALID");
    // A retry is safe.
    let r =
        send(&app, TestRequest::delete().uri(&format!("{keys_uri}/{one_id}")).insert_header(bearer(&env.root))).await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (200, json!({})));
}

#[actix_web::test]
async fn revoke_error_bodies_match_the_seed() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let a = env.create_app("A");
    let b = env.create_app("B");
    let (b_key, _) = env.insert_key_in(Some(b.id), Grants::root(), None);
    let (a_admin_rec, a_admin) = env.insert_key_in(Some(a.id), Grants::root(), None);
    let (_, a_reader) = env.insert_key_in(Some(a.id), grants(&[("/", Access::Read)]), None);
    let del = |app_id: &str, key_id: &str, who: Option<&str>| {
        let req = TestRequest::delete().uri(&format!("/api/v1/applications/{app_id}/api-keys/{key_id}"));
        match who {
            Some(k) => req.insert_header(bearer(k)).insert_header(("content-type", "application/json")),
            None => req,
        }
    };
    let a_id = a.uuid.to_string();
    assert_details(&send(&app, del("nope", SEED_UUID, Some(&env.root))).await, "id", "id must be a UUID");
    assert_details(&send(&app, del(&a_id, "nope", Some(&env.root))).await, "keyId", "keyId must be a UUID");
    assert_details(
        &send(&app, del(&a_id, "123e4567e89b12d3a456426614174000", Some(&env.root))).await,
        "keyId",
        "keyId must be a UUID",
    );
    assert_app_error(&send(&app, del(&a_id, SEED_UUID, None)).await, 401);
    assert_app_error(&send(&app, del(&a_id, SEED_UUID, Some("Bearer-less"))).await, 401);
    assert_app_error(&send(&app, del(&a_id, SEED_UUID, Some(&a_reader))).await, 403);
    assert_app_error(&send(&app, del(&a_id, SEED_UUID, Some(&env.root))).await, 404);
    // B's key addressed under A, and B's key addressed under B by A's admin: both 404.
    assert_app_error(&send(&app, del(&a_id, &b_key.uuid.to_string(), Some(&env.root))).await, 404);
    assert_app_error(&send(&app, del(&b.uuid.to_string(), &b_key.uuid.to_string(), Some(&a_admin))).await, 404);
    // Its own key: refused, and it keeps working.
    let r = send(&app, del(&a_id, &a_admin_rec.uuid.to_string(), Some(&a_admin))).await;
    assert_details(&r, "keyId", "The API key used for this request cannot revoke itself");
    let ok =
        send(&app, TestRequest::get().uri(&format!("/api/v1/applications/{a_id}")).insert_header(bearer(&a_admin)))
            .await;
    assert_eq!(ok.status, 200);
    let r = send(&app, TestRequest::put().uri(&format!("/api/v1/applications/{a_id}/api-keys/{SEED_UUID}"))).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["error"], "Method Not Allowed");
    let r = send(&app, TestRequest::get().uri("/api/v1/applications/x/y/z")).await;
    assert_app_error(&r, 404);
}

#[actix_web::test]
async fn minting_rules_hold_inside_applications() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let a = env.create_app("A");
    let (_, narrow_admin) =
        env.insert_key_in(Some(a.id), grants(&[("/", Access::Write), ("/files", Access::Read)]), None);
    let uri = format!("/api/v1/applications/{}/api-keys", a.uuid);
    let ask = |body: Value| TestRequest::post().uri(&uri).insert_header(bearer(&narrow_admin)).set_json(body);
    let r = send(&app, ask(json!({"grants": [{"path": "/", "access": "read"}]}))).await;
    assert_app_error(&r, 403);
    let r = send(&app, ask(json!({"grants": [{"path": "/files/x", "access": "read_write"}]}))).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let r = send(&app, ask(json!({"grants": [{"path": "files", "access": "read"}]}))).await;
    assert_details(&r, "grants", "Invalid grants: grant path 0: path must be absolute (start with /)");
    let r = send(&app, ask(json!({"expires_at": "2001-01-01T00:00:00Z"}))).await;
    assert_details(&r, "expires_at", "expires_at must be in the future");
    let r = send(&app, ask(json!({"expires_at": "tomorrow"}))).await;
    assert_details(
        &r,
        "expires_at",
        "Invalid expires_at: expected an RFC 3339 timestamp such as 2026-03-12T09:50:00.000Z",
    );
}

#[actix_web::test]
async fn create_key_and_list_keys_error_bodies_match_the_seed() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let a = env.create_app("A");
    let (_, reader) = env.insert_key(grants(&[("/", Access::Read)]), None);
    let known = format!("/api/v1/applications/{}/api-keys", a.uuid);
    let unknown = format!("/api/v1/applications/{SEED_UUID}/api-keys");
    let create = |uri: &str, who: Option<&str>| {
        let req = TestRequest::post().uri(uri).set_json(json!({"name": "k"}));
        match who {
            Some(k) => req.insert_header(bearer(k)),
            None => req,
        }
    };
    let list = |uri: &str, who: Option<&str>| {
        let req = TestRequest::get().uri(uri);
        match who {
            Some(k) => req.insert_header(bearer(k)),
            None => req,
        }
    };
    let wrong = common::mangle(&env.root);
    for who in [None, Some(wrong.as_str()), Some("x.y.z")] {
        assert_app_error(&send(&app, create(&known, who)).await, 401);
        assert_app_error(&send(&app, list(&known, who)).await, 401);
    }
    assert_app_error(&send(&app, create(&known, Some(&reader))).await, 403);
    assert_app_error(&send(&app, list(&known, Some(&reader))).await, 403);
    assert_app_error(&send(&app, create(&unknown, Some(&env.root))).await, 404);
    assert_app_error(&send(&app, list(&unknown, Some(&env.root))).await, 404);
    let bad = "/api/v1/applications/nope/api-keys";
    assert_details(&send(&app, create(bad, Some(&env.root))).await, "id", "id must be a UUID");
    assert_details(&send(&app, list(bad, Some(&env.root))).await, "id", "id must be a UUID");
    // None of the refusals made a key.
    let r = send(&app, list(&known, Some(&env.root))).await;
    assert_eq!((r.status.as_u16(), r.body["api_keys"].clone()), (200, json!([])), "{}", r.raw);
}
