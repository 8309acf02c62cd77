//! The admin page's sessions: which session tokens (`sessions`) are logged in to the page,
//! each with its anti-forgery (CSRF) token. A page request is served only when its cookie's
//! token is listed here AND still passes the core's credential check, so logging out ends a
//! page session at once, and a key revoked, disabled or expired ends it on the next request
//! (the credential check does that part; nothing here restates it). The list lives in
//! memory, keyed by the SHA-256 of the cookie's value (never the value itself): a restart
//! logs every page out, which fails closed. The cookie's value is a random page-session id,
//! a `.`, and the session token, so two logins with one key (which may mint the same token
//! within a second) are still two page sessions, each with its own CSRF token.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;

/// At most this many page sessions at once; the one closest to its expiry makes room.
pub const MAX_PAGE_SESSIONS: usize = 10_000;

/// One logged-in page.
#[derive(Clone, Debug)]
struct PageSession {
    csrf: String,
    expires: Timestamp,
}

/// The logged-in pages.
#[derive(Debug, Default)]
pub struct PageSessions {
    open: Mutex<HashMap<[u8; 32], PageSession>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl PageSessions {
    /// Lists a new page session for `token` (valid until `expires`): returns the cookie value
    /// that names it and its fresh CSRF token.
    pub fn open(&self, token: &str, expires: Timestamp, now: Timestamp) -> Result<(String, String), ApiError> {
        let cookie = format!("{}.{token}", random_text()?);
        let csrf = random_text()?;
        let mut open = self.open.lock().map_err(|_| ApiError::internal(&"page sessions lock poisoned"))?;
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_PAGE_SESSIONS {
            if let Some(soonest) = open.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                open.remove(&soonest);
            }
        }
        open.insert(digest(&cookie), PageSession { csrf: csrf.clone(), expires });
        Ok((cookie, csrf))
    }

    /// The CSRF token of the page session `cookie` names, if it is logged in and not past its
    /// expiry.
    pub fn csrf(&self, cookie: &str, now: Timestamp) -> Option<String> {
        let open = self.open.lock().ok()?;
        open.get(&digest(cookie)).filter(|s| s.expires > now).map(|s| s.csrf.clone())
    }

    /// Logs the page session `cookie` names out.
    pub fn close(&self, cookie: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&digest(cookie));
        }
    }
}

/// The session token inside a page session's cookie value.
pub fn token_of(cookie: &str) -> Option<&str> {
    cookie.split_once('.').map(|(_, token)| token).filter(|t| !t.is_empty())
}

/// 256 random bits, as base64url text (no `.`).
fn random_text() -> Result<String, ApiError> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| ApiError::internal(&e))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random))
}

/// True when `given` is `expected`, compared in time independent of where they differ.
pub fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_session_lives_until_logout_or_expiry() {
        let pages = PageSessions::default();
        let now = Timestamp::from_millis(1_000_000);
        let (cookie, csrf) = pages.open("tok", now.plus_millis(60_000), now).unwrap();
        assert_eq!(token_of(&cookie), Some("tok"));
        assert_eq!(pages.csrf(&cookie, now).as_deref(), Some(csrf.as_str()));
        assert_eq!(pages.csrf("tok", now), None, "the token alone names no page session");
        assert_eq!(pages.csrf(&cookie, now.plus_millis(60_000)), None, "expired");
        // A second login with the same token is a second page session.
        let (again, other_csrf) = pages.open("tok", now.plus_millis(60_000), now).unwrap();
        assert_ne!(again, cookie);
        assert_ne!(other_csrf, csrf);
        pages.close(&cookie);
        assert_eq!(pages.csrf(&cookie, now), None, "logged out");
        assert!(pages.csrf(&again, now).is_some(), "the other page session stays");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("ab", "abc"));
        assert!(!same_token("", "abc"));
    }
}
