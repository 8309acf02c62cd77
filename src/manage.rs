//! The one core behind every family: creating, revoking and deleting keys, with the rules
//! that make it safe. A key manages only its own scope; no key mints a key with more grants
//! or a later expiry than its own; nothing changes without its audit row in the same
//! transaction. Functions here run inside a write transaction (`Db::write` or the CLI's).

use rusqlite::Connection;
use uuid::Uuid;

use crate::config::MAX_TITLE_CHARS;
use crate::error::ApiError;
use crate::grants::Grants;
use crate::keys::{ApiKey, KeyError};
use crate::model::{AppId, Application, KeyAuth, KeyId, KeyRecord, Scope, Status};
use crate::store::applications::find_application_by_uuid;
use crate::store::audit::{insert_audit, Action, AuditContext};
use crate::store::keys::{self as key_store, NewKeyRow};
use crate::timestamp::Timestamp;

/// Everything a new key will be, once the minting rules have been applied.
#[derive(Clone, Debug)]
pub struct KeySpec {
    /// Label.
    pub title: String,
    /// Grants.
    pub grants: Grants,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Application.
    pub application_id: Option<AppId>,
}

impl KeySpec {
    /// A root key: read_write on `/`, no expiry, global.
    pub fn root(title: &str) -> KeySpec {
        KeySpec { title: title.to_owned(), grants: Grants::root(), expires_at: None, application_id: None }
    }

    /// What `creator` may mint. With no grants the new key gets the creator's grants; with
    /// no expiry it gets the creator's expiry. Asking for more grants or a later expiry than
    /// the creator holds is 403; an expiry not in the future is 400. The new key joins the
    /// creator's application.
    pub fn minted_by(
        creator: &KeyAuth,
        title: String,
        grants: Option<Grants>,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<KeySpec, ApiError> {
        let grants = match grants {
            None => Grants::clone(&creator.grants),
            Some(g) if g.within(&creator.grants) => g,
            Some(_) => return Err(ApiError::Forbidden("Requested grants exceed the grants of the calling key")),
        };
        if let Some(at) = expires_at {
            if at <= now {
                return Err(ApiError::invalid("expires_at", "expires_at must be in the future"));
            }
        }
        let expires_at = match (expires_at, creator.expires_at) {
            (None, limit) => limit,
            (Some(at), Some(limit)) if at > limit => {
                return Err(ApiError::Forbidden("Requested expiry is later than the calling key's expiry"))
            }
            (Some(at), _) => Some(at),
        };
        Ok(KeySpec { title, grants, expires_at, application_id: creator.application_id })
    }
}

/// Validates a title or name: a string, not blank, at most [`MAX_TITLE_CHARS`] characters,
/// no control characters. Surrounding whitespace is trimmed.
pub fn validate_title(raw: Option<&serde_json::Value>, field: &'static str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::invalid(
            field,
            format!("Invalid {field}: a non-empty string of at most {MAX_TITLE_CHARS} characters is required"),
        )
    };
    let text = raw.and_then(serde_json::Value::as_str).ok_or_else(invalid)?.trim();
    if text.is_empty() || text.chars().count() > MAX_TITLE_CHARS || text.chars().any(char::is_control) {
        return Err(invalid());
    }
    Ok(text.to_owned())
}

/// Makes a fresh key. Separate from [`insert_new_key`] so the random source is read outside
/// the write transaction.
pub fn generate_key() -> Result<ApiKey, ApiError> {
    ApiKey::generate().map_err(|e: KeyError| ApiError::internal(&e))
}

/// Stores a new key and its audit row. The actor is re-checked inside the transaction, so a
/// key revoked a moment ago cannot mint one more.
pub fn insert_new_key(
    conn: &Connection,
    spec: &KeySpec,
    key: &ApiKey,
    ctx: &AuditContext,
) -> Result<KeyRecord, ApiError> {
    ensure_actor_usable(conn, ctx)?;
    let record = key_store::insert_key(
        conn,
        &NewKeyRow {
            uuid: Uuid::new_v4(),
            title: &spec.title,
            prefix: &key.display_prefix(),
            hash: &key.hash(),
            grants: &spec.grants,
            created_at: ctx.at,
            expires_at: spec.expires_at,
            created_by: ctx.actor,
            application_id: spec.application_id,
        },
    )?;
    insert_audit(conn, Action::Create, record.id, ctx)?;
    Ok(record)
}

