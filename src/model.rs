//! The domain types every family shares: a stored key's record, its status, and the scope
//! a caller acts in. Pure data; storage lives in `store`, rules in `manage`.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::grants::Grants;
use crate::timestamp::Timestamp;

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
    /// True when `now` is at or past the expiry.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        expired(self.expires_at, now)
    }

    /// Active and not expired: the only state in which the key authenticates.
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.status == Status::Active && !self.is_expired(now)
    }

    /// The scope this key acts in.
    pub fn scope(&self) -> Scope {
        match self.application_id {
            Some(app) => Scope::Application(app),
            None => Scope::Global,
        }
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

    /// True when this key lies inside `scope`.
    pub fn in_scope(&self, scope: Scope) -> bool {
        match scope {
            Scope::Global => true,
            Scope::Application(app) => self.application_id == Some(app),
        }
    }
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
