//! Keys that change without being replaced (native family): `PATCH /api/v1/keys/{id}`,
//! disable and enable, rotation with a grace period, owner and metadata in verify and
//! forward-auth, the audit trail over HTTP, and the hygiene filters of the listing.

use actix_web::test::TestRequest;
use apikeyd::config::Config;
use apikeyd::domain::grants::{Access, Grants};
use apikeyd::domain::model::{standing, Standing, Status};
use apikeyd::domain::timestamp::Timestamp;
use serde_json::{json, Value};

use crate::support::assertions::assert_native_error;
use crate::support::{bearer, grants, Reply, TestApp};

async fn patch(app: &TestApp, by: &str, id: i64, body: Value) -> Reply {
    app.send(TestRequest::patch().uri(&format!("/api/v1/keys/{id}")).insert_header(bearer(by)).set_json(body)).await
}

async fn rotate(app: &TestApp, by: &str, id: i64, body: Value) -> Reply {
    app.send(TestRequest::post().uri(&format!("/api/v1/keys/{id}/rotate")).insert_header(bearer(by)).set_json(body))
        .await
}

/// The audit rows of key `id`, newest first, as `GET /api/v1/audit?key_id=` answers.
async fn audit_of(app: &TestApp, id: i64) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/audit?key_id={id}"), &app.root).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    r.body["data"]["events"].as_array().unwrap().clone()
}

fn in_hours(h: i64) -> Timestamp {
    Timestamp::now().plus_millis(h * 3_600_000)
}

#[actix_web::test]
async fn an_update_changes_every_field_from_the_next_request_and_audits_what_changed() {
    let app = TestApp::new().await;
    let (id, key) = app.create_key(&app.root, "before", Some(grants(&[("/data", Access::ReadWrite)])), None).await;
    let (id, at) = (id.0, in_hours(2).to_string());
    // Sent as text: `1.50` must come back as `1.50`, not as a re-serialised number.
    let body = format!(
        r#"{{"title": "after", "grants": [{{"path": "/data/x", "access": "read"}}], "expires_at": "{at}",
             "owner": "user-42", "meta": {{"plan": "pro", "n": 1.50}}}}"#
    );
    let req = TestRequest::patch()
        .uri(&format!("/api/v1/keys/{id}"))
        .insert_header(bearer(&app.root))
        .insert_header(("content-type", "application/json"))
        .set_payload(body);
    let r = app.send(req).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let data = &r.body["data"];
    assert_eq!((data["title"].as_str(), data["owner"].as_str()), (Some("after"), Some("user-42")));
    assert_eq!(data["grants"], json!([{"path": "/data/x", "access": "read"}]));
    assert!(r.raw.contains(r#""meta":{"plan": "pro", "n": 1.50}"#), "meta returned exactly as given: {}", r.raw);
    assert_eq!(data["enabled"], true);
    // The narrowed grants apply from the next verify.
    let v =
        app.send(TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key, "path": "/data/y"}))).await;
    assert_eq!(v.body["data"]["code"], "FORBIDDEN", "{}", v.raw);
    let v =
        app.send(TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key, "path": "/data/x"}))).await;
    assert_eq!(v.body["data"]["owner"], "user-42");
    assert_eq!(v.body["data"]["meta"], json!({"plan": "pro", "n": 1.5}));
    // One `update` row naming every change, never a hash or a plaintext.
    let events = audit_of(&app, id).await;
    assert_eq!(events[0]["action"], "update");
    let changes = &events[0]["changes"];
    assert_eq!(changes["title"], json!({"from": "before", "to": "after"}));
    assert_eq!(changes["owner"], json!({"from": null, "to": "user-42"}));
    assert_eq!(changes["grants"]["from"], json!([{"path": "/data", "access": "read_write"}]));
    assert!(!events[0].to_string().contains(&key[3..20]));
    // Nothing asked that differs: no new row. Clearing with null works for a caller that never expires.
    assert_eq!(patch(&app, &app.root, id, json!({"title": "after"})).await.status, 200);
    assert_eq!(audit_of(&app, id).await.len(), 2, "create and one update");
    let r = patch(&app, &app.root, id, json!({"expires_at": null, "owner": null, "meta": null})).await;
    assert_eq!((r.body["data"]["expires_at"].clone(), r.body["data"]["owner"].clone()), (Value::Null, Value::Null));
    // Unknown fields, bad values.
    for body in [
        json!({"team": 1}),
        json!({"meta": [1]}),
        json!({"owner": ""}),
        json!({"title": ""}),
        json!({"expires_at": "2000-01-01T00:00:00Z"}),
    ] {
        let r = patch(&app, &app.root, id, body.clone()).await;
        assert_native_error(&r, 400, "invalid_request");
    }
    assert_native_error(&patch(&app, &app.root, 9999, json!({"title": "x"})).await, 404, "not_found");
}

