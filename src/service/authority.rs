//! Who may act, and how far: the rules every family and the command line pass through.
//! An [`Actor`] is whoever makes a change (a key authenticated by the request, or the
//! operator at the command line, who holds the database file and so acts as a global root
//! key). Managing keys takes a [`Manager`], which only [`Actor::manager`] (write on `/`)
//! and [`Actor::root_manager`] hand out: the core's management calls take one, so no caller
//! can reach them without passing the check. Minting is bounded by the creator's own grants
//! and expiry ([`Actor::mint`]).

use std::sync::Arc;

use crate::domain::grants::Grants;
use crate::domain::model::{AuditContext, KeyAuth, KeyId, KeyRecord, Scope, Standing};
use crate::domain::new_key::NewKey;
use crate::domain::timestamp::Timestamp;
use crate::error::{ApiError, AuthFailure, Denied, Op};
use crate::storage::Store;

/// Whoever makes a change, and under which request.
#[derive(Clone, Debug)]
pub struct Actor {
    /// The acting key; `None` for the operator.
    key: Option<KeyId>,
    grants: Arc<Grants>,
    expires_at: Option<Timestamp>,
    scope: Scope,
    request_id: Option<String>,
}

impl Actor {
    /// `key`, authenticated by the request `request_id`.
    pub fn key(key: &KeyAuth, request_id: Option<String>) -> Actor {
        Actor {
            key: Some(key.id),
            grants: Arc::clone(&key.grants),
            expires_at: key.expires_at,
            scope: key.scope(),
            request_id,
        }
    }

    /// The operator at the command line: global, read_write on `/`, never expiring.
    pub fn operator() -> Actor {
        Actor { key: None, grants: Arc::new(Grants::root()), expires_at: None, scope: Scope::Global, request_id: None }
    }

    /// The acting key's id (`None` for the operator).
    pub fn key_id(&self) -> Option<KeyId> {
        self.key
    }

    /// The keys this actor may see and change.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// What the audit row of a change this actor makes at `at` records.
    pub fn audit(&self, at: Timestamp) -> AuditContext {
        AuditContext { actor: self.key, request_id: self.request_id.clone(), at }
    }

    /// A manager of keys in this actor's scope: write access to `/`. `op` says what was
    /// asked, for the family that words its refusal per operation.
    pub fn manager(self, op: Op) -> Result<Manager, ApiError> {
        if self.grants.can_manage() {
            Ok(Manager(self))
        } else {
            Err(ApiError::Forbidden(Denied::NotManager(op)))
        }
    }

    /// A manager holding a root key: read_write on `/` and no expiry (the shard-node family
    /// creates keys only for such a caller).
    pub fn root_manager(self) -> Result<Manager, ApiError> {
        if self.grants.is_root() && self.expires_at.is_none() {
            Ok(Manager(self))
        } else {
            Err(ApiError::Forbidden(Denied::NotRoot))
        }
    }

    /// The grants and expiry a key minted by this actor gets when asked for `new`. No key
    /// mints more grants or a later expiry than its own (403); with no grants the new key
    /// gets the creator's, with no expiry the creator's expiry; an expiry not in the future
    /// is 400.
    pub fn mint(&self, new: &NewKey, now: Timestamp) -> Result<(Grants, Option<Timestamp>), ApiError> {
        let grants = match &new.grants {
            None => Grants::clone(&self.grants),
            Some(g) if g.within(&self.grants) => g.clone(),
            Some(_) => return Err(ApiError::Forbidden(Denied::GrantsExceed)),
        };
        if new.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::invalid("expires_at", "expires_at must be in the future"));
        }
        let expires_at = match (new.expires_at, self.expires_at) {
            (None, limit) => limit,
            (Some(at), Some(limit)) if at > limit => return Err(ApiError::Forbidden(Denied::ExpiryExceeds)),
            (Some(at), _) => Some(at),
        };
        Ok((grants, expires_at))
    }

    /// May this actor revoke or delete `target` (found in its scope)? Only a key it could have
    /// minted: grants within its own, and an expiry no later than its own (a key that never
    /// expires is beyond any key that does). So a weaker manager cannot remove a stronger
    /// key, and the last root key can never be removed by another key: only a root key could
    /// act on it, and that one is another root key. The operator acts on every key.
    pub fn may_act_on(&self, target: &KeyRecord, op: Op) -> Result<(), ApiError> {
        let expiry_within = match (self.expires_at, target.expires_at) {
            (None, _) => true,
            (Some(limit), Some(at)) => at <= limit,
            (Some(_), None) => false,
        };
        if target.grants.within(&self.grants) && expiry_within {
            Ok(())
        } else {
            Err(ApiError::Forbidden(Denied::Outranked(op)))
        }
    }

    /// Re-checks, inside a write transaction, that the acting key is still usable: a key
    /// revoked a moment ago (by this server, another node or the command line) cannot act.
    pub fn ensure_usable(&self, store: &dyn Store, at: Timestamp) -> Result<(), ApiError> {
        let Some(id) = self.key else { return Ok(()) };
        match store.find_key_by_id(id)? {
            Some(k) if k.standing(at) == Standing::Usable => Ok(()),
            _ => Err(ApiError::Unauthenticated(AuthFailure::Credential)),
        }
    }
}

/// An actor that may manage keys in its scope.
#[derive(Clone, Debug)]
pub struct Manager(Actor);

impl Manager {
    /// The actor behind this manager.
    pub fn actor(&self) -> &Actor {
        &self.0
    }

