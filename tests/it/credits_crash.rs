//! Credits across crashes, with the real binary: kill -9 in the middle of a credit-spending
//! load, 24 times, and the database's spent count is never below the accepted verdicts that
//! were answered (no crash lets a key spend more than it had), nor above them by more than
//! one lease per crash plus the verdicts in flight; a key with few credits is answered VALID
//! at most as often as it had credits; a clean stop gives the lease back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use apikeyd::config::{CREDIT_LEASE, MAX_CREDIT_LEASE};
use apikeyd::storage::sqlite::open_connection;
use serde_json::Value;

use crate::support::binary::Server;

const CRASHES: u64 = 24;
const CLIENTS: u64 = 4;
const CREDITS: u64 = 1_000_000;

/// One verify over its own connection; `None` when the server is gone before answering.
fn verify_once(addr: SocketAddr, body: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "POST /api/v1/keys/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (_, json) = text.split_once("\r\n\r\n")?;
    // A response cut short by the kill does not parse: it was not answered.
    let v: Value = serde_json::from_str(json).ok()?;
    v["data"]["code"].as_str().map(str::to_owned)
}

fn remaining_in_db(db: &Path, id: i64) -> u64 {
    let conn = open_connection(db).unwrap();
    let n: i64 = conn.query_row("SELECT credits_remaining FROM api_keys WHERE id = ?1", [id], |r| r.get(0)).unwrap();
    u64::try_from(n).unwrap()
}

fn create_credited_key(server: &Server, root: &str, credits: u64) -> (i64, String) {
    let body = format!(r#"{{"title": "metered", "credits": {{"remaining": {credits}}}}}"#);
    let auth = format!("Bearer {root}");
    let (status, reply) = server.request("POST", "/api/v1/keys", &[("Authorization", &auth)], Some(&body));
    assert_eq!(status, 200, "{reply}");
    let v: Value = serde_json::from_str(&reply).unwrap();
    (v["data"]["id"].as_i64().unwrap(), v["data"]["api_key"].as_str().unwrap().to_owned())
}

#[test]
fn kill_9_during_credit_spending_never_lets_a_key_spend_more_than_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let mut server = Server::start(&db, &[]);
    let root = server.printed_root_key().unwrap();
    let (id, key) = create_credited_key(&server, &root, CREDITS);
    let body = format!(r#"{{"key": "{key}"}}"#);
    let mut answered = 0u64;
    for crash in 0..CRASHES {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (stop, accepted, body, addr) =
                    (Arc::clone(&stop), Arc::clone(&accepted), body.clone(), server.addr);
                thread::spawn(move || {
                    // Bounded: at most 100,000 requests per client per round.
                    for _ in 0..100_000 {
                        match verify_once(addr, &body).as_deref() {
                            Some("VALID") => accepted.fetch_add(1, Ordering::SeqCst),
                            Some(other) => panic!("a key with credits left answered {other}"),
                            None if stop.load(Ordering::SeqCst) => return,
                            None => panic!("the server stopped answering before the kill"),
                        };
                    }
                })
            })
            .collect();
        // The kill lands at a different point of the lease cycle each round.
        thread::sleep(Duration::from_millis(60 + crash * 13 % 90));
        stop.store(true, Ordering::SeqCst);
        server.kill9();
        for c in clients {
            c.join().unwrap();
        }
        answered += accepted.load(Ordering::SeqCst);
        let spent = CREDITS - remaining_in_db(&db, id);
        assert!(spent >= answered, "crash {crash}: the database counts {spent} spent, {answered} were answered VALID");
        // Forfeited: at most one lease per crash (a busy key's grows to MAX_CREDIT_LEASE),
        // plus the verdicts cut off in flight.
        let bound = (crash + 1) * (MAX_CREDIT_LEASE + CLIENTS);
        assert!(spent - answered <= bound, "crash {crash}: {} forfeited, more than {bound}", spent - answered);
        server = Server::start(&db, &[]);
    }
    assert!(answered > CRASHES * 10, "the load really spent credits: {answered}");
    eprintln!(
        "{CRASHES} crashes: {answered} answered VALID, {} spent in the database",
        CREDITS - remaining_in_db(&db, id)
    );
}

#[test]
fn a_key_with_few_credits_is_never_answered_valid_more_often_than_it_had_across_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let mut server = Server::start(&db, &[]);
    let root = server.printed_root_key().unwrap();
    let (_, key) = create_credited_key(&server, &root, 300);
    let body = format!(r#"{{"key": "{key}"}}"#);
    let mut answered = 0u64;
    for _ in 0..6 {
        for _ in 0..40 {
            if verify_once(server.addr, &body).as_deref() == Some("VALID") {
                answered += 1;
            }
        }
        server.kill9();
        server = Server::start(&db, &[]);
    }
    // Until it is spent, then every answer is a refusal.
    for _ in 0..400 {
        if verify_once(server.addr, &body).as_deref() == Some("VALID") {
            answered += 1;
        }
    }
    assert!(answered <= 300, "{answered} VALID answers for 300 credits");
    assert_eq!(verify_once(server.addr, &body).as_deref(), Some("USAGE_EXCEEDED"));
}

#[test]
fn a_clean_stop_gives_the_unspent_lease_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let mut server = Server::start(&db, &[]);
    let root = server.printed_root_key().unwrap();
    let (id, key) = create_credited_key(&server, &root, 1_000);
    let body = format!(r#"{{"key": "{key}"}}"#);
    for _ in 0..5 {
        assert_eq!(verify_once(server.addr, &body).as_deref(), Some("VALID"));
    }
    assert!(remaining_in_db(&db, id) <= 1_000 - CREDIT_LEASE, "a lease was taken");
    server.sigterm();
    assert!(server.child.wait().unwrap().success());
    assert_eq!(remaining_in_db(&db, id), 995, "SIGTERM returned the unspent credits");
}