/// Revokes key `id` within `scope`. Revoking an already revoked key answers as success
/// without a second audit row, so a retried revoke is safe. `current` is the key making the
/// request, which may not revoke itself.
pub fn revoke_key(
    conn: &Connection,
    scope: Scope,
    current: Option<KeyId>,
    id: KeyId,
    ctx: &AuditContext,
) -> Result<KeyRecord, ApiError> {
    ensure_actor_usable(conn, ctx)?;
    let record = key_store::find_key_by_id(conn, id, scope)?.ok_or(ApiError::NotFound("API key not found".into()))?;
    if current == Some(id) {
        return Err(ApiError::BadRequest {
            code: "cannot_revoke_current_key",
            message: "The API key used for this request cannot revoke itself".to_owned(),
            field: Some("id"),
        });
    }
    match record.status {
        Status::Revoked => Ok(record),
        Status::Deleted => Err(ApiError::Conflict { code: "key_deleted", message: "API key was deleted" }),
        Status::Active => {
            key_store::mark_revoked(conn, id, ctx.at)?;
            insert_audit(conn, Action::Revoke, id, ctx)?;
            refetch(conn, id)
        }
    }
}

/// What a delete by value says of a value that names no active key in the caller's scope.
pub const NO_SUCH_ACTIVE_KEY: &str = "No such active API key";

/// Deletes the active key whose plaintext hashes to `key`'s hash, within `scope`.
/// Unknown, out-of-scope, revoked and already deleted keys are all 404 ("no such active key").
pub fn delete_key_by_value(
    conn: &Connection,
    scope: Scope,
    current: Option<KeyId>,
    key: &ApiKey,
    ctx: &AuditContext,
) -> Result<KeyRecord, ApiError> {
    ensure_actor_usable(conn, ctx)?;
    let record = key_store::find_key_by_hash(conn, &key.hash())?
        .filter(|k| k.in_scope(scope) && k.status == Status::Active)
        .ok_or(ApiError::NotFound(NO_SUCH_ACTIVE_KEY.into()))?;
    if current == Some(record.id) {
        return Err(ApiError::BadRequest {
            code: "cannot_delete_current_key",
            message: "The API key used for this request cannot delete itself".to_owned(),
            field: Some("value"),
        });
    }
    key_store::mark_deleted(conn, record.id, ctx.at)?;
    insert_audit(conn, Action::Delete, record.id, ctx)?;
    refetch(conn, record.id)
}

/// Deletes the keys with these UUIDs, all or nothing: every one must lie in `scope` and not
/// be deleted already (404 naming the missing ones otherwise), and none may be the key making
/// the request (400). Deleting keeps the row, marked deleted, for the audit trail; the secret
/// can never verify again. Runs inside one transaction, so a failure changes nothing.
pub fn delete_keys(
    conn: &Connection,
    scope: Scope,
    current: Option<KeyId>,
    uuids: &[Uuid],
    ctx: &AuditContext,
) -> Result<Vec<KeyRecord>, ApiError> {
    ensure_actor_usable(conn, ctx)?;
    let mut found = Vec::with_capacity(uuids.len());
    let mut missing = Vec::new();
    for uuid in uuids {
        match key_store::find_key_by_uuid(conn, *uuid, scope)? {
            Some(k) if k.status != Status::Deleted => found.push(k),
            _ => missing.push(uuid.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::NotFound(format!("API Key not found: {}", missing.join(", ")).into()));
    }
    if let Some(me) = found.iter().find(|k| Some(k.id) == current) {
        return Err(ApiError::BadRequest {
            code: "cannot_delete_current_key",
            message: format!("The API key used for this request cannot delete itself: {}", me.uuid),
            field: Some("api_key_id"),
        });
    }
    let mut deleted = Vec::with_capacity(found.len());
    for k in found {
        key_store::mark_deleted(conn, k.id, ctx.at)?;
        insert_audit(conn, Action::Delete, k.id, ctx)?;
        deleted.push(refetch(conn, k.id)?);
    }
    Ok(deleted)
}

/// The application with this UUID, if the caller's `scope` may see it (404 otherwise: an
/// application outside the scope is reported exactly like one that does not exist).
pub fn application_in_scope(conn: &Connection, uuid: Uuid, scope: Scope) -> Result<Application, ApiError> {
    match find_application_by_uuid(conn, uuid)? {
        Some(app) if scope == Scope::Global || scope == Scope::Application(app.id) => Ok(app),
        _ => Err(ApiError::NotFound("Application not found".into())),
    }
}

/// What [`bootstrap`] did.
#[derive(Debug)]
pub enum Bootstrap {
    /// The database already had keys: nothing was installed, and a provided key was ignored.
    AlreadyInitialised,
    /// The provided key is now the root key.
    Installed,
    /// A root key was generated and installed; the caller shows it once.
    Generated(ApiKey),
}

/// On a brand-new database, installs the root key: `provided` if given, else a generated one.
/// A database that already has keys is left as it is, whatever `provided` says.
pub fn bootstrap(conn: &mut Connection, provided: Option<&ApiKey>) -> Result<Bootstrap, ApiError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if key_store::any_keys(&tx)? {
        return Ok(Bootstrap::AlreadyInitialised);
    }
    let (key, generated) = match provided {
        Some(k) => (k.clone(), false),
        None => (generate_key()?, true),
    };
    let ctx = AuditContext { actor: None, request_id: None, at: Timestamp::now() };
    insert_new_key(&tx, &KeySpec::root("root"), &key, &ctx)?;
    tx.commit()?;
    Ok(if generated { Bootstrap::Generated(key) } else { Bootstrap::Installed })
}