    /// A manager of every key: only a global key may create applications.
    pub fn global(self) -> Result<GlobalManager, ApiError> {
        if self.0.scope == Scope::Global {
            Ok(GlobalManager(self))
        } else {
            Err(ApiError::Forbidden(Denied::NotGlobal))
        }
    }
}

/// A manager whose scope is every key.
#[derive(Clone, Debug)]
pub struct GlobalManager(Manager);

impl GlobalManager {
    /// The manager.
    pub fn manager(&self) -> &Manager {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grants::{Access, GrantPath};
    use crate::domain::model::{AppId, Status};
    use crate::domain::new_key::Title;

    fn key(grants: Grants, expires_at: Option<Timestamp>) -> Actor {
        let auth = KeyAuth {
            id: KeyId(1),
            uuid: uuid::Uuid::new_v4(),
            grants: Arc::new(grants),
            status: Status::Active,
            expires_at,
            application_id: Some(AppId(7)),
            application_uuid: None,
        };
        Actor::key(&auth, None)
    }

    fn asking(grants: Option<Grants>, expires_at: Option<Timestamp>) -> NewKey {
        NewKey { title: Title::parse("t").unwrap(), grants, expires_at, application: None }
    }

    #[test]
    fn a_minted_key_inherits_grants_and_expiry() {
        let c = key(Grants::root(), Some(Timestamp::from_millis(10_000)));
        let (grants, expires_at) = c.mint(&asking(None, None), Timestamp::from_millis(5)).unwrap();
        assert_eq!(grants, Grants::root());
        assert_eq!(expires_at, Some(Timestamp::from_millis(10_000)));
        assert_eq!(c.scope(), Scope::Application(AppId(7)));
    }

    #[test]
    fn minting_more_power_or_a_longer_life_is_forbidden() {
        let narrow = Grants::single(GrantPath::parse("/a").unwrap(), Access::Read);
        let c = key(narrow, Some(Timestamp::from_millis(10_000)));
        let now = Timestamp::from_millis(5);
        let refused = |new: NewKey| c.mint(&new, now).unwrap_err();
        assert_eq!(refused(asking(Some(Grants::root()), None)), ApiError::Forbidden(Denied::GrantsExceed));
        let later = Some(Timestamp::from_millis(20_000));
        assert_eq!(refused(asking(None, later)), ApiError::Forbidden(Denied::ExpiryExceeds));
        let past = Some(Timestamp::from_millis(1));
        assert!(matches!(refused(asking(None, past)), ApiError::BadRequest { .. }));
    }

    #[test]
    fn managing_needs_write_on_root_and_root_needs_no_expiry() {
        let write_root = Grants::single(GrantPath::root(), Access::Write);
        let read_root = Grants::single(GrantPath::root(), Access::Read);
        assert!(key(write_root.clone(), None).manager(Op::Manage).is_ok());
        assert_eq!(
            key(read_root, None).manager(Op::ListKeys).unwrap_err(),
            ApiError::Forbidden(Denied::NotManager(Op::ListKeys))
        );
        assert!(key(Grants::root(), None).root_manager().is_ok());
        assert!(key(write_root, None).root_manager().is_err());
        assert!(key(Grants::root(), Some(Timestamp::from_millis(9))).root_manager().is_err());
        assert!(Actor::operator().root_manager().unwrap().global().is_ok());
        assert_eq!(
            key(Grants::root(), None).manager(Op::Manage).unwrap().global().unwrap_err(),
            ApiError::Forbidden(Denied::NotGlobal)
        );
    }

    fn target(grants: Grants, expires_at: Option<Timestamp>) -> KeyRecord {
        KeyRecord {
            id: KeyId(2),
            uuid: uuid::Uuid::new_v4(),
            title: "target".into(),
            prefix: "sk-00000000".into(),
            grants,
            status: Status::Active,
            created_at: Timestamp::from_millis(0),
            revoked_at: None,
            deleted_at: None,
            expires_at,
            last_used_at: None,
            created_by: None,
            application_id: None,
            application_uuid: None,
        }
    }

    #[test]
    fn a_key_acts_only_on_keys_it_could_have_minted() {
        let write_root = Grants::single(GrantPath::root(), Access::Write);
        let data = Grants::single(GrantPath::parse("/data").unwrap(), Access::ReadWrite);
        let (soon, later) = (Some(Timestamp::from_millis(1_000)), Some(Timestamp::from_millis(2_000)));
        let outranked = Err(ApiError::Forbidden(Denied::Outranked(Op::RevokeKey)));
        let rows = [
            // actor grants, actor expiry, target grants, target expiry, allowed
            (Grants::root(), None, Grants::root(), None, true),
            (Grants::root(), later, data.clone(), soon, true),
            (Grants::root(), later, data.clone(), later, true),
            (Grants::root(), soon, data.clone(), later, false),
            (Grants::root(), soon, data.clone(), None, false),
            (write_root.clone(), None, Grants::root(), None, false),
            (write_root.clone(), None, write_root.clone(), None, true),
            (data.clone(), None, write_root, None, false),
        ];
        for (grants, expires, target_grants, target_expires, allowed) in rows {
            let got =
                key(grants.clone(), expires).may_act_on(&target(target_grants.clone(), target_expires), Op::RevokeKey);
            let want = if allowed { Ok(()) } else { outranked.clone() };
            assert_eq!(got, want, "{grants:?} {expires:?} on {target_grants:?} {target_expires:?}");
        }
        assert!(Actor::operator().may_act_on(&target(Grants::root(), None), Op::DeleteKey).is_ok());
    }
}
