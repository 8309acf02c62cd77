//! Cross-application isolation: keys and JWTs of application A against every endpoint that
//! touches application B's keys. Never confirming that a key exists outside the caller's
//! scope means more than "no 2xx": each answer must be indistinguishable (status, headers
//! and body, request ids aside) from the answer for an id, UUID or value that exists nowhere.
//! Afterwards B's keys and B's session, minted before the attack, still work, and nothing
//! was written.

use actix_web::test::TestRequest;
use apikeyd::domain::grants::{Access, Grants};
use apikeyd::domain::key_format::ApiKey;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{bearer, grants, Reply, TestApp};

/// Builds a fresh request for one endpoint (credentials are added per identity).
type MakeRequest = Box<dyn Fn() -> TestRequest>;

/// One endpoint aimed at B's key (`attack`) and the same call aimed at nothing (`control`).
struct Case {
    what: &'static str,
    attack: MakeRequest,
    control: MakeRequest,
    /// The caller's own input, as each of the two requests sends it, when the answer may echo
    /// it back (the bulk delete names the ids it did not find): masked before comparing.
    echo: Option<(String, String)>,
}

fn case(what: &'static str, attack: MakeRequest, control: MakeRequest) -> Case {
    Case { what, attack, control, echo: None }
}

/// What must match: status, every header but `x-request-id`, and the body without its
/// `request_id` field, with the caller's echoed input (if any) replaced by a placeholder.
fn observable(r: &Reply, echoed: Option<&str>) -> (u16, Vec<(String, String)>, Value) {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| k.as_str() != "x-request-id")
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("<binary>").to_owned()))
        .collect();
    headers.sort();
    let mut body = r.body.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("request_id");
    }
    let mut text = if body.is_null() { r.raw.clone() } else { body.to_string() };
    if let Some(input) = echoed {
        text = text.replace(input, "<input>");
    }
    (r.status.as_u16(), headers, Value::String(text))
}

