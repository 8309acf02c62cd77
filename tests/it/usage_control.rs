//! Usage control at the edge: per-key rate limits, credits and IP allowlists, as verify and
//! `/auth` enforce them (codes, headers, the order of the checks, nothing spent by a refused
//! verdict), and as create, PATCH, rotation, the listing and the audit trail carry them.

use std::net::SocketAddr;

use actix_web::test::TestRequest;
use apikeyd::config::Config;
use apikeyd::domain::grants::Grants;
use apikeyd::domain::timestamp::Timestamp;
use serde_json::{json, Value};

use crate::support::assertions::assert_native_error;
use crate::support::{bearer, Reply, TestApp};

/// Creates a key as root with `extra` fields merged into the body; its id and plaintext.
async fn key_with(app: &TestApp, extra: Value) -> (i64, String) {
    let mut body = json!({"title": "limited"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let r = app.send(TestRequest::post().uri("/api/v1/keys").insert_header(bearer(&app.root)).set_json(body)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    (r.body["data"]["id"].as_i64().unwrap(), r.body["data"]["api_key"].as_str().unwrap().to_owned())
}

async fn verify(app: &TestApp, body: Value) -> Reply {
    let r = app.send(TestRequest::post().uri("/api/v1/keys/verify").set_json(body)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    r
}

async fn auth(app: &TestApp, key: &str, peer: &str, path: &str) -> Reply {
    let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
    app.send(
        TestRequest::get()
            .uri("/auth")
            .peer_addr(peer)
            .insert_header(bearer(key))
            .insert_header(("x-original-uri", path)),
    )
    .await
}

/// Request headers of a case.
type Headers = &'static [(&'static str, &'static str)];

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

/// (RateLimit-Limit, RateLimit-Remaining) as numbers.
fn rate_headers(r: &Reply) -> Option<(u64, u64)> {
    Some((header(r, "ratelimit-limit")?.parse().unwrap(), header(r, "ratelimit-remaining")?.parse().unwrap()))
}

#[actix_web::test]
async fn a_rate_limit_admits_its_limit_then_refuses_with_the_headers_gateways_expect() {
    let app = TestApp::new().await;
    let (_, key) = key_with(
        &app,
        json!({"rate_limit": {"limit": 3, "window_seconds": 60},
                                         "grants": [{"path": "/data", "access": "read"}]}),
    )
    .await;
    // A path check that fails spends nothing.
    for _ in 0..5 {
        let r = verify(&app, json!({"key": key, "path": "/other"})).await;
        assert_eq!(r.body["data"]["code"], "FORBIDDEN");
        assert_eq!(rate_headers(&r), None, "a refused path never reaches the rate limit: {:?}", r.headers);
    }
    for left in [2, 1, 0] {
        let r = verify(&app, json!({"key": key, "path": "/data/x"})).await;
        assert_eq!(r.body["data"]["code"], "VALID", "{}", r.raw);
        assert_eq!(rate_headers(&r), Some((3, left)));
        assert_eq!(r.body["data"]["rate_limit"]["limit"], 3);
        assert_eq!(r.body["data"]["rate_limit"]["remaining"], left);
        let reset: u64 = header(&r, "ratelimit-reset").unwrap().parse().unwrap();
        // A verdict is counted by its tenth of the window: it frees a slot within the window
        // plus one tenth.
        assert!((1..=66).contains(&reset), "reset {reset}");
        assert!(header(&r, "retry-after").is_none());
    }
    let r = verify(&app, json!({"key": key, "path": "/data/x"})).await;
    let data = &r.body["data"];
    assert_eq!((data["code"].as_str(), data["valid"].as_bool()), (Some("RATE_LIMITED"), Some(false)), "{}", r.raw);
    assert!(data["key_id"].is_i64(), "a key over its own limit is still named");
    assert_eq!((data["rate_limit"]["limit"].as_u64(), data["rate_limit"]["remaining"].as_u64()), (Some(3), Some(0)));
    assert!(data["rate_limit"]["reset_at"].is_string());
    assert_eq!(rate_headers(&r), Some((3, 0)));
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=66).contains(&retry), "retry-after {retry}");
    // /auth answers the same window with 429 and Retry-After.
    let r = auth(&app, &key, "192.0.2.1", "/data/x").await;
    assert_eq!(r.status, 429);
    assert!(header(&r, "retry-after").is_some());
    assert_eq!(rate_headers(&r), Some((3, 0)));
    // A key over its own limit is not a failed authentication: the client's budget is whole,
    // and another key is unaffected.
    let (_, other) = key_with(&app, json!({"rate_limit": {"limit": 1, "window_seconds": 60}})).await;
    let r = auth(&app, &other, "192.0.2.1", "/").await;
    assert_eq!((r.status.as_u16(), rate_headers(&r)), (200, Some((1, 0))));
}

#[actix_web::test]
async fn credits_are_spent_by_cost_refused_at_zero_and_never_spent_by_a_refusal() {
    let app = TestApp::new().await;
    let (id, key) = key_with(&app, json!({"credits": {"remaining": 3}})).await;
    let step = |cost: Value| json!({"key": key, "cost": cost});
    let rows: [(Value, &str, u64); 5] = [
        (json!(2), "VALID", 1),
        (json!(2), "USAGE_EXCEEDED", 1),
        (Value::Null, "VALID", 0),
        (json!(0), "USAGE_EXCEEDED", 0),
        (json!(1), "USAGE_EXCEEDED", 0),
    ];
    for (cost, code, left) in rows {
        let r = verify(&app, step(cost.clone())).await;
        assert_eq!(r.body["data"]["code"], code, "cost {cost}: {}", r.raw);
        assert_eq!(r.body["data"]["credits"]["remaining"], left, "cost {cost}");
        // No refill: no time after which a retry could succeed.
        assert!(header(&r, "retry-after").is_none(), "{:?}", r.headers);
    }
    assert_eq!(auth(&app, &key, "192.0.2.1", "/").await.status, 429);
    let r = app.get(&format!("/api/v1/keys/{id}"), &app.root).await;
    assert_eq!(r.body["data"]["credits"], json!({"remaining": 0, "refill": null}));
    // Cost is checked.
    for bad in [json!(1001), json!(-1), json!("1"), json!(1.5)] {
        let r = app.send(TestRequest::post().uri("/api/v1/keys/verify").set_json(step(bad.clone()))).await;
        assert_native_error(&r, 400, "invalid_request");
    }
    // A refill tells when to retry.
    let (_, daily) =
        key_with(&app, json!({"credits": {"remaining": 0, "refill": {"amount": 5, "interval": "daily"}}})).await;
    let r = verify(&app, json!({"key": daily})).await;
    assert_eq!(r.body["data"]["code"], "USAGE_EXCEEDED");
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "until the next 00:00 UTC: {retry}");
}

#[actix_web::test]
async fn a_verdict_refused_by_the_credits_gives_its_rate_slot_back() {
    let app = TestApp::new().await;
    let (_, key) =
        key_with(&app, json!({"rate_limit": {"limit": 5, "window_seconds": 60}, "credits": {"remaining": 2}})).await;
    for left in [4, 3] {
        let r = verify(&app, json!({"key": key})).await;
        assert_eq!((r.body["data"]["code"].as_str(), rate_headers(&r)), (Some("VALID"), Some((5, left))));
    }
    for _ in 0..4 {
        let r = verify(&app, json!({"key": key})).await;
        assert_eq!(r.body["data"]["code"], "USAGE_EXCEEDED");
        assert_eq!(rate_headers(&r), Some((5, 3)), "the slot was given back");
    }
}

#[actix_web::test]
async fn an_allowlist_admits_its_networks_only_and_is_checked_after_expiry_and_before_the_grant() {
    let app =
        TestApp::with_config(Config { trusted_proxies: vec!["127.0.0.1".parse().unwrap()], ..Config::default() }).await;
    let (id, key) = key_with(
        &app,
        json!({"allowed_ips": ["203.0.113.0/24", "2001:db8::/32"], "grants": [{"path": "/data", "access": "read"}],
               "rate_limit": {"limit": 100, "window_seconds": 60}}),
    )
    .await;
    let rows = [
        (json!({"key": key}), "IP_NOT_ALLOWED"),
        (json!({"key": key, "ip": "203.0.113.77"}), "VALID"),
        (json!({"key": key, "ip": "2001:db8::1"}), "VALID"),
        (json!({"key": key, "ip": "::ffff:203.0.113.5"}), "VALID"),
        (json!({"key": key, "ip": "198.51.100.1"}), "IP_NOT_ALLOWED"),
        (json!({"key": key, "ip": "198.51.100.1", "path": "/other"}), "IP_NOT_ALLOWED"),
        (json!({"key": key, "ip": "203.0.113.77", "path": "/other"}), "FORBIDDEN"),
    ];
    for (body, code) in rows {
        let r = verify(&app, body.clone()).await;
        assert_eq!(r.body["data"]["code"], code, "{body}");
    }
    let r = verify(&app, json!({"key": key, "ip": "203.0.113.77"})).await;
    assert_eq!(r.body["data"]["rate_limit"]["remaining"], 96, "only the three VALID verdicts spent: {}", r.raw);
    let r = app
        .send(TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key, "ip": "10.0.0.300"})))
        .await;
    assert_native_error(&r, 400, "invalid_request");

    // /auth: the peer, or what a trusted proxy says.
    assert_eq!(auth(&app, &key, "203.0.113.9", "/data/x").await.status, 200);
    assert_eq!(auth(&app, &key, "198.51.100.1", "/data/x").await.status, 403);
    assert_eq!(auth(&app, &key, "203.0.113.9", "/other").await.status, 403);
    let via = |forwarded: &'static [(&'static str, &'static str)], peer: &str| {
        let mut req = TestRequest::get()
            .uri("/auth")
            .peer_addr(format!("{peer}:40000").parse().unwrap())
            .insert_header(bearer(&key))
            .insert_header(("x-original-uri", "/data/x"));
        for h in forwarded {
            req = req.append_header(*h);
        }
        req
    };
    let cases: [(Headers, &str, u16); 6] = [
        (&[("x-forwarded-for", "203.0.113.9")], "127.0.0.1", 200),
        (&[("x-real-ip", "203.0.113.9")], "127.0.0.1", 200),
        // Not from a trusted proxy: its word is not taken.
        (&[("x-forwarded-for", "203.0.113.9")], "198.51.100.1", 403),
        (&[("x-real-ip", "203.0.113.9")], "198.51.100.1", 403),
        // The client's own header first, the proxy's appended second: the proxy's counts.
        (&[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-for", "198.51.100.1")], "127.0.0.1", 403),
        (&[("x-forwarded-for", "203.0.113.9, 198.51.100.1")], "127.0.0.1", 403),
    ];
    for (headers, peer, want) in cases {
        assert_eq!(app.send(via(headers, peer)).await.status, want, "{headers:?} from {peer}");
    }
    // Management calls check the allowlist too, and say only 401, as for any bad credential.
    let patch = TestRequest::patch()
        .uri(&format!("/api/v1/keys/{id}"))
        .insert_header(bearer(&app.root))
        .set_json(json!({"grants": [{"path": "/", "access": "read_write"}]}));
    assert_eq!(app.send(patch).await.status, 200);
    let list = |peer: &str| {
        TestRequest::get()
            .uri("/api/v1/keys")
            .peer_addr(format!("{peer}:40000").parse().unwrap())
            .insert_header(bearer(&key))
    };
    assert_eq!(app.send(list("203.0.113.9")).await.status, 200);
    assert_native_error(&app.send(list("198.51.100.1")).await, 401, "unauthorized");
}

#[actix_web::test]
async fn the_checks_come_in_the_documented_order_and_a_refused_key_spends_nothing() {
    let app = TestApp::new().await;
    let limits = json!({"rate_limit": {"limit": 10, "window_seconds": 60}, "credits": {"remaining": 10},
                        "allowed_ips": ["203.0.113.0/24"]});
    let (id, key) = key_with(&app, limits).await;
    let outside = json!({"key": key, "ip": "198.51.100.1"});
    let patch = |body: Value| {
        TestRequest::patch().uri(&format!("/api/v1/keys/{id}")).insert_header(bearer(&app.root)).set_json(body)
    };
    assert_eq!(verify(&app, outside.clone()).await.body["data"]["code"], "IP_NOT_ALLOWED");
    assert_eq!(app.send(patch(json!({"enabled": false}))).await.status, 200);
    assert_eq!(verify(&app, outside.clone()).await.body["data"]["code"], "DISABLED", "disabled before the IP check");
    assert_eq!(app.send(patch(json!({"enabled": true}))).await.status, 200);
    // Spent nothing so far: each refusal left both budgets whole.
    let r = verify(&app, json!({"key": key, "ip": "203.0.113.1"})).await;
    assert_eq!(r.body["data"]["rate_limit"]["remaining"], 9, "{}", r.raw);
    assert_eq!(r.body["data"]["credits"]["remaining"], 9);
    let revoke = TestRequest::delete().uri(&format!("/api/v1/keys/{id}")).insert_header(bearer(&app.root));
    assert_eq!(app.send(revoke).await.status, 200);
    let r = verify(&app, outside).await;
    assert_eq!(r.body["data"]["code"], "REVOKED", "revoked before the IP check");
    assert!(r.body["data"]["rate_limit"].is_null() && r.body["data"]["credits"].is_null());
    // Expired before the IP check: a key past its expiry, with an allowlist set in the store.
    let (expired_id, expired) = app.insert_key(Grants::root(), Some(Timestamp::now().plus_millis(-1)));
    app.conn()
        .execute("UPDATE api_keys SET allowed_ips = '[\"203.0.113.0/24\"]' WHERE id = ?1", [expired_id.0])
        .unwrap();
    let r = verify(&app, json!({"key": expired, "ip": "198.51.100.1"})).await;
    assert_eq!(r.body["data"]["code"], "EXPIRED");
}

#[actix_web::test]
async fn limits_are_set_on_create_changed_by_patch_audited_listed_and_checked() {
    let app = TestApp::new().await;
    let (id, key) = key_with(
        &app,
        json!({"rate_limit": {"limit": 100, "window_seconds": 60},
               "credits": {"remaining": 1000, "refill": {"amount": 1000, "interval": "monthly"}},
               "allowed_ips": ["10.1.2.3/8", "2001:db8::1"]}),
    )
    .await;
    let shown = app.get(&format!("/api/v1/keys/{id}"), &app.root).await;
    let data = &shown.body["data"];
    assert_eq!(data["rate_limit"], json!({"limit": 100, "window_seconds": 60}));
    assert_eq!(data["credits"], json!({"remaining": 1000, "refill": {"amount": 1000, "interval": "monthly"}}));
    assert_eq!(data["allowed_ips"], json!(["10.0.0.0/8", "2001:db8::1/128"]), "networks as they are matched");
    let listed = app.get("/api/v1/keys", &app.root).await;
    let row = listed.body["data"]["keys"].as_array().unwrap().iter().find(|k| k["id"] == id).unwrap().clone();
    assert_eq!(row["rate_limit"], data["rate_limit"]);
    // Spending shows in the metadata at once (the node's lease counts).
    for _ in 0..10 {
        assert_eq!(verify(&app, json!({"key": key, "ip": "10.9.9.9"})).await.body["data"]["code"], "VALID");
    }
    let shown = app.get(&format!("/api/v1/keys/{id}"), &app.root).await;
    assert_eq!(shown.body["data"]["credits"]["remaining"], 990, "{}", shown.raw);

    let patch = |body: Value| {
        TestRequest::patch().uri(&format!("/api/v1/keys/{id}")).insert_header(bearer(&app.root)).set_json(body)
    };
    let r = app
        .send(patch(json!({"rate_limit": {"limit": 5, "window_seconds": 1}, "credits": {"remaining": 7},
                                  "allowed_ips": null})))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["data"]["credits"], json!({"remaining": 7, "refill": null}));
    assert!(r.body["data"]["allowed_ips"].is_null());
    // From the next request: the old lease is void, the allowlist gone.
    let r = verify(&app, json!({"key": key})).await;
    assert_eq!(r.body["data"]["credits"]["remaining"], 6, "{}", r.raw);
    assert_eq!(rate_headers(&r), Some((5, 4)));
    let audit = app.get(&format!("/api/v1/audit?key_id={id}"), &app.root).await;
    let changes = &audit.body["data"]["events"][0]["changes"];
    assert_eq!(
        changes["rate_limit"],
        json!({"from": {"limit": 100, "window_seconds": 60}, "to": {"limit": 5, "window_seconds": 1}})
    );
    assert_eq!(changes["credits"]["to"], json!({"remaining": 7, "refill": null}));
    assert_eq!(changes["allowed_ips"], json!({"from": ["10.0.0.0/8", "2001:db8::1/128"], "to": null}));
    let r = app.send(patch(json!({"rate_limit": null, "credits": null}))).await;
    assert!(r.body["data"]["rate_limit"].is_null() && r.body["data"]["credits"].is_null(), "{}", r.raw);
    let r = verify(&app, json!({"key": key})).await;
    assert!(r.body["data"]["credits"].is_null() && rate_headers(&r).is_none(), "{}", r.raw);

    // Every bad limit is a 400 naming its field, on create and on PATCH, and changes nothing.
    let bad = [
        json!({"rate_limit": {"limit": 0, "window_seconds": 60}}),
        json!({"rate_limit": {"limit": 1_000_000_001u64, "window_seconds": 60}}),
        json!({"rate_limit": {"limit": 1, "window_seconds": 86_401}}),
        json!({"rate_limit": {"limit": 1}}),
        json!({"rate_limit": {"limit": 1, "window_seconds": 1, "burst": 2}}),
        json!({"credits": {"remaining": -1}}),
        json!({"credits": {"remaining": 1_000_000_000_001u64}}),
        json!({"credits": {"remaining": 1, "refill": {"amount": 1, "interval": "weekly"}}}),
        json!({"allowed_ips": []}),
        json!({"allowed_ips": ["10.0.0.0/33"]}),
        json!({"allowed_ips": ["example.com"]}),
        json!({"allowed_ips": (0..65).map(|i| format!("10.0.{i}.0/24")).collect::<Vec<_>>()}),
    ];
    let before = app.count("SELECT count(*) FROM audit_log");
    for body in bad {
        assert_native_error(&app.send(patch(body.clone())).await, 400, "invalid_request");
        let mut create = json!({"title": "bad"});
        create.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        let req = TestRequest::post().uri("/api/v1/keys").insert_header(bearer(&app.root)).set_json(create);
        assert_native_error(&app.send(req).await, 400, "invalid_request");
    }
    assert_eq!(app.count("SELECT count(*) FROM audit_log"), before, "nothing written");
}

