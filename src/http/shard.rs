//! The shard-node family under `/api-key`: create with a permissions bitmask and one path,
//! delete by the key's value. The family's contract leaves response bodies open; ours are
//! documented in the README. Errors are `{"error": code, "message", "request_id"}`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::bodies::no_store;
use super::envelope::schema::ShardError;
use super::envelope::{Failure, Shard};
use super::extract::{Manager, RootManager};
use crate::config::{MAX_BODY_BYTES, MAX_TITLE_CHARS};
use crate::domain::grants::{Access, GrantPath, Grants};
use crate::domain::key_format::{self as keys, ApiKey};
use crate::domain::model::{KeyId, Status};
use crate::domain::new_key::{NewKey, Title};
use crate::domain::timestamp::Timestamp;
use crate::error::{ApiError, Missing};
use crate::service::AppState;

type Reply = Result<HttpResponse, Failure<Shard>>;

/// `expiration_date` meaning "never" (Go's zero `time.Time`).
const NEVER: &str = "0001-01-01T00:00:00Z";

/// Body of POST /api-key; all three fields are required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// 1 read, 2 write, 3 both.
    #[schema(schema_with = permissions_schema)]
    permissions: u8,
    /// The one path the key covers (and everything below it).
    #[schema(schema_with = crate::domain::grants::path_schema)]
    path: String,
    /// RFC 3339, in the future; `0001-01-01T00:00:00Z` means never.
    #[schema(format = DateTime)]
    expiration_date: String,
}

/// The shard-node access bitmask.
fn permissions_schema() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some([1, 2, 3])).build()
}

/// Body of POST /api-key's answer. `value` is the plaintext key, shown this once.
#[derive(Serialize, ToSchema)]
pub struct ShardKey {
    /// The plaintext key. Shown only here.
    value: String,
    id: KeyId,
    uuid: Uuid,
    /// The normalised path.
    path: String,
    /// 1 read, 2 write, 3 both.
    #[schema(schema_with = permissions_schema)]
    permissions: u8,
    /// RFC 3339; `0001-01-01T00:00:00Z` means never.
    #[schema(format = DateTime)]
    expiration_date: String,
    created_at: Timestamp,
}

/// POST /api-key — needs a root key (read_write on `/`, no expiry). 200
/// `{value, id, uuid, path, permissions, expiration_date, created_at}`; 400; 401; 403; 413; 415;
/// 429; 503.
#[utoipa::path(
    post,
    path = "/api-key",
    tag = "shard",
    request_body = CreateBody,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Created; the plaintext is in `value`", body = ShardKey),
        (status = 400, description = "Bad body", body = ShardError),
        (status = 403, description = "Not a root key, or expiry beyond the caller's", body = ShardError),
    )
)]
pub async fn create_key(
    state: web::Data<AppState>,
    RootManager(manager, _): RootManager<Shard>,
    body: web::Json<CreateBody>,
) -> Reply {
    let access = Access::from_bits(body.permissions)
        .ok_or_else(|| ApiError::invalid("permissions", "permissions must be 1 (read), 2 (write) or 3 (read+write)"))?;
    let path = GrantPath::parse(&body.path).map_err(|e| ApiError::invalid("path", format!("Invalid path: {e}")))?;
    let expiry = Timestamp::parse_rfc3339(&body.expiration_date)
        .map_err(|e| ApiError::invalid("expiration_date", format!("Invalid expiration_date: {e}")))?;
    let never = Timestamp::parse_rfc3339(NEVER).map_err(|e| ApiError::internal(&e))?;
    let expires_at = (expiry != never).then_some(expiry);
    let title = shard_title(&path)?;
    let new = NewKey::with(title, Grants::single(path.clone(), access), expires_at);
    let made = state.manage(&manager).create_key(new).await?;
    let record = made.record;
    Ok(no_store(HttpResponse::Ok().json(ShardKey {
        value: made.key.expose().to_owned(),
        id: record.id,
        uuid: record.uuid,
        path: path.as_str().to_owned(),
        permissions: access.bits(),
        expiration_date: record.expires_at.map_or_else(|| NEVER.to_owned(), |t| t.to_string()),
        created_at: record.created_at,
    })))
}

/// The title of a key made here: `shard key <path>`. Paths may be 1,024 bytes and titles
/// [`MAX_TITLE_CHARS`] characters, so a long one is cut on a character boundary and ends in
/// an ellipsis (the full path stays in the key's grant).
fn shard_title(path: &GrantPath) -> Result<Title, ApiError> {
    let full = format!("shard key {path}");
    let text = if full.chars().count() <= MAX_TITLE_CHARS {
        full
    } else {
        let mut cut: String = full.chars().take(MAX_TITLE_CHARS - 1).collect();
        cut.push('…');
        cut
    };
    Title::parse(&text).map_err(|e| ApiError::internal(&e))
}