#[actix_web::test]
async fn application_a_can_never_touch_application_bs_keys() {
    let app = TestApp::new().await;
    let both = app.two_applications();
    let (a, b) = (&both.a.app, &both.b.app);
    let (b_admin, a_admin) = (&both.b.admin_key, &both.a.admin_key);
    let (b_rec, b_key) = app.insert_key_in(Some(b.id), Grants::root(), None);
    let (_, a_reader) = app.insert_key_in(Some(a.id), grants(&[("/", Access::Read)]), None);
    // B's session, minted before the attack.
    let b_jwt = app.login(b_admin).await;
    let a_admin_jwt = app.login(a_admin).await;
    let a_reader_jwt = app.login(&a_reader).await;
    let identities = [
        ("A admin key", a_admin.clone()),
        ("A admin JWT", a_admin_jwt),
        ("A reader key", a_reader.clone()),
        ("A reader JWT", a_reader_jwt),
    ];

    let count = |sql: &str| app.count(sql);
    // Ids, UUIDs and a value that exist nowhere: the control for every attack.
    let b_num = b_rec.id.0;
    let no_num = count("SELECT max(id) FROM api_keys") + 1000;
    let (b_uuid, no_uuid) = (b_rec.uuid.to_string(), Uuid::new_v4().to_string());
    let (a_app, b_app, no_app) = (a.uuid.to_string(), b.uuid.to_string(), Uuid::new_v4().to_string());
    let no_value = ApiKey::generate().unwrap().expose().to_owned();
    let get = |uri: String| -> MakeRequest { Box::new(move || TestRequest::get().uri(&uri)) };
    let delete = |uri: String| -> MakeRequest { Box::new(move || TestRequest::delete().uri(&uri)) };
    let delete_json = |uri: &'static str, body: Value| -> MakeRequest {
        Box::new(move || TestRequest::delete().uri(uri).set_json(body.clone()))
    };
    let post_json = |uri: String, body: Value| -> MakeRequest {
        Box::new(move || TestRequest::post().uri(&uri).set_json(body.clone()))
    };
    let apps = "/api/v1/applications";
    let cases = vec![
        case("get application B", get(format!("{apps}/{b_app}")), get(format!("{apps}/{no_app}"))),
        case("list B's keys", get(format!("{apps}/{b_app}/api-keys")), get(format!("{apps}/{no_app}/api-keys"))),
        case(
            "create a key in B",
            post_json(format!("{apps}/{b_app}/api-keys"), json!({"name": "intruder"})),
            post_json(format!("{apps}/{no_app}/api-keys"), json!({"name": "intruder"})),
        ),
        case(
            "revoke B's key under B",
            delete(format!("{apps}/{b_app}/api-keys/{b_uuid}")),
            delete(format!("{apps}/{no_app}/api-keys/{no_uuid}")),
        ),
        case(
            "revoke B's key under A",
            delete(format!("{apps}/{a_app}/api-keys/{b_uuid}")),
            delete(format!("{apps}/{a_app}/api-keys/{no_uuid}")),
        ),
        case(
            "revoke an unknown key under B",
            delete(format!("{apps}/{b_app}/api-keys/{no_uuid}")),
            delete(format!("{apps}/{no_app}/api-keys/{no_uuid}")),
        ),
        case(
            "clients delete",
            delete(format!("/api/clients/api-keys/{b_uuid}")),
            delete(format!("/api/clients/api-keys/{no_uuid}")),
        ),
        Case {
            what: "clients bulk delete",
            attack: delete_json("/api/clients/api-keys/bulk", json!({"api_key_ids": [b_uuid]})),
            control: delete_json("/api/clients/api-keys/bulk", json!({"api_key_ids": [no_uuid]})),
            echo: Some((b_uuid.clone(), no_uuid.clone())),
        },
        case("native get", get(format!("/api/v1/keys/{b_num}")), get(format!("/api/v1/keys/{no_num}"))),
        case("native revoke", delete(format!("/api/v1/keys/{b_num}")), delete(format!("/api/v1/keys/{no_num}"))),
        case(
            "shard delete ?value=",
            delete(format!("/api-key?value={b_key}")),
            delete(format!("/api-key?value={no_value}")),
        ),
        case(
            "shard delete {value}",
            delete_json("/api-key", json!({"value": b_key})),
            delete_json("/api-key", json!({"value": no_value})),
        ),
    ];
    let audit_before = count("SELECT count(*) FROM audit_log");

    let mut differences = Vec::new();
    let mut successes = Vec::new();
    let mut compared = 0;
    for (who, cred) in &identities {
        for c in &cases {
            for header in ["authorization", "x-user-api-key"] {
                if header == "x-user-api-key" && cred.contains('.') {
                    continue; // JWTs travel as bearer tokens only
                }
                let with_cred = |req: TestRequest| match header {
                    "authorization" => req.insert_header(bearer(cred)),
                    _ => req.insert_header(("x-user-api-key", cred.as_str())),
                };
                let attack = app.send(with_cred((c.attack)())).await;
                let control = app.send(with_cred((c.control)())).await;
                if attack.status.is_success() {
                    successes.push(format!("{who} via {header}: {} -> {} {}", c.what, attack.status, attack.raw));
                }
                let (attack_echo, control_echo) = match &c.echo {
                    Some((a, n)) => (Some(a.as_str()), Some(n.as_str())),
                    None => (None, None),
                };
                let (seen, unseen) = (observable(&attack, attack_echo), observable(&control, control_echo));
                if seen != unseen {
                    differences.push(format!("{who} via {header}: {}\n  B's: {seen:?}\n  none: {unseen:?}", c.what));
                }
                compared += 1;
            }
        }
        // Lists answer 200 but must not show B's keys.
        for list in ["/api/v1/keys", "/api/clients/api-keys", "/api/v1/applications"] {
            let r = app.get(list, cred).await;
            if r.raw.contains(&b_uuid) || r.raw.contains(&b_app) {
                successes.push(format!("{who}: {list} shows B: {}", r.raw));
            }
        }
    }
    assert_eq!(compared, cases.len() * 6, "2 keys by 2 headers plus 2 JWTs, for every case");
    assert!(successes.is_empty(), "{} cross-application successes:\n{}", successes.len(), successes.join("\n"));
    assert!(
        differences.is_empty(),
        "{} answers tell B's key from no key:\n{}",
        differences.len(),
        differences.join("\n")
    );

    // B's keys still verify, B's session still works, and nothing was written.
    for key in [&b_key, b_admin] {
        assert_eq!(app.verify_code(key).await, "VALID");
    }
    let r = app.get(&format!("{apps}/{b_app}/api-keys"), &b_jwt).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let listed: Vec<&str> = r.body["api_keys"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 2, "nothing was created in B: {}", r.raw);
    assert!(listed.contains(&b_uuid.as_str()));
    assert!(r.body["api_keys"].as_array().unwrap().iter().all(|k| k["status"] == "active"), "{}", r.raw);
    assert_eq!(count("SELECT count(*) FROM audit_log"), audit_before, "no change was recorded");
    let b_keys = count(&format!("SELECT count(*) FROM api_keys WHERE application_id = {}", b.id.0));
    assert_eq!(b_keys, 2, "nothing was created in B");
}
