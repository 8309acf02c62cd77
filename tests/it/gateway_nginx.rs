//! A real nginx, configured from `examples/nginx.conf`, in front of a tiny upstream, with the real
//! `apikeyd` binary answering its `auth_request` subrequests. Checks that what reaches the
//! upstream is exactly what apikeyd allows — including paths nginx itself would normalise.
//!
//! Needs an nginx binary with the auth_request module (Debian/Ubuntu: `nginx` or `nginx-light`).
//! Without one the test prints a `SKIPPED gateway_nginx: ...` line (past the output capture) and
//! returns; with `APIKEYD_REQUIRE_NGINX=1` in the environment (CI) it fails instead
//! (`support::prerequisite`).

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::binary::{http, http_full, Server};
use crate::support::prerequisite::{say, skip_unless_required};
use crate::support::upstream::{self, Gateway, Upstream};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nginx.conf");

// ---------------------------------------------------------------------------------------------
// Finding nginx

fn find_nginx() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/sbin/nginx");
    if fixed.is_file() {
        return Some(fixed);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("nginx")).find(|p| p.is_file())
}

/// `nginx -v` → (major, minor, patch), if it can be read.
fn nginx_version(bin: &Path) -> Option<(u32, u32, u32)> {
    let out = Command::new(bin).arg("-v").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = text.split("nginx/").nth(1)?.split_whitespace().next()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0)))
}

// ---------------------------------------------------------------------------------------------
// nginx: config derived from the example, started in the foreground, stopped by PID.

/// nginx, with its error log.
type Nginx = Gateway;

fn error_log(nginx: &Nginx) -> String {
    fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default()
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    upstream::replace_once("examples/nginx.conf", text, from, to)
}

/// The example with only deployment details changed: addresses, and every path nginx writes to
/// moved into `dir` (Debian's build puts temp dirs under /var/lib/nginx, which an unprivileged
/// user cannot create).
fn derive_config(dir: &Path, apikeyd: SocketAddr, app: SocketAddr, listen: SocketAddr) -> String {
    let example = fs::read_to_string(EXAMPLE).expect("examples/nginx.conf");
    let d = dir.display();
    let mut c = example;
    // As root, workers then run as nginx's default user (nobody), which exists everywhere unlike
    // www-data; not as root, the directive would only be ignored with a warning.
    c = replace_once(&c, "user www-data;", "");
    c = replace_once(&c, "worker_processes auto;", "worker_processes 1;");
    c = replace_once(&c, "pid /run/nginx.pid;", &format!("pid {d}/nginx.pid;"));
    c = replace_once(&c, "/var/log/nginx/error.log", &format!("{d}/error.log"));
    c = replace_once(&c, "/var/log/nginx/access.log", &format!("{d}/access.log"));
    c = replace_once(&c, "server 127.0.0.1:8080;", &format!("server {apikeyd};"));
    c = replace_once(&c, "server 127.0.0.1:9000;", &format!("server {app};"));
    c = replace_once(&c, "listen 127.0.0.1:8000;", &format!("listen {listen};"));
    let temps = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .map(|t| format!("    {t}_temp_path {d}/{t}_temp;\n"))
        .concat();
    c = replace_once(&c, "http {\n", &format!("http {{\n{temps}"));
    c
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn nginx_command(bin: &Path, dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("-p").arg(format!("{}/", dir.display())).arg("-c").arg(dir.join("nginx.conf"));
    // -e (1.19.5+): the error log nginx uses before it has read the config; otherwise it tries
    // the compiled-in /var/log/nginx/error.log.
    if nginx_version(bin).is_some_and(|v| v >= (1, 19, 5)) {
        cmd.arg("-e").arg(dir.join("error.log"));
    }
    cmd.args(extra).stdin(Stdio::null());
    cmd
}

/// Validates (`nginx -t`) and starts nginx in the foreground; waits (bounded) until it accepts
/// connections. Retries on a fresh port a few times, in case the free port was taken meanwhile.
fn start_nginx(bin: &Path, dir: &Path, apikeyd: SocketAddr, app: SocketAddr) -> Nginx {
    let mut last_error = String::new();
    for _attempt in 0..3 {
        let listen = free_port();
        fs::write(dir.join("nginx.conf"), derive_config(dir, apikeyd, app, listen)).unwrap();
        let check = nginx_command(bin, dir, &["-t", "-q"]).output().unwrap();
        assert!(
            check.status.success(),
            "nginx -t rejected the config derived from examples/nginx.conf:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let out = fs::File::create(dir.join("nginx.out")).unwrap();
        let child = nginx_command(bin, dir, &["-g", "daemon off;"])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut nginx = Gateway { child, addr: listen, dir: dir.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                last_error = format!(
                    "nginx exited ({status}):\n{}{}",
                    fs::read_to_string(dir.join("nginx.out")).unwrap_or_default(),
                    error_log(&nginx)
                );
                break;
            }
            if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
                return nginx;
            }
            thread::sleep(Duration::from_millis(50));
        }
        if last_error.is_empty() {
            last_error = format!("nginx did not listen on {listen} within 15s:\n{}", error_log(&nginx));
        }
        drop(nginx);
    }
    panic!("could not start nginx: {last_error}");
}

