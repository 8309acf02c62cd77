//! The authorization matrix as data: `tests/data/authz_matrix.tsv` holds the exact expected
//! status of every identity kind against every endpoint of every family; this test builds
//! each identity and request and compares. A cell that differs is listed by name, so a
//! missing or changed case is visible in the table, not buried in code.

use actix_web::test::TestRequest;
use apikeyd::domain::grants::{Access, Grants};
use apikeyd::domain::key_format::ApiKey;
use apikeyd::domain::model::Application;
use apikeyd::domain::timestamp::Timestamp;
use apikeyd::storage::KeyStore;
use serde_json::json;

use crate::support::{bearer, grants, mangle, TestApp, TwoApplications};

const MATRIX: &str = include_str!("../data/authz_matrix.tsv");

/// The world one row runs in: applications A and B, and a credential for the row's identity.
struct World {
    app: TestApp,
    a: Application,
    credential: Option<String>,
}

async fn world(identity: &str) -> World {
    let app = TestApp::new().await;
    let TwoApplications { a, b } = app.two_applications();
    let (base, jwt) = match identity.strip_suffix("_jwt") {
        Some(base) => (base, true),
        None => (identity, false),
    };
    let global = |g: Grants, exp: Option<Timestamp>| app.insert_key_in(None, g, exp).1;
    let key = match base {
        "root" => Some(app.root.clone()),
        "sub_path" => Some(global(grants(&[("/data", Access::Write)]), None)),
        "read_only" => Some(global(grants(&[("/", Access::Read)]), None)),
        "write_only" => Some(global(grants(&[("/", Access::Write)]), None)),
        "expiring_root" => Some(global(Grants::root(), Some(Timestamp::now().plus_millis(3_600_000)))),
        "write_v_manager" => Some(global(grants(&[("/", Access::Write), ("/v", Access::Read)]), None)),
        "app_a_admin" => Some(a.admin_key),
        "app_b_key" => Some(b.admin_key),
        "expired" => Some(global(Grants::root(), Some(Timestamp::now().plus_millis(-1000)))),
        "revoked" | "deleted" | "tampered" | "out_of_credits" | "outside_allowlist" => {
            Some(global(Grants::root(), None))
        }
        "malformed" => Some(mangle(&app.root)),
        "none" => None,
        other => panic!("unknown identity {other}"),
    };
    // Limits set in the store before the key's first use (a login included), which reads its row.
    if let (Some(k), "out_of_credits" | "outside_allowlist") = (&key, base) {
        let column =
            if base == "out_of_credits" { "credits_remaining = 0" } else { "allowed_ips = '[\"203.0.113.0/24\"]'" };
        let id = app.conn().find_key_by_hash(&ApiKey::parse(k).unwrap().hash()).unwrap().unwrap().id;
        app.conn().execute(&format!("UPDATE api_keys SET {column} WHERE id = ?1"), [id.0]).unwrap();
    }
    let mut credential = key.clone();
    if jwt {
        let key = key.as_deref().unwrap_or_else(|| panic!("{identity}: a token is minted from a key"));
        credential = Some(app.login(key).await);
    }
    if let Some(k) = &key {
        match base {
            "revoked" => {
                let hash = ApiKey::parse(k).unwrap().hash();
                let id = app.conn().find_key_by_hash(&hash).unwrap().unwrap().id;
                app.revoke_direct(id).await;
            }
            "deleted" => app.delete_direct(k).await,
            "tampered" => {
                let token = credential.take().unwrap();
                let (head, sig) = token.rsplit_once('.').unwrap();
                let flipped: String = sig.chars().rev().collect();
                credential = Some(format!("{head}.{flipped}"));
            }
            _ => {}
        }
    }
    World { app, a: a.app, credential }
}

