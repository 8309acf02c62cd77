//! Request and success bodies shared by the families: the JSON new-key body and its parser,
//! the page query, logins, how a key's metadata is shown, the native success envelope, and
//! the schemas whose limits come from `config`. A key's hash never appears here, and its
//! plaintext appears only in the create responses, which also send `Cache-Control: no-store`.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Ref, SchemaFormat, SchemaType, Type};
use utoipa::openapi::KnownFormat;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::config::{
    DEFAULT_PAGE_SIZE, MAX_ALLOWED_IPS, MAX_BULK, MAX_GRACE_SECONDS, MAX_GRANTS, MAX_OWNER_CHARS, MAX_PAGE_SIZE,
    MAX_TITLE_CHARS,
};
use crate::domain::grants::GrantBody;
use crate::domain::limits::{Credits, RateLimit};
use crate::domain::model::{Action, KeyId, KeyRecord, Meta, Status};
use crate::domain::new_key::{NewKey, Owner, Title};
use crate::domain::timestamp::{parse_duration, Timestamp};
use crate::error::ApiError;
use crate::http::request_id::current_request_id;
use crate::service::manage::{KeyQuery, PageRequest};
use crate::storage::AuditEvent;

/// A key's metadata, as every list and get shows it.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    id: KeyId,
    uuid: Uuid,
    title: String,
    prefix: String,
    grants: Vec<GrantBody>,
    status: Status,
    expired: bool,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
    deleted_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
    created_by: Option<KeyId>,
    /// False while disabled.
    enabled: bool,
    /// Who the key belongs to, if set.
    owner: Option<String>,
    /// Its metadata, exactly as given, if set.
    #[schema(value_type = Option<Object>)]
    meta: Option<Meta>,
    /// The key this one replaced by rotation.
    rotated_from: Option<KeyId>,
    /// The key that replaced this one by rotation.
    rotated_to: Option<KeyId>,
    #[serde(flatten)]
    limits: LimitsView,
}

impl KeyView {
    /// The view of `k` at time `now` (which decides `expired`).
    pub fn new(k: &KeyRecord, now: Timestamp) -> KeyView {
        KeyView {
            id: k.id,
            uuid: k.uuid,
            title: k.title.clone(),
            prefix: k.prefix.clone(),
            grants: k.grants.to_bodies(),
            status: k.status,
            expired: k.is_expired(now),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            deleted_at: k.deleted_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            created_by: k.created_by,
            enabled: k.enabled,
            owner: k.owner.clone(),
            meta: k.meta.clone(),
            rotated_from: k.rotated_from,
            rotated_to: k.rotated_to,
            limits: LimitsView::new(k),
        }
    }
}

/// A key's metadata as the UUID-addressed families (applications, clients) show it: `id` is
/// the UUID, `name` the title.
#[derive(Serialize, ToSchema)]
pub struct UuidKeyView {
    id: Uuid,
    name: String,
    prefix: String,
    grants: Vec<GrantBody>,
    status: Status,
    expired: bool,
    application_id: Option<Uuid>,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
    deleted_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
    /// False while disabled.
    enabled: bool,
    /// Who the key belongs to, if set.
    owner: Option<String>,
    /// Its metadata, exactly as given, if set.
    #[schema(value_type = Option<Object>)]
    meta: Option<Meta>,
    #[serde(flatten)]
    limits: LimitsView,
}

impl UuidKeyView {
    /// The view of `k` at time `now`.
    pub fn new(k: &KeyRecord, now: Timestamp) -> UuidKeyView {
        UuidKeyView {
            id: k.uuid,
            name: k.title.clone(),
            prefix: k.prefix.clone(),
            grants: k.grants.to_bodies(),
            status: k.status,
            expired: k.is_expired(now),
            application_id: k.application_uuid,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            deleted_at: k.deleted_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            enabled: k.enabled,
            owner: k.owner.clone(),
            meta: k.meta.clone(),
            limits: LimitsView::new(k),
        }
    }
}

