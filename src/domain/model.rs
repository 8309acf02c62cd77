//! The domain types every family shares: a stored key's record, its status and standing,
//! the scope a caller acts in, and what an audit row says. Pure data; storage lives in
//! `storage`, the rules that use these in `service`.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::config::MAX_META_BYTES;
use crate::domain::grants::Grants;
use crate::domain::limits::{Cidr, CreditPolicy, Credits, Limits, RateLimit};
use crate::domain::timestamp::Timestamp;

/// The numeric id (SQLite rowid) the native family uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct KeyId(pub i64);

impl KeyId {
    /// Parses a path segment: a positive decimal integer without sign or padding tricks.
    pub fn parse(s: &str) -> Option<KeyId> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<i64>().ok().filter(|n| *n > 0).map(KeyId)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The numeric id of an application (tenant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AppId(pub i64);

/// Where a key stands. Expiry is not a status: it is derived from `expires_at` and the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Usable (unless expired).
    Active,
    /// Turned off by id; the row and its history stay.
    Revoked,
    /// Removed by value or by the clients family; the secret can never verify again,
    /// the metadata stays for the audit trail.
    Deleted,
}

impl Status {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Revoked => "revoked",
            Status::Deleted => "deleted",
        }
    }

    /// The inverse of [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "revoked" => Some(Status::Revoked),
            "deleted" => Some(Status::Deleted),
            _ => None,
        }
    }
}

/// The set of keys a caller may see and manage: every key, or one application's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A key without an application: sees everything.
    Global,
    /// A key of this application: sees only this application's keys, whatever its grants say.
    Application(AppId),
}

impl Scope {
    /// The scope of a key in `application` (none: global).
    pub fn of(application: Option<AppId>) -> Scope {
        application.map_or(Scope::Global, Scope::Application)
    }

    /// True when a key or application with this application id lies inside the scope: the
    /// one statement of the scope rule (`service::scope` applies it to every look-up).
    pub fn contains(self, application: Option<AppId>) -> bool {
        match self {
            Scope::Global => true,
            Scope::Application(app) => application == Some(app),
        }
    }

    /// The application this scope is limited to, if any: the filter a listing applies.
    pub fn application(self) -> Option<AppId> {
        match self {
            Scope::Global => None,
            Scope::Application(app) => Some(app),
        }
    }
}

/// Whether a key may be used at some instant: the one rule every check applies, in this
/// order: status (revoked, deleted), then disabled, then expiry (which is not a status but
/// follows from `expires_at` and the clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Active, enabled and not expired: the only state in which a key authenticates.
    Usable,
    /// Revoked by id.
    Revoked,
    /// Deleted.
    Deleted,
    /// Turned off until enabled again.
    Disabled,
    /// Active, but at or past its expiry.
    Expired,
}

/// The standing at `now` of a key with this status, switch and expiry.
pub fn standing(status: Status, enabled: bool, expires_at: Option<Timestamp>, now: Timestamp) -> Standing {
    match status {
        Status::Revoked => Standing::Revoked,
        Status::Deleted => Standing::Deleted,
        Status::Active if !enabled => Standing::Disabled,
        Status::Active if expired(expires_at, now) => Standing::Expired,
        Status::Active => Standing::Usable,
    }
}

/// A key's metadata: a JSON object kept exactly as given (at most [`MAX_META_BYTES`]).
#[derive(Clone, Debug)]
pub struct Meta(Box<serde_json::value::RawValue>);

/// Occurs when `meta` is not a JSON object, or is too long.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("meta must be a JSON object of at most {MAX_META_BYTES} bytes")]
pub struct MetaError;

