//! `GET /metrics` and `GET /readyz`: what is counted (verdicts by code, requests by route
//! template, denials), who may scrape (read on `/metrics`, or anyone on `--metrics-bind`),
//! that no label ever holds a key, hash, display prefix, title or raw path, and that real
//! Prometheus tools read it: `promtool check metrics` accepts the output, and a real
//! `prometheus` started here scrapes the real binary and answers a PromQL query with the
//! number of verifications made. Those two need Debian's `prometheus` package (which ships
//! promtool); without it they print `SKIPPED`, unless `APIKEYD_REQUIRE_PROMETHEUS=1`.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use apikeyd::domain::grants::Access;
use apikeyd::domain::key_format::ApiKey;
use serde_json::{json, Value};

use crate::support::binary::{http, Server};
use crate::support::prerequisite::skip_unless_required;
use crate::support::upstream::Gateway;
use crate::support::{bearer, grants, mangle, TestApp};

const REQUIRE: &str = "APIKEYD_REQUIRE_PROMETHEUS";

/// The value of the sample `name{labels}` (labels exactly as the text format writes them),
/// 0 when the line is absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap_or_else(|_| panic!("{series}: {v}")))
}

async fn scrape(app: &TestApp) -> String {
    let r = app.get("/metrics", &app.root).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let content_type = r.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    r.raw
}

