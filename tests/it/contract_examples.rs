//! The client code in the contract documents (../shared/seeds, outside this repository: the
//! API documents each family was built from), run unchanged but for the host and
//! placeholders, against the real binary: the applications family's Python `requests`
//! example and the clients family's JavaScript `deleteApiKey`, cut from the documents
//! themselves, so a document that changes is what runs. A python3 without `requests` gets it
//! in a virtual environment under the target directory.
//!
//! What each test needs may be missing on a machine or a clone: the contract documents, python3,
//! node. Then the test prints `SKIPPED <why>` past the output capture and passes, unless
//! `APIKEYD_REQUIRE_SEEDS=1`, `APIKEYD_REQUIRE_PYTHON=1` or `APIKEYD_REQUIRE_NODE=1` says it is
//! required: then it fails (`support::prerequisite`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::binary::Server;
use crate::support::prerequisite::{say, skip_unless_required};

/// The applications family's document: revoking a key of an application, with a Python example.
const APPLICATIONS_REVOKE_DOCUMENT: &str = "001_";
/// The clients family's document: deleting keys, with a JavaScript example.
const CLIENTS_DELETE_DOCUMENT: &str = "003_";

const PYTHON_EXAMPLE: &str = "contract_examples, the applications family's Python example";
const JAVASCRIPT_EXAMPLE: &str = "contract_examples, the clients family's JavaScript example";

fn have(program: impl AsRef<std::ffi::OsStr>, probe: &[&str]) -> bool {
    Command::new(program).args(probe).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn json(server: &Server, method: &str, path: &str, auth: &str, body: Option<&str>) -> Value {
    let header = format!("Bearer {auth}");
    let (status, text) = server.request(method, path, &[("Authorization", &header)], body);
    assert!((200..300).contains(&status), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Runs `program args` with `script` on standard input; returns stdout, failing on a non-zero exit.
fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str], script: &str) -> String {
    let program = program.as_ref().to_owned();
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{program:?} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The contract document whose file name starts with `number` (e.g. "001_"), for `example`;
/// `None` (skipped, or failing when `APIKEYD_REQUIRE_SEEDS` is set) when the directory of
/// contract documents is not there. With the directory there, the document must be.
fn contract_document(number: &str, example: &str) -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            let why = format!("the contract documents are not at {} ({e})", dir.display());
            skip_unless_required("APIKEYD_REQUIRE_SEEDS", example, &why);
            return None;
        }
    };
    let mut found: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(number) && n.ends_with(".txt"))
        })
        .collect();
    assert_eq!(found.len(), 1, "exactly one contract document {number}*.txt in {}: {found:?}", dir.display());
    Some(std::fs::read_to_string(found.remove(0)).unwrap())
}

/// The lines of `text` from the one line equal to `first` through the next line equal to
/// `last`, both included.
fn snippet(text: &str, first: &str, last: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].trim_end() == first).collect();
    assert_eq!(starts.len(), 1, "the document has exactly one line {first:?}");
    let end = (starts[0]..lines.len())
        .find(|&i| lines[i].trim_end() == last)
        .unwrap_or_else(|| panic!("no line {last:?} after {first:?}"));
    let mut out = lines[starts[0]..=end].join("\n");
    out.push('\n');
    out
}

/// `text` with the one occurrence of `from` replaced; fails if there is not exactly one, so a
/// placeholder the document no longer has cannot leave the document's own host in the script.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} occurs once in:\n{text}");
    text.replacen(from, to, 1)
}

/// An interpreter that has `requests`: python3 itself, or a virtual environment made for this
/// test under the target directory. `None` (skipped, or failing when `APIKEYD_REQUIRE_PYTHON`
/// is set) only without python3.
fn python_with_requests() -> Option<PathBuf> {
    if !have("python3", &["--version"]) {
        skip_unless_required("APIKEYD_REQUIRE_PYTHON", PYTHON_EXAMPLE, "python3 is not installed");
        return None;
    }
    if have("python3", &["-c", "import requests"]) {
        return Some(PathBuf::from("python3"));
    }
    // target/debug/deps/<this test> -> target/seed-venv (honours CARGO_TARGET_DIR).
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).expect("test binary lives in <target>/<profile>/deps");
    let venv = target.join("seed-venv");
    let python = venv.join("bin").join("python");
    if !have(&python, &["-c", "import requests"]) {
        say(&format!("python3 has no requests package: installing it in {}", venv.display()));
        let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().unwrap();
        assert!(status.success(), "python3 -m venv {} failed", venv.display());
        let status = Command::new(&python).args(["-m", "pip", "install", "--quiet", "requests"]).status().unwrap();
        assert!(status.success(), "pip install requests into {} failed", venv.display());
    }
    assert!(have(&python, &["-c", "import requests"]), "{} still cannot import requests", python.display());
    Some(python)
}

