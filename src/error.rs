//! One error type for every family and the command line. [`ApiError`] says what went wrong
//! in terms a client can act on, and carries the facts a family needs to word it (which
//! operation was refused, which key was missing); each family's envelope renders it once
//! (`http::envelope`). Internal causes are logged here, once, with their detail, and reach
//! the client as a generic message: never SQL text, never a key.

use std::fmt;

use actix_web::http::{Method, StatusCode};
use uuid::Uuid;

use crate::config::MAX_PARSER_MESSAGE_CHARS;
use crate::domain::key_format;
use crate::domain::new_key::NewKeyError;
use crate::storage::StoreError;

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
        field: Option<Field>,
    },
    /// Occurs when a key tries to revoke or delete itself.
    OwnKey {
        /// Revoke or delete.
        act: Act,
        /// The key's UUID.
        key: Uuid,
    },
    /// Occurs when no credential, a malformed one, or one that is unknown, revoked, deleted
    /// or expired is presented.
    Unauthenticated(AuthFailure),
    /// Occurs when the caller is authenticated but may not do this.
    Forbidden(Denied),
    /// Occurs when the resource does not exist in the caller's scope (a key in another
    /// application's scope is reported exactly like one that does not exist).
    NotFound(Missing),
    /// Occurs when revoking, changing or rotating a key that was deleted.
    KeyDeleted,
    /// Occurs when changing or rotating a key that was revoked (revocation is final).
    KeyRevoked,
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
    /// Occurs in fleet mode when the shared store (PostgreSQL) cannot be reached for a write,
    /// or this node is not as fresh as the request requires.
    StoreUnavailable {
        /// Seconds until it may retry.
        retry_after: u64,
    },
    /// Occurs when a request's body has not arrived within the request deadline.
    RequestTimeout,
    /// Occurs when a connection is one past the cap on connections from its client address.
    TooManyConnections {
        /// Seconds until it may retry.
        retry_after: u64,
    },
    /// Occurs when something failed inside the server; the detail is in the log only.
    Internal,
}

/// A field a 400 is about: named by the parser that met it, or the key being acted on,
/// which each family names its own way (`id`, `keyId`, `api_key_id`, `value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A body field or path parameter, by its name in the request.
    Named(&'static str),
    /// The key the request acts on.
    TargetKey,
}

/// What a key may not do to itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Revoke.
    Revoke,
    /// Delete.
    Delete,
}

/// Which kind of authentication failed. Which check failed is never said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// The request's credential (a key or session JWT in its headers).
    Credential,
    /// The key offered to a login call.
    Login,
}

/// An operation that needs a managing key, so a family can say which one was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Any management call (the families that do not say which).
    Manage,
    /// Listing keys.
    ListKeys,
    /// Creating a key.
    CreateKey,
    /// Deleting one key.
    DeleteKey,
    /// Deleting several keys at once.
    DeleteKeys,
    /// Revoking a key.
    RevokeKey,
    /// Changing a key.
    UpdateKey,
    /// Rotating a key.
    RotateKey,
}

/// Why an authenticated caller was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No write on `/`: the key manages nothing.
    NotManager(Op),
    /// Not a root key (read_write on `/`, no expiry).
    NotRoot,
    /// Not a global key (applications are made by global keys only).
    NotGlobal,
    /// The new key's grants are not within the creator's.
    GrantsExceed,
    /// The new key's expiry is later than the creator's.
    ExpiryExceeds,
    /// The key acted on has grants or an expiry beyond the acting key's: a key acts only on
    /// keys it could have minted.
    Outranked(Op),
    /// No grant of the key covers the path it asked to read (`/metrics`).
    NoGrant,
}

/// What was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The key named (by id or UUID).
    Key,
    /// Some of the keys named by a bulk call: these.
    Keys(Vec<Uuid>),
    /// An active key with the value given.
    ActiveKey,
    /// The application named.
    Application,
    /// No route has this path.
    Route,
}