/// A key's limits, as every view of its metadata shows them (null: none).
#[derive(Serialize, ToSchema)]
pub struct LimitsView {
    /// At most `limit` accepted verifications in any `window_seconds`.
    rate_limit: Option<RateLimit>,
    /// Its credits: `remaining` counts what the serving node can still spend.
    credits: Option<Credits>,
    /// The networks it may be used from.
    allowed_ips: Option<Vec<String>>,
}

impl LimitsView {
    /// The limits of `k`.
    pub fn new(k: &KeyRecord) -> LimitsView {
        LimitsView {
            rate_limit: k.rate_limit,
            credits: k.credits,
            allowed_ips: k.allowed_ips.as_ref().map(|l| l.iter().map(ToString::to_string).collect()),
        }
    }
}

/// Body of the UUID families' key creation (`POST /api/v1/applications/{id}/api-keys`,
/// `POST /api/clients/api-keys`): every field optional.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// The key's label; default `api key`.
    #[schema(schema_with = optional_title_schema)]
    name: Option<serde_json::Value>,
    /// Within the caller's grants; default the caller's grants.
    #[schema(schema_with = grants_schema)]
    grants: Option<Vec<GrantBody>>,
    /// RFC 3339, in the future and not after the caller's own expiry; default the caller's.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
}

/// The keys of one page of a UUID family's list, and the cursor for the next.
#[derive(Serialize, ToSchema)]
pub struct UuidKeyPage {
    /// Newest first.
    pub api_keys: Vec<UuidKeyView>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A key just made by a UUID family: its metadata and, this once, its plaintext.
#[derive(Serialize, ToSchema)]
pub struct NewUuidKey {
    /// The metadata.
    #[serde(flatten)]
    pub view: UuidKeyView,
    /// The plaintext key. Shown only here.
    pub api_key: String,
}

/// What `Title::parse` accepts: 1 to 200 characters, no control characters, not blank.
/// (The length counts the trimmed text; the document's `maxLength` counts it all.)
pub fn title_schema() -> utoipa::openapi::schema::Object {
    title_builder(SchemaType::Type(Type::String)).build()
}

/// [`title_schema`], or null (the default applies).
pub fn optional_title_schema() -> utoipa::openapi::schema::Object {
    title_builder(SchemaType::from_iter([Type::String, Type::Null])).build()
}

fn title_builder(schema_type: SchemaType) -> ObjectBuilder {
    const NOT_CONTROL: &str = r"[^\x00-\x1F\x7F-\x9F]";
    ObjectBuilder::new()
        .schema_type(schema_type)
        .min_length(Some(1))
        .max_length(Some(MAX_TITLE_CHARS))
        .pattern(Some(format!(r"^{NOT_CONTROL}*[^\s\x00-\x1F\x7F-\x9F]{NOT_CONTROL}*$")))
}

impl NewKeyBody {
    /// The key asked for: title `name` (default "api key"), grants and expiry.
    pub fn parse(self) -> Result<NewKey, ApiError> {
        let title = match &self.name {
            None => Title::parse("api key").map_err(|e| ApiError::internal(&e))?,
            Some(v) => {
                Title::from_json(Some(v)).map_err(|e| ApiError::invalid("name", format!("Invalid name: {e}")))?
            }
        };
        Ok(NewKey::parse(title, self.grants.as_deref(), self.expires_at.as_deref())?)
    }
}

/// A grant list as the create bodies take it: 1 to [`MAX_GRANTS`], or null for the
/// creator's own.
pub fn grants_schema() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(Ref::from_schema_name("GrantBody"))
        .description(Some("Within the caller's grants; default the caller's grants."))
        .max_items(Some(MAX_GRANTS))
        .min_items(Some(1))
        .build()
}

/// The ids of a bulk delete: 1 to [`MAX_BULK`] UUIDs.
pub fn bulk_ids_schema() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        )
        .description(Some("The keys to delete (repeats count once)."))
        .max_items(Some(MAX_BULK))
        .min_items(Some(1))
        .build()
}

