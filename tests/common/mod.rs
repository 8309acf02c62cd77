//! Shared test helpers: a fresh database per test with a known root key, the same app
//! `main` serves, and small request helpers that return (status, headers, JSON body).
#![allow(dead_code)] // each test binary uses a different subset

pub mod binary;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use apikeyd::db::{self, Db};
use apikeyd::grants::{Access, GrantPath, Grants};
use apikeyd::keys::ApiKey;
use apikeyd::manage::{self, KeySpec};
use apikeyd::model::{AppId, Application, KeyId, KeyRecord, Scope};
use apikeyd::store::audit::AuditContext;
use apikeyd::timestamp::Timestamp;
use apikeyd::AppState;
use serde_json::Value;

/// A database in a temp dir with a root key, and the state to build the app from.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub state: web::Data<AppState>,
    pub root: String,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv::with_jwt_ttl(std::time::Duration::from_secs(3600))
    }

    pub fn with_jwt_ttl(ttl: std::time::Duration) -> TestEnv {
        TestEnv::with_config(apikeyd::config::Config { jwt_ttl: ttl, ..Default::default() })
    }

    pub fn with_config(config: apikeyd::config::Config) -> TestEnv {
        TestEnv::build(config, true)
    }

    /// An environment whose index has not been warmed: every miss asks SQLite.
    pub fn cold() -> TestEnv {
        TestEnv::build(apikeyd::config::Config::default(), false)
    }

    fn build(config: apikeyd::config::Config, warm: bool) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("apikeyd.db");
        let root = ApiKey::generate().unwrap();
        let mut conn = db::open_connection(&path).unwrap();
        manage::bootstrap(&mut conn, Some(&root)).unwrap();
        drop(conn);
        let state = web::Data::new(AppState::new(Db::open(&path).unwrap(), &config).unwrap());
        // Warm, as the server does at start: the index is then complete and answers misses
        // itself, so every key a test adds through another connection must reach it through
        // the change feed. (tests/verify.rs also covers a cold index.)
        if warm {
            state.index.warm(&state.db).unwrap();
        }
        TestEnv { dir, state, root: root.expose().to_owned() }
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("apikeyd.db")
    }

    /// Inserts a key straight into the store (bypassing HTTP), e.g. one already expired.
    pub fn insert_key(&self, grants: Grants, expires_at: Option<Timestamp>) -> (KeyId, String) {
        let (rec, key) = self.insert_key_in(None, grants, expires_at);
        (rec.id, key)
    }

    /// Inserts a key of application `app` (or a global one) and returns its record and plaintext.
    pub fn insert_key_in(
        &self,
        app: Option<AppId>,
        grants: Grants,
        expires_at: Option<Timestamp>,
    ) -> (KeyRecord, String) {
        let key = ApiKey::generate().unwrap();
        let conn = db::open_connection(&self.db_path()).unwrap();
        let spec = KeySpec { title: "fixture".into(), grants, expires_at, application_id: app };
        let ctx = AuditContext { actor: None, request_id: None, at: Timestamp::now() };
        let rec = manage::insert_new_key(&conn, &spec, &key, &ctx).unwrap();
        (rec, key.expose().to_owned())
    }

    /// Creates an application straight in the store.
    pub fn create_app(&self, name: &str) -> Application {
        let conn = db::open_connection(&self.db_path()).unwrap();
        apikeyd::store::applications::insert_application(&conn, uuid::Uuid::new_v4(), name, Timestamp::now()).unwrap()
    }

    pub fn revoke_direct(&self, id: KeyId) {
        let conn = db::open_connection(&self.db_path()).unwrap();
        let ctx = AuditContext { actor: None, request_id: None, at: Timestamp::now() };
        manage::revoke_key(&conn, Scope::Global, None, id, &ctx).unwrap();
    }

    pub fn delete_direct(&self, key: &str) {
        let conn = db::open_connection(&self.db_path()).unwrap();
        let ctx = AuditContext { actor: None, request_id: None, at: Timestamp::now() };
        let key = ApiKey::parse(key).unwrap();
        manage::delete_key_by_value(&conn, Scope::Global, None, &key, &ctx).unwrap();
    }
}

pub fn grants(list: &[(&str, Access)]) -> Grants {
    let bodies: Vec<_> = list
        .iter()
        .map(|(p, a)| apikeyd::grants::GrantBody { path: GrantPath::parse(p).unwrap().as_str().to_owned(), access: *a })
        .collect();
    Grants::from_bodies(&bodies).unwrap()
}

/// What a test looks at in a response.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: String,
}

/// Sends `req` and collects the reply; a non-JSON body becomes `Value::Null` (see `raw`).
pub async fn send<S, B>(app: &S, req: TestRequest) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, body, raw }
}

/// `key` with one body character replaced by a different one: always a different string, and
/// one the checksum refuses.
pub fn mangle(key: &str) -> String {
    let mut bytes = key.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

pub fn bearer(key: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {key}"))
}

/// Asserts the native error envelope, field by field.
pub fn assert_native_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.raw);
    let obj = reply.body.as_object().unwrap_or_else(|| panic!("not a JSON object: {}", reply.raw));
    assert_eq!(obj.len(), 3, "envelope has exactly success, error, request_id: {}", reply.raw);
    assert_eq!(reply.body["success"], false);
    assert_eq!(reply.body["error"]["code"], code, "body: {}", reply.raw);
    assert!(reply.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(reply.body["error"].as_object().unwrap().len(), 2);
    assert_request_id(reply);
}

/// The body's request_id (if any) is the header's, and has the documented shape.
pub fn assert_request_id(reply: &Reply) {
    let header = reply.headers.get("x-request-id").expect("x-request-id header").to_str().unwrap();
    assert!(header.starts_with("req_") && header.len() == 30, "{header}");
    if let Some(id) = reply.body.get("request_id") {
        assert_eq!(id, header);
    }
}

/// Asserts the shard family's error shape.
pub fn assert_shard_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.raw);
    let obj = reply.body.as_object().unwrap_or_else(|| panic!("not a JSON object: {}", reply.raw));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "message", "request_id"], "exactly error, message, request_id: {}", reply.raw);
    assert_eq!(reply.body["error"], code, "body: {}", reply.raw);
    assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {}", reply.raw);
    assert!(reply.body["request_id"].is_string(), "body: {}", reply.raw);
    assert_request_id(reply);
}