/// The request behind each column, aimed at a fresh key of application A where it needs one.
fn request(endpoint: &str, w: &World) -> TestRequest {
    let (victim, victim_key) = w.app.insert_key_in(Some(w.a.id), grants(&[("/v", Access::Read)]), None);
    let (a, vid, vuuid) = (w.a.uuid, victim.id.0, victim.uuid);
    match endpoint {
        "create_key" => TestRequest::post().uri("/api/v1/keys").set_json(json!({"title": "m"})),
        "list_keys" => TestRequest::get().uri("/api/v1/keys"),
        "get_key" => TestRequest::get().uri(&format!("/api/v1/keys/{vid}")),
        "revoke_key" => TestRequest::delete().uri(&format!("/api/v1/keys/{vid}")),
        "update_key" => TestRequest::patch().uri(&format!("/api/v1/keys/{vid}")).set_json(json!({"title": "t2"})),
        "set_limits" => TestRequest::patch()
            .uri(&format!("/api/v1/keys/{vid}"))
            .set_json(json!({"rate_limit": {"limit": 5, "window_seconds": 60}, "credits": {"remaining": 9}})),
        "rotate_key" => TestRequest::post().uri(&format!("/api/v1/keys/{vid}/rotate")).set_json(json!({})),
        "list_audit" => TestRequest::get().uri("/api/v1/audit"),
        "verify" => TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": victim_key})),
        "auth_token" => TestRequest::post().uri("/api/v1/auth/token").set_json(json!({"api_key": victim_key})),
        "shard_create" => TestRequest::post()
            .uri("/api-key")
            .set_json(json!({"permissions": 1, "path": "/a", "expiration_date": "0001-01-01T00:00:00Z"})),
        "shard_delete" => TestRequest::delete().uri(&format!("/api-key?value={victim_key}")),
        "forward_auth" => TestRequest::get().uri("/auth").insert_header(("x-original-uri", "/x")),
        "create_app" => TestRequest::post().uri("/api/v1/applications").set_json(json!({"name": "n"})),
        "list_apps" => TestRequest::get().uri("/api/v1/applications"),
        "get_app" => TestRequest::get().uri(&format!("/api/v1/applications/{a}")),
        "create_app_key" => TestRequest::post().uri(&format!("/api/v1/applications/{a}/api-keys")).set_json(json!({})),
        "list_app_keys" => TestRequest::get().uri(&format!("/api/v1/applications/{a}/api-keys")),
        "revoke_app_key" => TestRequest::delete().uri(&format!("/api/v1/applications/{a}/api-keys/{vuuid}")),
        "login" => TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": victim_key})),
        "list_client_keys" => TestRequest::get().uri("/api/clients/api-keys"),
        "create_client_key" => TestRequest::post().uri("/api/clients/api-keys").set_json(json!({})),
        "delete_client_key" => TestRequest::delete().uri(&format!("/api/clients/api-keys/{vuuid}")),
        "bulk_delete" => {
            TestRequest::delete().uri("/api/clients/api-keys/bulk").set_json(json!({"api_key_ids": [vuuid]}))
        }
        "healthz" => TestRequest::get().uri("/healthz"),
        other => panic!("no request for column {other}"),
    }
}

#[actix_web::test]
async fn every_identity_gets_exactly_the_expected_status_on_every_endpoint() {
    let mut lines = MATRIX.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap().split('\t').skip(1).collect();
    let mut failures = Vec::new();
    let mut cells = 0;
    let mut successes_expected = 0;
    for line in lines {
        let mut fields = line.split('\t');
        let identity = fields.next().unwrap();
        let expected: Vec<u16> = fields.map(|f| f.parse().unwrap()).collect();
        assert_eq!(expected.len(), header.len(), "row {identity} has {} cells", expected.len());
        let w = world(identity).await;
        for (endpoint, want) in header.iter().zip(&expected) {
            // Keys are tried in both headers; tokens travel as bearer tokens only.
            let styles: &[&str] = match &w.credential {
                Some(c) if c.starts_with("sk-") => &["bearer", "x-user-api-key"],
                _ => &["bearer"],
            };
            for style in styles {
                let mut req = request(endpoint, &w);
                if let Some(c) = &w.credential {
                    req = match *style {
                        "bearer" => req.insert_header(bearer(c)),
                        _ => req.insert_header(("x-user-api-key", c.as_str())),
                    };
                }
                let got = w.app.send(req).await;
                cells += 1;
                if (200..300).contains(want) {
                    successes_expected += 1;
                }
                if got.status.as_u16() != *want {
                    failures
                        .push(format!("{identity} {style} {endpoint}: want {want}, got {} {}", got.status, got.raw));
                }
            }
        }
    }
    println!(
        "authorization matrix: {cells} cells, {successes_expected} expected successes, {} mismatches",
        failures.len()
    );
    assert!(cells > 500, "the matrix was read ({cells} cells)");
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
