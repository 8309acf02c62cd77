//! JWT sessions for the applications and clients families, whose clients authenticate with
//! a bearer JWT obtained "from login". A token is HS256-signed with a 256-bit secret made
//! from getrandom on first start and kept in the `settings` table (never logged), and names
//! the key it was minted from. It carries no rights of its own: every use looks that key up,
//! so revoking, deleting or expiring the key kills its tokens from the next request. Only
//! HS256 is accepted (an `alg: none` or any other algorithm fails validation). Expiry is
//! checked here, in milliseconds, against the `expires_at` login advertised.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::model::{KeyAuth, KeyId};
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::storage::Db;

const SECRET_SETTING: &str = "jwt_hs256_secret";

#[derive(Serialize, Deserialize)]
struct Claims {
    /// The key's UUID.
    sub: String,
    /// The key's numeric id: what each use looks up.
    kid: i64,
    iat: i64,
    exp: i64,
}

/// The key a valid token names: its id, which each use looks up, and its UUID, which the key
/// found must carry (ids are never reused, so this only matters if that ever changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKey {
    /// The key's numeric id.
    pub id: KeyId,
    /// The key's UUID.
    pub uuid: Uuid,
}

/// What checking a token found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCheck {
    /// A valid, unexpired token naming this key.
    Valid(SessionKey),
    /// A valid token whose advertised expiry (this instant) has passed.
    Expired(Timestamp),
    /// Not a token this server signed (or not a token at all).
    Invalid,
}

impl SessionCheck {
    /// The key of a valid, unexpired token.
    pub fn valid(self) -> Option<SessionKey> {
        match self {
            SessionCheck::Valid(key) => Some(key),
            SessionCheck::Expired(_) | SessionCheck::Invalid => None,
        }
    }
}

/// Occurs when a session token cannot be made (the random source or the signer failed).
#[derive(Debug, thiserror::Error)]
#[error("session token could not be issued: {0}")]
pub struct SessionError(String);

