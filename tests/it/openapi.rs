//! The OpenAPI document at `GET /openapi.json`: it lists exactly the routes the app serves
//! (`http::ROUTES`, which `configure` registers from), it is OpenAPI 3.x with both security
//! schemes, and the error envelopes it documents are the ones the families render.

use std::collections::BTreeSet;

use actix_web::http::Method;
use actix_web::test::TestRequest;
use apikeyd::domain::grants::Grants;
use apikeyd::http::ROUTES;
use serde_json::{json, Value};

use crate::support::{bearer, TestApp};

/// Every method the route probe tries: the ones any route here could plausibly serve.
const PROBED: [Method; 7] =
    [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD, Method::OPTIONS];

async fn document(app: &TestApp) -> Value {
    let reply = app.send(TestRequest::get().uri("/openapi.json")).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.headers.get("content-type").unwrap(), "application/json");
    reply.body
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if PROBED.iter().any(|m| m.as_str().eq_ignore_ascii_case(method)) || method == "trace" {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn listed() -> BTreeSet<(String, String)> {
    ROUTES.iter().flat_map(|r| r.methods.iter().map(|m| (m.as_str().to_owned(), r.path.to_owned()))).collect()
}

#[actix_web::test]
async fn the_document_lists_exactly_the_routes_the_app_registers() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let (documented, listed) = (documented(&doc), listed());
    let undocumented: Vec<_> = listed.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&listed).collect();
    assert!(undocumented.is_empty(), "routes missing from /openapi.json: {undocumented:?}");
    assert!(unserved.is_empty(), "documented but not in http::ROUTES: {unserved:?}");
    // /auth answers any method; the document must show at least GET and POST.
    assert!(documented.contains(&("GET".into(), "/auth".into())));
    assert!(documented.contains(&("POST".into(), "/auth".into())));
}

/// Drives every (method, listed path) through the app: a listed method must reach a handler
/// (not 404 "No such route", not 405), an unlisted one must be 405. Path parameters name
/// real fixtures, so a handler's own 404 cannot be mistaken for a missing route.
#[actix_web::test]
async fn the_app_serves_exactly_the_methods_api_routes_lists() {
    let mut served = BTreeSet::new();
    for route in ROUTES {
        for method in PROBED {
            // A fresh world per request: a probe that revokes or deletes cannot affect another.
            let app = TestApp::new().await;
            let app_row = app.create_app("probe");
            let (app_key, _) = app.insert_key_in(Some(app_row.id), Grants::root(), None);
            let (global_key, _) = app.insert_key_in(None, Grants::root(), None);
            let uri = route
                .path
                .replace("{keyId}", &app_key.uuid.to_string())
                .replace("{api_key_id}", &global_key.uuid.to_string())
                .replace(
                    "{id}",
                    &if route.path.starts_with("/api/v1/applications") {
                        app_row.uuid.to_string()
                    } else {
                        global_key.id.to_string()
                    },
                );
            let req = TestRequest::default()
                .method(method.clone())
                .uri(&uri)
                .insert_header(bearer(&app.root))
                .insert_header(("content-type", "application/json"))
                .set_payload("{}");
            let reply = app.send(req).await;
            let status = reply.status.as_u16();
            if status != 404 && status != 405 {
                served.insert((method.as_str().to_owned(), route.path.to_owned()));
            }
            if status == 405 {
                let allow = reply.headers.get("allow").expect("405 carries Allow").to_str().unwrap();
                let expected: Vec<&str> = route.methods.iter().map(Method::as_str).collect();
                assert_eq!(allow, expected.join(", "), "{method} {uri}");
            }
        }
    }
    let listed = listed();
    assert_eq!(served, listed, "served (left) vs http::ROUTES (right)");
}

