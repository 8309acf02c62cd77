//! The one-way clock (src/domain/clock.rs, src/service/clock.rs): dates beyond what the
//! formats hold are refused with 400 in every family, in-process; and, through the real
//! binary under libfaketime (its wall clock stepped by writing offsets into a file while it
//! runs), a step back never revives an expired key or session, not even across a restart,
//! never lets a session outlive its lifetime or its key's expiry, and a clock beyond year
//! 9999 neither panics nor shows an unformattable date. The libfaketime tests print `SKIPPED`
//! where Debian's `faketime` package is missing, and fail instead with
//! APIKEYD_REQUIRE_FAKETIME=1 (CI).

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::support::binary::{http_full, Server};
use crate::support::prerequisite::skip_unless_required;
use crate::support::{bearer, TestApp};

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// Seconds from the Unix epoch to 10000-01-01T00:00:00Z.
const YEAR_10000: i64 = 253_402_300_800;

// ---- in-process: dates the formats cannot hold ----

#[actix_web::test]
async fn expiries_beyond_year_9999_are_refused_with_400_in_every_family() {
    let app = TestApp::new().await;
    let jwt = app.login(&app.root).await;
    let app_id = app.create_app("y10k").uuid;
    for bad in ["10000-01-01T00:00:00Z", "+10000-01-01T00:00:00Z", "9999-12-31T23:59:59-00:01", "99999-01-01T00:00:00Z"]
    {
        let native = app
            .send(
                TestRequest::post()
                    .uri("/api/v1/keys")
                    .insert_header(bearer(&app.root))
                    .set_json(json!({"title": "t", "expires_at": bad})),
            )
            .await;
        assert_eq!(native.status, 400, "native {bad}: {}", native.raw);
        let shard = app
            .send(
                TestRequest::post()
                    .uri("/api-key")
                    .insert_header(("x-user-api-key", app.root.as_str()))
                    .set_json(json!({"permissions": 3, "path": "/", "expiration_date": bad})),
            )
            .await;
        assert_eq!(shard.status, 400, "shard {bad}: {}", shard.raw);
        let clients = app
            .send(
                TestRequest::post()
                    .uri("/api/clients/api-keys")
                    .insert_header(bearer(&jwt))
                    .set_json(json!({"expires_at": bad})),
            )
            .await;
        assert_eq!(clients.status, 400, "clients {bad}: {}", clients.raw);
        let apps = app
            .send(
                TestRequest::post()
                    .uri(&format!("/api/v1/applications/{app_id}/api-keys"))
                    .insert_header(bearer(&app.root))
                    .set_json(json!({"expires_at": bad})),
            )
            .await;
        assert_eq!(apps.status, 400, "applications {bad}: {}", apps.raw);
    }
    // The last representable millisecond is accepted.
    let (_, key) = app
        .create_key(
            &app.root,
            "edge",
            None,
            Some(apikeyd::domain::timestamp::Timestamp::from_millis(YEAR_10000 * 1000 - 1)),
        )
        .await;
    assert_eq!(app.verify_code(&key).await, "VALID");
}

/// actix-http formats and parses HTTP dates through `httpdate`, which crates/httpdate
/// replaces: a time past year 9999 (or before 1970) is clamped, never a panic, and the three
/// formats of RFC 9110 still parse.
#[test]
fn http_dates_clamp_instead_of_panicking_and_still_parse() {
    use actix_web::http::header::HttpDate;
    use std::time::{SystemTime, UNIX_EPOCH};
    let far = UNIX_EPOCH + Duration::from_secs(YEAR_10000 as u64 + 86_400 * 400);
    assert_eq!(HttpDate::from(far).to_string(), "Fri, 31 Dec 9999 23:59:59 GMT");
    let before = UNIX_EPOCH - Duration::from_secs(5);
    assert_eq!(HttpDate::from(before).to_string(), "Thu, 01 Jan 1970 00:00:00 GMT");
    let want = UNIX_EPOCH + Duration::from_secs(784_111_777);
    for text in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
        let parsed: HttpDate = text.parse().unwrap_or_else(|_| panic!("{text}"));
        assert_eq!(SystemTime::from(parsed), want, "{text}");
    }
    for bad in ["Sun, 06 Nov 1994 08:49:37", "Mon, 06 Nov 1994 08:49:37 GMT", "yesterday", ""] {
        assert!(bad.parse::<HttpDate>().is_err(), "{bad:?} parsed");
    }
}

// ---- the real binary under libfaketime ----

/// A server whose wall clock is the real one shifted by what `offset` last wrote.
struct Faked {
    dir: tempfile::TempDir,
    file: PathBuf,
    args: Vec<String>,
}

