//! The real binary: first-start bootstrap, durability across kill -9, the offline CLI next to
//! a running server, limits enforced by the HTTP layer, and secrets never reaching the
//! database files or the logs.

use std::path::Path;

use apikeyd::domain::key_format::ApiKey;
use apikeyd::storage::sqlite::open_connection;
use serde_json::Value;

use crate::support::binary::{cli, run_bounded, start_command, Server};

fn auth(key: &str) -> [(&str, String); 1] {
    [("Authorization", format!("Bearer {key}"))]
}

fn revoke(server: &Server, root: &str, id: i64) {
    let [(h, v)] = auth(root);
    let (status, body) = server.request("DELETE", &format!("/api/v1/keys/{id}"), &[(h, &v)], None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn first_start_prints_a_working_root_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let server = Server::start(&db, &[]);
    let root = server.printed_root_key().expect("root key printed on first start");
    assert!(ApiKey::parse(&root).is_ok());
    assert_eq!(server.get("/api/v1/keys", &root), 200);
    server.kill9();
    let again = Server::start(&db, &[]);
    assert_eq!(again.printed_root_key(), None, "printed only once");
    assert_eq!(again.get("/api/v1/keys", &root), 200);
}

#[test]
fn root_key_from_the_environment_is_installed_and_a_malformed_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let chosen = ApiKey::generate().unwrap();
    let server = Server::start(&db, &[("APIKEYD_ROOT_KEY", chosen.expose())]);
    assert_eq!(server.printed_root_key(), None);
    assert!(!server.stderr.lock().unwrap().contains("ignored"), "installed on a new database, not ignored");
    assert_eq!(server.get("/api/v1/keys", chosen.expose()), 200);
    drop(server);

    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_apikeyd"))
        .args(["serve", "--bind", "127.0.0.1:0", "--db"])
        .arg(other.path().join("k.db"))
        .env("APIKEYD_ROOT_KEY", "sk-not-a-real-key")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("APIKEYD_ROOT_KEY is not a well-formed key"), "{stderr}");
    assert!(!other.path().join("k.db").exists() || std::fs::metadata(other.path().join("k.db")).unwrap().len() == 0);
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let server = Server::start(&db, &[]);
    let root = server.printed_root_key().unwrap();
    let mut kept = Vec::new();
    let mut revoked = Vec::new();
    for i in 0..20 {
        let (id, key) = server.create_key(&root, &format!("k{i}"), &[]);
        if i % 3 == 0 {
            revoke(&server, &root, id);
            revoked.push(key);
        } else {
            kept.push(key);
        }
    }
    server.kill9();
    let server = Server::start(&db, &[]);
    for key in &kept {
        assert_eq!(server.get("/api/v1/keys", key), 200, "created key lost after kill -9");
    }
    for key in &revoked {
        assert_eq!(server.get("/api/v1/keys", key), 401, "revoked key came back after kill -9");
    }
    let conn = open_connection(&db).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let audits: i64 = conn.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0)).unwrap();
    assert_eq!(audits, 1 + 20 + revoked.len() as i64);
}

#[test]
fn cli_revoke_and_create_are_honoured_by_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let db_arg = db.to_str().unwrap();
    let server = Server::start(&db, &[]);
    let root = server.printed_root_key().unwrap();
    let (id, key) = server.create_key(&root, "cli-victim", &[]);
    assert_eq!(server.get("/api/v1/keys", &key), 200);

    let (ok, out, err) = cli(&["keys", "revoke", &id.to_string(), "--db", db_arg]);
    assert!(ok, "{out}{err}");
    assert_eq!(server.get("/api/v1/keys", &key), 401, "CLI revoke not honoured on the next request");

    let (ok, out, err) = cli(&["keys", "create", "--title", "from cli", "--grant", "read:/logs", "--db", db_arg]);
    assert!(ok, "{err}");
    let made = out.trim();
    assert!(ApiKey::parse(made).is_ok(), "{out}");
    assert_eq!(server.get("/api/v1/keys", made), 403, "read-only key authenticates but manages nothing");

    let (ok, listing, _) = cli(&["keys", "list", "--db", db_arg]);
    assert!(ok);
    assert!(listing.contains("from cli") && listing.contains("read:/logs") && listing.contains("revoked"));
    assert!(!listing.contains(made) && !listing.contains(&key) && !listing.contains(&root));

    let (ok, _, err) = cli(&["keys", "revoke", "abc", "--db", db_arg]);
    assert!(!ok && err.contains("positive integer"), "{err}");
    let (ok, _, err) = cli(&["keys", "revoke", "99999", "--db", db_arg]);
    assert!(!ok && err.contains("not found"), "{err}");
}

