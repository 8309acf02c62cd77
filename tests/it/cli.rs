//! The command line's parity with the native family, against the real binary and a running
//! server on the same file: get, update, disable, enable, rotate, delete, applications,
//! audit, list filters, `--json`, and import (all or nothing, foreign formats by hash).

use std::io::Write;

use serde_json::Value;

use crate::support::binary::{cli, Server};

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = cli(&all);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[test]
fn every_key_command_goes_through_the_core_and_the_server_honours_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let db = db.to_str().unwrap();
    let server = Server::start(dir.path().join("k.db").as_path(), &[]);
    let (ok, out, err) = cli(&[
        "keys",
        "create",
        "--title",
        "cli",
        "--grant",
        "read:/data",
        "--owner",
        "ops",
        "--meta",
        r#"{"a": 1}"#,
        "--db",
        db,
    ]);
    assert!(ok, "{err}");
    let key = out.trim().to_owned();
    assert_eq!(server.verify_code(&key), "VALID");
    let made = json(&["keys", "get", "2", "--db", db]);
    assert_eq!((made["title"].as_str(), made["owner"].as_str()), (Some("cli"), Some("ops")));
    assert_eq!(made["meta"], serde_json::json!({"a": 1}));

    let (ok, table, _) = cli(&["keys", "list", "--owner", "ops", "--db", db]);
    assert!(ok);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one key: {table}");
    assert!(lines[0].starts_with("ID  ") && lines[1].contains("read:/data") && lines[1].contains("ops"), "{table}");
    assert!(!table.contains(&key), "no plaintext in a listing");

    assert_eq!(json(&["keys", "update", "2", "--title", "renamed", "--no-owner", "--db", db])["owner"], Value::Null);
    assert_eq!(json(&["keys", "disable", "2", "--db", db])["enabled"], false);
    assert_eq!(server.verify_code(&key), "DISABLED", "a CLI disable is honoured on the next request");
    assert_eq!(json(&["keys", "enable", "2", "--db", db])["enabled"], true);
    assert_eq!(server.verify_code(&key), "VALID");

    let rotated = json(&["keys", "rotate", "2", "--grace", "0", "--db", db]);
    let new_key = rotated["api_key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["key"]["rotated_from"], 2);
    assert_eq!(server.verify_code(&key), "EXPIRED");
    assert_eq!(server.verify_code(&new_key), "VALID");
    let new_id = rotated["key"]["id"].as_i64().unwrap().to_string();
    assert_eq!(json(&["keys", "delete", &new_id, "--db", db])["status"], "deleted");
    assert_eq!(server.verify_code(&new_key), "DELETED");

    let app = json(&["applications", "create", "Tenant", "--db", db]);
    let apps = json(&["applications", "list", "--db", db]);
    assert_eq!(apps[0]["id"], app["id"]);

    let actions: Vec<String> = json(&["audit", "--db", db, "--limit", "200"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for want in ["create_application", "delete", "rotate", "enable", "disable", "update", "create"] {
        assert!(actions.contains(&want.to_owned()), "{want} missing from {actions:?}");
    }
    let (ok, _, err) = cli(&["keys", "rotate", "999", "--db", db]);
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, _, err) = cli(&["keys", "update", "2", "--expires-at", "2000-01-01T00:00:00Z", "--db", db]);
    assert!(!ok && err.contains("expires_at must be in the future"), "{err}");
}

fn write(dir: &std::path::Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    path.to_str().unwrap().to_owned()
}

#[test]
fn an_import_takes_every_line_or_none_and_foreign_keys_verify_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("k.db");
    let db = db_path.to_str().unwrap();
    let server = Server::start(&db_path, &[]);
    let count = || {
        let conn = apikeyd::storage::sqlite::open_connection(&db_path).unwrap();
        conn.query_row("SELECT count(*) FROM api_keys", [], |r| r.get::<_, i64>(0)).unwrap()
    };
    let before = count();
    let foreign = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    let ours = apikeyd::domain::key_format::ApiKey::generate().unwrap();
    let hashed = "sk_live_only_the_hash_of_this_is_imported";
    let sha = {
        use sha2::Digest;
        sha2::Sha256::digest(hashed.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let good = vec![
        format!(
            r#"{{"key": "{foreign}", "title": "github-style", "grants": [{{"path": "/repo", "access": "read"}}]}}"#
        ),
        format!(r#"{{"key": "{}", "owner": "moved"}}"#, ours.expose()),
        format!(r#"{{"sha256": "{sha}", "meta": {{"from": "vault"}}}}"#),
    ];
    // A bad third line: nothing is imported, the line is named, and no plaintext is echoed.
    let mut bad = good.clone();
    bad[2] = r#"{"key": "short"}"#.to_owned();
    let (ok, _, err) = cli(&["keys", "import", &write(dir.path(), "bad.jsonl", &bad), "--db", db]);
    assert!(!ok && err.contains("line 3"), "{err}");
    assert_eq!(count(), before, "an import that fails on line 3 leaves nothing");
    let mut dup = good.clone();
    dup.push(good[0].clone());
    let (ok, _, err) = cli(&["keys", "import", &write(dir.path(), "dup.jsonl", &dup), "--db", db]);
    assert!(!ok && err.contains("line 4") && err.contains("line 1"), "{err}");
    assert!(!err.contains(foreign), "{err}");
    assert_eq!(count(), before);

    let (ok, out, err) = cli(&["keys", "import", &write(dir.path(), "good.jsonl", &good), "--db", db]);
    assert!(ok && out.contains("imported 3 keys"), "{out}{err}");
    assert_eq!(count(), before + 3);
    assert_eq!(server.verify_code(foreign), "VALID", "another format verifies by hash");
    assert_eq!(server.verify_code(ours.expose()), "VALID");
    assert_eq!(server.verify_code(hashed), "VALID", "imported by its hash alone");
    let (status, body) = server.request(
        "POST",
        "/api/v1/keys/verify",
        &[("content-type", "application/json")],
        Some(&format!(r#"{{"key": "{foreign}", "path": "/repo/x"}}"#)),
    );
    assert!(status == 200 && body.contains(r#""code":"VALID""#), "{body}");
    // A second import of the same keys is refused as duplicates of stored keys.
    let (ok, _, err) = cli(&["keys", "import", &write(dir.path(), "again.jsonl", &good), "--db", db]);
    assert!(!ok && err.contains("line 1") && err.contains("exists already"), "{err}");
}
