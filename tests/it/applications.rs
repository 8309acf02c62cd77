//! The applications family (its contract document: revoke a key of an application by UUID,
//! with a JWT, other keys of the application working on), asserted field by field.

use actix_web::test::TestRequest;
use apikeyd::domain::grants::Access;
use serde_json::{json, Value};

use crate::support::{assert_app_details, assert_app_error, assert_request_id, bearer, grants, mangle, TestApp};

/// The UUID the applications family's contract document uses in its examples.
const DOCUMENTED_UUID: &str = "123e4567-e89b-12d3-a456-426614174000";

const BAD_NAME: &str = "Invalid name: a non-empty string of at most 200 characters is required";

#[actix_web::test]
async fn applications_are_created_listed_and_fetched() {
    let app = TestApp::new().await;
    let r = app
        .send(
            TestRequest::post()
                .uri("/api/v1/applications")
                .insert_header(bearer(&app.root))
                .set_json(json!({"name": "Acme"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(r.body["name"], "Acme");
    assert!(r.body["created_at"].is_string());
    assert_eq!(r.body.as_object().unwrap().len(), 3);

    let list = app.get("/api/v1/applications", &app.root).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["applications"][0]["id"], id.as_str());
    let got = app.get(&format!("/api/v1/applications/{id}"), &app.root).await;
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
        let r = app
            .send(TestRequest::post().uri("/api/v1/applications").insert_header(bearer(&app.root)).set_json(body))
            .await;
        assert_app_details(&r, field, message);
    }
    let r = app.get("/api/v1/applications/not-a-uuid", &app.root).await;
    assert_app_details(&r, "id", "id must be a UUID");
    let r = app
        .send(
            TestRequest::get().uri(&format!("/api/v1/applications/{DOCUMENTED_UUID}")).insert_header(bearer(&app.root)),
        )
        .await;
    assert_app_error(&r, 404);
    assert_app_error(&app.send(TestRequest::get().uri("/api/v1/applications")).await, 401);
    let (_, reader) = app.insert_key(grants(&[("/", Access::Read)]), None);
    assert_app_error(&app.get("/api/v1/applications", &reader).await, 403);
}

#[actix_web::test]
async fn an_application_key_sees_only_its_own_application_and_cannot_create_one() {
    let app = TestApp::new().await;
    let both = app.two_applications();
    let (a, b, a_admin) = (&both.a.app, &both.b.app, &both.a.admin_key);
    let list = app.get("/api/v1/applications", a_admin).await;
    let ids: Vec<&str> =
        list.body["applications"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [a.uuid.to_string()]);
    let r = app.get(&format!("/api/v1/applications/{}", b.uuid), a_admin).await;
    assert_app_error(&r, 404);
    let r = app
        .send(
            TestRequest::post()
                .uri("/api/v1/applications")
                .insert_header(bearer(a_admin))
                .set_json(json!({"name": "C"})),
        )
        .await;
    assert_app_error(&r, 403);
}

#[actix_web::test]
async fn keys_are_created_listed_and_revoked_per_application() {
    let app = TestApp::new().await;
    let a = app.create_app("A");
    let keys_uri = format!("/api/v1/applications/{}/api-keys", a.uuid);
    let mut made = Vec::new();
    for name in ["one", "two"] {
        let r = app
            .send(
                TestRequest::post()
                    .uri(&keys_uri)
                    .insert_header(bearer(&app.root))
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
    let r = app.send(TestRequest::post().uri(&keys_uri).insert_header(bearer(&app.root)).set_json(json!({}))).await;
    assert_eq!(r.status, 201, "name is optional");

    let list = app.get(&keys_uri, &app.root).await;
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
    assert_eq!(app.verify_code(one_key).await, "VALID");
    let r = app.send(TestRequest::delete().uri(&format!("{keys_uri}/{one_id}")).insert_header(bearer(&app.root))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body, json!({}));
    assert_request_id(&r);
    assert_eq!(app.verify_code(one_key).await, "REVOKED");
    assert_eq!(app.verify_code(two_key).await, "VALID");
    // A retry is safe.
    let r = app.send(TestRequest::delete().uri(&format!("{keys_uri}/{one_id}")).insert_header(bearer(&app.root))).await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (200, json!({})));
}

#[actix_web::test]
async fn revoke_error_bodies_match_the_seed() {
    let app = TestApp::new().await;
    let both = app.two_applications();
    let (a, b, b_key) = (&both.a.app, &both.b.app, &both.b.admin);
    let (a_admin_rec, a_admin) = (&both.a.admin, &both.a.admin_key);
    let (_, a_reader) = app.insert_key_in(Some(a.id), grants(&[("/", Access::Read)]), None);
    let del = |app_id: &str, key_id: &str, who: Option<&str>| {
        let req = TestRequest::delete().uri(&format!("/api/v1/applications/{app_id}/api-keys/{key_id}"));
        match who {
            Some(k) => req.insert_header(bearer(k)).insert_header(("content-type", "application/json")),
            None => req,
        }
    };
    let a_id = a.uuid.to_string();
    assert_app_details(&app.send(del("nope", DOCUMENTED_UUID, Some(&app.root))).await, "id", "id must be a UUID");
    assert_app_details(&app.send(del(&a_id, "nope", Some(&app.root))).await, "keyId", "keyId must be a UUID");
    assert_app_details(
        &app.send(del(&a_id, "123e4567e89b12d3a456426614174000", Some(&app.root))).await,
        "keyId",
        "keyId must be a UUID",
    );
    assert_app_error(&app.send(del(&a_id, DOCUMENTED_UUID, None)).await, 401);
    assert_app_error(&app.send(del(&a_id, DOCUMENTED_UUID, Some("Bearer-less"))).await, 401);
    assert_app_error(&app.send(del(&a_id, DOCUMENTED_UUID, Some(&a_reader))).await, 403);
    assert_app_error(&app.send(del(&a_id, DOCUMENTED_UUID, Some(&app.root))).await, 404);
    // B's key addressed under A, and B's key addressed under B by A's admin: both 404.
    assert_app_error(&app.send(del(&a_id, &b_key.uuid.to_string(), Some(&app.root))).await, 404);
    assert_app_error(&app.send(del(&b.uuid.to_string(), &b_key.uuid.to_string(), Some(a_admin))).await, 404);
    // Its own key: refused, and it keeps working.
    let r = app.send(del(&a_id, &a_admin_rec.uuid.to_string(), Some(a_admin))).await;
    assert_app_details(&r, "keyId", "The API key used for this request cannot revoke itself");
    let ok = app.get(&format!("/api/v1/applications/{a_id}"), a_admin).await;
    assert_eq!(ok.status, 200);
    let r = app.send(TestRequest::put().uri(&format!("/api/v1/applications/{a_id}/api-keys/{DOCUMENTED_UUID}"))).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["error"], "Method Not Allowed");
    let r = app.send(TestRequest::get().uri("/api/v1/applications/x/y/z")).await;
    assert_app_error(&r, 404);
}

#[actix_web::test]
async fn minting_rules_hold_inside_applications() {
    let app = TestApp::new().await;
    let a = app.create_app("A");
    let (_, narrow_admin) =
        app.insert_key_in(Some(a.id), grants(&[("/", Access::Write), ("/files", Access::Read)]), None);
    let uri = format!("/api/v1/applications/{}/api-keys", a.uuid);
    let ask = |body: Value| TestRequest::post().uri(&uri).insert_header(bearer(&narrow_admin)).set_json(body);
    let r = app.send(ask(json!({"grants": [{"path": "/", "access": "read"}]}))).await;
    assert_app_error(&r, 403);
    let r = app.send(ask(json!({"grants": [{"path": "/files/x", "access": "read_write"}]}))).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let r = app.send(ask(json!({"grants": [{"path": "files", "access": "read"}]}))).await;
    assert_app_details(&r, "grants", "Invalid grants: grant path 0: path must be absolute (start with /)");
    let r = app.send(ask(json!({"expires_at": "2001-01-01T00:00:00Z"}))).await;
    assert_app_details(&r, "expires_at", "expires_at must be in the future");
    let r = app.send(ask(json!({"expires_at": "tomorrow"}))).await;
    assert_app_details(
        &r,
        "expires_at",
        "Invalid expires_at: expected an RFC 3339 timestamp such as 2026-03-12T09:50:00.000Z",
    );
}

#[actix_web::test]
async fn create_key_and_list_keys_error_bodies_match_the_seed() {
    let app = TestApp::new().await;
    let a = app.create_app("A");
    let (_, reader) = app.insert_key(grants(&[("/", Access::Read)]), None);
    let known = format!("/api/v1/applications/{}/api-keys", a.uuid);
    let unknown = format!("/api/v1/applications/{DOCUMENTED_UUID}/api-keys");
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
    let wrong = mangle(&app.root);
    for who in [None, Some(wrong.as_str()), Some("x.y.z")] {
        assert_app_error(&app.send(create(&known, who)).await, 401);
        assert_app_error(&app.send(list(&known, who)).await, 401);
    }
    assert_app_error(&app.send(create(&known, Some(&reader))).await, 403);
    assert_app_error(&app.send(list(&known, Some(&reader))).await, 403);
    assert_app_error(&app.send(create(&unknown, Some(&app.root))).await, 404);
    assert_app_error(&app.send(list(&unknown, Some(&app.root))).await, 404);
    let bad = "/api/v1/applications/nope/api-keys";
    assert_app_details(&app.send(create(bad, Some(&app.root))).await, "id", "id must be a UUID");
    assert_app_details(&app.send(list(bad, Some(&app.root))).await, "id", "id must be a UUID");
    // None of the refusals made a key.
    let r = app.send(list(&known, Some(&app.root))).await;
    assert_eq!((r.status.as_u16(), r.body["api_keys"].clone()), (200, json!([])), "{}", r.raw);
}
