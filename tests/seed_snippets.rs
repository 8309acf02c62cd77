//! The seeds' own client code, run unchanged but for the host and placeholders, against the
//! real binary: seed 001's Python `requests` example and seed 003's JavaScript
//! `deleteApiKey`. Skipped, with the reason printed, only where python3 or node is missing.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::binary::Server;
use serde_json::Value;

fn have(program: &str, probe: &[&str]) -> bool {
    Command::new(program).args(probe).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn json(server: &Server, method: &str, path: &str, auth: &str, body: Option<&str>) -> Value {
    let header = format!("Bearer {auth}");
    let (status, text) = server.request(method, path, &[("Authorization", &header)], body);
    assert!((200..300).contains(&status), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

fn login(server: &Server, key: &str) -> String {
    let (status, text) = server.request("POST", "/api/clients/login", &[], Some(&format!("{{\"api_key\":\"{key}\"}}")));
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["data"]["token"].as_str().unwrap().to_owned()
}

fn verify(server: &Server, key: &str) -> String {
    let (_, text) = server.request("POST", "/api/v1/keys/verify", &[], Some(&format!("{{\"key\":\"{key}\"}}")));
    serde_json::from_str::<Value>(&text).unwrap()["data"]["code"].as_str().unwrap().to_owned()
}

/// Runs `program args` with `script` on standard input; returns stdout, failing on a non-zero exit.
fn run(program: &str, args: &[&str], script: &str) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{program} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Seed 001, Python: revoke an application's key with a JWT.
const SEED_001_PYTHON: &str = r#"import requests
import json
url = "https://api.example.com/api/v1/applications/123e4567-e89b-12d3-a456-426614174000/api-keys/123e4567-e89b-12d3-a456-426614174000"
headers = {
"Content-Type": "application/json",
"Authorization": "Bearer YOUR_API_TOKEN (JWT)"
}
response = requests.delete(url, headers=headers)
print(response.json())
"#;

/// Seed 003, JavaScript: deleteApiKey and its usage example.
const SEED_003_JAVASCRIPT: &str = r#"async function deleteApiKey(jwtToken, apiKeyId) {
  try {
    const response = await fetch(`https://k2-ussd-api.devlorde.xyz/api/clients/api-keys/${apiKeyId}`, {
      method: 'DELETE',
      headers: {
        'Authorization': `Bearer ${jwtToken}`,
        'Content-Type': 'application/json'
      }
    });
    const data = await response.json();
    if (data.status === 200) {
      console.log('API Key deleted successfully:', data.data.deleted_id);
      return data.data;
    } else {
      throw new Error(data.message);
    }
  } catch (error) {
    console.error('Failed to delete API key:', error.message);
    throw error;
  }
}
// Usage example
const deletedKey = await deleteApiKey(jwtToken, 'f7fa38ec-0e19-405c-820f-bf65912ab4ec');
console.log(`API Key ${deletedKey.deleted_id} was deleted at ${deletedKey.deleted_at}`);
"#;

#[test]
fn seed_001_python_example_revokes_an_application_key() {
    if !have("python3", &["-c", "import requests"]) {
        println!("SKIPPED seed_001_python_example: python3 with the requests package is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("k.db"), &[]);
    let root = server.printed_root_key().unwrap();
    let app = json(&server, "POST", "/api/v1/applications", &root, Some(r#"{"name":"seed"}"#));
    let app_id = app["id"].as_str().unwrap();
    let keys_path = format!("/api/v1/applications/{app_id}/api-keys");
    let victim = json(&server, "POST", &keys_path, &root, Some(r#"{"name":"victim"}"#));
    let other = json(&server, "POST", &keys_path, &root, Some(r#"{"name":"other"}"#));
    let admin = json(&server, "POST", &keys_path, &root, Some(r#"{"name":"admin"}"#));
    let jwt = login(&server, admin["api_key"].as_str().unwrap());
    let script = SEED_001_PYTHON
        .replacen(
            "https://api.example.com/api/v1/applications/123e4567-e89b-12d3-a456-426614174000/api-keys/123e4567-e89b-12d3-a456-426614174000",
            &format!("http://{}{keys_path}/{}", server.addr, victim["id"].as_str().unwrap()),
            1,
        )
        .replacen("YOUR_API_TOKEN (JWT)", &jwt, 1);
    let printed = run("python3", &["-"], &script);
    assert_eq!(printed.trim(), "{}");
    assert_eq!(verify(&server, victim["api_key"].as_str().unwrap()), "REVOKED");
    assert_eq!(verify(&server, other["api_key"].as_str().unwrap()), "VALID");
}

#[test]
fn seed_003_javascript_delete_api_key_deletes_a_client_key() {
    if !have("node", &["--version"]) {
        println!("SKIPPED seed_003_javascript_delete_api_key: node is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("k.db"), &[]);
    let root = server.printed_root_key().unwrap();
    let jwt = login(&server, &root);
    let made = json(&server, "POST", "/api/clients/api-keys", &jwt, Some(r#"{"name":"ussd"}"#));
    let id = made["data"]["id"].as_str().unwrap();
    let script = format!(
        "const jwtToken = {};\n{}",
        serde_json::to_string(&jwt).unwrap(),
        SEED_003_JAVASCRIPT
            .replacen("https://k2-ussd-api.devlorde.xyz", &format!("http://{}", server.addr), 1)
            .replacen("f7fa38ec-0e19-405c-820f-bf65912ab4ec", id, 1)
    );
    let printed = run("node", &["--input-type=module", "-"], &script);
    assert!(printed.contains(&format!("API Key deleted successfully: {id}")), "{printed}");
    assert!(printed.contains(&format!("API Key {id} was deleted at ")), "{printed}");
    assert_eq!(verify(&server, made["data"]["api_key"].as_str().unwrap()), "DELETED");
}
