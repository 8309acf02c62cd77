//! Logging in: a key exchanged for a session JWT, served in two envelopes
//! (`POST /api/clients/login` in `clients`, `POST /api/v1/auth/token` here).

use actix_web::{web, HttpRequest, HttpResponse};

use super::body::{native_ok, no_store};
use super::clients::LoginBody;
use crate::auth::over_failure_budget;
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

/// POST /api/v1/auth/token `{"api_key"}` — 200 `{token, token_type, expires_at}` in the
/// native envelope; 400; 401.
pub async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, Failure<Native>> {
    let (token, expires_at) = issue(&state, &req, &body.api_key)?;
    Ok(no_store(native_ok(serde_json::json!({ "token": token, "token_type": "Bearer", "expires_at": expires_at }))))
}