#[test]
fn the_http_layer_refuses_oversized_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("k.db"), &[]);
    let big = "a".repeat(64 * 1024);
    let (status, _) = server.request("GET", "/healthz", &[("x-big", &big)], None);
    assert_eq!(status, 431);
    assert_eq!(server.request("GET", "/healthz", &[], None).0, 200);
}

/// Every byte of every file whose name starts with the database's.
fn database_bytes(db: &Path) -> Vec<u8> {
    let name = db.file_name().unwrap().to_str().unwrap();
    let mut all = Vec::new();
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_str().unwrap().starts_with(name) {
            all.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    all
}

/// Every 20-character window of every run of 20 or more letters and digits in `bytes`. A key's
/// body is 49 such characters; finding any 20 of them in a row is a leak. (The stored display
/// prefix is 8.) Indexing once keeps a thousand look-ups fast in a debug build.
fn alnum_windows(bytes: &[u8]) -> std::collections::HashSet<[u8; 20]> {
    let mut set = std::collections::HashSet::new();
    for run in bytes.split(|b| !b.is_ascii_alphanumeric()).filter(|r| r.len() >= 20) {
        for w in run.windows(20) {
            set.insert(<[u8; 20]>::try_from(w).unwrap());
        }
    }
    set
}

fn leaks(index: &std::collections::HashSet<[u8; 20]>, key: &str) -> bool {
    key.as_bytes()[3..].windows(20).any(|w| index.contains(<&[u8; 20]>::try_from(w).unwrap()))
}

#[test]
fn plaintext_keys_never_reach_the_database_files_logs_or_error_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let server = Server::start(&db, &[("RUST_LOG", "trace")]);
    let root = server.printed_root_key().unwrap();
    let [(h, v)] = auth(&root);
    // 1,000 creates from 8 concurrent clients (the writer commits them in groups).
    let keys: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (server, root) = (&server, &root);
                scope.spawn(move || {
                    (0..125).map(|i| server.create_key(root, &format!("secret-{w}-{i}"), &[]).1).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let mut error_bodies = Vec::new();
    for key in keys.iter().step_by(50) {
        // Use it as a credential, and put it where the server will complain about it.
        assert_eq!(server.get("/api/v1/keys", key), 200);
        for body in [
            format!("{{\"title\":\"t\",\"grants\":\"{key}\"}}"),
            format!("{{\"title\":\"t\",\"expires_at\":\"{key}\"}}"),
            format!("{{\"{key}\":1}}"),
        ] {
            let (status, text) = server.request("POST", "/api/v1/keys", &[(h, &v)], Some(&body));
            assert_eq!(status, 400, "{text}");
            error_bodies.push(text);
        }
        let (status, text) = server.request(
            "POST",
            "/api-key",
            &[("x-user-api-key", &v[7..])],
            Some(&format!("{{\"path\":\"{key}\"}}")),
        );
        assert_eq!(status, 400, "{text}");
        error_bodies.push(text);
    }
    assert_eq!(server.verify_code(&keys[1]), "VALID");
    // Delete some by value through the query string, which the access log must not record.
    for key in keys.iter().take(5) {
        let (status, _) = server.request("DELETE", &format!("/api-key?value={key}"), &[(h, &v)], None);
        assert_eq!(status, 200);
    }
    let files = database_bytes(&db);
    assert!(files.len() > 100_000, "database files were read: {} bytes", files.len());
    let logs = server.stderr.lock().unwrap().clone();
    assert!(logs.contains("apikeyd::access"), "access log is on at this level");
    server.kill9();
    let (in_files, in_logs) = (alnum_windows(&files), alnum_windows(logs.as_bytes()));
    let in_errors = alnum_windows(error_bodies.join("\n").as_bytes());
    let mut found = 0;
    for key in keys.iter().chain(std::iter::once(&root)) {
        found += usize::from(leaks(&in_files, key)) + usize::from(leaks(&in_errors, key));
    }
    for key in &keys {
        found += usize::from(leaks(&in_logs, key));
    }
    // Positive control: the detector does find the one line that shows the root key by design.
    assert!(leaks(&in_logs, &root), "the leak detector finds the root key's first-start line");
    println!(
        "secrets: {} keys, {} database bytes, {} log bytes, {} error bodies: {found} plaintexts found",
        keys.len(),
        files.len(),
        logs.len(),
        error_bodies.len()
    );
    assert_eq!(found, 0);
    // The root key appears exactly once: the first-start line, by design.
    assert_eq!(logs.matches(root.as_str()).count(), 1);
}

#[test]
fn cli_revoke_is_honoured_on_the_next_verify_and_forward_auth() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let server = Server::start(&db, &[]);
    let root = server.printed_root_key().unwrap();
    let (id, key) = server.create_key(&root, "edge", &[]);
    for _ in 0..3 {
        assert_eq!(server.verify_code(&key), "VALID");
        assert_eq!(server.request("GET", "/auth?path=/x", &[("x-user-api-key", &key)], None).0, 200);
    }
    let (ok, out, err) = cli(&["keys", "revoke", &id.to_string(), "--db", db.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert_eq!(server.verify_code(&key), "REVOKED");
    assert_eq!(server.request("GET", "/auth?path=/x", &[("x-user-api-key", &key)], None).0, 401);
}

#[test]
fn graceful_shutdown_flushes_last_used_at() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let mut server = Server::start(&db, &[]);
    let root = server.printed_root_key().unwrap();
    let (id, key) = server.create_key(&root, "used", &[]);
    assert_eq!(server.verify_code(&key), "VALID");
    server.sigterm();
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");
    let conn = open_connection(&db).unwrap();
    let used: Option<i64> =
        conn.query_row("SELECT (SELECT last_used_at FROM key_usage WHERE key_id = ?1)", [id], |r| r.get(0)).unwrap();
    assert!(used.is_some(), "last_used_at flushed at shutdown");
}

#[test]
fn a_non_loopback_bind_without_tls_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_apikeyd"))
        .args(["serve", "--bind", "0.0.0.0:0", "--db"])
        .arg(dir.path().join("k.db"))
        .env_remove("APIKEYD_BEHIND_TLS_PROXY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0:0"), "{stderr}");
    assert!(!dir.path().join("k.db").exists(), "refused before touching the database");
}

