//! Running apikeyd as a service, through the real binary: `examples/apikeyd.service` passes
//! `systemd-analyze verify` and scores "OK" or better with `systemd-analyze security
//! --offline=true` (needs systemd-analyze: `SKIPPED` without it unless
//! `APIKEYD_REQUIRE_SYSTEMD_ANALYZE=1`); SIGTERM finishes a request in flight and writes
//! pending `last_used_at` before the process exits; `--log-format json` writes one object
//! per line and never a query string or header; `completions` and `man` come from the same
//! clap definitions; long commands draw no progress line when stderr is not a terminal.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use apikeyd::domain::key_format::ApiKey;
use serde_json::Value;

use crate::support::binary::{cli, connect, parse_head, run_bounded, Server};
use crate::support::prerequisite::{say, skip_unless_required};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/apikeyd.service");

fn systemd_analyze() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("systemd-analyze")).find(|p| p.is_file())
}

/// The example unit with only the binary's path changed (verify checks that it exists).
fn unit_for_test(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(UNIT).unwrap();
    assert_eq!(text.matches("/usr/local/bin/apikeyd").count(), 1, "ExecStart names /usr/local/bin/apikeyd once");
    let unit = dir.join("apikeyd.service");
    std::fs::write(&unit, text.replace("/usr/local/bin/apikeyd", env!("CARGO_BIN_EXE_apikeyd"))).unwrap();
    unit
}

#[test]
fn the_example_unit_verifies_and_scores_ok_or_better() {
    let Some(analyze) = systemd_analyze() else {
        return skip_unless_required("APIKEYD_REQUIRE_SYSTEMD_ANALYZE", "service::unit", "systemd-analyze not found");
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let verify = run_bounded(
        {
            let mut c = Command::new(&analyze);
            c.arg("verify").arg(&unit);
            c
        },
        Duration::from_secs(60),
    );
    let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    let security = run_bounded(
        {
            let mut c = Command::new(&analyze);
            c.args(["security", "--offline=true", "--no-pager"]).arg(&unit);
            c
        },
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&security.stdout).into_owned();
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{text}"));
    let score: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    say(&format!("service::unit: systemd-analyze security --offline=true: {}", line.trim()));
    // systemd's scale: up to 1.9 SAFE, up to 4.9 OK, then MEDIUM, EXPOSED, UNSAFE.
    assert!(score < 5.0, "exposure {score}: {line}");
    assert!(line.contains("SAFE") || line.contains("OK"), "{line}");
    let unit_text = std::fs::read_to_string(UNIT).unwrap();
    for directive in [
        "DynamicUser=yes",
        "StateDirectory=apikeyd",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "SystemCallFilter=@system-service",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit_text.lines().any(|l| l == directive), "{directive} missing from the unit");
    }
}

