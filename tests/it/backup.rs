//! `apikeyd backup`, `restore` and `check`, through the real binary: a backup taken while a
//! server runs under a create/revoke load restores into a new file that serves every key
//! acknowledged before the backup began exactly as the original did; the backup is 0600
//! even under umask 000; a corrupted, truncated or foreign backup is refused and changes
//! nothing; a restore is refused while a server holds the database; `check` finds a damaged
//! audit trail and exits non-zero.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use apikeyd::domain::key_format::ApiKey;

use crate::support::binary::{cli, run_bounded, Server};

fn start(db: &Path, root: &str) -> Server {
    Server::start(db, &[("APIKEYD_ROOT_KEY", root)])
}

fn revoke(server: &Server, root: &str, id: i64) {
    let auth = format!("Bearer {root}");
    let (status, body) = server.request("DELETE", &format!("/api/v1/keys/{id}"), &[("Authorization", &auth)], None);
    assert_eq!(status, 200, "{body}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `apikeyd ARGS` under `umask 000`: whatever it creates, it must make private itself.
fn cli_loose_umask(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("umask 000; exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_apikeyd")).args(args);
    cmd.env_remove("APIKEYD_DB").env_remove("APIKEYD_ROOT_KEY");
    run_bounded(cmd, Duration::from_secs(120))
}

#[test]
fn a_backup_under_load_restores_to_a_database_that_serves_every_acknowledged_key_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backup, restored) = (dir.path().join("live.db"), dir.path().join("b.db"), dir.path().join("new.db"));
    let root = ApiKey::generate().unwrap().expose().to_owned();
    let server = Arc::new(start(&db, &root));
    let mut keys = Vec::new();
    for i in 0..30 {
        let (id, key) = server.create_key(&root, &format!("before {i}"), &[("/data", "read")]);
        if i % 3 == 0 {
            revoke(&server, &root, id);
        }
        keys.push(key);
    }
    let before: Vec<String> = keys.iter().map(|k| server.verify_code(k)).collect();
    assert_eq!(before.iter().filter(|c| *c == "REVOKED").count(), 10);

    // The load: creates and revokes, until the backup is done.
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let load = {
        let (server, root, stop, made) = (Arc::clone(&server), root.clone(), Arc::clone(&stop), Arc::clone(&made));
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let (id, _) = server.create_key(&root, "during", &[]);
                revoke(&server, &root, id);
                made.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while made.load(Ordering::SeqCst) < 5 {
        thread::sleep(Duration::from_millis(5));
    }
    let out = cli_loose_umask(&["backup", "--db", db.to_str().unwrap(), "--out", backup.to_str().unwrap()]);
    let during = made.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    assert!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("backed up "), "{out:?}");
    // Not a terminal: no progress line, nothing on stderr at all.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(during >= 5 && made.load(Ordering::SeqCst) > 5, "the load ran while the backup was taken");
    assert_eq!(mode(&backup), 0o600, "the backup is private even under umask 000");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("b.db") && n != "b.db")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let (ok, stdout, stderr) =
        cli(&["restore", "--from", backup.to_str().unwrap(), "--db", restored.to_str().unwrap()]);
    assert!(ok, "restore: {stderr}");
    assert!(stdout.starts_with("restored "), "{stdout}");
    assert_eq!(mode(&restored), 0o600);
    let (ok, stdout, stderr) = cli(&["check", "--db", restored.to_str().unwrap()]);
    assert!(ok, "check: {stdout}{stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");

    let copy = start(&restored, &root);
    let after: Vec<String> = keys.iter().map(|k| copy.verify_code(k)).collect();
    assert_eq!(after, before, "every key acknowledged before the backup serves as it did");
    assert_eq!(copy.verify_code(&root), "VALID");
    assert!(copy.printed_root_key().is_none(), "the restored database already had its root key");
}