#[actix_web::test]
async fn widening_is_refused_exactly_past_the_callers_own_grants_and_expiry() {
    let app = TestApp::new().await;
    let limit = in_hours(1);
    let (_, manager) = app
        .create_key(&app.root, "manager", Some(grants(&[("/", Access::Write), ("/data", Access::Read)])), Some(limit))
        .await;
    let (id, _) = app
        .create_key(
            &manager,
            "target",
            Some(grants(&[("/data/a", Access::Read)])),
            Some(in_hours(0).plus_millis(60_000)),
        )
        .await;
    let id = id.0;
    // At the boundary: the manager's own grants and expiry are allowed, one step beyond is not.
    let at_limit = json!({"grants": [{"path": "/data", "access": "read"}], "expires_at": limit.to_string()});
    assert_eq!(patch(&app, &manager, id, at_limit).await.status, 200);
    let later = json!({"expires_at": limit.plus_millis(1).to_string()});
    assert_native_error(&patch(&app, &manager, id, later).await, 403, "forbidden");
    let wider = json!({"grants": [{"path": "/logs", "access": "read"}]});
    assert_native_error(&patch(&app, &manager, id, wider).await, 403, "forbidden");
    let never = json!({"expires_at": null});
    assert_native_error(&patch(&app, &manager, id, never).await, 403, "forbidden");
    // Narrowing is always allowed.
    assert_eq!(
        patch(&app, &manager, id, json!({"grants": [{"path": "/data/a/b", "access": "read"}]})).await.status,
        200
    );
    // A key beyond the manager's (the root key) is not its to change; a reader changes nothing.
    assert_native_error(&patch(&app, &manager, 1, json!({"title": "mine"})).await, 403, "forbidden");
    let (_, reader) = app.insert_key(grants(&[("/", Access::Read)]), None);
    assert_native_error(&patch(&app, &reader, id, json!({"title": "x"})).await, 403, "forbidden");
}

#[actix_web::test]
async fn a_disabled_key_and_its_sessions_stop_on_the_next_request_and_enabling_restores_them() {
    let app = TestApp::new().await;
    let (id, key) = app.create_key(&app.root, "switch", None, None).await;
    let jwt = app.login(&key).await;
    assert_eq!(app.get("/api/v1/keys?limit=1", &jwt).await.status, 200);
    let r = patch(&app, &app.root, id.0, json!({"enabled": false})).await;
    assert_eq!(r.body["data"]["enabled"], false, "{}", r.raw);
    assert_eq!(app.verify_code(&key).await, "DISABLED");
    let v = app.send(TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key}))).await;
    assert_eq!((v.body["data"]["valid"].clone(), v.body["data"]["enabled"].clone()), (json!(false), json!(false)));
    assert_native_error(&app.get("/api/v1/keys?limit=1", &jwt).await, 401, "unauthorized");
    let auth = app.send(TestRequest::get().uri("/auth").insert_header(("x-user-api-key", key.as_str()))).await;
    assert_eq!(auth.status, 401);
    let login = app.send(TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": key}))).await;
    assert_eq!(login.status, 401);
    assert_eq!(audit_of(&app, id.0).await[0]["action"], "disable");
    // Enabling restores the key and the session minted before.
    assert_eq!(patch(&app, &app.root, id.0, json!({"enabled": true})).await.status, 200);
    assert_eq!(app.verify_code(&key).await, "VALID");
    assert_eq!(app.get("/api/v1/keys?limit=1", &jwt).await.status, 200);
    assert_eq!(audit_of(&app, id.0).await[0]["action"], "enable");
}