/// The number `sql` selects from database `db`.
fn count(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_writes_pending_last_used() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let root = ApiKey::generate().unwrap().expose().to_owned();
    let mut server = Server::start(&db, &[("APIKEYD_ROOT_KEY", &root)]);
    let (id, key) = server.create_key(&root, "used", &[]);
    // A request in flight: its head sent, its body not yet.
    let body = format!("{{\"key\":\"{key}\"}}");
    let mut inflight = connect(server.addr);
    let head = format!(
        "POST /api/v1/keys/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    inflight.write_all(head.as_bytes()).unwrap();
    // Used just now: its last_used_at is pending, not yet written (flushes are 5 s apart).
    assert_eq!(server.verify_code(&key), "VALID");
    thread_sleep_ms(200);
    server.sigterm();
    thread_sleep_ms(300);
    inflight.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    inflight.read_to_string(&mut answer).unwrap();
    let (status, _) = parse_head(&answer);
    assert_eq!(status, 200, "the request in flight was answered: {answer}");
    assert!(answer.contains("\"code\":\"VALID\""), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(40);
    let exit = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running 40 s after SIGTERM");
        thread_sleep_ms(50);
    };
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
    let used = count(&db, &format!("SELECT count(*) FROM key_usage WHERE key_id = {}", id));
    assert_eq!(used, 1, "last_used_at of the key was written before exit");
    // New connections are refused once it stopped.
    assert!(std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_err());
}

fn thread_sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn json_logs_are_one_object_per_line_and_never_hold_a_query_string_or_header() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("l.db");
    let root = ApiKey::generate().unwrap().expose().to_owned();
    let server = Server::start_with_args(&db, &["--log-format", "json"], &[("APIKEYD_ROOT_KEY", &root)]);
    let (id, key) = server.create_key(&root, "logged", &[]);
    let (status, _) = server.request("DELETE", &format!("/api-key?value={key}"), &[("x-user-api-key", &root)], None);
    assert_eq!(status, 200);
    server.request("GET", &format!("/api/v1/keys/{id}?secret=QUERYSECRET"), &[("X-Custom", "HEADERSECRET")], None);
    let stderr = server.stop_and_collect_stderr();
    let mut access = Vec::new();
    for line in stderr.lines() {
        // The start-up announcements are written to stderr directly, not through the log.
        if line.starts_with("listening on ") {
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        for field in ["time", "level", "target", "message"] {
            assert!(v[field].is_string(), "{field} missing: {line}");
        }
        if v["target"] == "apikeyd::access" {
            access.push(v);
        }
    }
    for secret in [key.as_str(), root.as_str(), &key[..12], "QUERYSECRET", "HEADERSECRET", "value="] {
        assert!(!stderr.contains(secret), "{secret} reached the log:\n{stderr}");
    }
    let delete = access.iter().find(|v| v["route"] == "/api-key").expect("access line of DELETE /api-key");
    assert_eq!(delete["method"], "DELETE");
    assert_eq!(delete["status"], 200);
    assert!(delete["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{delete}");
    assert!(delete["request_id"].as_str().is_some_and(|r| r.starts_with("req_")), "{delete}");
    let get = access.iter().find(|v| v["route"] == "/api/v1/keys/{id}").expect("access line of GET /api/v1/keys/{id}");
    assert_eq!(get["status"], 401);
}

#[test]
fn completions_and_the_manual_come_from_the_command_definitions() {
    let subcommands = ["serve", "keys", "applications", "audit", "backup", "restore", "check", "completions", "man"];
    for shell in ["bash", "zsh", "fish"] {
        let (ok, script, stderr) = cli(&["completions", shell]);
        assert!(ok, "{shell}: {stderr}");
        for sub in subcommands {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(script.contains("metrics-bind") && script.contains("log-format"), "{shell}: options missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, bash, _) = cli(&["completions", "bash"]);
    let script = dir.path().join("apikeyd.bash");
    std::fs::write(&script, &bash).unwrap();
    let parsed = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(parsed.status.success(), "bash -n: {}", String::from_utf8_lossy(&parsed.stderr));
    // Sourced and asked to complete `apikeyd ba`, the script offers `backup`.
    let probe = format!(
        "source {}; COMP_WORDS=(apikeyd ba); COMP_CWORD=1; COMP_LINE='apikeyd ba'; COMP_POINT=10; \
         _apikeyd apikeyd ba apikeyd; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let offered = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    let offered = String::from_utf8_lossy(&offered.stdout).into_owned();
    assert!(offered.lines().any(|l| l.trim() == "backup"), "completing `apikeyd ba` offered: {offered:?}");
    if let Ok(out) = Command::new("fish").arg("--no-execute").arg("-c").arg(cli(&["completions", "fish"]).1).output() {
        assert!(out.status.success(), "fish --no-execute: {}", String::from_utf8_lossy(&out.stderr));
    }
    if let Ok(out) = Command::new("zsh").arg("-n").arg("-c").arg(cli(&["completions", "zsh"]).1).output() {
        assert!(out.status.success(), "zsh -n: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (ok, man, stderr) = cli(&["man"]);
    assert!(ok, "{stderr}");
    assert!(man.starts_with(".ie") || man.starts_with(".TH") || man.contains("\n.TH "), "not roff: {}", &man[..80]);
    assert!(man.contains("apikeyd"));
    for sub in subcommands {
        assert!(man.contains(sub), "the manual lacks {sub}");
    }
}

#[test]
fn long_commands_draw_no_progress_line_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let (ok, stdout, stderr) = cli(&["keys", "seed", "--db", db.to_str().unwrap(), "--count", "25"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 25);
    assert_eq!(stderr, "", "nothing but the keys: stderr is not a terminal");
    let file = dir.path().join("import.jsonl");
    let lines: String =
        (0..5).map(|_| format!("{{\"key\": \"{}\"}}\n", ApiKey::generate().unwrap().expose())).collect();
    std::fs::write(&file, lines).unwrap();
    let (ok, stdout, stderr) = cli(&["keys", "import", "--db", db.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("imported 5 keys"), "{stdout}");
    assert_eq!(stderr, "");
    let out = dir.path().join("b.db");
    let (ok, _, stderr) = cli(&["backup", "--db", db.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(stderr, "");
}