/// `?value=` of DELETE /api-key.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ValueQuery {
    /// The key to delete (carries a secret in the URL: the access log never records queries).
    #[param(schema_with = key_value_schema)]
    value: Option<String>,
}

/// JSON body of DELETE /api-key. When a body is sent, `value` is in it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueBody {
    /// The key to delete.
    #[schema(schema_with = key_value_schema)]
    value: String,
}

/// A key value as the document states it: its shape ([`keys::KEY_PATTERN`]).
fn key_value_schema() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(keys::KEY_PATTERN)).build()
}

/// Body of DELETE /api-key's answer.
#[derive(Serialize, ToSchema)]
pub struct DeletedKey {
    id: KeyId,
    uuid: Uuid,
    /// Always `deleted`.
    status: Status,
    deleted_at: Option<Timestamp>,
}

/// DELETE /api-key — needs write on `/`. The key to delete comes as `{"value"}` or
/// `?value=` (the shard nodes' own clients send the query and no body); both given and different
/// is 400. 200 `{id, uuid, status: "deleted", deleted_at}`; 400 missing or empty value, one
/// not shaped like a key (`^sk-[0-9A-Za-z]{49}$`), a body without `value`, or the caller's
/// own key; 401; 403; 404 no such active key in the caller's scope (also a key-shaped value
/// whose checksum fails); 413; 429; 503.
#[utoipa::path(
    delete,
    path = "/api-key",
    tag = "shard",
    params(ValueQuery),
    request_body(content = ValueBody, description = "Optional: the value may come as `?value=` instead"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Deleted", body = DeletedKey),
        (status = 400, description = "Missing or empty value, or not shaped like a key; query and body differ; the caller's own key", body = ShardError),
        (status = 403, description = "No write on `/`", body = ShardError),
        (status = 404, description = "No such active key in the caller's scope (also a key-shaped value whose checksum fails)", body = ShardError),
    )
)]
pub async fn delete_key_by_value(
    state: web::Data<AppState>,
    Manager(manager, _): Manager<Shard>,
    query: web::Query<ValueQuery>,
    payload: web::Payload,
) -> Reply {
    let body = read_small_body(payload).await?;
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice::<ValueBody>(&body).map_err(|e| ApiError::from_serde(&e))?.value)
    };
    let value = match (query.into_inner().value, from_body) {
        (Some(q), Some(b)) if q != b => {
            return Err(ApiError::invalid("value", "value given in both query and body, and they differ").into())
        }
        (q, b) => q.or(b),
    };
    let value = value.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::invalid("value", "value is required"))?;
    if !keys::has_key_shape(&value) {
        return Err(ApiError::invalid("value", "value is not a well-formed API key").into());
    }
    // The right shape with a failing checksum is a mistyped key: it names no key, exactly
    // like an unknown one (and like the verify API's NOT_FOUND for it).
    let key = ApiKey::parse(&value).map_err(|_| ApiError::NotFound(Missing::ActiveKey))?;
    let record = state.manage(&manager).delete_key_by_value(key).await?;
    Ok(HttpResponse::Ok().json(DeletedKey {
        id: record.id,
        uuid: record.uuid,
        status: Status::Deleted,
        deleted_at: record.deleted_at,
    }))
}

/// Reads an optional body of at most [`MAX_BODY_BYTES`]; more is 413.
async fn read_small_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::invalid("body", "Request body could not be read")),
        Err(_limit_exceeded) => Err(ApiError::PayloadTooLarge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MAX_PATH_LEN;

    #[test]
    fn titles_fit_the_title_limit_whatever_the_path() {
        let short = GrantPath::parse("/uploads").unwrap();
        assert_eq!(shard_title(&short).unwrap().as_str(), "shard key /uploads");
        let fits = GrantPath::parse(&format!("/{}", "a".repeat(MAX_TITLE_CHARS - 11))).unwrap();
        assert_eq!(
            shard_title(&fits).unwrap().as_str(),
            format!("shard key {fits}"),
            "exactly at the limit: kept whole"
        );
        // Two- and three-byte characters, so a byte-based cut would split one.
        for unit in ["a", "é", "€", "a€é"] {
            let body = unit.repeat(MAX_PATH_LEN);
            let mut end = MAX_PATH_LEN - 1;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            let path = GrantPath::parse(&format!("/{}", &body[..end])).unwrap();
            let title = shard_title(&path).unwrap().as_str().to_owned();
            assert_eq!(title.chars().count(), MAX_TITLE_CHARS, "{unit}");
            let kept = title.strip_suffix('…').expect("ends in an ellipsis");
            assert!(format!("shard key {path}").starts_with(kept), "{unit}");
            assert_eq!(Title::parse(&title).unwrap().as_str(), title, "a valid title as it stands");
        }
    }
}
