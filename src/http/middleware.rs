//! The middleware every request passes: its request id (`request_id`), the header limits,
//! the access log. The id is put in the `x-request-id` header, in request extensions (for
//! audit rows) and in a task-local, so error envelopes rendered deep inside actix can carry
//! it too.
//!
//! Requests with more than `MAX_HEADERS` headers, or more than `MAX_HEADER_BYTES` of them,
//! are refused here with 431. So are, for the connection layer (`http::connection`), a
//! request on a connection past its address's cap (503 with `Retry-After`) and one whose
//! body missed the request deadline (408), both closing the connection; answered here, they
//! carry the id and reach the access log like any other.
//!
//! The access log records method, path (and route template), status and time only: never the query string
//! (`DELETE /api-key?value=` carries a secret), bodies or headers, and a path with anything
//! key- or JWT-shaped in it is redacted.

use std::borrow::Cow;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::http::{ConnectionType, Method};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpResponse};

use crate::config::{MAX_HEADERS, MAX_HEADER_BYTES, OVER_CAP_RETRY_AFTER_SECS};
use crate::domain::key_format as keys;
use crate::error::ApiError;
use crate::http::connection;
use crate::http::envelope::render_for_path;
use crate::http::request_id::{self, RequestId, HEADER};
use crate::service::AppState;

/// Middleware: assigns the id, runs the rest of the chain inside its task-local scope,
/// sets the response header and writes one access-log line.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = RequestId::generate();
    req.extensions_mut().insert(id);
    // What the access-log line needs, taken only when it will be written.
    let logged = log::log_enabled!(target: "apikeyd::access", log::Level::Info)
        .then(|| (req.method().clone(), loggable_path(req.path()).into_owned(), req.peer_addr()));
    let (count, bytes) = req.headers().iter().fold((0, 0), |(n, b), (k, v)| (n + 1, b + k.as_str().len() + v.len()));
    let conn = connection::RequestConnection::of(&req);
    let mut res = if conn.as_ref().is_some_and(|c| c.over_cap()) {
        let refusal = ApiError::TooManyConnections { retry_after: OVER_CAP_RETRY_AFTER_SECS };
        let body = request_id::sync_scope(id, || closing(render_for_path(req.path(), refusal)));
        req.into_response(body).map_into_right_body()
    } else if count > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        let body = request_id::sync_scope(id, || render_for_path(req.path(), ApiError::HeadersTooLarge));
        req.into_response(body).map_into_right_body()
    } else {
        // No clone of the HttpRequest may be held here: routing needs it uniquely owned.
        // Inner services turn handler and extractor errors into responses inside this scope;
        // only a failure outside the app's routing could surface as Err, and it propagates.
        request_id::scope(id, next.call(req)).await?.map_into_left_body()
    };
    // The handler met a body that stopped arriving (and answered its read error): the answer
    // is 408, and the connection, whose request was never read whole, is closed.
    if conn.is_some_and(|c| c.body_was_late()) {
        let body =
            request_id::sync_scope(id, || closing(render_for_path(res.request().path(), ApiError::RequestTimeout)));
        res = res.into_response(body).map_into_right_body();
    }
    let route = crate::http::route_template(res.request().match_pattern().as_deref());
    if let Some(state) = res.request().app_data::<web::Data<AppState>>() {
        let seconds = started.elapsed().as_secs_f64();
        state.metrics.request(route, method_label(res.request().method()), res.status().as_u16(), seconds);
    }
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(HEADER, value);
    }
    if let Some((method, path, peer)) = logged {
        let (status, ms) = (res.status().as_u16(), started.elapsed().as_secs_f64() * 1000.0);
        // The fields are what `--log-format json` shows beside the message; the text format
        // shows the message alone. All of them are from fixed sets or computed here.
        log::info!(
            target: "apikeyd::access",
            request_id = id.as_str(), method = method.as_str(), route = route, status = status, duration_ms = ms;
            "{} {} {} {} {} {:.3}ms",
            id.as_str(),
            peer.map_or_else(|| "-".to_owned(), |p| p.ip().to_string()),
            method,
            path,
            status,
            ms
        );
    }
    Ok(res)
}

/// A request's method as a metrics label: one of a fixed set, never the request's own text.
fn method_label(method: &Method) -> &'static str {
    static KNOWN: [Method; 7] =
        [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD, Method::OPTIONS];
    KNOWN.iter().find(|m| *m == method).map_or("OTHER", Method::as_str)
}

/// `res`, closing its connection once written. (A `Connection: close` header set by the app
/// is dropped by actix-http's encoder; the connection type is what it honours.)
fn closing(mut res: HttpResponse) -> HttpResponse {
    res.head_mut().set_connection_type(ConnectionType::Close);
    res
}

/// The path as the access log may show it: anything key- or JWT-shaped (a key pasted into a
/// path, `GET /api/v1/keys/sk-…`) is redacted. Other paths pass untouched.
fn loggable_path(path: &str) -> Cow<'_, str> {
    if keys::may_hold_secret(path) {
        Cow::Owned(keys::redact(path))
    } else {
        Cow::Borrowed(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shaped_path_segments_never_reach_the_access_log() {
        let key = keys::ApiKey::generate().unwrap();
        let logged = loggable_path(&format!("/api/v1/keys/{}", key.expose())).into_owned();
        assert_eq!(logged, "/api/v1/keys/[redacted]");
        assert!(matches!(loggable_path("/api/v1/keys/12"), Cow::Borrowed("/api/v1/keys/12")));
    }
}