/// The applications family's Python example revokes one key of an application; the
/// application's other key keeps working. (The test keeps the name it had when the contract
/// documents were called by number, so filters and history still find it.)
#[test]
fn seed_001_python_example_revokes_an_application_key() {
    let Some(document) = contract_document(APPLICATIONS_REVOKE_DOCUMENT, PYTHON_EXAMPLE) else { return };
    let python_snippet = snippet(&document, "import requests", "print(response.json())");
    let Some(python) = python_with_requests() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("k.db"), &[]);
    let root = server.printed_root_key().unwrap();
    let app = json(&server, "POST", "/api/v1/applications", &root, Some(r#"{"name":"contract example"}"#));
    let app_id = app["id"].as_str().unwrap();
    let keys_path = format!("/api/v1/applications/{app_id}/api-keys");
    let victim = json(&server, "POST", &keys_path, &root, Some(r#"{"name":"victim"}"#));
    let other = json(&server, "POST", &keys_path, &root, Some(r#"{"name":"other"}"#));
    let admin = json(&server, "POST", &keys_path, &root, Some(r#"{"name":"admin"}"#));
    let jwt = server.login(admin["api_key"].as_str().unwrap());
    let script = replace_once(
        &python_snippet,
        "https://api.example.com/api/v1/applications/123e4567-e89b-12d3-a456-426614174000/api-keys/123e4567-e89b-12d3-a456-426614174000",
        &format!("http://{}{keys_path}/{}", server.addr, victim["id"].as_str().unwrap()),
    );
    let script = replace_once(&script, "YOUR_API_TOKEN (JWT)", &jwt);
    let printed = run(&python, &["-"], &script);
    assert_eq!(printed.trim(), "{}");
    assert_eq!(server.verify_code(victim["api_key"].as_str().unwrap()), "REVOKED");
    assert_eq!(server.verify_code(other["api_key"].as_str().unwrap()), "VALID");
}

/// The clients family's JavaScript `deleteApiKey` deletes a key by UUID with a session token.
/// (Named as the test above is.)
#[test]
fn seed_003_javascript_delete_api_key_deletes_a_client_key() {
    let Some(document) = contract_document(CLIENTS_DELETE_DOCUMENT, JAVASCRIPT_EXAMPLE) else { return };
    let js_snippet = snippet(
        &document,
        "async function deleteApiKey(jwtToken, apiKeyId) {",
        "console.log(`API Key ${deletedKey.deleted_id} was deleted at ${deletedKey.deleted_at}`);",
    );
    if !have("node", &["--version"]) {
        skip_unless_required("APIKEYD_REQUIRE_NODE", JAVASCRIPT_EXAMPLE, "node is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("k.db"), &[]);
    let root = server.printed_root_key().unwrap();
    let jwt = server.login(&root);
    let made = json(&server, "POST", "/api/clients/api-keys", &jwt, Some(r#"{"name":"ussd"}"#));
    let id = made["data"]["id"].as_str().unwrap();
    let script = replace_once(&js_snippet, "https://k2-ussd-api.devlorde.xyz", &format!("http://{}", server.addr));
    let script = replace_once(&script, "f7fa38ec-0e19-405c-820f-bf65912ab4ec", id);
    // The document's usage example takes `jwtToken` as given: define it first.
    let script = format!("const jwtToken = {};\n{script}", serde_json::to_string(&jwt).unwrap());
    let printed = run("node", &["--input-type=module", "-"], &script);
    assert!(printed.contains(&format!("API Key deleted successfully: {id}")), "{printed}");
    assert!(printed.contains(&format!("API Key {id} was deleted at ")), "{printed}");
    assert_eq!(server.verify_code(made["data"]["api_key"].as_str().unwrap()), "DELETED");
}
