//! What every test module shares. [`TestApp`] is one test's world: a fresh database in a temp
//! dir with a known root key, the state `main` serves from, and the app itself (the same
//! [`apikeyd::app`] `main` serves) initialised as an actix test service, with typed helpers
//! for what tests do over and over: send a request and read the [`Reply`], log in, create a
//! key over HTTP, verify a key, put a key or an application straight into the store, change a
//! key from outside the app (as another process would), and the two-applications fixture.
//!
//! Beside it: the envelope assertions (`assertions`), the real binary (`binary`), and the
//! skip-or-require rule for tests that need something the machine may lack (`prerequisite`).

pub mod assertions;
pub mod binary;
pub mod postgres;
pub mod prerequisite;
pub mod upstream;

use std::cell::OnceCell;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use apikeyd::config::Config;
use apikeyd::domain::grants::{Access, GrantBody, GrantPath, Grants};
use apikeyd::domain::key_format::{ApiKey, KeyPrefix};
use apikeyd::domain::model::{Action, AppId, Application, AuditContext, KeyId, KeyRecord};
use apikeyd::domain::timestamp::Timestamp;
use apikeyd::error::Op;
use apikeyd::service::authority::Actor;
use apikeyd::service::manage::{self, Manage};
use apikeyd::service::scope::KeyRef;
use apikeyd::storage::sqlite::open_connection;
use apikeyd::storage::{ApplicationStore, AuditEntry, AuditStore, Db, KeyStore, NewKeyRow};
use apikeyd::AppState;
use serde_json::{json, Value};

pub use assertions::{
    assert_app_details, assert_app_error, assert_client_error, assert_invalid_jwt, assert_native_error,
    assert_request_id, assert_shard_error,
};

/// The initialised test service, type-erased so that [`TestApp`] can hold it: a request in,
/// the response (body boxed) out.
type Call = Rc<dyn Fn(actix_http::Request) -> Pin<Box<dyn Future<Output = ServiceResponse<BoxBody>>>>>;

/// One test's database, state and app. Fields are dropped in order: the app and the state
/// (and with them the database's connections) before the temp dir.
pub struct TestApp {
    service: Call,
    /// A second handle on the database file, with its own writer and pools: what "another
    /// process" (the command line, another node) changes keys through. Opened on first use.
    elsewhere: OnceCell<Db>,
    /// What the app is built from; tests reach the index, sessions and usage through it.
    pub state: web::Data<AppState>,
    /// The root key's plaintext (read_write on `/`, global, never expiring; key id 1).
    pub root: String,
    /// Holds the database file.
    pub dir: tempfile::TempDir,
}

impl TestApp {
    /// The default configuration, with the index warmed as the server warms it at start.
    pub async fn new() -> TestApp {
        TestApp::build(Config::default(), true).await
    }

    /// `config` (session lifetime, failure budget, trusted proxies), index warmed.
    pub async fn with_config(config: Config) -> TestApp {
        TestApp::build(config, true).await
    }

    /// An app whose index has not been warmed: every miss asks SQLite.
    pub async fn cold() -> TestApp {
        TestApp::build(Config::default(), false).await
    }

