//! Each family's error envelope, in one place: how an [`ApiError`] is written out for the
//! native, shard-node, applications and clients families, which family owns a path (for
//! failures met before a route is matched), and the OpenAPI mirrors of the four bodies.
//! A family's wording differs from the native one only here; handlers never rewrite an
//! error to fit their family.

use std::fmt;
use std::marker::PhantomData;

use actix_web::error::JsonPayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use serde_json::json;

use crate::error::{ApiError, AuthFailure, Denied, Field, Missing, Op};
use crate::http::request_id;
use crate::storage::StoreError;

/// One API shape's way of writing an error.
pub trait Family: 'static {
    /// The status `err` is answered with.
    fn status(err: &ApiError) -> StatusCode {
        err.status()
    }

    /// The body for `err`.
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

impl<F> From<StoreError> for Failure<F> {
    fn from(e: StoreError) -> Failure<F> {
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
        F::status(&self.error)
    }

    fn error_response(&self) -> HttpResponse {
        response_head(&self.error, F::status(&self.error)).json(F::error_body(&self.error))
    }
}

/// Status line plus the headers some errors carry (Allow, Retry-After).
fn response_head(err: &ApiError, status: StatusCode) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    match err {
        ApiError::MethodNotAllowed(methods) => {
            let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            if let Ok(v) = HeaderValue::from_str(&allow) {
                builder.insert_header((header::ALLOW, v));
            }
        }
        ApiError::RateLimited { retry_after }
        | ApiError::TooManyConnections { retry_after }
        | ApiError::StoreUnavailable { retry_after } => {
            builder.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        _ => {}
    }
    builder
}

/// Maps an actix JSON extractor failure (parser messages are redacted by
/// [`ApiError::from_serde`]).
pub fn from_json_error(err: &JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => ApiError::PayloadTooLarge,
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) => ApiError::from_serde(e),
        _ => ApiError::invalid_body("Request body could not be read"),
    }
}

/// One of the four families, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyName {
    /// `/api/v1…` (and everything no other family owns).
    Native,
    /// `/api-key…`.
    Shard,
    /// `/api/v1/applications…`.
    Applications,
    /// `/api/clients…`.
    Clients,
}

impl FamilyName {
    /// The family that owns `path`: the one choice both unmatched requests and the OpenAPI
    /// document make.
    pub fn of_path(path: &str) -> FamilyName {
        let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
        if under(crate::http::SHARD) {
            FamilyName::Shard
        } else if under(crate::http::APPLICATIONS) {
            FamilyName::Applications
        } else if under(crate::http::CLIENTS) {
            FamilyName::Clients
        } else {
            FamilyName::Native
        }
    }

    /// The name of its error body's schema in the OpenAPI document ([`schema`]).
    pub fn error_schema(self) -> &'static str {
        match self {
            FamilyName::Native => "NativeError",
            FamilyName::Shard => "ShardError",
            FamilyName::Applications => "ApplicationsError",
            FamilyName::Clients => "ClientsError",
        }
    }
}

/// Renders `err` in the envelope of the family that owns `path`: for failures decided before
/// a route is matched (unknown routes, oversized headers).
pub fn render_for_path(path: &str, err: ApiError) -> HttpResponse {
    match FamilyName::of_path(path) {
        FamilyName::Shard => Failure::<Shard>::from(err).error_response(),
        FamilyName::Applications => Failure::<Applications>::from(err).error_response(),
        FamilyName::Clients => Failure::<Clients>::from(err).error_response(),
        FamilyName::Native => Failure::<Native>::from(err).error_response(),
    }
}

/// The native `/api/v1` family: `{"success": false, "error": {"code", "message"}, "request_id"}`,
/// with the messages of [`ApiError::message`].
pub struct Native;

impl Family for Native {
    fn error_body(err: &ApiError) -> serde_json::Value {
        json!({
            "success": false,
            "error": { "code": err.code(), "message": err.message() },
            "request_id": request_id::current_request_id(),
        })
    }
}

/// The shard-node `/api-key` family, whose contract leaves the body open:
/// `{"error": code, "message", "request_id"}`.
pub struct Shard;

impl Family for Shard {
    fn error_body(err: &ApiError) -> serde_json::Value {
        json!({ "error": err.code(), "message": err.message(), "request_id": request_id::current_request_id() })
    }
}

/// The applications family: `{"error": <reason>, "message", "code": <status>}`, with
/// `details: [{field, message}]` on 400. Messages for 400/401/403/404 are the family's own
/// fixed texts; for a 400 the specific reason goes in `details`. The family has no 409: a
/// deleted key no longer exists for it, so revoking one is 404.
pub struct Applications;

impl Family for Applications {
    fn status(err: &ApiError) -> StatusCode {
        match err {
            ApiError::KeyDeleted => StatusCode::NOT_FOUND,
            other => other.status(),
        }
    }

    fn error_body(err: &ApiError) -> serde_json::Value {
        let status = Self::status(err);
        let reason = status.canonical_reason().unwrap_or("Error");
        let message = match status.as_u16() {
            400 => "The request contains invalid parameters or malformed data".to_owned(),
            401 => "Authentication required. Please provide a valid API token".to_owned(),
            403 => "You don't have permission to access this resource".to_owned(),
            404 => "The requested resource was not found".to_owned(),
            _ => err.message(),
        };
        let mut body = json!({ "error": reason, "message": message, "code": status.as_u16() });
        let field = match err {
            ApiError::BadRequest { field, .. } => Some(*field),
            ApiError::OwnKey { .. } => Some(Some(Field::TargetKey)),
            _ => None,
        };
        if let Some(field) = field {
            let name = match field {
                Some(Field::Named(name)) => name,
                Some(Field::TargetKey) => "keyId",
                None => "body",
            };
            body["details"] = json!([{ "field": name, "message": err.message() }]);
        }
        body
    }
}

/// The clients family: `{"status": <status>, "message", "data": null}`. A failed bearer
/// credential reads "Invalid JWT token"; a refused management call names the operation; a
/// key that would delete itself is named by UUID.
pub struct Clients;

impl Family for Clients {
    fn error_body(err: &ApiError) -> serde_json::Value {
        let message = match err {
            ApiError::Unauthenticated(AuthFailure::Credential) => "Invalid JWT token".to_owned(),
            ApiError::Forbidden(Denied::NotManager(op) | Denied::Outranked(op)) => {
                format!("Insufficient permissions to {}", operation(*op))
            }
            ApiError::NotFound(Missing::Key) => "API Key not found".to_owned(),
            ApiError::OwnKey { key, .. } => format!("{}: {key}", err.message()),
            other => other.message(),
        };
        json!({ "status": err.status().as_u16(), "message": message, "data": null })
    }
}

/// How the clients family names an operation in a 403.
fn operation(op: Op) -> &'static str {
    match op {
        Op::Manage => "manage API keys",
        Op::ListKeys => "list API keys",
        Op::CreateKey => "generate API keys",
        Op::DeleteKey => "delete this API key",
        Op::DeleteKeys => "delete these API keys",
        Op::RevokeKey => "revoke this API key",
        Op::UpdateKey => "change this API key",
        Op::RotateKey => "rotate this API key",
    }
}

/// Schemas of the error bodies above, for the OpenAPI document (`http::openapi`). They are
/// never serialised: each mirrors what one [`Family::error_body`] renders, and the
/// integration tests check rendered bodies against them.
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