#[test]
fn a_corrupted_truncated_or_foreign_backup_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backup) = (dir.path().join("live.db"), dir.path().join("b.db"));
    let root = ApiKey::generate().unwrap().expose().to_owned();
    let server = start(&db, &root);
    for i in 0..200 {
        server.create_key(&root, &format!("padding {i} {}", "x".repeat(150)), &[]);
    }
    let (ok, _, stderr) = cli(&["backup", "--db", db.to_str().unwrap(), "--out", backup.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    drop(server);
    let good = std::fs::read(&backup).unwrap();
    assert!(good.len() > 5 * 4096, "{} bytes", good.len());

    let mut corrupted = good.clone();
    // Garbage over the middle of the file: b-tree pages no longer parse.
    for b in &mut corrupted[2 * 4096 + 8..4 * 4096] {
        *b = 0x5a;
    }
    let cases: [(&str, Vec<u8>); 3] = [
        ("corrupted", corrupted),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("foreign", b"this is not a database, just text\n".repeat(200)),
    ];
    let target = dir.path().join("target.db");
    let (ok, _, stderr) = cli(&["restore", "--from", backup.to_str().unwrap(), "--db", target.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let target_before = std::fs::read(&target).unwrap();
    for (what, bytes) in cases {
        let bad = dir.path().join(format!("{what}.db"));
        std::fs::write(&bad, bytes).unwrap();
        let (ok, _, stderr) = cli(&["restore", "--from", bad.to_str().unwrap(), "--db", target.to_str().unwrap()]);
        assert!(!ok, "{what}: restore accepted it");
        assert!(stderr.contains("cannot be restored"), "{what}: {stderr}");
        assert_eq!(std::fs::read(&target).unwrap(), target_before, "{what}: the target changed");
        let fresh = dir.path().join(format!("fresh-{what}.db"));
        let (ok, _, _) = cli(&["restore", "--from", bad.to_str().unwrap(), "--db", fresh.to_str().unwrap()]);
        assert!(!ok && !fresh.exists(), "{what}: a refused restore left a file behind");
        let (ok, _, stderr) = cli(&["check", "--db", bad.to_str().unwrap()]);
        assert!(!ok, "{what}: check passed it: {stderr}");
    }
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains(".restoring-")), "{names:?}");
}

#[test]
fn restore_is_refused_while_a_server_holds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backup) = (dir.path().join("live.db"), dir.path().join("b.db"));
    let root = ApiKey::generate().unwrap().expose().to_owned();
    let server = start(&db, &root);
    let (_, key) = server.create_key(&root, "k", &[]);
    let (ok, _, stderr) = cli(&["backup", "--db", db.to_str().unwrap(), "--out", backup.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = cli(&["restore", "--from", backup.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(!ok, "restore replaced a database a server holds");
    assert!(stderr.contains("a server holds"), "{stderr}");
    assert_eq!(server.verify_code(&key), "VALID");
    // Once the server is gone (even killed), the restore goes through.
    server.kill9();
    let (ok, _, stderr) = cli(&["restore", "--from", backup.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let again = start(&db, &root);
    assert_eq!(again.verify_code(&key), "VALID");
}

#[test]
fn check_reports_an_audit_trail_that_does_not_match_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let root = ApiKey::generate().unwrap().expose().to_owned();
    let server = start(&db, &root);
    let (id, _) = server.create_key(&root, "k", &[]);
    revoke(&server, &root, id);
    drop(server);
    let (ok, stdout, _) = cli(&["check", "--db", db.to_str().unwrap()]);
    assert!(ok && stdout.contains("3 audit rows"), "{stdout}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("DELETE FROM audit_log WHERE action = 'revoke'", []).unwrap();
    drop(conn);
    let (ok, _, stderr) = cli(&["check", "--db", db.to_str().unwrap()]);
    assert!(!ok, "check passed a revoked key with no revoke row");
    assert!(stderr.contains(&format!("is revoked but has no revoke audit row: id {id}")), "{stderr}");
    assert!(stderr.contains("failed its check: 1 problem(s)"), "{stderr}");
    let (ok, _, stderr) = cli(&["check", "--db", dir.path().join("absent.db").to_str().unwrap()]);
    assert!(!ok && stderr.contains("no such database file"), "{stderr}");
}