/// A key's owner, or null: 1 to [`MAX_OWNER_CHARS`] characters.
pub fn owner_schema() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(1))
        .max_length(Some(MAX_OWNER_CHARS))
        .description(Some("Who the key belongs to in the caller's system (a user or customer id)."))
        .build()
}

/// A rotation's grace, in seconds: 0 to [`MAX_GRACE_SECONDS`] (30 days), or null for 0.
pub fn grace_schema() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(MAX_GRACE_SECONDS))
        .description(Some("How long the old key keeps working, in seconds (never past its own expiry)."))
        .build()
}

/// An IP allowlist: 1 to [`MAX_ALLOWED_IPS`] IPv4 or IPv6 addresses or CIDRs, or null.
pub fn allowed_ips_schema() -> utoipa::openapi::schema::Array {
    let network = utoipa::openapi::schema::AnyOfBuilder::new()
        .item(ip_format(KnownFormat::Ipv4))
        .item(ip_format(KnownFormat::Ipv6))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(format!("^{IPV4}/{IPV4_PREFIX}$"))))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(format!("^{IPV6}/{IPV6_PREFIX}$"))))
        .description(Some("An IPv4 or IPv6 address, or a CIDR such as 203.0.113.0/24 or 2001:db8::/32."));
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(network)
        .description(Some("The networks the key may be used from; null: anywhere."))
        .max_items(Some(MAX_ALLOWED_IPS))
        .min_items(Some(1))
        .build()
}

/// An IPv4 or IPv6 address, or null (verify's `ip`).
pub fn ip_schema() -> utoipa::openapi::schema::Schema {
    let any_of = utoipa::openapi::schema::AnyOfBuilder::new()
        .item(ip_format(KnownFormat::Ipv4))
        .item(ip_format(KnownFormat::Ipv6))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some("The address the key is used from; a key with an IP allowlist is refused without it."));
    utoipa::openapi::schema::Schema::AnyOf(any_of.build())
}

fn ip_format(format: KnownFormat) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(format)))
}

// What `Cidr::parse` takes, as patterns (no leading zeros in IPv4, no embedded IPv4 in IPv6).
const IPV4: &str = r"((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const IPV4_PREFIX: &str = "(3[0-2]|[12]?[0-9])";
const IPV6: &str = concat!(
    "(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|",
    "([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}|",
    "([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}|",
    "[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}|:((:[0-9a-fA-F]{1,4}){1,7}|:))"
);
const IPV6_PREFIX: &str = "(12[0-8]|1[01][0-9]|[1-9]?[0-9])";

/// A page size: 1 to [`MAX_PAGE_SIZE`].
pub fn page_limit_schema() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .maximum(Some(MAX_PAGE_SIZE))
        .minimum(Some(1))
        .build()
}

/// `?limit=&cursor=` of every list call.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size: its default and range are written into the document by `openapi::PageSize`.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]*[1-9][0-9]*$", max_length = 18)]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// Validated page size (1..=[`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`]) and cursor
    /// (a key id).
    pub fn parse(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(ApiError::invalid("limit", format!("limit must be between 1 and {MAX_PAGE_SIZE}")));
        }
        let cursor = self
            .cursor
            .as_deref()
            .map(|c| KeyId::parse(c).map(|id| id.0).ok_or_else(|| ApiError::invalid("cursor", "Invalid cursor")))
            .transpose()?;
        Ok(PageRequest { limit, cursor })
    }
}

/// A key listing's filters as a query string gives them (the native family's `GET
/// /api/v1/keys` and the admin page's key list): parsed here once for both.
#[derive(Debug, Default)]
pub struct KeyFilters {
    /// `active`, `revoked` or `deleted`.
    pub status: Option<String>,
    /// A duration (`7d`, `12h`, ...).
    pub expiring_within: Option<String>,
    /// A duration.
    pub unused_for: Option<String>,
    /// An exact owner.
    pub owner: Option<String>,
    /// Text in the title (any case) or display prefix; empty means none.
    pub q: Option<String>,
}