#[test]
fn a_slow_request_head_is_cut_off() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("k.db"), &[]);
    let mut slow = std::net::TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut buf = Vec::new();
    // The server must end the connection itself; if it did not, the client's own 15 s read
    // timeout fires and read_to_end fails.
    let closed = slow.read_to_end(&mut buf);
    assert!(closed.is_ok(), "the server kept a half-sent request open: {closed:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(server.request("GET", "/healthz", &[], None).0, 200);
}

#[test]
fn a_root_key_in_the_environment_is_ignored_with_a_warning_once_keys_exist() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let first = Server::start(&db, &[]);
    let root = first.printed_root_key().unwrap();
    first.kill9();

    let late = ApiKey::generate().unwrap();
    let server = Server::start(&db, &[("APIKEYD_ROOT_KEY", late.expose())]);
    let stderr = server.stderr.lock().unwrap().clone();
    assert!(
        stderr.contains("warning: APIKEYD_ROOT_KEY is set but was ignored") && stderr.contains("already has keys"),
        "{stderr}"
    );
    assert!(!stderr.contains(&late.expose()[3..]), "the value is never printed: {stderr}");
    assert_eq!(server.printed_root_key(), None);
    assert_eq!(server.get("/api/v1/keys", late.expose()), 401, "the ignored key is no key");
    assert_eq!(server.get("/api/v1/keys", &root), 200);
    server.kill9();

    // Without the variable, no warning.
    let quiet = Server::start(&db, &[]);
    assert!(!quiet.stderr.lock().unwrap().contains("APIKEYD_ROOT_KEY"));
}