#[actix_web::test]
async fn rotation_carries_everything_over_and_the_old_key_ends_at_the_grace() {
    let app = TestApp::new().await;
    let tenant = app.create_app("tenant");
    let (old, old_key) = app.insert_key_in(Some(tenant.id), grants(&[("/jobs", Access::Read)]), Some(in_hours(48)));
    assert_eq!(patch(&app, &app.root, old.id.0, json!({"owner": "acme", "meta": {"tier": 2}})).await.status, 200);
    let before = Timestamp::now();
    let r = rotate(&app, &app.root, old.id.0, json!({"grace_seconds": 3600})).await;
    let after = Timestamp::now();
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    let new = &r.body["data"];
    let new_key = new["api_key"].as_str().unwrap().to_owned();
    assert_eq!(
        (new["title"].clone(), new["grants"].clone()),
        (json!("fixture"), json!([{"path": "/jobs", "access": "read"}]))
    );
    assert_eq!((new["owner"].clone(), new["meta"].clone()), (json!("acme"), json!({"tier": 2})));
    assert_eq!(new["expires_at"], json!(old.expires_at.unwrap().to_string()), "the old key's own expiry");
    assert_eq!(new["rotated_from"], old.id.0);
    assert_eq!(
        app.key_record(apikeyd::domain::model::KeyId(new["id"].as_i64().unwrap())).application_id,
        Some(tenant.id)
    );
    // Both work during the grace; the old one ends exactly at rotation time + grace.
    assert_eq!(app.verify_code(&old_key).await, "VALID");
    assert_eq!(app.verify_code(&new_key).await, "VALID");
    let moved = app.key_record(old.id);
    let ends = moved.expires_at.unwrap();
    assert!(ends >= before.plus_millis(3_600_000) && ends <= after.plus_millis(3_600_000), "{ends}");
    assert_eq!(moved.rotated_to.map(|k| k.0), new["id"].as_i64());
    // The verdict at the instants around the end, with the clock given rather than slept to.
    assert_eq!(standing(Status::Active, true, Some(ends), ends.plus_millis(-1)), Standing::Usable);
    assert_eq!(standing(Status::Active, true, Some(ends), ends), Standing::Expired);
    // Rotating again rotates the newest of the line; with no grace the replaced key ends now.
    let r = rotate(&app, &app.root, old.id.0, json!({})).await;
    assert_eq!(r.body["data"]["rotated_from"], new["id"], "{}", r.raw);
    assert_eq!(app.verify_code(&new_key).await, "EXPIRED");
    assert_eq!(audit_of(&app, new["id"].as_i64().unwrap()).await[0]["action"], "rotate");
    // A revoked key is not rotated; grace beyond 30 days is refused.
    let (gone, _) = app.insert_key(Grants::root(), None);
    app.revoke_direct(gone).await;
    assert_native_error(&rotate(&app, &app.root, gone.0, json!({})).await, 409, "key_revoked");
    assert_native_error(
        &rotate(&app, &app.root, old.id.0, json!({"grace_seconds": 2_592_001})).await,
        400,
        "invalid_request",
    );
}

#[actix_web::test]
async fn forward_auth_passes_the_owner_on_and_verify_reports_it() {
    let app = TestApp::new().await;
    let (id, key) = app.create_key(&app.root, "owned", None, None).await;
    let auth = || TestRequest::get().uri("/auth").insert_header(("x-user-api-key", key.clone()));
    let r = app.send(auth()).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("x-key-owner").is_none(), "no owner, no header");
    patch(&app, &app.root, id.0, json!({"owner": "customer-7"})).await;
    let r = app.send(auth()).await;
    assert_eq!(r.headers.get("x-key-owner").unwrap(), "customer-7");
    assert_eq!(r.headers.get("x-key-id").unwrap(), &id.0.to_string());
}

