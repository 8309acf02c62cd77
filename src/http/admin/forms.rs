//! The admin page's forms and query strings, and their parsing into the core's types with the
//! same parsers the API families use (`NewKey::parse`, `Title`, `Owner`, `Meta`,
//! `LimitSettings::parse`, the listing filters of `bodies::KeyFilters`). A form field left
//! empty means "not given". Nothing here decides whether the caller may do what it asks:
//! that is the core's, after parsing.

use serde::Deserialize;

use super::Guarded;
use crate::config::MAX_GRACE_SECONDS;
use crate::domain::grants::{Access, GrantBody};
use crate::domain::limits::{Credits, LimitSettings, RateLimit};
use crate::domain::new_key::{NewKey, Title};
use crate::error::ApiError;
use crate::http::bodies::{parse_meta, parse_owner, KeyFilters, PageQuery};
use crate::service::manage::{KeyQuery, PageRequest};

/// Page size of the key list and the audit log.
pub const PAGE_SIZE: u32 = 25;

/// The login form: the key, pasted.
#[derive(Deserialize)]
pub struct LoginForm {
    /// A key that may manage keys.
    #[serde(default)]
    pub api_key: String,
}

/// A form that carries nothing but its CSRF token (logout, revoke, delete, disable, enable).
#[derive(Deserialize)]
pub struct Confirmed {
    csrf: String,
    /// Rotation's grace, in seconds (rotate only; empty means none).
    #[serde(default)]
    pub grace_seconds: String,
}

impl Guarded for Confirmed {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl Confirmed {
    /// The rotation grace asked for, in seconds: 0 when empty, at most [`MAX_GRACE_SECONDS`].
    pub fn grace(&self) -> Result<u64, ApiError> {
        let text = self.grace_seconds.trim();
        if text.is_empty() {
            return Ok(0);
        }
        let refused =
            || ApiError::invalid("grace_seconds", format!("grace_seconds must be between 0 and {MAX_GRACE_SECONDS}"));
        let grace: u64 = text.parse().map_err(|_| refused())?;
        if grace > MAX_GRACE_SECONDS {
            return Err(refused());
        }
        Ok(grace)
    }
}

/// The create-key form, as typed (kept as text, to show it again beside its error).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateForm {
    csrf: String,
    /// Label.
    pub title: String,
    /// One grant per line, `ACCESS:PATH` (as `apikeyd keys create --grant`); empty: the
    /// creator's grants.
    pub grants: String,
    /// RFC 3339; empty: the creator's expiry.
    pub expires_at: String,
    /// Who it belongs to.
    pub owner: String,
    /// A JSON object.
    pub meta: String,
    /// Accepted verifications per window.
    pub rate_limit: String,
    /// The window, in seconds.
    pub rate_window: String,
    /// Usage credits.
    pub credits: String,
    /// Networks, separated by commas, spaces or lines.
    pub allowed_ips: String,
}

impl Guarded for CreateForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `text` trimmed, or `None` when that leaves nothing.
fn given(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// A whole number typed into `field`.
fn whole(field: &'static str, text: &str) -> Result<Option<u64>, ApiError> {
    given(text)
        .map(|t| t.parse::<u64>().map_err(|_| ApiError::invalid(field, format!("{field} must be a whole number"))))
        .transpose()
}

impl CreateForm {
    /// The key asked for, parsed as the native family parses a create body.
    pub fn parse(&self) -> Result<NewKey, ApiError> {
        let title = Title::parse(&self.title).map_err(|_| ApiError::invalid("title", "Invalid title"))?;
        let grants = given(&self.grants).map(parse_grant_lines).transpose()?;
        let mut new = NewKey::parse(title, grants.as_deref(), given(&self.expires_at)).map_err(ApiError::from)?;
        new.owner = given(&self.owner).map(parse_owner).transpose()?;
        new.meta = given(&self.meta)
            .map(|m| {
                let raw = serde_json::value::RawValue::from_string(m.to_owned())
                    .map_err(|_| ApiError::invalid("meta", "meta must be a JSON object"))?;
                parse_meta(&raw)
            })
            .transpose()?;
        let rate_limit = match (whole("rate_limit", &self.rate_limit)?, whole("rate_window", &self.rate_window)?) {
            (None, None) => None,
            (Some(limit), Some(window_seconds)) => Some(RateLimit { limit, window_seconds }),
            _ => return Err(ApiError::invalid("rate_limit", "A rate limit needs both a count and a window")),
        };
        let credits = whole("credits", &self.credits)?.map(|remaining| Credits { remaining, refill: None });
        let ips: Option<Vec<String>> = given(&self.allowed_ips).map(|t| {
            t.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        });
        new.limits = LimitSettings::parse(rate_limit, credits, ips.as_deref()).map_err(ApiError::from)?;
        Ok(new)
    }
}

/// Grants typed one per line as `ACCESS:PATH`, in the shape the JSON families send them; the
/// paths and the list are checked by `NewKey::parse`.
fn parse_grant_lines(text: &str) -> Result<Vec<GrantBody>, ApiError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let bad = || ApiError::invalid("grants", format!("Invalid grants: {line:?} is not ACCESS:PATH"));
            let (access, path) = line.split_once(':').ok_or_else(bad)?;
            let access = Access::parse(access.trim())
                .ok_or_else(|| ApiError::invalid("grants", "Invalid grants: access is read, write or read_write"))?;
            Ok(GrantBody { path: path.trim().to_owned(), access })
        })
        .collect()
}

/// The application form.
#[derive(Deserialize)]
pub struct ApplicationForm {
    csrf: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
}

impl Guarded for ApplicationForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The key list's query string.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeysQuery {
    /// Text in the title or display prefix.
    pub q: String,
    /// `active`, `revoked`, `deleted`, or empty for all.
    pub status: String,
    /// An exact owner.
    pub owner: String,
    /// A duration (`7d`).
    pub expiring_within: String,
    /// A duration (`90d`).
    pub unused_for: String,
    /// The previous page's last key.
    pub cursor: String,
}

impl KeysQuery {
    /// The listing and page asked for, parsed as `GET /api/v1/keys` parses them.
    pub fn parse(&self) -> Result<(KeyQuery, PageRequest), ApiError> {
        let own = |t: &str| given(t).map(str::to_owned);
        let page = PageQuery { limit: Some(PAGE_SIZE), cursor: own(&self.cursor) }.parse()?;
        let filters = KeyFilters {
            status: own(&self.status),
            expiring_within: own(&self.expiring_within),
            unused_for: own(&self.unused_for),
            owner: own(&self.owner),
            q: own(&self.q),
        };
        Ok((filters.parse()?, page))
    }
}

/// The audit log's query string.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuditPageQuery {
    /// The previous page's last row.
    pub cursor: String,
}

impl AuditPageQuery {
    /// The page asked for.
    pub fn parse(&self) -> Result<PageRequest, ApiError> {
        PageQuery { limit: Some(PAGE_SIZE), cursor: given(&self.cursor).map(str::to_owned) }.parse()
    }
}