impl KeyFilters {
    /// The listing these filters ask for (400 naming the bad field otherwise).
    pub fn parse(self) -> Result<KeyQuery, ApiError> {
        let status = self
            .status
            .as_deref()
            .map(|s| {
                Status::parse(s).ok_or_else(|| ApiError::invalid("status", "status must be active, revoked or deleted"))
            })
            .transpose()?;
        let duration = |field: &'static str, text: Option<String>| {
            text.map(|t| parse_duration(&t).map_err(|e| ApiError::invalid(field, format!("Invalid {field}: {e}"))))
                .transpose()
        };
        Ok(KeyQuery {
            application: None,
            status,
            owner: self.owner,
            text: self.q.filter(|t| !t.is_empty()),
            expiring_within_ms: duration("expiring_within", self.expiring_within)?,
            unused_for_ms: duration("unused_for", self.unused_for)?,
        })
    }
}

/// Reads a field that may be absent (`None`), `null` (`Some(None)`) or a value
/// (`Some(Some(v))`): with `#[serde(default)]`, how an update tells "leave it" from "clear it".
pub fn present<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    T::deserialize(d).map(Some)
}

/// Parses an owner field.
pub fn parse_owner(raw: &str) -> Result<Owner, ApiError> {
    Owner::parse(raw).map_err(|e| ApiError::invalid("owner", e.to_string()))
}

/// Parses a metadata field (already JSON; its text is kept exactly).
pub fn parse_meta(raw: &serde_json::value::RawValue) -> Result<Meta, ApiError> {
    Meta::parse(raw.get()).map_err(|e| ApiError::invalid("meta", e.to_string()))
}

/// One audit row, as `GET /api/v1/audit` and `apikeyd audit --json` show it.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    /// The row's id: pass the last one back as `cursor` for older rows.
    id: i64,
    /// When.
    at: Timestamp,
    /// What happened.
    action: Action,
    /// The key it happened to (null for an application's creation).
    key_id: Option<KeyId>,
    /// The application concerned (the key's, or the one made).
    application_id: Option<Uuid>,
    /// Who did it (null: bootstrap or the command line).
    actor_key_id: Option<KeyId>,
    /// Under which request (null outside HTTP).
    request_id: Option<String>,
    /// What changed: each field's `{"from", "to"}` (never a hash or a plaintext).
    #[schema(value_type = Option<Object>)]
    changes: Option<serde_json::Value>,
}

impl AuditEventView {
    /// The view of `e`.
    pub fn new(e: &AuditEvent) -> AuditEventView {
        AuditEventView {
            id: e.id,
            at: e.at,
            action: e.action,
            key_id: e.key_id,
            application_id: e.application_uuid,
            actor_key_id: e.actor_key_id,
            request_id: e.request_id.clone(),
            changes: e.changes.clone(),
        }
    }
}

/// Body of the two login calls.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The key to log in with.
    pub api_key: String,
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
    pub fn bearer((token, expires_at): (String, Timestamp)) -> Session {
        Session { token, token_type: TokenType::Bearer, expires_at }
    }
}

/// The native success envelope, serialised straight from typed data (no intermediate
/// `serde_json::Value`, which costs measurable time on the verify hot path).
#[derive(Serialize, ToSchema)]
pub struct NativeOk<T> {
    /// Always true.
    success: bool,
    /// The answer.
    data: T,
    /// The `x-request-id` of this request.
    request_id: String,
}

/// `{"success": true, "data": ..., "request_id": ...}` with status 200.
pub fn native_ok(data: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(NativeOk { success: true, data, request_id: current_request_id() })
}

/// Marks a response that carries a plaintext key as never to be cached.
pub fn no_store(mut res: HttpResponse) -> HttpResponse {
    let value = CacheControl(vec![CacheDirective::NoStore]);
    if let Ok(v) = actix_web::http::header::TryIntoHeaderValue::try_into_value(value) {
        res.headers_mut().insert(actix_web::http::header::CACHE_CONTROL, v);
    }
    res
}