impl Faked {
    /// None (after printing SKIPPED, or failing under APIKEYD_REQUIRE_FAKETIME) without libfaketime.
    fn new(what: &str, args: &[&str]) -> Option<Faked> {
        if !Path::new(FAKETIME).exists() {
            skip_unless_required(
                "APIKEYD_REQUIRE_FAKETIME",
                what,
                &format!("{FAKETIME} is missing (Debian package faketime)"),
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("faketime");
        let faked = Faked { dir, file, args: args.iter().map(|a| (*a).to_owned()).collect() };
        faked.offset("+0");
        Some(faked)
    }

    /// Steps the server's wall clock: `+60`, `-3600`, ... (seconds from the real clock).
    fn offset(&self, offset: &str) {
        std::fs::write(&self.file, format!("{offset}\n")).unwrap();
        // libfaketime re-reads the file on every clock read (FAKETIME_NO_CACHE); give the
        // write a moment to land before the next request.
        std::thread::sleep(Duration::from_millis(20));
    }

    fn start(&self) -> Server {
        let file = self.file.to_str().unwrap();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Server::start_with_args(
            &self.dir.path().join("k.db"),
            &args,
            &[
                ("LD_PRELOAD", FAKETIME),
                ("FAKETIME_TIMESTAMP_FILE", file),
                ("FAKETIME_NO_CACHE", "1"),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
        )
    }
}

fn auth(credential: &str) -> String {
    format!("Bearer {credential}")
}

/// Creates a native key expiring at `expires_at`; returns its plaintext.
fn create_expiring(server: &Server, root: &str, expires_at: &str) -> String {
    let body = json!({"title": "clock", "expires_at": expires_at}).to_string();
    let (status, text) = server.request("POST", "/api/v1/keys", &[("Authorization", &auth(root))], Some(&body));
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["data"]["api_key"].as_str().unwrap().to_owned()
}

/// `secs` seconds after the real clock (the servers here are created at offset +0).
fn rfc3339_in(secs: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    apikeyd::domain::timestamp::Timestamp::from_millis(now + secs * 1000).to_string()
}

fn session_status(server: &Server, jwt: &str) -> u16 {
    server.get("/auth?path=/", jwt)
}

#[test]
fn a_step_back_never_revives_an_expired_key_or_session_not_even_across_a_restart() {
    let Some(faked) = Faked::new("clock::a_step_back_never_revives", &[]) else { return };
    let server = faked.start();
    let root = server.printed_root_key().unwrap();
    let key = create_expiring(&server, &root, &rfc3339_in(30));
    let jwt = server.login(&key);
    assert_eq!(server.verify_code(&key), "VALID");
    assert_eq!(session_status(&server, &jwt), 200);
    faked.offset("+60");
    assert_eq!(server.verify_code(&key), "EXPIRED", "a step forward expires it");
    assert_eq!(session_status(&server, &jwt), 401);
    faked.offset("-3600");
    assert_eq!(server.verify_code(&key), "EXPIRED", "a step back must not revive it");
    assert_eq!(session_status(&server, &jwt), 401, "nor its session");
    // The list shows it expired too.
    let (_, list) = server.request("GET", "/api/v1/keys?status=active", &[("Authorization", &auth(&root))], None);
    assert!(list.contains("\"expired\""), "{list}");
    // kill -9 at once (no periodic mark written since) and start with the clock still an
    // hour back: still expired.
    server.kill9();
    let server = faked.start();
    assert_eq!(server.verify_code(&key), "EXPIRED", "revived by a restart with the clock set back");
    assert_eq!(session_status(&server, &jwt), 401);
    // And stepped back further, a day: the same.
    faked.offset("-86400");
    assert_eq!(server.verify_code(&key), "EXPIRED");
    let stderr = server.stop_and_collect_stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_step_back_never_extends_a_session_past_its_lifetime_or_its_keys_expiry() {
    let Some(faked) = Faked::new("clock::a_step_back_never_extends_a_session", &["--jwt-ttl", "2"]) else { return };
    let server = faked.start();
    let root = server.printed_root_key().unwrap();
    // A session with a 2-second lifetime, and a key expiring in 3 s with its own session.
    let reply = server.login_reply(&root);
    let short = reply["data"]["token"].as_str().unwrap().to_owned();
    let key = create_expiring(&server, &root, &rfc3339_in(3));
    let keyed = server.login(&key);
    assert_eq!(session_status(&server, &short), 200);
    assert_eq!(session_status(&server, &keyed), 200);
    faked.offset("-3600");
    assert_eq!(session_status(&server, &short), 200, "still within its lifetime");
    // Real time passes: 2 s is the session's lifetime, 3 s the key's. The wall clock is an
    // hour behind, which must not keep either alive.
    std::thread::sleep(Duration::from_millis(3300));
    assert_eq!(session_status(&server, &short), 401, "outlived its 2 s lifetime after a step back");
    assert_eq!(session_status(&server, &keyed), 401, "outlived its key's expiry after a step back");
    assert_eq!(server.verify_code(&key), "EXPIRED");
    server.kill9();
}

#[test]
fn a_clock_beyond_year_9999_neither_panics_nor_shows_an_unformattable_date() {
    let Some(faked) = Faked::new("clock::a_clock_beyond_year_9999", &[]) else { return };
    let server = faked.start();
    let root = server.printed_root_key().unwrap();
    let now_secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    faked.offset(&format!("+{}", YEAR_10000 - now_secs + 5));
    let body = json!({"title": "y10k"}).to_string();
    let (status, text) = server.request("POST", "/api/v1/keys", &[("Authorization", &auth(&root))], Some(&body));
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"]["created_at"], "9999-12-31T23:59:59.999Z", "{text}");
    // An expiry can no longer be in the future: refused, not a panic.
    let body = json!({"title": "y10k", "expires_at": "9999-12-31T23:59:59.999Z"}).to_string();
    let (status, _) = server.request("POST", "/api/v1/keys", &[("Authorization", &auth(&root))], Some(&body));
    assert_eq!(status, 400);
    // actix-http refreshes its Date header every 500 ms; its deadlines are measured from the
    // same refresh, so a dead refresh would turn every request into a 408 within seconds.
    std::thread::sleep(Duration::from_millis(6000));
    for _ in 0..3 {
        let (status, headers, _) = http_full(server.addr, "GET", "/healthz", &[], None);
        assert_eq!(status, 200, "{headers:?}");
        let date = headers.iter().find(|(name, _)| name == "date").map(|(_, value)| value.as_str());
        assert_eq!(date, Some("Fri, 31 Dec 9999 23:59:59 GMT"), "{headers:?}");
    }
    let stderr = server.stop_and_collect_stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
}