    async fn build(config: Config, warm: bool) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("apikeyd.db");
        let root = ApiKey::generate().unwrap();
        let db = Db::open(&path).unwrap();
        TestApp::over(db, dir, &root, config, warm).await
    }

    /// A node of a fleet (`postgres`): the app over `db`, a replica whose file lives in `dir`,
    /// with `root` as the fleet's root key if the fleet is new (as `serve` installs it).
    pub async fn fleet_node(db: Db, dir: tempfile::TempDir, root: &ApiKey) -> TestApp {
        TestApp::over(db, dir, root, Config::default(), true).await
    }

    async fn over(db: Db, dir: tempfile::TempDir, root: &ApiKey, config: Config, warm: bool) -> TestApp {
        manage::bootstrap(&db, Some(root)).await.unwrap();
        let state = web::Data::new(AppState::new(db, &config).await.unwrap());
        // Warm, as the server does at start: the index is then complete and answers misses
        // itself, so every key a test adds through another connection must reach it through
        // the change feed. (The verify module also covers a cold index.)
        if warm {
            state.index.warm(&state.db).unwrap();
        }
        let service = Rc::new(test::init_service(apikeyd::app(state.clone())).await);
        let service: Call = Rc::new(move |req| {
            let service = Rc::clone(&service);
            Box::pin(async move { test::call_service(&*service, req).await.map_into_boxed_body() })
        });
        TestApp { service, elsewhere: OnceCell::new(), state, root: root.expose().to_owned(), dir }
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("apikeyd.db")
    }

    /// A fully configured connection of the test's own on the database file, next to the
    /// app's: for reading rows, injecting failures, and the store's own statements.
    pub fn conn(&self) -> rusqlite::Connection {
        open_connection(&self.db_path()).unwrap()
    }

    /// The single number `sql` selects, read through [`TestApp::conn`].
    pub fn count(&self, sql: &str) -> i64 {
        self.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    // ---- HTTP ----

    /// Sends `req` through the app and collects the reply.
    pub async fn send(&self, req: TestRequest) -> Reply {
        Reply::read((self.service)(req.to_request()).await).await
    }

    /// `GET uri` with `credential` (a key or a session token) as a bearer token.
    pub async fn get(&self, uri: &str, credential: &str) -> Reply {
        self.send(TestRequest::get().uri(uri).insert_header(bearer(credential))).await
    }

    /// Logs `key` in through the clients family and returns the session token (JWT).
    pub async fn login(&self, key: &str) -> String {
        let r = self.send(TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": key}))).await;
        assert_eq!(r.status, 200, "login: {}", r.raw);
        r.body["data"]["token"].as_str().unwrap_or_else(|| panic!("login gave no token: {}", r.raw)).to_owned()
    }

    /// The verify API's code for `key` (`VALID`, `REVOKED`, ...).
    pub async fn verify_code(&self, key: &str) -> String {
        let r = self.send(TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key}))).await;
        assert_eq!(r.status, 200, "verify: {}", r.raw);
        r.body["data"]["code"].as_str().unwrap_or_else(|| panic!("verify gave no code: {}", r.raw)).to_owned()
    }

    /// Creates a key over HTTP (native family) as `by`, asking for `grants` and `expires_at`
    /// (the creator's own when `None`); returns its id and plaintext.
    pub async fn create_key(
        &self,
        by: &str,
        title: &str,
        grants: Option<Grants>,
        expires_at: Option<Timestamp>,
    ) -> (KeyId, String) {
        let mut body = json!({"title": title});
        if let Some(g) = grants {
            body["grants"] = serde_json::to_value(&g).unwrap();
        }
        if let Some(at) = expires_at {
            body["expires_at"] = json!(at.to_string());
        }
        let r = self.send(TestRequest::post().uri("/api/v1/keys").insert_header(bearer(by)).set_json(body)).await;
        assert_eq!(r.status, 200, "create: {}", r.raw);
        let id = r.body["data"]["id"].as_i64().unwrap_or_else(|| panic!("create gave no id: {}", r.raw));
        (KeyId(id), r.body["data"]["api_key"].as_str().unwrap().to_owned())
    }

    // ---- Straight into the store ----

    /// Inserts a global key straight into the store (bypassing HTTP and the minting rules, so
    /// it may be already expired); returns its id and plaintext.
    pub fn insert_key(&self, grants: Grants, expires_at: Option<Timestamp>) -> (KeyId, String) {
        let (rec, key) = self.insert_key_in(None, grants, expires_at);
        (rec.id, key)
    }

    /// Inserts a key of application `app` (or a global one) straight into the store, with
    /// its audit row in the same transaction and no actor; returns its record and plaintext.
    pub fn insert_key_in(
        &self,
        app: Option<AppId>,
        grants: Grants,
        expires_at: Option<Timestamp>,
    ) -> (KeyRecord, String) {
        let key = ApiKey::generate().unwrap();
        let mut conn = self.conn();
        let tx = conn.transaction().unwrap();
        let rec = insert_fixture_key(&tx, &key, &grants, expires_at, app);
        tx.commit().unwrap();
        (rec, key.expose().to_owned())
    }

    /// Creates an application straight in the store.
    pub fn create_app(&self, name: &str) -> Application {
        self.conn().insert_application(uuid::Uuid::new_v4(), name, Timestamp::now()).unwrap()
    }

    /// Applications A and B, each with a managing key (read_write on `/`).
    pub fn two_applications(&self) -> TwoApplications {
        let tenant = |name: &str| {
            let app = self.create_app(name);
            let (admin, admin_key) = self.insert_key_in(Some(app.id), Grants::root(), None);
            Tenant { app, admin, admin_key }
        };
        TwoApplications { a: tenant("A"), b: tenant("B") }
    }

    /// The stored key `id`, in any status and application.
    pub fn key_record(&self, id: KeyId) -> KeyRecord {
        self.conn().find_key_by_id(id).unwrap().unwrap_or_else(|| panic!("no key {id}"))
    }

    // ---- From outside the app ----

    /// Revokes key `id` from outside the app.
    pub async fn revoke_direct(&self, id: KeyId) {
        let manager = Actor::operator().manager(Op::Manage).unwrap();
        Manage::new(self.elsewhere(), &manager, &KeyPrefix::default()).revoke_key(KeyRef::Id(id)).await.unwrap();
    }

    /// Deletes the key whose plaintext is `key` from outside the app.
    pub async fn delete_direct(&self, key: &str) {
        let manager = Actor::operator().manager(Op::Manage).unwrap();
        let key = ApiKey::parse(key).unwrap();
        Manage::new(self.elsewhere(), &manager, &KeyPrefix::default()).delete_key_by_value(key).await.unwrap();
    }

    /// A second handle on the database file, not the app's, through which the operator's
    /// management calls (as the command line makes them) reach it: the app learns of them
    /// only through the change feed.
    fn elsewhere(&self) -> &Db {
        self.elsewhere.get_or_init(|| Db::open(&self.db_path()).unwrap())
    }
}

