//! One error type for every family. [`ApiError`] says what went wrong in terms a client can
//! act on; each family renders it in its own envelope through a [`Family`] implementation,
//! and handlers return [`Failure<F>`] so the right envelope is chosen by the route's family.
//! Internal causes are logged once here, with their detail, and reach the client as a
//! generic message: never SQL text, never a key.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use actix_web::error::JsonPayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use serde_json::json;

use crate::db::DbError;
use crate::keys;
use crate::request_id;

/// What went wrong, as a client can act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Occurs when a request is malformed: bad JSON, a wrong or unknown field, an invalid
    /// value. `code` is `invalid_request` unless a more specific code helps the client.
    BadRequest {
        /// Stable snake_case code.
        code: &'static str,
        /// For people.
        message: String,
        /// The offending field or path parameter, when there is one.
        field: Option<&'static str>,
    },
    /// Occurs when no credential, a malformed one, or one that is unknown, revoked, deleted
    /// or expired is presented.
    Unauthorized(&'static str),
    /// Occurs when the caller is authenticated but its grants do not allow the action.
    Forbidden(&'static str),
    /// Occurs when the resource does not exist in the caller's scope (a key in another
    /// application's scope is reported exactly like one that does not exist).
    NotFound(Cow<'static, str>),
    /// Occurs when the resource's state forbids the action (e.g. revoking a deleted key).
    Conflict {
        /// Stable snake_case code.
        code: &'static str,
        /// For people.
        message: &'static str,
    },
    /// Occurs when the route exists but not for this method.
    MethodNotAllowed(&'static [Method]),
    /// Occurs when the body is over the size limit.
    PayloadTooLarge,
    /// Occurs when the request's headers together exceed the limit.
    HeadersTooLarge,
    /// Occurs when a JSON body is sent without a JSON content type.
    UnsupportedMediaType,
    /// Occurs when a client sends too many failing requests.
    RateLimited {
        /// Seconds until it may retry.
        retry_after: u64,
    },
    /// Occurs when the server is overloaded (write queue full) and sheds the request.
    Unavailable,
    /// Occurs when something failed inside the server; the detail is in the log only.
    Internal,
}

impl ApiError {
    /// A 400 `invalid_request` about one field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code: "invalid_request", message: message.into(), field: Some(field) }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } | ApiError::Conflict { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::HeadersTooLarge => "headers_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable => "service_unavailable",
            ApiError::Internal => "internal_error",
        }
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        match self {
            ApiError::BadRequest { message, .. } => message,
            ApiError::Unauthorized(m) | ApiError::Forbidden(m) => m,
            ApiError::NotFound(m) => m,
            ApiError::Conflict { message, .. } => message,
            ApiError::MethodNotAllowed(_) => "Method not allowed on this route",
            ApiError::PayloadTooLarge => "Request body is too large",
            ApiError::HeadersTooLarge => "Request headers are too large",
            ApiError::UnsupportedMediaType => "Content-Type must be application/json",
            ApiError::RateLimited { .. } => "Too many failed requests; retry later",
            ApiError::Unavailable => "Server is overloaded; retry later",
            ApiError::Internal => "Internal server error",
        }
    }

    /// Maps an actix JSON extractor failure. Parser messages can quote the client's input,
    /// which may hold a key, so they are redacted before use.
    pub fn from_json(err: &JsonPayloadError) -> ApiError {
        match err {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::PayloadTooLarge
            }
            JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
            JsonPayloadError::Deserialize(e) => ApiError::from_serde(e),
            _ => ApiError::BadRequest {
                code: "invalid_request",
                message: "Request body could not be read".to_owned(),
                field: None,
            },
        }
    }

    /// Maps a serde_json failure on a request body.
    pub fn from_serde(e: &serde_json::Error) -> ApiError {
        let message = if e.is_data() {
            format!("Invalid request body: {}", keys::redact(&e.to_string()))
        } else {
            format!("Malformed JSON body: {}", keys::redact(&e.to_string()))
        };
        let message: String = message.chars().take(300).collect();
        ApiError::BadRequest { code: "invalid_request", message, field: None }
    }

    /// Logs an internal cause once and hides it from the client.
    pub fn internal(cause: &dyn fmt::Display) -> ApiError {
        log::error!("internal error: {cause}");
        ApiError::Internal
    }

    /// Status line plus the headers some errors carry (Allow, Retry-After).
    fn response_head(&self) -> HttpResponseBuilder {
        let mut builder = HttpResponse::build(self.status());
        match self {
            ApiError::MethodNotAllowed(methods) => {
                let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    builder.insert_header((header::ALLOW, v));
                }
            }
            ApiError::RateLimited { retry_after } => {
                builder.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            _ => {}
        }
        builder
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for ApiError {}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            DbError::Overloaded => {
                log::warn!("write queue full; shedding a write with 503");
                ApiError::Unavailable
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        ApiError::internal(&e)
    }
}

/// One API shape's way of writing an error body.
pub trait Family: 'static {
    /// The body for `err`; status and headers are set by the caller.
    fn error_body(err: &ApiError) -> serde_json::Value;
}

/// An [`ApiError`] on its way out through family `F`'s envelope.
pub struct Failure<F> {
    /// The error.
    pub error: ApiError,
    family: PhantomData<F>,
}

impl<F> From<ApiError> for Failure<F> {
    fn from(error: ApiError) -> Failure<F> {
        Failure { error, family: PhantomData }
    }
}

impl<F> From<DbError> for Failure<F> {
    fn from(e: DbError) -> Failure<F> {
        ApiError::from(e).into()
    }
}

impl<F> fmt::Debug for Failure<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.error, f)
    }
}

