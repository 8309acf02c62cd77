//! The audit log: every change to a key, in every family and from the CLI, writes exactly its
//! audit row (action, key, actor, request id) in the same transaction as the change. When the
//! audit row cannot be written, the change is rolled back with it and the client gets a
//! generic 500 in its family's envelope. The rows are read, and the failure injected, from a
//! side connection of the test's own on the app's database file (`TestApp::conn`).

use actix_web::test::TestRequest;
use apikeyd::domain::grants::Grants;
use serde_json::json;

use crate::support::binary::cli;
use crate::support::{assert_native_error, assert_request_id, assert_shard_error, bearer, Reply, TestApp};

/// One audit row: (action, key id, actor key id, request id).
type Row = (String, i64, Option<i64>, Option<String>);

const NEVER: &str = "0001-01-01T00:00:00Z";

fn last_audit_id(app: &TestApp) -> i64 {
    app.count("SELECT coalesce(max(id), 0) FROM audit_log")
}

/// Every audit row of a key written after row `after`, oldest first.
fn audit_after(app: &TestApp, after: i64) -> Vec<Row> {
    let conn = app.conn();
    let mut stmt = conn
        .prepare(
            "SELECT action, key_id, actor_key_id, request_id FROM audit_log \
             WHERE id > ?1 AND key_id IS NOT NULL ORDER BY id",
        )
        .unwrap();
    let rows = stmt.query_map([after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

/// A key row: (id, uuid, title, status, revoked_at, deleted_at).
type KeyRow = (i64, String, String, String, Option<i64>, Option<i64>);

/// Every key row as the tests compare it: id, uuid, title, status and its timestamps.
fn key_rows(app: &TestApp) -> Vec<KeyRow> {
    let conn = app.conn();
    let mut stmt =
        conn.prepare("SELECT id, uuid, title, status, revoked_at, deleted_at FROM api_keys ORDER BY id").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

fn id_of_uuid(app: &TestApp, uuid: &str) -> i64 {
    app.conn().query_row("SELECT id FROM api_keys WHERE uuid = ?1", [uuid], |r| r.get(0)).unwrap()
}

fn request_id(r: &Reply) -> Option<String> {
    assert_request_id(r);
    Some(r.headers.get("x-request-id").unwrap().to_str().unwrap().to_owned())
}

fn row(action: &str, key: i64, actor: i64, r: &Reply) -> Row {
    (action.to_owned(), key, Some(actor), request_id(r))
}

#[actix_web::test]
async fn every_mutation_of_every_family_writes_exactly_its_audit_row() {
    let app = TestApp::new().await;
    // The actor is not the bootstrap root (id 1), so a row naming 1 would be caught.
    let (actor, actor_key) = app.insert_key(Grants::root(), None);
    let actor = actor.0;
    assert_ne!(actor, 1);
    let jwt = app.login(&actor_key).await;
    let a = app.create_app("A");
    let key_header = || ("x-user-api-key", actor_key.clone());

    // Native: create (with the key, then with a JWT minted from it), revoke.
    for credential in [actor_key.as_str(), jwt.as_str()] {
        let before = last_audit_id(&app);
        let r = app
            .send(
                TestRequest::post()
                    .uri("/api/v1/keys")
                    .insert_header(bearer(credential))
                    .set_json(json!({"title": "n"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        let id = r.body["data"]["id"].as_i64().unwrap();
        assert_eq!(audit_after(&app, before), [row("create", id, actor, &r)]);

        let before = last_audit_id(&app);
        let r =
            app.send(TestRequest::delete().uri(&format!("/api/v1/keys/{id}")).insert_header(bearer(credential))).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(audit_after(&app, before), [row("revoke", id, actor, &r)]);
    }

    // Shard: create, delete by value.
    let before = last_audit_id(&app);
    let r = app
        .send(
            TestRequest::post()
                .uri("/api-key")
                .insert_header(key_header())
                .set_json(json!({"permissions": 1, "path": "/s", "expiration_date": NEVER})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let (id, value) = (r.body["id"].as_i64().unwrap(), r.body["value"].as_str().unwrap().to_owned());
    assert_eq!(audit_after(&app, before), [row("create", id, actor, &r)]);
    let before = last_audit_id(&app);
    let r = app
        .send(TestRequest::delete().uri("/api-key").insert_header(key_header()).set_json(json!({"value": value})))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(audit_after(&app, before), [row("delete", id, actor, &r)]);

    // Applications: creating an application changes no key, so no row names a key; the audit
    // trail gets exactly one `create_application` row, naming the actor and the request.
    let before = last_audit_id(&app);
    let r = app
        .send(
            TestRequest::post()
                .uri("/api/v1/applications")
                .insert_header(bearer(&actor_key))
                .set_json(json!({"name": "B"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(audit_after(&app, before), []);
    let app_rows: Vec<(String, String, Option<i64>, Option<String>)> = app
        .conn()
        .prepare(
            "SELECT l.action, a.uuid, l.actor_key_id, l.request_id FROM audit_log l \
             JOIN applications a ON a.id = l.application_id WHERE a.uuid = ?1 AND l.key_id IS NULL",
        )
        .unwrap()
        .query_map([r.body["id"].as_str().unwrap()], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        app_rows,
        [("create_application".to_owned(), r.body["id"].as_str().unwrap().to_owned(), Some(actor), request_id(&r))]
    );
    // Create a key in an application, revoke it.
    let before = last_audit_id(&app);
    let keys_uri = format!("/api/v1/applications/{}/api-keys", a.uuid);
    let r = app.send(TestRequest::post().uri(&keys_uri).insert_header(bearer(&actor_key)).set_json(json!({}))).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let uuid = r.body["id"].as_str().unwrap().to_owned();
    let id = id_of_uuid(&app, &uuid);
    assert_eq!(audit_after(&app, before), [row("create", id, actor, &r)]);
    let before = last_audit_id(&app);
    let r = app.send(TestRequest::delete().uri(&format!("{keys_uri}/{uuid}")).insert_header(bearer(&actor_key))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(audit_after(&app, before), [row("revoke", id, actor, &r)]);

    // Clients, with the JWT: generate, delete one, bulk delete.
    let before = last_audit_id(&app);
    let r = app
        .send(
            TestRequest::post().uri("/api/clients/api-keys").insert_header(bearer(&jwt)).set_json(json!({"name": "c"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let uuid = r.body["data"]["id"].as_str().unwrap().to_owned();
    let id = id_of_uuid(&app, &uuid);
    assert_eq!(audit_after(&app, before), [row("create", id, actor, &r)]);
    let before = last_audit_id(&app);
    let r =
        app.send(TestRequest::delete().uri(&format!("/api/clients/api-keys/{uuid}")).insert_header(bearer(&jwt))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(audit_after(&app, before), [row("delete", id, actor, &r)]);

    let victims: Vec<_> = (0..3).map(|_| app.insert_key_in(None, Grants::root(), None).0).collect();
    let before = last_audit_id(&app);
    let ids: Vec<String> = victims.iter().map(|k| k.uuid.to_string()).collect();
    let r = app
        .send(
            TestRequest::delete()
                .uri("/api/clients/api-keys/bulk")
                .insert_header(bearer(&jwt))
                .set_json(json!({"api_key_ids": ids})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let want: Vec<Row> = victims.iter().map(|k| row("delete", k.id.0, actor, &r)).collect();
    assert_eq!(audit_after(&app, before), want);
}

#[actix_web::test]
async fn cli_changes_are_audited_with_no_actor_and_no_request_id() {
    let app = TestApp::new().await;
    let (id, key) = app.insert_key(Grants::root(), None);
    let db = app.db_path();
    let db = db.to_str().unwrap();

    let before = last_audit_id(&app);
    let (ok, out, err) = cli(&["keys", "revoke", &id.0.to_string(), "--db", db]);
    assert!(ok, "{out}{err}");
    assert_eq!(audit_after(&app, before), [("revoke".to_owned(), id.0, None, None)]);
    // The running app honours it from its next request.
    assert_eq!(app.verify_code(&key).await, "REVOKED");

    let before = last_audit_id(&app);
    let (ok, out, err) = cli(&["keys", "create", "--title", "offline", "--db", db]);
    assert!(ok, "{out}{err}");
    let made = app.count("SELECT max(id) FROM api_keys");
    assert_eq!(audit_after(&app, before), [("create".to_owned(), made, None, None)]);
}

/// Asserts `r` is a generic 500 that names nothing of the cause.
fn assert_generic_500(r: &Reply, family: &str) {
    assert_eq!(r.status, 500, "{family}: {}", r.raw);
    let rid = request_id(r).unwrap();
    let text = r.raw.replace(&rid, "").to_lowercase();
    for word in ["injected", "audit", "sqlite", "sql", "trigger", "insert", "api_keys", "constraint", "raise"] {
        assert!(!text.contains(word), "{family}: the 500 body leaks {word:?}: {}", r.raw);
    }
}

#[actix_web::test]
async fn when_the_audit_row_cannot_be_written_the_change_rolls_back_and_the_answer_is_a_generic_500() {
    let app = TestApp::new().await;
    let (_, actor_key) = app.insert_key(Grants::root(), None);
    let jwt = app.login(&actor_key).await;
    let a = app.create_app("A");
    let (native_target, native_key) = app.insert_key(Grants::root(), None);
    let (_, shard_key) = app.insert_key(Grants::root(), None);
    let (app_target, app_key) = app.insert_key_in(Some(a.id), Grants::root(), None);
    let (client_target, client_key) = app.insert_key_in(None, Grants::root(), None);
    let (bulk_one, bulk_one_key) = app.insert_key_in(None, Grants::root(), None);
    let (bulk_two, bulk_two_key) = app.insert_key_in(None, Grants::root(), None);
    let targets = [&actor_key, &native_key, &shard_key, &app_key, &client_key, &bulk_one_key, &bulk_two_key];
    for key in targets {
        assert_eq!(app.verify_code(key).await, "VALID");
    }
    let keys_before = key_rows(&app);
    let audit_before = last_audit_id(&app);

    app.conn()
        .execute_batch(
            "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();

    let native = |req: TestRequest| req.insert_header(bearer(&actor_key));
    let r = app.send(native(TestRequest::post().uri("/api/v1/keys")).set_json(json!({"title": "n"}))).await;
    assert_native_error(&r, 500, "internal_error");
    assert_eq!(r.body["error"]["message"], "Internal server error");
    assert_generic_500(&r, "native create");
    let r = app.send(native(TestRequest::delete().uri(&format!("/api/v1/keys/{}", native_target.0)))).await;
    assert_native_error(&r, 500, "internal_error");
    assert_generic_500(&r, "native revoke");

    let shard = |req: TestRequest| req.insert_header(("x-user-api-key", actor_key.clone()));
    let body = json!({"permissions": 3, "path": "/s", "expiration_date": NEVER});
    let r = app.send(shard(TestRequest::post().uri("/api-key")).set_json(body)).await;
    assert_shard_error(&r, 500, "internal_error");
    assert_eq!(r.body["message"], "Internal server error");
    assert_generic_500(&r, "shard create");
    let r = app.send(shard(TestRequest::delete().uri("/api-key")).set_json(json!({"value": shard_key}))).await;
    assert_shard_error(&r, 500, "internal_error");
    assert_generic_500(&r, "shard delete");

    let applications_500 = json!({"error": "Internal Server Error", "message": "Internal server error", "code": 500});
    let keys_uri = format!("/api/v1/applications/{}/api-keys", a.uuid);
    let r = app.send(native(TestRequest::post().uri(&keys_uri)).set_json(json!({"name": "k"}))).await;
    assert_eq!(r.body, applications_500, "{}", r.raw);
    assert_generic_500(&r, "applications create key");
    let r = app.send(native(TestRequest::delete().uri(&format!("{keys_uri}/{}", app_target.uuid)))).await;
    assert_eq!(r.body, applications_500, "{}", r.raw);
    assert_generic_500(&r, "applications revoke key");

    let clients_500 = json!({"status": 500, "message": "Internal server error", "data": null});
    let client = |req: TestRequest| req.insert_header(bearer(&jwt));
    let r = app.send(client(TestRequest::post().uri("/api/clients/api-keys")).set_json(json!({"name": "c"}))).await;
    assert_eq!(r.body, clients_500, "{}", r.raw);
    assert_generic_500(&r, "clients generate");
    let uri = format!("/api/clients/api-keys/{}", client_target.uuid);
    let r = app.send(client(TestRequest::delete().uri(&uri))).await;
    assert_eq!(r.body, clients_500, "{}", r.raw);
    assert_generic_500(&r, "clients delete");
    let ids = json!({"api_key_ids": [bulk_one.uuid.to_string(), bulk_two.uuid.to_string()]});
    let r = app.send(client(TestRequest::delete().uri("/api/clients/api-keys/bulk")).set_json(ids)).await;
    assert_eq!(r.body, clients_500, "{}", r.raw);
    assert_generic_500(&r, "clients bulk delete");

    // Nothing changed: no key created, no status moved, no audit row; every key still verifies
    // as it did (the in-memory index included).
    assert_eq!(key_rows(&app), keys_before);
    assert_eq!(last_audit_id(&app), audit_before);
    for key in targets {
        assert_eq!(app.verify_code(key).await, "VALID");
    }

    // An application whose audit row cannot be written is not created either.
    app.conn()
        .execute_batch(
            "CREATE TRIGGER fail_app_audit BEFORE INSERT ON audit_log WHEN NEW.action = 'create_application' \
             BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
    let apps = |app: &TestApp| app.count("SELECT count(*) FROM applications");
    let apps_before = apps(&app);
    let r = app.send(native(TestRequest::post().uri("/api/v1/applications")).set_json(json!({"name": "X"}))).await;
    assert_eq!(r.body, applications_500, "{}", r.raw);
    assert_generic_500(&r, "applications create application");
    assert_eq!(apps(&app), apps_before);
    app.conn().execute_batch("DROP TRIGGER fail_app_audit;").unwrap();

    // Positive control: without the trigger the same revoke goes through, audited.
    app.conn().execute_batch("DROP TRIGGER fail_audit;").unwrap();
    let r = app.send(native(TestRequest::delete().uri(&format!("/api/v1/keys/{}", native_target.0)))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(audit_after(&app, audit_before).len(), 1);
    assert_eq!(app.verify_code(&native_key).await, "REVOKED");
}