/// Issues and checks session tokens.
pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Sessions {
    /// Loads the signing secret, creating it on first start (through the writer, so two
    /// processes starting on one new file agree on one secret).
    ///
    /// A fleet node that has not reached PostgreSQL yet uses the secret its replica holds (the
    /// fleet's, copied from PostgreSQL): every node signs and checks with the same one.
    pub async fn load(db: &Db, ttl: Duration) -> Result<Sessions, ApiError> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| ApiError::internal(&e))?;
        let offline = db.fleet().is_some_and(|f| f.since_last_sync().is_none());
        let secret = if offline {
            db.read(|store| Ok::<_, ApiError>(store.find_setting(SECRET_SETTING)?))
                .await?
                .ok_or(ApiError::StoreUnavailable { retry_after: 1 })?
        } else {
            db.write(move |store| Ok::<_, ApiError>(store.insert_setting_once(SECRET_SETTING, &fresh)?)).await?
        };
        let mut validation = Validation::new(Algorithm::HS256);
        // jsonwebtoken compares whole seconds and refuses only once `exp < now`, so it would
        // accept a token for up to a second past the `expires_at` login advertised
        // (`exp * 1000`). `check_at` compares in milliseconds instead; `exp` stays required.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Sessions {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            ttl,
        })
    }

    /// A token for `key`, expiring after the configured lifetime or with the key, whichever
    /// comes first.
    pub fn issue(&self, key: &KeyAuth, now: Timestamp) -> Result<(String, Timestamp), SessionError> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let mut expires = now.plus_millis(ttl_ms);
        if let Some(limit) = key.expires_at {
            expires = expires.min(limit);
        }
        // JWT times are whole seconds; round down so the token never outlives its key. The
        // advertised expiry is exactly `exp * 1000`, the instant `check_at` refuses from.
        let exp = expires.millis().div_euclid(1000);
        let claims = Claims { sub: key.uuid.to_string(), kid: key.id.0, iat: now.millis().div_euclid(1000), exp };
        let token =
            encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| SessionError(e.to_string()))?;
        Ok((token, Timestamp::from_millis(exp * 1000)))
    }

    /// The key a valid, unexpired token names; `None` for anything else.
    pub fn check(&self, token: &str) -> Option<SessionKey> {
        self.check_at(token, Timestamp::now())
    }

    /// [`Sessions::check`] at `now`: a token is refused from its advertised expiry
    /// (`exp * 1000` ms) onward, to the millisecond.
    pub fn check_at(&self, token: &str, now: Timestamp) -> Option<SessionKey> {
        self.judge_at(token, now).valid()
    }

    /// What `token` is at `now`: valid, expired (and since when), or not a token of ours.
    pub fn judge_at(&self, token: &str, now: Timestamp) -> SessionCheck {
        let Ok(data) = decode::<Claims>(token, &self.decoding, &self.validation) else { return SessionCheck::Invalid };
        let Ok(uuid) = Uuid::parse_str(&data.claims.sub) else { return SessionCheck::Invalid };
        let expires = Timestamp::from_millis(data.claims.exp.saturating_mul(1000));
        if now < expires {
            SessionCheck::Valid(SessionKey { id: KeyId(data.claims.kid), uuid })
        } else {
            SessionCheck::Expired(expires)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_JWT_TTL as DEFAULT_TTL;
    use crate::domain::grants::Grants;
    use crate::domain::model::Status;
    use base64::Engine;

    fn sessions(ttl: Duration) -> (tempfile::TempDir, Sessions) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("j.db")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        (dir, runtime.block_on(Sessions::load(&db, ttl)).unwrap())
    }

    fn key(expires_at: Option<Timestamp>) -> KeyAuth {
        KeyAuth {
            id: KeyId(42),
            uuid: uuid::Uuid::new_v4(),
            grants: std::sync::Arc::new(Grants::root()),
            status: Status::Active,
            enabled: true,
            expires_at,
            application_id: None,
            application_uuid: None,
            extras: None,
        }
    }

    #[test]
    fn issued_tokens_check_and_name_their_key() {
        let (_d, s) = sessions(DEFAULT_TTL);
        let (token, exp) = s.issue(&key(None), Timestamp::now()).unwrap();
        assert_eq!(s.check(&token).map(|k| k.id), Some(KeyId(42)));
        assert!(exp > Timestamp::now());
    }

    #[test]
    fn a_token_never_outlives_its_key() {
        let (_d, s) = sessions(DEFAULT_TTL);
        let soon = Timestamp::now().plus_millis(10_000);
        let (_, exp) = s.issue(&key(Some(soon)), Timestamp::now()).unwrap();
        assert!(exp <= soon);
    }

    #[test]
    fn a_token_is_refused_from_its_advertised_expiry_millisecond() {
        let (_d, s) = sessions(Duration::from_secs(60));
        let issued = Timestamp::from_millis(Timestamp::now().millis() - 10_000);
        let (token, exp) = s.issue(&key(None), issued).unwrap();
        assert_eq!(exp.millis() % 1000, 0, "whole seconds, as in the claim");
        assert_eq!(s.check_at(&token, Timestamp::from_millis(exp.millis() - 1)).map(|k| k.id), Some(KeyId(42)));
        assert_eq!(s.check_at(&token, exp), None, "refused at the advertised instant");
        assert_eq!(s.check_at(&token, exp.plus_millis(999)), None, "and within the second after it");
    }

    #[test]
    fn a_token_whose_advertised_expiry_passed_this_second_is_refused_now() {
        // Cut the token at the start of the current second: its advertised expiry has just
        // passed, but its `exp` claim still equals the current second, which jsonwebtoken's
        // own check (`exp < now`, whole seconds) accepts.
        let (_d, s) = sessions(DEFAULT_TTL);
        let now = Timestamp::now();
        let second_start = Timestamp::from_millis(now.millis().div_euclid(1000) * 1000);
        let (token, exp) = s.issue(&key(Some(second_start)), now).unwrap();
        assert_eq!(exp, second_start);
        assert_eq!(s.check(&token), None, "advertised {exp}, checked after it");
    }

    #[test]
    fn tampered_unsigned_and_foreign_tokens_fail() {
        let (_d, s) = sessions(DEFAULT_TTL);
        let (_d2, other) = sessions(DEFAULT_TTL);
        let (token, _) = s.issue(&key(None), Timestamp::now()).unwrap();
        let (foreign, _) = other.issue(&key(None), Timestamp::now()).unwrap();
        assert_eq!(s.check(&foreign), None, "signed with another secret");
        let parts: Vec<&str> = token.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["kid"] = serde_json::json!(1);
        let forged = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string()), parts[2]);
        assert_eq!(s.check(&forged), None, "payload changed under the old signature");
        let none_header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(s.check(&format!("{none_header}.{}.", parts[1])), None, "alg none");
        assert_eq!(s.check(&format!("{}.{}.", parts[0], parts[1])), None, "signature stripped");
        assert_eq!(s.check("not.a.token"), None);
    }
}