#[actix_web::test]
async fn the_audit_trail_pages_filters_and_stays_in_the_callers_scope() {
    let app = TestApp::new().await;
    let two = app.two_applications();
    let ids = [app.create_key(&app.root, "a", None, None).await.0, app.create_key(&app.root, "b", None, None).await.0];
    let r = app.get("/api/v1/audit?limit=2", &app.root).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let events = r.body["data"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events[0]["id"].as_i64() > events[1]["id"].as_i64(), "newest first");
    let fields: Vec<&str> = events[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, ["id", "at", "action", "key_id", "application_id", "actor_key_id", "request_id", "changes"]);
    let cursor = r.body["data"]["next_cursor"].as_str().unwrap().to_owned();
    let older = app.get(&format!("/api/v1/audit?limit=2&cursor={cursor}"), &app.root).await;
    assert!(older.body["data"]["events"][0]["id"].as_i64() < events[1]["id"].as_i64());
    // Filters.
    let created = app.get(&format!("/api/v1/audit?key_id={}&action=create", ids[1].0), &app.root).await;
    assert_eq!(created.body["data"]["events"].as_array().unwrap().len(), 1);
    let future = app.get("/api/v1/audit?since=2999-01-01T00:00:00Z", &app.root).await;
    assert_eq!(future.body["data"]["events"], json!([]));
    for bad in ["action=frobnicate", "since=soon", "key_id=x", "cursor=0", "limit=0", "extra=1"] {
        assert_native_error(&app.get(&format!("/api/v1/audit?{bad}"), &app.root).await, 400, "invalid_request");
    }
    // An application's manager sees only its application's rows.
    let r = app.get("/api/v1/audit?limit=200", &two.a.admin_key).await;
    let apps: Vec<Value> =
        r.body["data"]["events"].as_array().unwrap().iter().map(|e| e["application_id"].clone()).collect();
    assert!(!apps.is_empty());
    assert!(apps.iter().all(|a| *a == json!(two.a.app.uuid.to_string())), "{apps:?}");
}

#[actix_web::test]
async fn the_listing_finds_keys_about_to_expire_unused_by_owner_and_by_text() {
    let app = TestApp::new().await;
    let (soon, _) = app.create_key(&app.root, "Soon Gone", None, Some(in_hours(2))).await;
    let (later, _) = app.create_key(&app.root, "later", None, Some(in_hours(24 * 30))).await;
    let (owned, _) = app.create_key(&app.root, "owned", None, None).await;
    patch(&app, &app.root, owned.0, json!({"owner": "team-x"})).await;
    let ids = |r: &Reply| -> Vec<i64> {
        r.body["data"]["keys"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.raw))
            .iter()
            .map(|k| k["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&app.get("/api/v1/keys?expiring_within=1d", &app.root).await), [soon.0]);
    assert_eq!(ids(&app.get("/api/v1/keys?expiring_within=60d", &app.root).await), [later.0, soon.0]);
    assert_eq!(ids(&app.get("/api/v1/keys?owner=team-x", &app.root).await), [owned.0]);
    assert_eq!(ids(&app.get("/api/v1/keys?q=soon", &app.root).await), [soon.0], "title, any case");
    let prefix = app.key_record(later).prefix;
    assert_eq!(ids(&app.get(&format!("/api/v1/keys?q={prefix}"), &app.root).await), [later.0]);
    // Never used counts from creation: nothing was created 1 day ago, everything just now.
    assert_eq!(ids(&app.get("/api/v1/keys?unused_for=1d", &app.root).await), Vec::<i64>::new());
    assert_eq!(ids(&app.get("/api/v1/keys?unused_for=0s&owner=team-x", &app.root).await), [owned.0], "combined");
    for bad in ["expiring_within=7", "unused_for=1y", "expiring_within=-1d"] {
        assert_native_error(&app.get(&format!("/api/v1/keys?{bad}"), &app.root).await, 400, "invalid_request");
    }
}

#[actix_web::test]
async fn a_chosen_key_prefix_applies_to_new_keys_and_old_keys_keep_working() {
    let app = TestApp::new().await;
    let (_, old) = app.create_key(&app.root, "sk key", None, None).await;
    let acme = TestApp::with_config(Config { key_prefix: "acme_live_".into(), ..Config::default() }).await;
    let (_, made) = acme.create_key(&acme.root, "acme key", None, None).await;
    assert!(made.starts_with("acme_live_") && made.len() == 59, "{made}");
    assert_eq!(acme.verify_code(&made).await, "VALID");
    assert_eq!(acme.verify_code(&acme.root).await, "VALID", "the sk- root key still works");
    assert_eq!(app.verify_code(&old).await, "VALID");
    // A mistyped key of the chosen prefix is refused by its checksum.
    let mut typo = made.clone();
    typo.replace_range(20..21, if &typo[20..21] == "a" { "b" } else { "a" });
    assert_eq!(acme.verify_code(&typo).await, "NOT_FOUND");
}