fn ensure_actor_usable(conn: &Connection, ctx: &AuditContext) -> Result<(), ApiError> {
    let Some(actor) = ctx.actor else { return Ok(()) };
    match key_store::find_key_by_id(conn, actor, Scope::Global)? {
        Some(k) if k.status == Status::Active && !k.is_expired(ctx.at) => Ok(()),
        _ => Err(ApiError::Unauthorized("API key required or invalid API key")),
    }
}

fn refetch(conn: &Connection, id: KeyId) -> Result<KeyRecord, ApiError> {
    key_store::find_key_by_id(conn, id, Scope::Global)?
        .ok_or_else(|| ApiError::internal(&"key vanished inside its own transaction"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::{Access, GrantPath};

    fn creator(grants: Grants, expires_at: Option<Timestamp>) -> KeyAuth {
        KeyAuth {
            id: KeyId(1),
            uuid: Uuid::new_v4(),
            grants: std::sync::Arc::new(grants),
            status: Status::Active,
            expires_at,
            application_id: Some(AppId(7)),
            application_uuid: None,
        }
    }

    #[test]
    fn minted_key_inherits_grants_expiry_and_application() {
        let c = creator(Grants::root(), Some(Timestamp::from_millis(10_000)));
        let spec = KeySpec::minted_by(&c, "t".into(), None, None, Timestamp::from_millis(5)).unwrap();
        assert_eq!(spec.grants, Grants::root());
        assert_eq!(spec.expires_at, Some(Timestamp::from_millis(10_000)));
        assert_eq!(spec.application_id, Some(AppId(7)));
    }

    #[test]
    fn minting_more_power_or_a_longer_life_is_forbidden() {
        let narrow = Grants::single(GrantPath::parse("/a").unwrap(), Access::Read);
        let c = creator(narrow, Some(Timestamp::from_millis(10_000)));
        let now = Timestamp::from_millis(5);
        let wider = Some(Grants::root());
        assert!(matches!(KeySpec::minted_by(&c, "t".into(), wider, None, now), Err(ApiError::Forbidden(_))));
        let later = Some(Timestamp::from_millis(20_000));
        assert!(matches!(KeySpec::minted_by(&c, "t".into(), None, later, now), Err(ApiError::Forbidden(_))));
        let past = Some(Timestamp::from_millis(1));
        assert!(matches!(KeySpec::minted_by(&c, "t".into(), None, past, now), Err(ApiError::BadRequest { .. })));
    }

    #[test]
    fn titles_are_validated() {
        let ok = serde_json::json!("  Production backend ");
        assert_eq!(validate_title(Some(&ok), "title").unwrap(), "Production backend");
        let too_long = serde_json::json!("x".repeat(MAX_TITLE_CHARS + 1));
        let at_limit = serde_json::json!("x".repeat(MAX_TITLE_CHARS));
        assert!(validate_title(Some(&at_limit), "title").is_ok());
        for bad in [
            serde_json::json!(""),
            serde_json::json!("   "),
            serde_json::json!(5),
            serde_json::json!(null),
            too_long,
            serde_json::json!("a\u{7}b"),
        ] {
            assert!(validate_title(Some(&bad), "title").is_err(), "{bad}");
        }
        assert!(validate_title(None, "title").is_err());
    }
}