#[actix_web::test]
async fn the_document_is_openapi_3_with_both_security_schemes_and_open_calls_marked() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "x-user-api-key");

    let open = [
        ("post", "/api/v1/keys/verify"),
        ("post", "/api/clients/login"),
        ("post", "/api/v1/auth/token"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
    ];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let security = &op["security"];
            if open.contains(&(method.as_str(), path.as_str())) {
                assert!(security.is_null(), "{method} {path} needs no credential: {security}");
            } else {
                let names: BTreeSet<&str> = security
                    .as_array()
                    .unwrap_or_else(|| panic!("{method} {path} lists no security"))
                    .iter()
                    .flat_map(|req| req.as_object().unwrap().keys().map(String::as_str))
                    .collect();
                assert_eq!(names, BTreeSet::from(["bearer", "api_key"]), "{method} {path}");
                let codes = op["responses"].as_object().unwrap();
                assert!(codes.contains_key("401") && codes.contains_key("429"), "{method} {path}: 401 and 429");
            }
        }
    }
}

/// Checks `body` against the named component schema's properties and required list
/// (enough to catch an envelope drifting from its documented shape).
fn assert_shape(doc: &Value, schema: &str, body: &Value) {
    let s = &doc["components"]["schemas"][schema];
    let props = s["properties"].as_object().unwrap_or_else(|| panic!("{schema} has properties"));
    let obj = body.as_object().unwrap_or_else(|| panic!("{schema}: not an object: {body}"));
    for key in obj.keys() {
        assert!(props.contains_key(key), "{schema}: undocumented field {key} in {body}");
    }
    for req in s["required"].as_array().unwrap() {
        assert!(obj.contains_key(req.as_str().unwrap()), "{schema}: missing {req} in {body}");
    }
}

#[actix_web::test]
async fn each_family_renders_errors_in_its_documented_envelope() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let cases: [(TestRequest, &str); 5] = [
        (TestRequest::get().uri("/api/v1/keys"), "NativeError"),
        (TestRequest::delete().uri("/api-key"), "ShardError"),
        (TestRequest::get().uri("/api/v1/applications"), "ApplicationsError"),
        (
            TestRequest::get().uri("/api/v1/applications/not-a-uuid").insert_header(bearer(&app.root)),
            "ApplicationsError",
        ),
        (TestRequest::get().uri("/api/clients/api-keys"), "ClientsError"),
    ];
    for (req, schema) in cases {
        let reply = app.send(req).await;
        assert!(reply.status.is_client_error(), "{}", reply.raw);
        assert_shape(&doc, schema, &reply.body);
    }
}

#[actix_web::test]
async fn the_usage_limits_in_the_document_are_the_ones_enforced() {
    use apikeyd::config::{MAX_ALLOWED_IPS, MAX_CREDITS, MAX_RATE_LIMIT, MAX_RATE_WINDOW_SECONDS, MAX_VERIFY_COST};
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let rate = &schemas["RateLimit"]["properties"];
    assert_eq!(rate["limit"]["maximum"], json!(MAX_RATE_LIMIT));
    assert_eq!(rate["window_seconds"]["maximum"], json!(MAX_RATE_WINDOW_SECONDS));
    assert_eq!(schemas["Credits"]["properties"]["remaining"]["maximum"], json!(MAX_CREDITS));
    assert_eq!(schemas["Refill"]["properties"]["amount"]["maximum"], json!(MAX_CREDITS));
    assert_eq!(schemas["VerifyBody"]["properties"]["cost"]["maximum"], json!(MAX_VERIFY_COST));
    for body in ["CreateKeyBody", "UpdateKeyBody"] {
        assert_eq!(schemas[body]["properties"]["allowed_ips"]["maxItems"], json!(MAX_ALLOWED_IPS), "{body}");
    }
    let codes = &schemas["Verdict"]["properties"]["code"]["enum"];
    for code in ["IP_NOT_ALLOWED", "RATE_LIMITED", "USAGE_EXCEEDED"] {
        assert!(codes.as_array().unwrap().contains(&json!(code)), "{codes}");
    }
}