#[test]
fn a_root_key_that_is_not_utf8_is_refused_not_treated_as_unset() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_apikeyd"));
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--db"]).arg(&db);
    cmd.env_remove("APIKEYD_DB").env_remove("APIKEYD_BIND");
    cmd.env("APIKEYD_ROOT_KEY", std::ffi::OsStr::from_bytes(b"sk-\xff\xfe-not-utf8"));
    // Treated as unset, the server would generate a root key and serve: run_bounded fails then.
    let out = run_bounded(cmd, std::time::Duration::from_secs(30));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("APIKEYD_ROOT_KEY is set but is not valid UTF-8"), "{stderr}");
    assert!(!stderr.contains("root key:") && !stderr.contains("listening on"), "{stderr}");
    assert!(!db.exists(), "refused before touching the database");
}

#[test]
fn bare_apikeyd_serves_on_apikeyd_bind_with_the_database_at_apikeyd_db() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.db");
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_apikeyd"));
    // No subcommand, no arguments: the environment holds APIKEYD_DB and APIKEYD_BIND, nothing else.
    cmd.env_clear().env("APIKEYD_DB", &db).env("APIKEYD_BIND", &bind).current_dir(&cwd);
    let server = start_command(cmd);
    assert_eq!(server.addr.to_string(), bind);
    let (status, body) = server.request("GET", "/healthz", &[], None);
    assert_eq!((status, body.as_str()), (200, "ok"));
    let root = server.printed_root_key().expect("a new database gets a root key");
    assert_eq!(server.get("/api/v1/keys", &root), 200);
    assert!(db.exists(), "the database is where APIKEYD_DB says");
    assert!(!cwd.join("data").exists(), "the default data/apikeyd.db was not used");
}

/// Sends `GET /healthz` on an open keep-alive connection and reads one answer; `None` when
/// none arrives within `wait`.
fn healthz_on(stream: &mut std::net::TcpStream, wait: std::time::Duration) -> Option<u16> {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    // The answer is small and ends with its 2-byte body "ok".
    while !got.ends_with(b"\r\n\r\nok") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).split(' ').nth(1).and_then(|s| s.parse().ok())
}

#[test]
fn connections_past_the_limit_wait_until_one_closes() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(&dir.path().join("k.db"), &["--workers", "1", "--max-connections", "4"], &[]);
    // At the limit: four open connections, each served.
    let mut open: Vec<std::net::TcpStream> =
        (0..4).map(|_| std::net::TcpStream::connect(server.addr).unwrap()).collect();
    for stream in &mut open {
        assert_eq!(healthz_on(stream, Duration::from_secs(10)), Some(200));
    }
    // One past it: the kernel queues the connection, the server does not take it...
    let mut fifth = std::net::TcpStream::connect(server.addr).unwrap();
    assert_eq!(healthz_on(&mut fifth, Duration::from_secs(1)), None, "a fifth connection was served");
    // ...until one of the four closes; then its request is answered.
    drop(open.pop());
    let mut answer = [0u8; 64];
    use std::io::Read;
    fifth.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = fifth.read(&mut answer).unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    for stream in &mut open {
        assert_eq!(healthz_on(stream, Duration::from_secs(10)), Some(200), "the others still served");
    }
}

/// A raw `GET /healthz` with `extra` headers besides Host and Connection: status and body.
fn status_with_headers(server: &Server, extra: usize) -> (u16, String) {
    let headers: Vec<(String, String)> = (0..extra).map(|i| (format!("x-h{i}"), "v".to_owned())).collect();
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    server.request("GET", "/healthz", &refs, None)
}

#[test]
fn the_header_count_limit_answers_431_in_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("k.db"), &[]);
    // `request` sends Host and Connection itself: 62 more make the limit, 64.
    let limit = apikeyd::config::MAX_HEADERS;
    assert_eq!(status_with_headers(&server, limit - 2), (200, "ok".to_owned()));
    let (status, body) = status_with_headers(&server, limit - 1);
    assert_eq!(status, 431);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large", "{body}");
    // Past actix-http's own limit (96) the refusal is its bare 431, before any routing.
    assert_eq!(status_with_headers(&server, 120).0, 431);
}
