//! Cross-application isolation: keys and JWTs of application A against every endpoint that
//! touches application B's keys. Zero successes, and B's keys still work afterwards.

mod common;

use actix_web::test::{self, TestRequest};
use apikeyd::grants::{Access, Grants};
use common::{bearer, grants, send, TestEnv};
use serde_json::json;

/// Builds a fresh request for one endpoint (credentials are added per identity).
type MakeRequest = Box<dyn Fn() -> TestRequest>;

#[actix_web::test]
async fn application_a_can_never_touch_application_bs_keys() {
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let a = env.create_app("A");
    let b = env.create_app("B");
    let (b_rec, b_key) = env.insert_key_in(Some(b.id), Grants::root(), None);
    let (_, a_admin) = env.insert_key_in(Some(a.id), Grants::root(), None);
    let (_, a_reader) = env.insert_key_in(Some(a.id), grants(&[("/", Access::Read)]), None);
    let mut identities = vec![("A admin key", a_admin.clone()), ("A reader key", a_reader.clone())];
    for (who, key) in [("A admin JWT", &a_admin), ("A reader JWT", &a_reader)] {
        let r = send(&app, TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": key}))).await;
        identities.push((who, r.body["data"]["token"].as_str().unwrap().to_owned()));
    }
    let b_num = b_rec.id.0;
    let b_uuid = b_rec.uuid.to_string();
    let (a_app, b_app) = (a.uuid.to_string(), b.uuid.to_string());
    let requests: Vec<(&str, MakeRequest)> = vec![
        ("native get", Box::new(move || TestRequest::get().uri(&format!("/api/v1/keys/{b_num}")))),
        ("native revoke", Box::new(move || TestRequest::delete().uri(&format!("/api/v1/keys/{b_num}")))),
        ("shard delete by value", {
            let v = b_key.clone();
            Box::new(move || TestRequest::delete().uri(&format!("/api-key?value={v}")))
        }),
        ("get application B", {
            let b_app = b_app.clone();
            Box::new(move || TestRequest::get().uri(&format!("/api/v1/applications/{b_app}")))
        }),
        ("list B's keys", {
            let b_app = b_app.clone();
            Box::new(move || TestRequest::get().uri(&format!("/api/v1/applications/{b_app}/api-keys")))
        }),
        ("create a key in B", {
            let b_app = b_app.clone();
            Box::new(move || {
                TestRequest::post().uri(&format!("/api/v1/applications/{b_app}/api-keys")).set_json(json!({}))
            })
        }),
        ("revoke B's key under B", {
            let (b_app, b_uuid) = (b_app.clone(), b_uuid.clone());
            Box::new(move || TestRequest::delete().uri(&format!("/api/v1/applications/{b_app}/api-keys/{b_uuid}")))
        }),
        ("revoke B's key under A", {
            let (a_app, b_uuid) = (a_app.clone(), b_uuid.clone());
            Box::new(move || TestRequest::delete().uri(&format!("/api/v1/applications/{a_app}/api-keys/{b_uuid}")))
        }),
        ("clients delete", {
            let b_uuid = b_uuid.clone();
            Box::new(move || TestRequest::delete().uri(&format!("/api/clients/api-keys/{b_uuid}")))
        }),
        ("clients bulk delete", {
            let b_uuid = b_uuid.clone();
            Box::new(move || {
                TestRequest::delete().uri("/api/clients/api-keys/bulk").set_json(json!({"api_key_ids": [b_uuid]}))
            })
        }),
    ];
    let mut successes = Vec::new();
    for (who, cred) in &identities {
        for (what, make) in &requests {
            for header in ["authorization", "x-user-api-key"] {
                if header == "x-user-api-key" && cred.contains('.') {
                    continue; // JWTs travel as bearer tokens only
                }
                let req = match header {
                    "authorization" => make().insert_header(bearer(cred)),
                    _ => make().insert_header(("x-user-api-key", cred.as_str())),
                };
                let r = send(&app, req).await;
                if r.status.is_success() {
                    successes.push(format!("{who} via {header}: {what} -> {} {}", r.status, r.raw));
                }
                if *what == "clients bulk delete" {
                    // The caller's own input is echoed, exactly as for an id that does not exist.
                    let unknown = r.raw.replace(&b_uuid, "<id>");
                    assert!(r.status == 403 || unknown.contains("API Key not found: <id>"), "{who}: {}", r.raw);
                } else {
                    assert!(!r.raw.contains(&b_uuid), "{who} {what} leaked B's key id: {}", r.raw);
                }
            }
        }
        // Lists answer 200 but must not show B's keys.
        for list in ["/api/v1/keys", "/api/clients/api-keys", "/api/v1/applications"] {
            let r = send(&app, TestRequest::get().uri(list).insert_header(bearer(cred))).await;
            if r.raw.contains(&b_uuid) || r.raw.contains(&b_app) {
                successes.push(format!("{who}: {list} shows B: {}", r.raw));
            }
        }
    }
    assert!(successes.is_empty(), "{} cross-application successes:\n{}", successes.len(), successes.join("\n"));

    // B's key still works, and B's own admin still sees it.
    let v = send(&app, TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": b_key}))).await;
    assert_eq!(v.body["data"]["code"], "VALID");
    let r = send(
        &app,
        TestRequest::get().uri(&format!("/api/v1/applications/{b_app}/api-keys")).insert_header(bearer(&b_key)),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.raw.contains(&b_uuid));
    let conn = apikeyd::db::open_connection(&env.db_path()).unwrap();
    let b_keys: i64 =
        conn.query_row("SELECT count(*) FROM api_keys WHERE application_id = ?1", [b.id.0], |r| r.get(0)).unwrap();
    assert_eq!(b_keys, 1, "nothing was created in B");
}
