//! A request for a new key, validated once at the edge: its title, grants and expiry as
//! values that can no longer be wrong in shape. Whether the creator may have them (its
//! grants, its expiry, its scope) is a rule of the core (`service::authority`), checked later.

use uuid::Uuid;

use crate::config::{MAX_OWNER_CHARS, MAX_TITLE_CHARS};
use crate::domain::grants::{GrantBody, GrantError, Grants};
use crate::domain::limits::LimitSettings;
use crate::domain::model::Meta;
use crate::domain::timestamp::{Timestamp, TimestampError};

/// A key title or application name: trimmed, 1 to [`MAX_TITLE_CHARS`] characters, no control
/// characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Title(String);

/// Occurs when a title is not a string, is blank, too long, or holds control characters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a non-empty string of at most {MAX_TITLE_CHARS} characters is required")]
pub struct TitleError;

impl Title {
    /// Validates a title; surrounding whitespace is trimmed.
    pub fn parse(raw: &str) -> Result<Title, TitleError> {
        let text = raw.trim();
        if text.is_empty() || text.chars().count() > MAX_TITLE_CHARS || text.chars().any(char::is_control) {
            return Err(TitleError);
        }
        Ok(Title(text.to_owned()))
    }

    /// Validates a title given as any JSON value (anything but a string is refused).
    pub fn from_json(raw: Option<&serde_json::Value>) -> Result<Title, TitleError> {
        Title::parse(raw.and_then(serde_json::Value::as_str).ok_or(TitleError)?)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who a key belongs to in the caller's system (a user or customer id): 1 to
/// [`MAX_OWNER_CHARS`] characters, no control characters, kept exactly as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner(String);

/// Occurs when an owner is empty, too long, or holds control characters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("owner must be a non-empty string of at most {MAX_OWNER_CHARS} characters")]
pub struct OwnerError;

impl Owner {
    /// Validates an owner.
    pub fn parse(raw: &str) -> Result<Owner, OwnerError> {
        if raw.is_empty() || raw.chars().count() > MAX_OWNER_CHARS || raw.chars().any(char::is_control) {
            return Err(OwnerError);
        }
        Ok(Owner(raw.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A key to be made, as asked for: valid in shape, not yet checked against its creator.
/// `grants` and `expires_at` left out mean "the creator's own"; `application` is the
/// application it is asked for in (applications family), `None` for the creator's.
#[derive(Clone, Debug)]
pub struct NewKey {
    /// Label.
    pub title: Title,
    /// Grants asked for.
    pub grants: Option<Grants>,
    /// Expiry asked for.
    pub expires_at: Option<Timestamp>,
    /// Application asked for, by its public UUID.
    pub application: Option<Uuid>,
    /// Who it belongs to.
    pub owner: Option<Owner>,
    /// Its metadata.
    pub meta: Option<Meta>,
    /// Its rate limit, credits and IP allowlist.
    pub limits: LimitSettings,
}

/// Occurs when the grants or the expiry of a new key are malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NewKeyError {
    /// The grant list failed [`Grants::from_bodies`].
    #[error("Invalid grants: {0}")]
    Grants(GrantError),
    /// The expiry is not RFC 3339.
    #[error("Invalid expires_at: {0}")]
    ExpiresAt(TimestampError),
}

impl NewKey {
    /// A key titled `title` with the grants and expiry as the JSON families write them.
    pub fn parse(title: Title, grants: Option<&[GrantBody]>, expires_at: Option<&str>) -> Result<NewKey, NewKeyError> {
        let grants = grants.map(Grants::from_bodies).transpose().map_err(NewKeyError::Grants)?;
        let expires_at = expires_at.map(Timestamp::parse_rfc3339).transpose().map_err(NewKeyError::ExpiresAt)?;
        Ok(NewKey {
            title,
            grants,
            expires_at,
            application: None,
            owner: None,
            meta: None,
            limits: LimitSettings::default(),
        })
    }

    /// A key titled `title` with exactly these grants and expiry.
    pub fn with(title: Title, grants: Grants, expires_at: Option<Timestamp>) -> NewKey {
        NewKey {
            title,
            grants: Some(grants),
            expires_at,
            application: None,
            owner: None,
            meta: None,
            limits: LimitSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grants::Access;

    #[test]
    fn titles_are_validated() {
        assert_eq!(Title::parse("  Production backend ").unwrap().as_str(), "Production backend");
        assert!(Title::parse(&"x".repeat(MAX_TITLE_CHARS)).is_ok());
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(MAX_TITLE_CHARS + 1)] {
            assert_eq!(Title::parse(bad), Err(TitleError), "{bad:?}");
        }
        let json = |v: serde_json::Value| Title::from_json(Some(&v));
        assert!(json(serde_json::json!("ok")).is_ok());
        for bad in [serde_json::json!(5), serde_json::json!(null), serde_json::json!(["t"])] {
            assert_eq!(json(bad.clone()), Err(TitleError), "{bad}");
        }
        assert_eq!(Title::from_json(None), Err(TitleError));
    }

    #[test]
    fn owners_are_kept_exactly_within_their_limit() {
        assert_eq!(Owner::parse(" user 42 ").unwrap().as_str(), " user 42 ");
        assert!(Owner::parse(&"o".repeat(MAX_OWNER_CHARS)).is_ok());
        for bad in ["", "a\nb", &"o".repeat(MAX_OWNER_CHARS + 1)] {
            assert_eq!(Owner::parse(bad), Err(OwnerError), "{bad:?}");
        }
    }

    #[test]
    fn grants_and_expiry_are_parsed_once() {
        let title = Title::parse("t").unwrap();
        let body = [GrantBody { path: "/a/".into(), access: Access::Read }];
        let key = NewKey::parse(title.clone(), Some(&body), Some("2099-01-01T00:00:00Z")).unwrap();
        assert_eq!(key.grants.unwrap().to_bodies()[0].path, "/a");
        assert_eq!(key.expires_at.unwrap().to_string(), "2099-01-01T00:00:00.000Z");
        assert!(matches!(NewKey::parse(title.clone(), Some(&[]), None), Err(NewKeyError::Grants(GrantError::Empty))));
        assert!(matches!(NewKey::parse(title, None, Some("soon")), Err(NewKeyError::ExpiresAt(_))));
    }
}