impl ApiError {
    /// A 400 `invalid_request` about one field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code: "invalid_request", message: message.into(), field: Some(Field::Named(field)) }
    }

    /// A 400 `invalid_request` about the request as a whole.
    pub fn invalid_body(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code: "invalid_request", message: message.into(), field: None }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::OwnKey { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::KeyDeleted | ApiError::KeyRevoked => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::TooManyConnections { .. } | ApiError::StoreUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::OwnKey { act: Act::Revoke, .. } => "cannot_revoke_current_key",
            ApiError::OwnKey { act: Act::Delete, .. } => "cannot_delete_current_key",
            ApiError::Unauthenticated(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::KeyDeleted => "key_deleted",
            ApiError::KeyRevoked => "key_revoked",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::HeadersTooLarge => "headers_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable => "service_unavailable",
            ApiError::StoreUnavailable { .. } => "store_unavailable",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::TooManyConnections { .. } => "too_many_connections",
            ApiError::Internal => "internal_error",
        }
    }

    /// The message for people, as the native family and the command line word it; other
    /// families reword some of these in their envelope.
    pub fn message(&self) -> String {
        let text = match self {
            ApiError::BadRequest { message, .. } => return message.clone(),
            ApiError::OwnKey { act: Act::Revoke, .. } => "The API key used for this request cannot revoke itself",
            ApiError::OwnKey { act: Act::Delete, .. } => "The API key used for this request cannot delete itself",
            ApiError::Unauthenticated(AuthFailure::Credential) => "API key required or invalid API key",
            ApiError::Unauthenticated(AuthFailure::Login) => "Invalid API key",
            ApiError::Forbidden(Denied::NotManager(_)) => "Managing API keys requires write access to /",
            ApiError::Forbidden(Denied::NotRoot) => "This call requires a root key (read_write on /, no expiry)",
            ApiError::Forbidden(Denied::NotGlobal) => "Only a global key can create applications",
            ApiError::Forbidden(Denied::GrantsExceed) => "Requested grants exceed the grants of the calling key",
            ApiError::Forbidden(Denied::ExpiryExceeds) => "Requested expiry is later than the calling key's expiry",
            ApiError::Forbidden(Denied::NoGrant) => "No grant of the calling key covers this path",
            ApiError::Forbidden(Denied::Outranked(_)) => {
                "The calling key cannot act on a key with grants or an expiry beyond its own"
            }
            ApiError::NotFound(Missing::Key) => "API key not found",
            ApiError::NotFound(Missing::Keys(missing)) => {
                let names: Vec<String> = missing.iter().map(Uuid::to_string).collect();
                return format!("API Key not found: {}", names.join(", "));
            }
            ApiError::NotFound(Missing::ActiveKey) => "No such active API key",
            ApiError::NotFound(Missing::Application) => "Application not found",
            ApiError::NotFound(Missing::Route) => "No such route",
            ApiError::KeyDeleted => "API key was deleted",
            ApiError::KeyRevoked => "API key was revoked",
            ApiError::MethodNotAllowed(_) => "Method not allowed on this route",
            ApiError::PayloadTooLarge => "Request body is too large",
            ApiError::HeadersTooLarge => "Request headers are too large",
            ApiError::UnsupportedMediaType => "Content-Type must be application/json",
            ApiError::RateLimited { .. } => "Too many failed requests; retry later",
            ApiError::Unavailable => "Server is overloaded; retry later",
            ApiError::StoreUnavailable { .. } => {
                "The shared key store is unreachable or this node is behind; retry later"
            }
            ApiError::RequestTimeout => "Request body was not received in time",
            ApiError::TooManyConnections { .. } => "Too many connections from this address; close one and retry",
            ApiError::Internal => "Internal server error",
        };
        text.to_owned()
    }

    /// Maps a serde_json failure on a request body. Parser messages can quote the client's
    /// input, which may hold a key, so they are redacted before use.
    pub fn from_serde(e: &serde_json::Error) -> ApiError {
        let message = if e.is_data() {
            format!("Invalid request body: {}", key_format::redact(&e.to_string()))
        } else {
            format!("Malformed JSON body: {}", key_format::redact(&e.to_string()))
        };
        ApiError::invalid_body(message.chars().take(MAX_PARSER_MESSAGE_CHARS).collect::<String>())
    }

    /// Logs an internal cause once and hides it from the client.
    pub fn internal(cause: &dyn fmt::Display) -> ApiError {
        log::error!("internal error: {cause}");
        ApiError::Internal
    }
}

impl From<crate::domain::limits::LimitError> for ApiError {
    fn from(e: crate::domain::limits::LimitError) -> ApiError {
        ApiError::invalid(e.field(), e.to_string())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Overloaded => {
                log::warn!("write queue full; shedding a write with 503");
                ApiError::Unavailable
            }
            StoreError::Unreachable(why) => {
                log::warn!("fleet write refused with 503: {why}");
                ApiError::StoreUnavailable { retry_after: crate::config::FLEET_RETRY_AFTER_SECS }
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<NewKeyError> for ApiError {
    fn from(e: NewKeyError) -> ApiError {
        let field = match e {
            NewKeyError::Grants(_) => "grants",
            NewKeyError::ExpiresAt(_) => "expires_at",
        };
        ApiError::invalid(field, e.to_string())
    }
}