impl<F> fmt::Display for Failure<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<F: Family> ResponseError for Failure<F> {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.error.response_head().json(F::error_body(&self.error))
    }
}

/// Renders `err` in the envelope of the family that owns `path`: for failures decided before
/// a route is matched (unknown routes, oversized headers).
pub fn render_for_path(path: &str, err: ApiError) -> HttpResponse {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/api-key") {
        Failure::<Shard>::from(err).error_response()
    } else if under("/api/v1/applications") {
        Failure::<Applications>::from(err).error_response()
    } else if under("/api/clients") {
        Failure::<Clients>::from(err).error_response()
    } else {
        Failure::<Native>::from(err).error_response()
    }
}

/// The native `/api/v1` family (seeds 000, 002):
/// `{"success": false, "error": {"code", "message"}, "request_id"}`.
pub struct Native;

impl Family for Native {
    fn error_body(err: &ApiError) -> serde_json::Value {
        json!({
            "success": false,
            "error": { "code": err.code(), "message": err.message() },
            "request_id": request_id::current(),
        })
    }
}

/// The shard-node `/api-key` family (seed 004), whose seed leaves the body open:
/// `{"error": code, "message", "request_id"}`.
pub struct Shard;

impl Family for Shard {
    fn error_body(err: &ApiError) -> serde_json::Value {
        json!({ "error": err.code(), "message": err.message(), "request_id": request_id::current() })
    }
}

/// The applications family (seed 001): `{"error": <reason>, "message", "code": <status>}`,
/// with `details: [{field, message}]` on 400. Messages for 400/401/403/404 are the seed's
/// own; for a 400 the specific reason goes in `details`.
pub struct Applications;

impl Family for Applications {
    fn error_body(err: &ApiError) -> serde_json::Value {
        let status = err.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        let message = match status.as_u16() {
            400 => "The request contains invalid parameters or malformed data",
            401 => "Authentication required. Please provide a valid API token",
            403 => "You don't have permission to access this resource",
            404 => "The requested resource was not found",
            _ => err.message(),
        };
        let mut body = json!({ "error": reason, "message": message, "code": status.as_u16() });
        if let ApiError::BadRequest { field, message, .. } = err {
            body["details"] = json!([{ "field": field.unwrap_or("body"), "message": message }]);
        }
        body
    }
}

/// The clients family (seed 003): `{"status": <status>, "message", "data": null}`. A failed
/// bearer credential reads "Invalid JWT token", as in the seed; handlers set the other
/// messages (the seed's exact texts for the delete call).
pub struct Clients;

impl Family for Clients {
    fn error_body(err: &ApiError) -> serde_json::Value {
        let status = err.status().as_u16();
        let message = match err {
            ApiError::Unauthorized(m) if *m == crate::auth::UNAUTHORIZED => "Invalid JWT token",
            other => other.message(),
        };
        json!({ "status": status, "message": message, "data": null })
    }
}

/// Schemas of the error bodies above, for the OpenAPI document (`api::openapi`). They are
/// never serialised: each mirrors what one [`Family::error_body`] renders, and
/// `tests/openapi.rs` checks rendered bodies against them.
pub mod schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::ToSchema;

    /// The native family's error: `{"success": false, "error": {"code", "message"}, "request_id"}`.
    #[derive(ToSchema)]
    #[allow(dead_code)] // schema only
    pub struct NativeError {
        /// Always false.
        #[schema(schema_with = always_false)]
        success: bool,
        /// What went wrong.
        error: NativeErrorDetail,
        /// The `x-request-id` of this request.
        request_id: String,
    }

    /// `error` of a native error body.
    #[derive(ToSchema)]
    #[allow(dead_code)] // schema only
    pub struct NativeErrorDetail {
        /// Stable snake_case code (`invalid_request`, `unauthorized`, `forbidden`, `not_found`, ...).
        code: String,
        /// For people.
        message: String,
    }

    /// The shard-node family's error: `{"error": code, "message", "request_id"}`.
    #[derive(ToSchema)]
    #[allow(dead_code)] // schema only
    pub struct ShardError {
        /// Stable snake_case code, as in the native family.
        error: String,
        /// For people.
        message: String,
        /// The `x-request-id` of this request.
        request_id: String,
    }

    /// The applications family's error: `{"error": <reason>, "message", "code": <status>}`,
    /// with `details` on 400 only.
    #[derive(ToSchema)]
    #[allow(dead_code)] // schema only
    pub struct ApplicationsError {
        /// The status's reason phrase, e.g. `Bad Request`.
        error: String,
        /// For people.
        message: String,
        /// The HTTP status.
        code: u16,
        /// On 400: which field was wrong, and why. Absent otherwise.
        #[schema(nullable = false)]
        details: Option<Vec<FieldError>>,
    }

    /// One entry of an applications 400's `details`.
    #[derive(ToSchema)]
    #[allow(dead_code)] // schema only
    pub struct FieldError {
        /// The field or path parameter (`body` when none is named).
        field: String,
        /// Why it was refused.
        message: String,
    }

    /// The clients family's error: `{"status": <status>, "message", "data": null}`.
    #[derive(ToSchema)]
    #[allow(dead_code)] // schema only
    pub struct ClientsError {
        /// The HTTP status.
        status: u16,
        /// For people.
        message: String,
        /// Always null.
        #[schema(schema_with = null)]
        data: (),
    }

    fn always_false() -> utoipa::openapi::schema::Object {
        ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([false])).build()
    }

    fn null() -> utoipa::openapi::schema::Object {
        ObjectBuilder::new().schema_type(Type::Null).build()
    }
}