/// Inserts `key` with its audit row (no actor, no request) on `conn`, which the caller holds
/// in a transaction: what `apikeyd keys seed` or a bulk load by another process writes.
pub fn insert_fixture_key(
    conn: &rusqlite::Connection,
    key: &ApiKey,
    grants: &Grants,
    expires_at: Option<Timestamp>,
    application_id: Option<AppId>,
) -> KeyRecord {
    let now = Timestamp::now();
    let rec = conn
        .insert_key(&NewKeyRow {
            uuid: uuid::Uuid::new_v4(),
            title: "fixture",
            prefix: &key.display_prefix(),
            hash: &key.hash(),
            grants,
            created_at: now,
            expires_at,
            created_by: None,
            application_id,
            owner: None,
            meta: None,
            rotated_from: None,
            limits: &apikeyd::domain::limits::LimitSettings::default(),
        })
        .unwrap();
    let entry = AuditEntry { action: Action::Create, key: Some(rec.id), application: application_id, changes: None };
    conn.insert_audit(&entry, &AuditContext { actor: None, request_id: None, at: now }).unwrap();
    rec
}

/// One application and a key that manages it.
pub struct Tenant {
    pub app: Application,
    /// The managing key's record.
    pub admin: KeyRecord,
    /// The managing key's plaintext.
    pub admin_key: String,
}

/// What [`TestApp::two_applications`] makes.
pub struct TwoApplications {
    pub a: Tenant,
    pub b: Tenant,
}

/// Grants from (path, access) pairs.
pub fn grants(list: &[(&str, Access)]) -> Grants {
    let bodies: Vec<_> = list
        .iter()
        .map(|(p, a)| GrantBody { path: GrantPath::parse(p).unwrap().as_str().to_owned(), access: *a })
        .collect();
    Grants::from_bodies(&bodies).unwrap()
}

/// What a test looks at in a response.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as JSON; `Value::Null` when it is not JSON (see `raw`).
    pub body: Value,
    pub raw: String,
}

impl Reply {
    async fn read(res: ServiceResponse<BoxBody>) -> Reply {
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = test::read_body(res).await;
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, body, raw }
    }
}

/// `key` with one body character replaced by a different one: always a different string, and
/// one the checksum refuses.
pub fn mangle(key: &str) -> String {
    let mut bytes = key.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

/// `Authorization: Bearer <credential>`.
pub fn bearer(credential: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {credential}"))
}
