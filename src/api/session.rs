//! Logging in: a key exchanged for a session JWT, served in two envelopes
//! (`POST /api/clients/login` in `clients`, `POST /api/v1/auth/token` here).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::body::{native_ok, no_store, NativeOk};
use super::clients::LoginBody;
use crate::auth::over_failure_budget;
use crate::error::schema::NativeError;
use crate::error::{ApiError, Failure, Native};
use crate::timestamp::Timestamp;
use crate::{verify, AppState};

/// Checks `api_key` and mints a token for it. A JWT cannot be exchanged for another JWT:
/// only a key logs in. 401 for anything but a usable key.
pub fn issue(state: &AppState, req: &HttpRequest, api_key: &str) -> Result<(String, Timestamp), ApiError> {
    let now = Timestamp::now();
    let found = verify::lookup(state, api_key)?;
    let key = match found {
        Some(k) if verify::judge(Some(&k), None, now) == verify::Code::Valid => k,
        _ => {
            return Err(match over_failure_budget(state, req) {
                Some(retry_after) => ApiError::RateLimited { retry_after },
                None => ApiError::Unauthorized("Invalid API key"),
            })
        }
    };
    state.usage.record(key.id, now);
    state.sessions.issue(&key, now).map_err(|e| ApiError::internal(&e))
}

/// `token_type` of a session.
#[derive(Serialize, ToSchema)]
pub enum TokenType {
    /// The only value: send the token as `Authorization: Bearer <token>`.
    Bearer,
}

/// A session JWT, as both login calls answer it.
#[derive(Serialize, ToSchema)]
pub struct Session {
    /// HS256 JWT, usable wherever a bearer key is.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: TokenType,
    /// When the token stops working (never after its key's expiry).
    pub expires_at: Timestamp,
}

impl Session {
    /// A bearer session.
    pub fn bearer(token: String, expires_at: Timestamp) -> Session {
        Session { token, token_type: TokenType::Bearer, expires_at }
    }
}

/// POST /api/v1/auth/token `{"api_key"}` — 200 `{token, token_type, expires_at}` in the
/// native envelope; 400; 401; 415; 429 too many failed logins.
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    tag = "native",
    request_body = LoginBody,
    responses(
        (status = 200, description = "A session JWT", body = NativeOk<Session>),
        (status = 400, description = "Malformed body", body = NativeError),
        (status = 401, description = "Not a usable key", body = NativeError),
        (status = 413, description = "Body over 16 KiB", body = NativeError),
        (status = 415, description = "Not JSON", body = NativeError),
        (status = 429, description = "Too many failed authentications", body = NativeError),
    )
)]
pub async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, Failure<Native>> {
    let (token, expires_at) = issue(&state, &req, &body.api_key)?;
    Ok(no_store(native_ok(Session::bearer(token, expires_at))))
}
