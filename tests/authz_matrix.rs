//! The authorization matrix: every identity kind against every endpoint of the native and
//! shard-node families, with the exact status expected. One row per identity, so a missing
//! or changed case is visible at a glance.

mod common;

use actix_web::test::{self, TestRequest};
use apikeyd::grants::{Access, Grants};
use apikeyd::timestamp::Timestamp;
use common::{bearer, grants, send, TestEnv};
use serde_json::json;

#[derive(Clone, Copy, Debug)]
enum Identity {
    Root,
    WriteOnSubPath,
    ReadOnly,
    WriteOnlyRoot,
    ExpiringRoot,
    Revoked,
    Expired,
    Deleted,
    NoKey,
    Malformed,
}

const ENDPOINTS: [&str; 6] = [
    "POST /api/v1/keys",
    "GET /api/v1/keys",
    "GET /api/v1/keys/{id}",
    "DELETE /api/v1/keys/{id}",
    "POST /api-key",
    "DELETE /api-key",
];

/// Expected status per endpoint, in the order of `ENDPOINTS`.
const MATRIX: [(Identity, [u16; 6]); 10] = [
    (Identity::Root, [200, 200, 200, 200, 200, 200]),
    (Identity::WriteOnSubPath, [403, 403, 403, 403, 403, 403]),
    (Identity::ReadOnly, [403, 403, 403, 403, 403, 403]),
    (Identity::WriteOnlyRoot, [200, 200, 200, 200, 403, 200]),
    (Identity::ExpiringRoot, [200, 200, 200, 200, 403, 200]),
    (Identity::Revoked, [401, 401, 401, 401, 401, 401]),
    (Identity::Expired, [401, 401, 401, 401, 401, 401]),
    (Identity::Deleted, [401, 401, 401, 401, 401, 401]),
    (Identity::NoKey, [401, 401, 401, 401, 401, 401]),
    (Identity::Malformed, [401, 401, 401, 401, 401, 401]),
];

/// The credential for `who`, or None for no header at all.
fn credential(env: &TestEnv, who: Identity) -> Option<String> {
    let hour = Timestamp::now().plus_millis(3_600_000);
    Some(match who {
        Identity::Root => env.root.clone(),
        Identity::WriteOnSubPath => env.insert_key(grants(&[("/data", Access::Write)]), None).1,
        Identity::ReadOnly => env.insert_key(grants(&[("/", Access::Read)]), None).1,
        Identity::WriteOnlyRoot => env.insert_key(grants(&[("/", Access::Write)]), None).1,
        Identity::ExpiringRoot => env.insert_key(Grants::root(), Some(hour)).1,
        Identity::Revoked => {
            let (id, key) = env.insert_key(Grants::root(), None);
            env.revoke_direct(id);
            key
        }
        Identity::Expired => env.insert_key(Grants::root(), Some(Timestamp::now().plus_millis(-1000))).1,
        Identity::Deleted => {
            let (_, key) = env.insert_key(Grants::root(), None);
            env.delete_direct(&key);
            key
        }
        Identity::NoKey => return None,
        Identity::Malformed => {
            let mut k = env.root.clone().into_bytes();
            k.swap(5, 6);
            String::from_utf8(k).unwrap()
        }
    })
}

fn request(endpoint: &str, env: &TestEnv) -> TestRequest {
    let (victim_id, victim) = env.insert_key(grants(&[("/v", Access::Read)]), None);
    match endpoint {
        "POST /api/v1/keys" => TestRequest::post().uri("/api/v1/keys").set_json(json!({"title": "m"})),
        "GET /api/v1/keys" => TestRequest::get().uri("/api/v1/keys"),
        "GET /api/v1/keys/{id}" => TestRequest::get().uri(&format!("/api/v1/keys/{}", victim_id.0)),
        "DELETE /api/v1/keys/{id}" => TestRequest::delete().uri(&format!("/api/v1/keys/{}", victim_id.0)),
        "POST /api-key" => TestRequest::post()
            .uri("/api-key")
            .set_json(json!({"permissions": 1, "path": "/a", "expiration_date": "0001-01-01T00:00:00Z"})),
        "DELETE /api-key" => TestRequest::delete().uri(&format!("/api-key?value={victim}")),
        other => panic!("no request for {other}"),
    }
}

#[actix_web::test]
async fn every_identity_gets_exactly_the_expected_status_on_every_endpoint() {
    let mut failures = Vec::new();
    for (who, expected) in MATRIX {
        let env = TestEnv::new();
        let app = test::init_service(apikeyd::app(env.state.clone())).await;
        let cred = credential(&env, who);
        for (endpoint, want) in ENDPOINTS.iter().zip(expected) {
            // Both header styles must give the same answer.
            for style in ["bearer", "x-user-api-key"] {
                let mut req = request(endpoint, &env);
                if let Some(c) = &cred {
                    req = match style {
                        "bearer" => req.insert_header(bearer(c)),
                        _ => req.insert_header(("x-user-api-key", c.as_str())),
                    };
                }
                let got = send(&app, req).await;
                if got.status.as_u16() != want {
                    failures.push(format!("{who:?} {style} {endpoint}: want {want}, got {} {}", got.status, got.raw));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
