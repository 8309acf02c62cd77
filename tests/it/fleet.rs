//! Fleet mode (docs/FLEET.md): two in-process nodes over one real PostgreSQL that the test
//! starts itself (`support::postgres`); SKIPPED without PostgreSQL unless
//! `APIKEYD_REQUIRE_POSTGRES=1`.

use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use apikeyd::domain::key_format::ApiKey;
use apikeyd::storage::postgres::{open_fleet, FleetConfig};
use serde_json::json;

use crate::support::postgres::Postgres;
use crate::support::{bearer, TestApp};

async fn node(pg: &Postgres, root: &ApiKey, stale_after: Duration, max_staleness: Option<Duration>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = FleetConfig { url: pg.url(), stale_after, max_staleness, listen: true };
    let db = open_fleet(&dir.path().join("apikeyd.db"), config).unwrap();
    assert!(db.fleet().unwrap().wait_first_sync(Duration::from_secs(30)), "first sync");
    TestApp::fleet_node(db, dir, root).await
}

/// Polls `check` every 10 ms until it holds or `limit` passes; true when it held.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn a_key_made_on_one_node_verifies_on_another_and_a_revoke_stops_it_everywhere() {
    let Some(pg) = Postgres::start("fleet::a_key_made_on_one_node") else { return };
    let root = ApiKey::generate().unwrap();
    let a = node(&pg, &root, Duration::from_secs(5), None).await;
    let b = node(&pg, &root, Duration::from_secs(5), None).await;
    assert_eq!(pg.psql("SELECT count(*) FROM api_keys"), "1", "one root key for the whole fleet");

    let r = a
        .send(TestRequest::post().uri("/api/v1/keys").insert_header(bearer(&a.root)).set_json(json!({"title": "edge"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let revision =
        r.headers.get("x-apikeyd-revision").expect("write carries its revision").to_str().unwrap().to_owned();
    let key = r.body["data"]["api_key"].as_str().unwrap().to_owned();
    let id = r.body["data"]["id"].as_i64().unwrap();

    // B answers only once it has applied A's write.
    let v = b
        .send(
            TestRequest::post()
                .uri("/api/v1/keys/verify")
                .insert_header(("x-apikeyd-min-revision", revision.as_str()))
                .set_json(json!({"key": key})),
        )
        .await;
    assert_eq!(v.body["data"]["code"], "VALID", "{}", v.raw);
    let bad = b.send(TestRequest::get().uri("/readyz").insert_header(("x-apikeyd-min-revision", "x"))).await;
    assert_eq!(bad.status, 400, "{}", bad.raw);

    // A session minted on A works on B.
    let token = a.login(&a.root).await;
    assert_eq!(b.get("/api/v1/keys", &token).await.status, 200);

    let r = a.send(TestRequest::delete().uri(&format!("/api/v1/keys/{id}")).insert_header(bearer(&a.root))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(a.verify_code(&key).await, "REVOKED", "on the writing node, at once");
    assert!(within(Duration::from_secs(1), async || b.verify_code(&key).await == "REVOKED").await, "on B within 1 s");

    let ready = b.send(TestRequest::get().uri("/readyz")).await;
    assert_eq!((ready.status.as_u16(), ready.body["ready"].clone()), (200, json!(true)), "{}", ready.raw);
    // Each replica holds exactly PostgreSQL's keys.
    let pg_keys = pg.psql("SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM api_keys");
    for n in [&a, &b] {
        let local: String = n
            .conn()
            .query_row(
                "SELECT group_concat(id || ':' || status, ',') FROM (SELECT * FROM api_keys ORDER BY id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(local, pg_keys);
    }
}

#[actix_web::test]
async fn with_postgres_down_verify_answers_writes_get_503_and_the_node_goes_unready() {
    let Some(pg) = Postgres::start("fleet::with_postgres_down") else { return };
    let root = ApiKey::generate().unwrap();
    let a = node(&pg, &root, Duration::from_secs(1), None).await;
    let (_, key) = a.create_key(&a.root, "k", None, None).await;
    pg.stop_now();
    assert_eq!(a.verify_code(&key).await, "VALID");
    let r = a
        .send(TestRequest::post().uri("/api/v1/keys").insert_header(bearer(&a.root)).set_json(json!({"title": "x"})))
        .await;
    assert_eq!(r.status, 503, "{}", r.raw);
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(r.body["error"]["code"], "store_unavailable");
    assert!(
        within(Duration::from_secs(5), async || a.send(TestRequest::get().uri("/readyz")).await.status == 503).await,
        "not ready once stale"
    );
    pg.start_again();
    assert!(
        within(Duration::from_secs(10), async || a.send(TestRequest::get().uri("/readyz")).await.status == 200).await,
        "ready again after PostgreSQL is back"
    );
    assert_eq!(a.verify_code(&key).await, "VALID");
}