impl Meta {
    /// Accepts the JSON text of an object of at most [`MAX_META_BYTES`].
    pub fn parse(text: &str) -> Result<Meta, MetaError> {
        if text.len() > MAX_META_BYTES || !text.trim_start().starts_with('{') {
            return Err(MetaError);
        }
        let raw = serde_json::value::RawValue::from_string(text.trim().to_owned()).map_err(|_| MetaError)?;
        serde_json::from_str::<serde::de::IgnoredAny>(raw.get()).map_err(|_| MetaError)?;
        Ok(Meta(raw))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for Meta {
    fn eq(&self, other: &Meta) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Meta {}

impl serde::Serialize for Meta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// What few keys have: their owner and metadata (told to the application behind a gateway)
/// and their limits (enforced at each verdict). Shared by every copy of the key's
/// authentication view, and absent (no allocation) for keys that have none of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// Who the key belongs to in the caller's system.
    pub owner: Option<String>,
    /// Free-form metadata.
    pub meta: Option<Meta>,
    /// Rate limit, credits, IP allowlist.
    pub limits: Limits,
}

impl Extras {
    /// `None` when there is nothing to carry.
    pub fn of(owner: Option<String>, meta: Option<Meta>, limits: Limits) -> Option<Arc<Extras>> {
        (owner.is_some() || meta.is_some() || !limits.is_empty()).then(|| Arc::new(Extras { owner, meta, limits }))
    }
}

/// A key as stored, without its hash (which never leaves the store) or plaintext (never kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Numeric id.
    pub id: KeyId,
    /// Public UUID.
    pub uuid: Uuid,
    /// Human label.
    pub title: String,
    /// `sk-` and the first body characters.
    pub prefix: String,
    /// What the key may do.
    pub grants: Grants,
    /// Active, revoked or deleted.
    pub status: Status,
    /// Off until enabled again (reversible, unlike revoked).
    pub enabled: bool,
    /// Who the key belongs to in the caller's system.
    pub owner: Option<String>,
    /// Free-form metadata.
    pub meta: Option<Meta>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When it was deleted, if it was.
    pub deleted_at: Option<Timestamp>,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// Last successful authentication, as last flushed.
    pub last_used_at: Option<Timestamp>,
    /// The key that made it (`None` for the bootstrap root key and CLI-made keys).
    pub created_by: Option<KeyId>,
    /// Its application, if any.
    pub application_id: Option<AppId>,
    /// That application's public UUID.
    pub application_uuid: Option<Uuid>,
    /// The key this one replaced by rotation.
    pub rotated_from: Option<KeyId>,
    /// The key that replaced this one by rotation.
    pub rotated_to: Option<KeyId>,
    /// At most this many accepted verdicts per window.
    pub rate_limit: Option<RateLimit>,
    /// Usage credits, as the database holds them (a node may hold a few more, leased).
    pub credits: Option<Credits>,
    /// The generation of the credits: bumped each time they are set.
    pub credits_version: u64,
    /// The networks the key may be used from.
    pub allowed_ips: Option<Vec<Cidr>>,
}

/// What authentication and verification need to know about a key: small, cheap to clone
/// (grants are shared), and what the in-memory index holds for every key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAuth {
    /// Numeric id.
    pub id: KeyId,
    /// Public UUID.
    pub uuid: Uuid,
    /// What the key may do.
    pub grants: Arc<Grants>,
    /// Active, revoked or deleted.
    pub status: Status,
    /// Off until enabled again.
    pub enabled: bool,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// Its application, if any.
    pub application_id: Option<AppId>,
    /// That application's public UUID.
    pub application_uuid: Option<Uuid>,
    /// Owner and metadata, if it has either.
    pub extras: Option<Arc<Extras>>,
}

impl KeyAuth {
    /// Whether the key may be used at `now`.
    pub fn standing(&self, now: Timestamp) -> Standing {
        standing(self.status, self.enabled, self.expires_at, now)
    }

    /// Who the key belongs to, if set.
    pub fn owner(&self) -> Option<&str> {
        self.extras.as_ref().and_then(|l| l.owner.as_deref())
    }

    /// Its metadata, if set.
    pub fn meta(&self) -> Option<&Meta> {
        self.extras.as_ref().and_then(|l| l.meta.as_ref())
    }

    /// Its limits (none for most keys).
    pub fn limits(&self) -> Option<&Limits> {
        self.extras.as_ref().map(|e| &e.limits).filter(|l| !l.is_empty())
    }

    /// The scope this key acts in.
    pub fn scope(&self) -> Scope {
        Scope::of(self.application_id)
    }
}

fn expired(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_some_and(|at| now >= at)
}

impl KeyRecord {
    /// The authentication view of this record.
    pub fn auth(&self) -> KeyAuth {
        KeyAuth {
            id: self.id,
            uuid: self.uuid,
            grants: Arc::new(self.grants.clone()),
            status: self.status,
            enabled: self.enabled,
            expires_at: self.expires_at,
            application_id: self.application_id,
            application_uuid: self.application_uuid,
            extras: Extras::of(self.owner.clone(), self.meta.clone(), self.limits()),
        }
    }

