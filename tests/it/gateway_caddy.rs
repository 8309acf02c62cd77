//! A real Caddy, configured from `examples/Caddyfile`, in front of a tiny upstream, with the
//! real `apikeyd` binary answering its `forward_auth` requests: what reaches the upstream is
//! what apikeyd allows, forged identity headers never do, and a key over its limits gets a
//! 429 with Retry-After and the RateLimit headers (which an accepted answer carries too).
//!
//! Needs Caddy v2 (Debian: `apt-get install caddy`). Without it the test prints `SKIPPED
//! gateway_caddy: ...` and returns; with `APIKEYD_REQUIRE_CADDY=1` (CI) it fails instead.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::binary::{http_full, Server};
use crate::support::prerequisite::{say, skip_unless_required};
use crate::support::upstream::{self, Gateway, Upstream};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/Caddyfile");

fn find_caddy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("caddy")).find(|p| p.is_file())
}

fn output(caddy: &Gateway) -> String {
    fs::read_to_string(caddy.dir.join("caddy.out")).unwrap_or_default()
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    upstream::replace_once("examples/Caddyfile", text, from, to)
}

fn start_caddy(bin: &Path, dir: &Path, apikeyd: SocketAddr, app: SocketAddr) -> Gateway {
    let listen: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let example = fs::read_to_string(EXAMPLE).expect("examples/Caddyfile");
    let mut config = replace_once(&example, "forward_auth 127.0.0.1:8080", &format!("forward_auth {apikeyd}"));
    config = replace_once(&config, "reverse_proxy 127.0.0.1:9000", &format!("reverse_proxy {app}"));
    config = replace_once(&config, "http://127.0.0.1:8000", &format!("http://{listen}"));
    let file = dir.join("Caddyfile");
    fs::write(&file, config).unwrap();
    let out = fs::File::create(dir.join("caddy.out")).unwrap();
    let child = Command::new(bin)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        // Caddy keeps its state (certificates, autosave) under $HOME / $XDG_*: keep it in the temp dir.
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut caddy = Gateway { child, addr: listen, dir: dir.to_owned() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = caddy.child.try_wait() {
            panic!("caddy exited ({status}):\n{}", output(&caddy));
        }
        if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
            return caddy;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let output = output(&caddy);
    drop(caddy);
    panic!("caddy did not listen on {listen} within 20s:\n{output}");
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn caddy_forward_auth_enforces_apikeyd_decisions_and_limits() {
    let Some(bin) = find_caddy() else {
        skip_unless_required("APIKEYD_REQUIRE_CADDY", "gateway_caddy", "caddy not installed (apt-get install caddy)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(
        &dir.path().join("apikeyd.db"),
        &["--forward-auth-headers", "forwarded", "--trusted-proxy", "127.0.0.1"],
        &[],
    );
    let root = server.printed_root_key().expect("root key printed on first start");
    let upstream = Upstream::start();
    let caddy = start_caddy(&bin, dir.path(), server.addr, upstream.addr);
    say(&format!(
        "gateway_caddy: {} on {}, apikeyd {}, upstream {}",
        bin.display(),
        caddy.addr,
        server.addr,
        upstream.addr
    ));
    let via = |method: &str, path: &str, headers: &[(&str, &str)]| http_full(caddy.addr, method, path, headers, None);
    let last = || upstream.seen().last().cloned().unwrap_or_default().to_ascii_lowercase();
    let create = |body: &str| {
        let auth = format!("Bearer {root}");
        let (status, reply) = server.request("POST", "/api/v1/keys", &[("Authorization", &auth)], Some(body));
        assert_eq!(status, 200, "{reply}");
        let v: Value = serde_json::from_str(&reply).unwrap();
        (v["data"]["id"].as_i64().unwrap(), v["data"]["api_key"].as_str().unwrap().to_owned())
    };

    // A read key: through, with X-Key-Id set from apikeyd's answer (the forged one dropped),
    // no limit headers, and the secret stripped.
    let (reader_id, reader) =
        create(r#"{"title": "reader", "grants": [{"path": "/data", "access": "read"}], "owner": "customer-7"}"#);
    let (status, headers, body) = via("GET", "/data/file", &[("x-user-api-key", &reader), ("X-Key-Id", "999999")]);
    assert_eq!((status, body.as_str()), (200, "upstream ok"), "{}", output(&caddy));
    let seen = last();
    assert!(seen.contains(&format!("\r\nx-key-id: {reader_id}\r\n")), "{seen}");
    assert!(seen.contains("\r\nx-key-owner: customer-7\r\n"), "{seen}");
    assert!(!seen.contains("999999") && !seen.contains(&reader.to_ascii_lowercase()), "{seen}");
    assert!(
        !seen.contains("x-key-application") && !seen.contains("{http."),
        "nothing made up for what is absent: {seen}"
    );
    assert!(find(&headers, "ratelimit-limit").is_none(), "{headers:?}");
    let hits = upstream.seen().len();
    // Refusals come back as apikeyd gave them and never reach the upstream.
    assert_eq!(via("GET", "/data/file", &[]).0, 401);
    assert_eq!(via("POST", "/data/file", &[("x-user-api-key", &reader)]).0, 403);
    assert_eq!(via("GET", "/admin", &[("x-user-api-key", &reader)]).0, 403);
    // A client's own nginx-style header cannot choose the path judged.
    assert_eq!(via("GET", "/admin", &[("x-user-api-key", &reader), ("X-Original-URI", "/data/x")]).0, 403);
    assert_eq!(via("GET", "/data/../admin", &[("x-user-api-key", &reader)]).0, 403);
    assert_eq!(upstream.seen().len(), hits, "refused requests reached the upstream");

    // A rate-limited key: the window on every answer, then 429 with Retry-After.
    let (_, metered) = create(r#"{"title": "metered", "rate_limit": {"limit": 2, "window_seconds": 60}}"#);
    for left in ["1", "0"] {
        let (status, headers, _) = via("GET", "/data/file", &[("x-user-api-key", &metered)]);
        assert_eq!(status, 200, "{headers:?}");
        assert_eq!((find(&headers, "ratelimit-limit"), find(&headers, "ratelimit-remaining")), (Some("2"), Some(left)));
        assert!(find(&headers, "ratelimit-reset").is_some());
        assert!(!last().contains("\r\nratelimit-"), "the window is the client's, not the application's");
    }
    let (status, headers, _) = via("GET", "/data/file", &[("x-user-api-key", &metered)]);
    assert_eq!(status, 429, "{headers:?}");
    let retry: u64 = find(&headers, "retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=66).contains(&retry), "{retry}");
    assert_eq!(find(&headers, "ratelimit-remaining"), Some("0"));
    // Credits: 429 at zero.
    let (_, trial) = create(r#"{"title": "trial", "credits": {"remaining": 1}}"#);
    assert_eq!(via("GET", "/x", &[("x-user-api-key", &trial)]).0, 200);
    assert_eq!(via("GET", "/x", &[("x-user-api-key", &trial)]).0, 429);
    // An allowlist sees the client's address as Caddy reports it (127.0.0.1 here), not what
    // the client claims in X-Forwarded-For.
    let (_, listed) = create(r#"{"title": "partner", "allowed_ips": ["203.0.113.0/24"]}"#);
    assert_eq!(via("GET", "/x", &[("x-user-api-key", &listed), ("X-Forwarded-For", "203.0.113.9")]).0, 403);
    let (_, local) = create(r#"{"title": "local", "allowed_ips": ["127.0.0.0/8"]}"#);
    assert_eq!(via("GET", "/x", &[("x-user-api-key", &local)]).0, 200);

    // apikeyd gone: Caddy fails closed.
    let hits = upstream.seen().len();
    server.kill9();
    let (status, _, _) = via("GET", "/data/file", &[("x-user-api-key", &reader)]);
    assert!(status >= 500, "{status}");
    assert_eq!(upstream.seen().len(), hits, "a request reached the upstream while apikeyd was down");
    say("gateway_caddy: ok");
}
