//! The domain types every family shares: a stored key's record, its status and standing,
//! the scope a caller acts in, and what an audit row says. Pure data; storage lives in
//! `storage`, the rules that use these in `service`.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::domain::grants::Grants;
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

/// Whether a key may be used at some instant: the one rule every check applies (status first,
/// then expiry, which is not a status but follows from `expires_at` and the clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Active and not expired: the only state in which a key authenticates.
    Usable,
    /// Revoked by id.
    Revoked,
    /// Deleted.
    Deleted,
    /// Active, but at or past its expiry.
    Expired,
}

/// The standing of a key with this status and expiry at `now`.
pub fn standing(status: Status, expires_at: Option<Timestamp>, now: Timestamp) -> Standing {
    match status {
        Status::Revoked => Standing::Revoked,
        Status::Deleted => Standing::Deleted,
        Status::Active if expired(expires_at, now) => Standing::Expired,
        Status::Active => Standing::Usable,
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
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// Its application, if any.
    pub application_id: Option<AppId>,
    /// That application's public UUID.
    pub application_uuid: Option<Uuid>,
}

impl KeyAuth {
    /// Whether the key may be used at `now`.
    pub fn standing(&self, now: Timestamp) -> Standing {
        standing(self.status, self.expires_at, now)
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
            expires_at: self.expires_at,
            application_id: self.application_id,
            application_uuid: self.application_uuid,
        }
    }

    /// True when `now` is at or past the expiry.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        expired(self.expires_at, now)
    }

    /// Whether the key may be used at `now`.
    pub fn standing(&self, now: Timestamp) -> Standing {
        standing(self.status, self.expires_at, now)
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

/// What happened to a key, as its audit row says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A key was made.
    Create,
    /// A key was revoked by id.
    Revoke,
    /// A key was deleted (by value, or by the clients family).
    Delete,
}

impl Action {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Revoke => "revoke",
            Action::Delete => "delete",
        }
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
            (Status::Active, None, Standing::Usable),
            (Status::Active, at(1001), Standing::Usable),
            (Status::Active, at(1000), Standing::Expired),
            (Status::Revoked, at(1), Standing::Revoked),
            (Status::Deleted, None, Standing::Deleted),
        ];
        for (status, expires_at, want) in rows {
            assert_eq!(standing(status, expires_at, now), want, "{status:?} {expires_at:?}");
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
}