    /// True when `now` is at or past the expiry.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        expired(self.expires_at, now)
    }

    /// Whether the key may be used at `now`.
    pub fn standing(&self, now: Timestamp) -> Standing {
        standing(self.status, self.enabled, self.expires_at, now)
    }

    /// What the verdict enforces.
    pub fn limits(&self) -> Limits {
        Limits {
            rate_limit: self.rate_limit,
            credits: self.credits.map(|c| CreditPolicy { version: self.credits_version, refill: c.refill }),
            allowed_ips: self.allowed_ips.clone(),
        }
    }
}

/// A tenant: its keys see and manage only each other.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Application {
    /// Internal id (never shown).
    #[serde(skip)]
    pub id: AppId,
    /// Public id.
    #[serde(rename = "id")]
    pub uuid: Uuid,
    /// Label.
    pub name: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// What happened, as its audit row says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A key was made.
    Create,
    /// A key was revoked by id.
    Revoke,
    /// A key was deleted (by value, or by the clients family).
    Delete,
    /// A key's title, grants, expiry, owner or metadata changed.
    Update,
    /// A key was turned off.
    Disable,
    /// A key was turned on again.
    Enable,
    /// A key was replaced by a new one (its row: its expiry moved to the end of the grace).
    Rotate,
    /// A key was brought in from elsewhere.
    Import,
    /// An application was made.
    CreateApplication,
}

impl Action {
    /// Every action, in the order the document lists them.
    pub const ALL: [Action; 9] = [
        Action::Create,
        Action::Revoke,
        Action::Delete,
        Action::Update,
        Action::Disable,
        Action::Enable,
        Action::Rotate,
        Action::Import,
        Action::CreateApplication,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Revoke => "revoke",
            Action::Delete => "delete",
            Action::Update => "update",
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Rotate => "rotate",
            Action::Import => "import",
            Action::CreateApplication => "create_application",
        }
    }

    /// The inverse of [`Action::as_str`].
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Who made a change, when, and under which request: what every audit row records.
#[derive(Clone, Debug)]
pub struct AuditContext {
    /// The authenticated key, `None` for bootstrap and the command line.
    pub actor: Option<KeyId>,
    /// The HTTP request id, `None` outside HTTP.
    pub request_id: Option<String>,
    /// When.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_parse_only_plain_positive_integers() {
        assert_eq!(KeyId::parse("13"), Some(KeyId(13)));
        for bad in ["", "0", "-1", "+1", "1.0", "abc", "1e3", " 1", "99999999999999999999"] {
            assert_eq!(KeyId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_round_trips() {
        for s in [Status::Active, Status::Revoked, Status::Deleted] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn standing_table() {
        let at = |ms| Some(Timestamp::from_millis(ms));
        let now = Timestamp::from_millis(1000);
        let rows = [
            (Status::Active, true, None, Standing::Usable),
            (Status::Active, true, at(1001), Standing::Usable),
            (Status::Active, true, at(1000), Standing::Expired),
            (Status::Active, false, at(1001), Standing::Disabled),
            (Status::Active, false, at(1000), Standing::Disabled),
            (Status::Revoked, false, at(1), Standing::Revoked),
            (Status::Deleted, true, None, Standing::Deleted),
        ];
        for (status, enabled, expires_at, want) in rows {
            assert_eq!(standing(status, enabled, expires_at, now), want, "{status:?} {enabled} {expires_at:?}");
        }
    }

    #[test]
    fn scope_contains_only_its_own_application() {
        let (a, b) = (AppId(1), AppId(2));
        assert!(Scope::Global.contains(None) && Scope::Global.contains(Some(a)));
        assert!(Scope::Application(a).contains(Some(a)));
        assert!(!Scope::Application(a).contains(Some(b)) && !Scope::Application(a).contains(None));
        assert_eq!(Scope::of(Some(a)), Scope::Application(a));
    }

    #[test]
    fn meta_is_an_object_kept_as_given() {
        let m = Meta::parse(r#" {"plan": "pro", "n": 1.50, "tags": ["a"]} "#).unwrap();
        assert_eq!(m.as_str(), r#"{"plan": "pro", "n": 1.50, "tags": ["a"]}"#);
        assert_eq!(serde_json::to_string(&m).unwrap(), m.as_str());
        for bad in ["[]", "5", "\"x\"", "null", "{", "{\"a\":}", ""] {
            assert_eq!(Meta::parse(bad), Err(MetaError), "{bad}");
        }
        let at_limit = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_META_BYTES - 8));
        assert_eq!(at_limit.len(), MAX_META_BYTES);
        assert!(Meta::parse(&at_limit).is_ok());
        assert!(Meta::parse(&format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_META_BYTES - 7))).is_err());
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
    }
}