async fn verify(app: &TestApp, key: &str) {
    let r = app.send(TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

#[actix_web::test]
async fn verdicts_are_counted_by_endpoint_and_code_and_requests_by_route_template() {
    let app = TestApp::new().await;
    let (id, key) = app.create_key(&app.root, "counted", None, None).await;
    let (revoked_id, revoked) = app.create_key(&app.root, "revoked", None, None).await;
    let r = app
        .send(TestRequest::delete().uri(&format!("/api/v1/keys/{}", revoked_id.0)).insert_header(bearer(&app.root)))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    for _ in 0..3 {
        verify(&app, &key).await;
    }
    verify(&app, &revoked).await;
    verify(&app, &mangle(&key)).await;
    verify(&app, ApiKey::generate().unwrap().expose()).await;
    for (credential, expected) in [(key.as_str(), 200), (revoked.as_str(), 401)] {
        let r = app.send(TestRequest::get().uri("/auth?path=/x").insert_header(bearer(credential))).await;
        assert_eq!(r.status, expected, "{}", r.raw);
    }
    let r = app.get(&format!("/api/v1/keys/{}", id.0), &app.root).await;
    assert_eq!(r.status, 200);

    let text = scrape(&app).await;
    let verdict = |endpoint: &str, code: &str| {
        sample(&text, &format!("apikeyd_verdicts_total{{endpoint=\"{endpoint}\",code=\"{code}\"}}"))
    };
    assert_eq!(verdict("verify", "VALID"), 3.0, "{text}");
    assert_eq!(verdict("verify", "REVOKED"), 1.0);
    assert_eq!(verdict("verify", "NOT_FOUND"), 2.0);
    assert_eq!(verdict("auth", "VALID"), 1.0);
    assert_eq!(verdict("auth", "REVOKED"), 1.0);
    assert_eq!(verdict("verify", "EXPIRED"), 0.0);
    let requests = |route: &str, method: &str, status: u16| {
        let series = format!(
            "apikeyd_http_request_duration_seconds_count{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
        );
        sample(&text, &series)
    };
    assert_eq!(requests("/api/v1/keys/verify", "POST", 200), 6.0, "{text}");
    assert_eq!(requests("/api/v1/keys/{id}", "GET", 200), 1.0);
    assert_eq!(requests("/api/v1/keys/{id}", "DELETE", 200), 1.0);
    assert_eq!(requests("/auth", "GET", 401), 1.0);
    assert!(sample(&text, "apikeyd_write_commit_duration_seconds_count") >= 3.0, "{text}");
    assert_eq!(sample(&text, "apikeyd_key_index_complete"), 1.0);
    // Root, "counted" and "revoked".
    assert_eq!(sample(&text, "apikeyd_key_index_keys"), 3.0);
    assert_eq!(sample(&text, "apikeyd_write_queue_depth"), 0.0);
    // Three keys authenticated and not yet flushed: their last_used_at is pending.
    assert!(sample(&text, "apikeyd_last_used_pending_keys") >= 1.0, "{text}");
}

#[actix_web::test]
async fn denials_by_the_failure_budget_are_counted() {
    let config = apikeyd::config::Config { failure_burst: 2, failure_refill_per_sec: 1, ..Default::default() };
    let app = TestApp::with_config(config).await;
    let unknown = ApiKey::generate().unwrap().expose().to_owned();
    for _ in 0..5 {
        let req = TestRequest::post().uri("/api/v1/keys/verify").peer_addr("192.0.2.7:4000".parse().unwrap());
        let r = app.send(req.set_json(json!({"key": unknown}))).await;
        assert_eq!(r.status, 200, "{}", r.raw);
    }
    let text = scrape(&app).await;
    // Two failures spend the burst; the other three are denied.
    assert_eq!(sample(&text, "apikeyd_auth_failure_denials_total"), 3.0, "{text}");
    assert_eq!(sample(&text, "apikeyd_verdicts_total{endpoint=\"verify\",code=\"RATE_LIMITED\"}"), 3.0);
}

#[actix_web::test]
async fn scraping_the_main_listener_needs_read_on_metrics() {
    let app = TestApp::new().await;
    let r = app.send(TestRequest::get().uri("/metrics")).await;
    assert_eq!(r.status, 401, "{}", r.raw);
    let (_, data_reader) = app.create_key(&app.root, "data", Some(grants(&[("/data", Access::ReadWrite)])), None).await;
    let r = app.get("/metrics", &data_reader).await;
    assert_eq!(r.status, 403, "{}", r.raw);
    assert_eq!(r.body["error"]["code"], "forbidden");
    let (_, writer) = app.create_key(&app.root, "w", Some(grants(&[("/metrics", Access::Write)])), None).await;
    assert_eq!(app.get("/metrics", &writer).await.status, 403);
    let (_, scraper) = app.create_key(&app.root, "scraper", Some(grants(&[("/metrics", Access::Read)])), None).await;
    let r = app.get("/metrics", &scraper).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(r.raw.contains("apikeyd_verdicts_total"));
    // A session of the scraper's key has its rights.
    let session = app.login(&scraper).await;
    assert_eq!(app.get("/metrics", &session).await.status, 200);
}

#[actix_web::test]
async fn no_label_ever_holds_a_key_hash_prefix_title_or_raw_path() {
    let app = TestApp::new().await;
    let title = "TITLE-attacker-chosen-7f3a";
    let (_, key) = app.create_key(&app.root, title, None, None).await;
    let parsed = ApiKey::parse(&key).unwrap();
    let hash_hex: String = parsed.hash().0.iter().map(|b| format!("{b:02x}")).collect();
    let prefix = parsed.display_prefix();
    let paths = [
        format!("/api/v1/keys/{key}"),
        format!("/{key}"),
        "/PATH-attacker-chosen-9c1e/../x".to_owned(),
        "/api/v1/PATH-attacker-chosen-9c1e".to_owned(),
        "/api/clients/PATH-attacker-chosen-9c1e".to_owned(),
        format!("/api-key?value={key}"),
        format!("/auth?path=/PATH-attacker-chosen-9c1e/{key}"),
        format!("/api/v1/applications/{title}/api-keys"),
    ];
    for path in &paths {
        for method in ["GET", "DELETE", "POST", "BREW"] {
            let req = TestRequest::default()
                .method(actix_web::http::Method::from_bytes(method.as_bytes()).unwrap())
                .uri(path)
                .insert_header(bearer(&key));
            app.send(req).await;
        }
    }
    verify(&app, &key).await;
    let text = scrape(&app).await;
    for secret in [key.as_str(), hash_hex.as_str(), &hash_hex[..16], prefix.as_str(), title, "PATH-attacker"] {
        assert!(!text.contains(secret), "{secret} is in the metrics:\n{text}");
    }
    let mut routes = BTreeSet::new();
    let mut methods = BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        for (label, seen) in [("route=\"", &mut routes), ("method=\"", &mut methods)] {
            if let Some(rest) = line.split(label).nth(1) {
                seen.insert(rest.split('"').next().unwrap().to_owned());
            }
        }
    }
    for route in &routes {
        assert!(
            route == "unmatched" || apikeyd::http::ROUTES.iter().any(|r| r.path == route),
            "route label {route} is not a template"
        );
    }
    assert!(routes.contains("unmatched") && routes.contains("/api/v1/keys/{id}"), "{routes:?}");
    assert!(methods.contains("OTHER") && !methods.contains("BREW"), "{methods:?}");
}

#[actix_web::test]
async fn readyz_is_503_with_the_reason_until_the_index_is_loaded() {
    let cold = TestApp::cold().await;
    let r = cold.send(TestRequest::get().uri("/readyz")).await;
    assert_eq!(r.status, 503, "{}", r.raw);
    assert_eq!(r.body["ready"], false);
    assert_eq!(r.body["reasons"], json!(["the key index is still loading"]));
    cold.state.index.warm(&cold.state.db).unwrap();
    let r = cold.send(TestRequest::get().uri("/readyz")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["ready"], true);
    assert_eq!(r.body["reasons"], json!([]));
    let names: Vec<&str> = r.body["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["key_index", "database_writable"]);
    assert!(r.body["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true));
}

// ---------------------------------------------------------------------------------------------
// Real Prometheus tools

fn find(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(bin)).find(|p| p.is_file())
}

/// The metrics text of a real server, over the wire, after a few verifications.
fn scrape_real(server: &Server, root: &str) -> String {
    let (status, text) = server.request("GET", "/metrics", &[("Authorization", &format!("Bearer {root}"))], None);
    assert_eq!(status, 200, "{text}");
    text
}

fn start_with_root(dir: &Path, args: &[&str]) -> (Server, String) {
    let root = ApiKey::generate().unwrap().expose().to_owned();
    let server = Server::start_with_args(&dir.join("m.db"), args, &[("APIKEYD_ROOT_KEY", &root)]);
    (server, root)
}

#[test]
fn promtool_accepts_the_metrics() {
    let Some(promtool) = find("promtool") else {
        return skip_unless_required(REQUIRE, "metrics::promtool", "promtool not found (Debian: prometheus)");
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = start_with_root(dir.path(), &[]);
    for _ in 0..3 {
        assert_eq!(server.verify_code(&root), "VALID");
    }
    server.request("GET", "/nowhere", &[], None);
    let text = scrape_real(&server, &root);
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool refused the metrics: {said}\n{text}");
    // promtool also lints (names, units, help): it should have nothing to say.
    assert!(said.trim().is_empty(), "promtool: {said}");
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The metrics listener the server announced (`metrics listening on ADDR`).
fn metrics_addr(server: &Server) -> SocketAddr {
    let text = server.stderr.lock().unwrap().clone();
    text.lines().find_map(|l| l.strip_prefix("metrics listening on ")).expect("metrics listener").parse().unwrap()
}

/// Starts prometheus scraping `target` every second, storing in `dir`; waits until its API
/// answers.
fn start_prometheus(bin: &Path, dir: &Path, target: SocketAddr) -> Gateway {
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: apikeyd\n    \
         static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let listen = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={listen}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let prometheus = Gateway { child, addr: listen, dir: dir.to_owned() };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(listen).is_err() {
        assert!(Instant::now() < deadline, "prometheus did not start: {}", prometheus_log(dir));
        std::thread::sleep(Duration::from_millis(100));
    }
    prometheus
}

fn prometheus_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
}

/// The value of an instant PromQL query's single result, if it has one.
fn query(prometheus: SocketAddr, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = http(prometheus, "GET", &format!("/api/v1/query?query={encoded}"), &[], None);
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn a_real_prometheus_scrapes_the_binary_and_counts_its_verifications() {
    let Some(bin) = find("prometheus") else {
        return skip_unless_required(REQUIRE, "metrics::prometheus", "prometheus not found (Debian: prometheus)");
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = start_with_root(dir.path(), &["--metrics-bind", "127.0.0.1:0"]);
    let target = metrics_addr(&server);
    // The separate listener needs no credential, and serves nothing but /metrics.
    let (status, text) = http(target, "GET", "/metrics", &[], None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(http(target, "GET", "/api/v1/keys", &[("Authorization", &format!("Bearer {root}"))], None).0, 404);
    let (_, other) = server.create_key(&root, "other", &[]);
    const VALID: usize = 7;
    const UNKNOWN: usize = 4;
    for _ in 0..VALID {
        assert_eq!(server.verify_code(&other), "VALID");
    }
    for _ in 0..UNKNOWN {
        assert_eq!(server.verify_code(ApiKey::generate().unwrap().expose()), "NOT_FOUND");
    }
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir(&prom_dir).unwrap();
    let prometheus = start_prometheus(&bin, &prom_dir, target);
    let promql = "sum(apikeyd_verdicts_total{job=\"apikeyd\",endpoint=\"verify\"})";
    let valid = "apikeyd_verdicts_total{job=\"apikeyd\",endpoint=\"verify\",code=\"VALID\"}";
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (total, ok) = (query(prometheus.addr, promql), query(prometheus.addr, valid));
        if total == Some((VALID + UNKNOWN) as f64) && ok == Some(VALID as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus answered {total:?} / {ok:?}, expected {} / {VALID}; its log:\n{}",
            VALID + UNKNOWN,
            prometheus_log(&prom_dir)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let up = query(prometheus.addr, "up{job=\"apikeyd\"}");
    assert_eq!(up, Some(1.0));
}
