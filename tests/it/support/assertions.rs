//! Each family's error envelope, asserted field by field, and the request id every answer
//! carries. One place for all of them, so a family's envelope is stated once.

use serde_json::{json, Value};

use super::Reply;

/// The body's request_id (if any) is the header's, and has the documented shape.
pub fn assert_request_id(reply: &Reply) {
    let header = reply.headers.get("x-request-id").expect("x-request-id header").to_str().unwrap();
    assert!(header.starts_with("req_") && header.len() == 30, "{header}");
    if let Some(id) = reply.body.get("request_id") {
        assert_eq!(id, header);
    }
}

/// The native family's error envelope: `{success: false, error: {code, message}, request_id}`.
pub fn assert_native_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.raw);
    let obj = reply.body.as_object().unwrap_or_else(|| panic!("not a JSON object: {}", reply.raw));
    assert_eq!(obj.len(), 3, "envelope has exactly success, error, request_id: {}", reply.raw);
    assert_eq!(reply.body["success"], false);
    assert_eq!(reply.body["error"]["code"], code, "body: {}", reply.raw);
    assert!(reply.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(reply.body["error"].as_object().unwrap().len(), 2);
    assert_request_id(reply);
}

/// The shard family's error shape: exactly `{error, message, request_id}`.
pub fn assert_shard_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.raw);
    let obj = reply.body.as_object().unwrap_or_else(|| panic!("not a JSON object: {}", reply.raw));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "message", "request_id"], "exactly error, message, request_id: {}", reply.raw);
    assert_eq!(reply.body["error"], code, "body: {}", reply.raw);
    assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {}", reply.raw);
    assert!(reply.body["request_id"].is_string(), "body: {}", reply.raw);
    assert_request_id(reply);
}

/// The clients family's error envelope, whole: `{status, message, data: null}`.
pub fn assert_client_error(r: &Reply, status: u16, message: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.raw);
    assert_eq!(r.body, json!({"status": status, "message": message, "data": null}), "{}", r.raw);
    assert_request_id(r);
}

/// The clients family's refusal of a session token (or of its absence).
pub fn assert_invalid_jwt(r: &Reply) {
    assert_client_error(r, 401, "Invalid JWT token");
}

/// The applications family's documented body for `status`, whole: `{error, message, code}`.
fn applications_body(status: u16) -> Value {
    let (error, message) = match status {
        400 => ("Bad Request", "The request contains invalid parameters or malformed data"),
        401 => ("Unauthorized", "Authentication required. Please provide a valid API token"),
        403 => ("Forbidden", "You don't have permission to access this resource"),
        404 => ("Not Found", "The requested resource was not found"),
        _ => panic!("unexpected status {status}"),
    };
    json!({"error": error, "message": message, "code": status})
}

/// A 401, 403 or 404 exactly as the applications family documents it.
pub fn assert_app_error(r: &Reply, status: u16) {
    assert_ne!(status, 400, "a 400 carries details: use assert_app_details");
    assert_eq!(r.status.as_u16(), status, "{}", r.raw);
    assert_eq!(r.body, applications_body(status), "{}", r.raw);
    assert_request_id(r);
}

/// A 400 exactly as the applications family documents it, with one detail naming `field` and
/// saying `message`.
pub fn assert_app_details(r: &Reply, field: &str, message: &str) {
    assert_eq!(r.status, 400, "{}", r.raw);
    let mut expected = applications_body(400);
    expected["details"] = json!([{"field": field, "message": message}]);
    assert_eq!(r.body, expected, "{}", r.raw);
    assert_request_id(r);
}
