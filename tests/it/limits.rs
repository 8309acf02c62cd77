//! Failed-authentication rate limiting per client address: 429 (or RATE_LIMITED) past the
//! budget, never for a valid key, per address, and X-Forwarded-For believed only from a
//! trusted proxy.

use std::net::SocketAddr;

use actix_web::test::TestRequest;
use apikeyd::config::Config;
use apikeyd::domain::grants::Grants;
use apikeyd::domain::key_format::ApiKey;
use serde_json::json;

use crate::support::{assert_native_error, bearer, TestApp};

fn from(addr: &str) -> SocketAddr {
    format!("{addr}:40000").parse().unwrap()
}

async fn limited(burst: u32, trusted: &[&str]) -> TestApp {
    TestApp::with_config(Config {
        failure_burst: burst,
        failure_refill_per_sec: 1,
        trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        ..Default::default()
    })
    .await
}

#[actix_web::test]
async fn failures_past_the_burst_get_429_but_a_valid_key_never_does() {
    let app = limited(5, &[]).await;
    let bad = ApiKey::generate().unwrap().expose().to_owned();
    let list =
        |key: &str, ip: &str| TestRequest::get().uri("/api/v1/keys").insert_header(bearer(key)).peer_addr(from(ip));
    for _ in 0..5 {
        assert_native_error(&app.send(list(&bad, "192.0.2.1")).await, 401, "unauthorized");
    }
    let r = app.send(list(&bad, "192.0.2.1")).await;
    assert_native_error(&r, 429, "rate_limited");
    let retry: u64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // The same address with a valid key: served.
    assert_eq!(app.send(list(&app.root, "192.0.2.1")).await.status, 200);
    // Another address: its own budget.
    assert_native_error(&app.send(list(&bad, "192.0.2.2")).await, 401, "unauthorized");
    // Other routes and families answer 429 in their own envelopes.
    let r =
        app.send(TestRequest::get().uri("/auth?path=/").insert_header(bearer(&bad)).peer_addr(from("192.0.2.1"))).await;
    assert_eq!(r.status, 429);
    assert!(r.headers.get("retry-after").is_some());
    let r = app
        .send(
            TestRequest::post()
                .uri("/api/clients/login")
                .set_json(json!({"api_key": bad}))
                .peer_addr(from("192.0.2.1")),
        )
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["status"], 429);
    let r = app.send(TestRequest::delete()
            .uri("/api/v1/applications/123e4567-e89b-12d3-a456-426614174000/api-keys/123e4567-e89b-12d3-a456-426614174000")
            .insert_header(bearer(&bad))
            .peer_addr(from("192.0.2.1")),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.body["code"].as_u64()), (429, Some(429)));
}

#[actix_web::test]
async fn verify_reports_rate_limited_and_hides_the_key() {
    let app = limited(3, &[]).await;
    let (revoked_id, revoked) = app.insert_key(Grants::root(), None);
    app.revoke_direct(revoked_id).await;
    let verify = |key: &str| {
        TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key})).peer_addr(from("198.51.100.9"))
    };
    for _ in 0..3 {
        assert_eq!(app.send(verify(&revoked)).await.body["data"]["code"], "REVOKED");
    }
    let r = app.send(verify(&revoked)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["code"], "RATE_LIMITED");
    assert_eq!(r.body["data"]["valid"], false);
    assert!(r.body["data"]["key_id"].is_null());
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(app.send(verify(&app.root)).await.body["data"]["code"], "VALID");
}

#[actix_web::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let app = limited(2, &["127.0.0.1"]).await;
    let bad = ApiKey::generate().unwrap().expose().to_owned();
    let via = |peer: &str, client: &str| {
        TestRequest::get()
            .uri("/api/v1/keys")
            .insert_header(bearer(&bad))
            .insert_header(("x-forwarded-for", client))
            .peer_addr(from(peer))
    };
    // Behind the trusted proxy, each forwarded client has its own budget.
    for client in ["203.0.113.1", "203.0.113.2"] {
        for _ in 0..2 {
            assert_eq!(app.send(via("127.0.0.1", client)).await.status, 401);
        }
        assert_eq!(app.send(via("127.0.0.1", client)).await.status, 429);
    }
    // From an untrusted peer the header is ignored: rotating it does not reset the budget.
    for (i, client) in ["1.1.1.1", "2.2.2.2", "3.3.3.3"].iter().enumerate() {
        let want = if i < 2 { 401 } else { 429 };
        assert_eq!(app.send(via("192.0.2.50", client)).await.status, want);
    }
}
