//! Cross-application isolation: keys and JWTs of application A against every endpoint that
//! touches application B's keys. Never confirming that a key exists outside the caller's
//! scope means more than "no 2xx": each answer must be indistinguishable (status, headers
//! and body, request ids aside) from the answer for an id, UUID or value that exists nowhere.
//! Afterwards B's keys and B's session, minted before the attack, still work, and nothing
//! was written.

mod common;

use actix_web::test::{self, TestRequest};
use apikeyd::grants::{Access, Grants};
use apikeyd::keys::ApiKey;
use common::{bearer, grants, send, Reply, TestEnv};
use serde_json::{json, Value};
use uuid::Uuid;

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
    let env = TestEnv::new();
    let app = test::init_service(apikeyd::app(env.state.clone())).await;
    let a = env.create_app("A");
    let b = env.create_app("B");
    let (b_rec, b_key) = env.insert_key_in(Some(b.id), Grants::root(), None);
    let (_, b_admin) = env.insert_key_in(Some(b.id), Grants::root(), None);
    let (_, a_admin) = env.insert_key_in(Some(a.id), Grants::root(), None);
    let (_, a_reader) = env.insert_key_in(Some(a.id), grants(&[("/", Access::Read)]), None);
    let login = |key: &str| TestRequest::post().uri("/api/clients/login").set_json(json!({"api_key": key}));
    let token = |r: Reply| r.body["data"]["token"].as_str().unwrap_or_else(|| panic!("login: {}", r.raw)).to_owned();
    // B's session, minted before the attack.
    let b_jwt = token(send(&app, login(&b_admin)).await);
    let a_admin_jwt = token(send(&app, login(&a_admin)).await);
    let a_reader_jwt = token(send(&app, login(&a_reader)).await);
    let identities = [
        ("A admin key", a_admin.clone()),
        ("A admin JWT", a_admin_jwt),
        ("A reader key", a_reader.clone()),
        ("A reader JWT", a_reader_jwt),
    ];

    let conn = apikeyd::db::open_connection(&env.db_path()).unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
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
                let attack = send(&app, with_cred((c.attack)())).await;
                let control = send(&app, with_cred((c.control)())).await;
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
            let r = send(&app, TestRequest::get().uri(list).insert_header(bearer(cred))).await;
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
    for key in [&b_key, &b_admin] {
        let v = send(&app, TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key}))).await;
        assert_eq!(v.body["data"]["code"], "VALID", "{}", v.raw);
    }
    let r = send(&app, TestRequest::get().uri(&format!("{apps}/{b_app}/api-keys")).insert_header(bearer(&b_jwt))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let listed: Vec<&str> = r.body["api_keys"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 2, "nothing was created in B: {}", r.raw);
    assert!(listed.contains(&b_uuid.as_str()));
    assert!(r.body["api_keys"].as_array().unwrap().iter().all(|k| k["status"] == "active"), "{}", r.raw);
    assert_eq!(count("SELECT count(*) FROM audit_log"), audit_before, "no change was recorded");
    let b_keys = conn
        .query_row("SELECT count(*) FROM api_keys WHERE application_id = ?1", [b.id.0], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(b_keys, 2, "nothing was created in B");
}