// ---------------------------------------------------------------------------------------------

#[test]
fn nginx_auth_request_enforces_apikeyd_decisions() {
    let Some(bin) = find_nginx() else {
        let why = "nginx not installed (install with apt-get install nginx, or nginx-light)";
        skip_unless_required("APIKEYD_REQUIRE_NGINX", "gateway_nginx", why);
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    // Workers run as `nobody` when the test runs as root: let them into the temp dirs.
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let server = Server::start_with_args(&dir.path().join("apikeyd.db"), &["--forward-auth-headers", "original"], &[]);
    let root = server.printed_root_key().expect("root key printed on first start");
    let upstream = Upstream::start();
    let nginx = start_nginx(&bin, dir.path(), server.addr, upstream.addr);
    say(&format!(
        "gateway_nginx: {} on {}, apikeyd {}, upstream {}",
        bin.display(),
        nginx.addr,
        server.addr,
        upstream.addr
    ));

    let (reader_id, reader) = server.create_key(&root, "gateway", &[("/data", "read")]);
    let (writer_id, writer) = server.create_key(&root, "gateway", &[("/data", "write")]);
    let (doomed_id, doomed) = server.create_key(&root, "gateway", &[("/data", "read")]);
    let via = |method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>| {
        http(nginx.addr, method, path, headers, body)
    };
    let hits = || upstream.seen().len();
    let last = || upstream.seen().last().cloned().unwrap_or_default().to_ascii_lowercase();

    // A read key, both header forms: through to the upstream. nginx sets X-Key-Id from apikeyd's
    // answer (overwriting the client's forged one) and strips the secret.
    let bearer = format!("Bearer {reader}");
    for key_header in [("x-user-api-key", reader.as_str()), ("Authorization", bearer.as_str())] {
        let (status, body) = via("GET", "/data/file", &[key_header, ("X-Key-Id", "999999")], None);
        assert_eq!((status, body.as_str()), (200, "upstream ok"), "{}", error_log(&nginx));
        let seen = last();
        assert!(seen.starts_with("get /data/file http/1.1\r\n"), "{seen}");
        assert!(seen.contains(&format!("\r\nx-key-id: {reader_id}\r\n")), "{seen}");
        assert!(!seen.contains("999999"), "forged X-Key-Id reached the upstream: {seen}");
        assert!(!seen.contains(&reader.to_ascii_lowercase()), "the key reached the upstream: {seen}");
    }

    // The key's owner reaches the upstream as X-Key-Owner, set by nginx from apikeyd's answer;
    // a client's own X-Key-Owner never does.
    let (status, body) = server.request(
        "PATCH",
        &format!("/api/v1/keys/{reader_id}"),
        &[("Authorization", &format!("Bearer {root}")), ("content-type", "application/json")],
        Some(r#"{"owner": "customer-42"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = via("GET", "/data/file", &[("x-user-api-key", &reader), ("X-Key-Owner", "forged")], None);
    assert_eq!(status, 200);
    let seen = last();
    assert!(seen.contains("\r\nx-key-owner: customer-42\r\n") && !seen.contains("forged"), "{seen}");
    // A client adding the other gateways' header cannot choose its verdict: nginx drops it, and
    // apikeyd (--forward-auth-headers original) would not read it anyway.
    assert_eq!(via("GET", "/admin", &[("x-user-api-key", &reader), ("X-Forwarded-Uri", "/data/x")], None).0, 403);

    // Write key, POST with a body: allowed, and the body still reaches the upstream (only the
    // auth subrequest drops it).
    let (status, body) = via("POST", "/data/file", &[("x-user-api-key", &writer)], Some(r#"{"x":1}"#));
    assert_eq!((status, body.as_str()), (200, "upstream ok"));
    let seen = last();
    assert!(seen.starts_with("post /data/file http/1.1\r\n") && seen.ends_with(r#"{"x":1}"#), "{seen}");
    assert!(seen.contains(&format!("\r\nx-key-id: {writer_id}\r\n")), "{seen}");

    let before = hits();
    // No key, a key that does not exist: 401.
    assert_eq!(via("GET", "/data/file", &[], None).0, 401);
    assert_eq!(via("GET", "/data/file", &[("x-user-api-key", "sk-not-a-real-key")], None).0, 401);
    // Read-only key, write method: 403. Outside its grant: 403.
    assert_eq!(via("POST", "/data/file", &[("x-user-api-key", &reader)], Some("{}")).0, 403);
    assert_eq!(via("DELETE", "/data/file", &[("x-user-api-key", &reader)], None).0, 403);
    assert_eq!(via("GET", "/admin", &[("x-user-api-key", &reader)], None).0, 403);
    assert_eq!(via("GET", "/database", &[("x-user-api-key", &reader)], None).0, 403);
    // The internal auth location cannot be reached from outside.
    assert_eq!(via("GET", "/_apikeyd_auth", &[("x-user-api-key", &reader)], None).0, 404);

    // Revocation takes effect on the next request.
    assert_eq!(via("GET", "/data/file", &[("x-user-api-key", &doomed)], None).0, 200);
    let before_revoke = hits();
    let auth = format!("Bearer {root}");
    let (status, text) =
        server.request("DELETE", &format!("/api/v1/keys/{doomed_id}"), &[("Authorization", &auth)], None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(via("GET", "/data/file", &[("x-user-api-key", &doomed)], None).0, 401);
    assert_eq!(hits(), before_revoke);

    // Traversal with a key that may read /data only. The request line goes out byte for byte
    // (`http` is a raw socket client). nginx routes on its normalised $uri (all three become
    // /admin, which `location /` matches), but the auth subrequest carries the raw $request_uri
    // in X-Original-URI; apikeyd refuses any path with dot segments (literal or %2e-encoded) or
    // an encoded slash with 403, and nginx returns that 403.
    for path in ["/data/../admin", "/data/%2e%2e/admin", "/data%2F..%2Fadmin", "/data/./../admin"] {
        let (status, _) = via("GET", path, &[("x-user-api-key", &reader)], None);
        assert_eq!(status, 403, "{path}");
    }
    // The other direction shows apikeyd judges the raw $request_uri, not nginx's $uri: this one
    // normalises *into* /data/file (which the key could read), yet it is refused all the same.
    let (status, _) = via("GET", "/admin/../data/file", &[("x-user-api-key", &reader)], None);
    assert_eq!(status, 403, "/admin/../data/file");
    // Climbing above the root is rejected by nginx itself, before auth_request runs: 400.
    for path in ["/../data/file", "/data/../../admin"] {
        let (status, _) = via("GET", path, &[("x-user-api-key", &reader)], None);
        assert_eq!(status, 400, "{path}");
    }
    // None of the refused requests reached the upstream.
    assert_eq!(hits(), before + 1, "refused requests reached the upstream: {:#?}", &upstream.seen()[before..]);

    // Nothing went wrong between nginx and apikeyd (e.g. "auth request unexpected status").
    let errors = error_log(&nginx);
    let bad: Vec<_> =
        errors.lines().filter(|l| ["[error]", "[crit]", "[alert]", "[emerg]"].iter().any(|t| l.contains(t))).collect();
    assert!(bad.is_empty(), "nginx error.log:\n{errors}");
    let access_log = fs::read_to_string(dir.path().join("access.log")).unwrap_or_default();
    assert!(access_log.contains(&format!("key={reader_id} ")), "{access_log}");

    // Usage control: a key with a rate limit gets its window's headers on every answer, and
    // past the limit a 429 with Retry-After (not the 500 auth_request alone would make of it).
    let (status, body) = server.request(
        "POST",
        "/api/v1/keys",
        &[("Authorization", &format!("Bearer {root}")), ("content-type", "application/json")],
        Some(r#"{"title": "metered", "rate_limit": {"limit": 2, "window_seconds": 60}}"#),
    );
    assert_eq!(status, 200, "{body}");
    let metered =
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"]["api_key"].as_str().unwrap().to_owned();
    let find =
        |headers: &[(String, String)], name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let before = hits();
    for left in ["1", "0"] {
        let (status, headers, body) = http_full(nginx.addr, "GET", "/data/file", &[("x-user-api-key", &metered)], None);
        assert_eq!((status, body.as_str()), (200, "upstream ok"));
        assert_eq!(find(&headers, "ratelimit-limit").as_deref(), Some("2"), "{headers:?}");
        assert_eq!(find(&headers, "ratelimit-remaining").as_deref(), Some(left), "{headers:?}");
        assert!(find(&headers, "ratelimit-reset").is_some(), "{headers:?}");
    }
    let (status, headers, _) = http_full(nginx.addr, "GET", "/data/file", &[("x-user-api-key", &metered)], None);
    assert_eq!(status, 429, "{headers:?}\n{}", error_log(&nginx));
    let retry: u64 = find(&headers, "retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=66).contains(&retry), "{retry}");
    assert_eq!(find(&headers, "ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(hits(), before + 2, "the refused request never reached the upstream");
    // A key without limits gets no limit headers.
    let (_, headers, _) = http_full(nginx.addr, "GET", "/data/file", &[("x-user-api-key", &reader)], None);
    assert!(find(&headers, "ratelimit-limit").is_none() && find(&headers, "retry-after").is_none(), "{headers:?}");
    // A flood of bad keys from one client: apikeyd's failure budget answers 429, and the client
    // gets a 429 with Retry-After too.
    let mut flooded = None;
    for i in 0..200 {
        let bad = format!("sk-flood-{i}");
        let (status, headers, _) = http_full(nginx.addr, "GET", "/data/file", &[("x-user-api-key", &bad)], None);
        if status != 401 {
            flooded = Some((status, find(&headers, "retry-after")));
            break;
        }
    }
    let (status, retry) = flooded.expect("the failure budget ran out within 200 bad keys");
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|n| n >= 1)));
    // apikeyd gone: nginx fails closed. The subrequest gets 502, which auth_request does not
    // accept ("auth request unexpected status: 502" in error.log), so the client gets 500.
    let before = hits();
    server.kill9();
    assert_eq!(via("GET", "/data/file", &[("x-user-api-key", &reader)], None).0, 500);
    assert_eq!(hits(), before, "a request reached the upstream while apikeyd was down");
    let errors_after = error_log(&nginx);
    assert!(errors_after.contains("auth request unexpected status: 502"), "{errors_after}");
    say(&format!("gateway_nginx: ok ({} requests reached the upstream)", hits()));

    if std::env::var_os("GATEWAY_NGINX_SHOW_LOGS").is_some() {
        say(&format!("--- error.log\n{errors_after}--- access.log\n{access_log}"));
    }
    drop(nginx);
}
