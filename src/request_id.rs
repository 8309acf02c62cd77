//! Request ids and the access log. Every request gets a fresh id (`req_` + 26 Crockford
//! base32 characters: 48 bits of milliseconds then 80 random bits, ULID-style, so ids sort by
//! time). The id is put in the `x-request-id` header, in request extensions (for audit rows)
//! and in a task-local, so error envelopes rendered deep inside actix can carry it too.
//!
//! Requests whose headers exceed `MAX_HEADER_BYTES` are refused here with 431.
//!
//! The access log records method, path, status and time only: never the query string
//! (`DELETE /api-key?value=` carries a secret), bodies or headers.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};

use crate::config::MAX_HEADER_BYTES;
use crate::error::{render_for_path, ApiError};
use crate::timestamp::Timestamp;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The response header carrying the id.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// One request's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh id. If the random source fails the id is still unique enough for logs
    /// (time plus a process counter), so a request never fails for want of an id.
    pub fn generate() -> RequestId {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut random = [0u8; 10];
        if getrandom::fill(&mut random).is_err() {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            random[..8].copy_from_slice(&n.to_be_bytes());
        }
        let ms = u128::try_from(Timestamp::now().millis()).unwrap_or(0) & ((1 << 48) - 1);
        let value = (ms << 80) | random.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
        let mut out = String::with_capacity(30);
        out.push_str("req_");
        for i in (0..26).rev() {
            out.push(char::from(CROCKFORD[((value >> (i * 5)) & 31) as usize]));
        }
        RequestId(out)
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of the request being handled, or `req_unknown` outside a request.
pub fn current() -> String {
    CURRENT.try_with(|id| id.0.clone()).unwrap_or_else(|_| "req_unknown".to_owned())
}

/// Middleware: assigns the id, runs the rest of the chain inside its task-local scope,
/// sets the response header and writes one access-log line.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = RequestId::generate();
    req.extensions_mut().insert(id.clone());
    let method = req.method().clone();
    let path = req.path().to_owned();
    let peer = req.peer_addr();
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    let mut res = if header_bytes > MAX_HEADER_BYTES {
        let body = CURRENT.sync_scope(id.clone(), || render_for_path(req.path(), ApiError::HeadersTooLarge));
        req.into_response(body).map_into_right_body()
    } else {
        // No clone of the HttpRequest may be held here: routing needs it uniquely owned.
        // Inner services turn handler and extractor errors into responses inside this scope;
        // only a failure outside the app's routing could surface as Err, and it propagates.
        CURRENT.scope(id.clone(), next.call(req)).await?.map_into_left_body()
    };
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(HEADER, value);
    }
    log::info!(
        target: "apikeyd::access",
        "{} {} {} {} {} {:.3}ms",
        id.as_str(),
        peer.map_or_else(|| "-".to_owned(), |p| p.ip().to_string()),
        method,
        path,
        res.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape_and_differ() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 30);
        assert!(a.as_str().starts_with("req_"));
        assert!(a.as_str()[4..].bytes().all(|c| CROCKFORD.contains(&c)));
    }
}