#[actix_web::test]
async fn a_rotation_copies_the_limits_and_moves_the_credits_so_both_keys_spend_one_count() {
    let app = TestApp::new().await;
    let (old_id, old) = key_with(
        &app,
        json!({"rate_limit": {"limit": 500, "window_seconds": 60}, "credits": {"remaining": 100},
               "allowed_ips": ["203.0.113.0/24"]}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(verify(&app, json!({"key": old, "ip": "203.0.113.1"})).await.body["data"]["code"], "VALID");
    }
    let req = TestRequest::post()
        .uri(&format!("/api/v1/keys/{old_id}/rotate"))
        .insert_header(bearer(&app.root))
        .set_json(json!({"grace_seconds": 600}));
    let r = app.send(req).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let new = r.body["data"]["api_key"].as_str().unwrap().to_owned();
    assert_eq!(r.body["data"]["rate_limit"], json!({"limit": 500, "window_seconds": 60}));
    assert_eq!(r.body["data"]["allowed_ips"], json!(["203.0.113.0/24"]));
    // The new key has what the old one had not leased (its lease stays the old key's).
    let moved = r.body["data"]["credits"]["remaining"].as_u64().unwrap();
    assert!(moved <= 97, "{moved}");
    // Both keys draw on one count: together they are accepted exactly 97 times, however
    // their uses interleave, and then both are refused.
    let mut accepted = 0;
    for i in 0..300 {
        let which = if i % 3 == 0 { &new } else { &old };
        let r = verify(&app, json!({"key": which, "ip": "203.0.113.1"})).await;
        match r.body["data"]["code"].as_str() {
            Some("VALID") => accepted += 1,
            Some("USAGE_EXCEEDED") => {}
            _ => panic!("{}", r.raw),
        }
    }
    assert_eq!(accepted, 97);
    for key in [&old, &new] {
        assert_eq!(verify(&app, json!({"key": key, "ip": "203.0.113.1"})).await.body["data"]["code"], "USAGE_EXCEEDED");
    }
}

#[actix_web::test]
async fn a_session_spends_its_keys_limits_at_the_edge_and_management_spends_none() {
    let app = TestApp::new().await;
    let (_, key) = key_with(&app, json!({"rate_limit": {"limit": 2, "window_seconds": 60}})).await;
    let token = app.login(&key).await;
    // Management calls and logins are not metered: the edge checks are.
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/keys", &key).await.status, 200);
    }
    assert_eq!(auth(&app, &token, "192.0.2.1", "/").await.status, 200);
    assert_eq!(auth(&app, &key, "192.0.2.1", "/").await.status, 200);
    let r = auth(&app, &token, "192.0.2.1", "/").await;
    assert_eq!((r.status.as_u16(), rate_headers(&r)), (429, Some((2, 0))), "the token and its key share one window");
}
