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

    /// The grants and expiry a key minted by this actor gets when asked for `new`: the
    /// creator's own for what `new` leaves out, and what it asks for only within
    /// [`Actor::may_hold`].
    pub fn mint(&self, new: &NewKey, now: Timestamp) -> Result<(Grants, Option<Timestamp>), ApiError> {
        let grants = new.grants.clone().unwrap_or_else(|| Grants::clone(&self.grants));
        let expires_at = new.expires_at.or(self.expires_at);
        self.may_hold(Some(&grants), new.expires_at.map(Some), now)?;
        Ok((grants, expires_at))
    }

    /// The no-escalation rule, for every key this actor makes or changes: grants within its
    /// own (403), an expiry asked for in the future (400) and no later than its own (403),
    /// and no expiry at all only for an actor that never expires itself (403). `None` leaves
    /// a value unasked; `Some(None)` asks for no expiry.
    pub fn may_hold(
        &self,
        grants: Option<&Grants>,
        expires_at: Option<Option<Timestamp>>,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        if grants.is_some_and(|g| !g.within(&self.grants)) {
            return Err(ApiError::Forbidden(Denied::GrantsExceed));
        }
        let Some(expires_at) = expires_at else { return Ok(()) };
        if expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::invalid("expires_at", "expires_at must be in the future"));
        }
        if !self.outlives(expires_at) {
            return Err(ApiError::Forbidden(Denied::ExpiryExceeds));
        }
        Ok(())
    }

    /// True when this actor's own expiry is no earlier than `expires_at` (never, for `None`).
    fn outlives(&self, expires_at: Option<Timestamp>) -> bool {
        match (self.expires_at, expires_at) {
            (None, _) => true,
            (Some(limit), Some(at)) => at <= limit,
            (Some(_), None) => false,
        }
    }

    /// May this actor revoke, delete, change or rotate `target` (found in its scope)? Only a
    /// key it could have minted: grants within its own, and an expiry no later than its own
    /// (a key that never expires is beyond any key that does). So a weaker manager cannot
    /// remove a stronger key, and the last root key can never be removed by another key:
    /// only a root key could act on it, and that one is another root key. The operator acts
    /// on every key.
    pub fn may_act_on(&self, target: &KeyRecord, op: Op) -> Result<(), ApiError> {
        if target.grants.within(&self.grants) && self.outlives(target.expires_at) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(Denied::Outranked(op)))
        }
    }

    /// The acting key's expiry, if it has one.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
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
            enabled: true,
            expires_at,
            application_id: Some(AppId(7)),
            application_uuid: None,
            extras: None,
        };
        Actor::key(&auth, None)
    }

    fn asking(grants: Option<Grants>, expires_at: Option<Timestamp>) -> NewKey {
        NewKey {
            title: Title::parse("t").unwrap(),
            grants,
            expires_at,
            application: None,
            owner: None,
            meta: None,
            limits: Default::default(),
        }
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
            enabled: true,
            owner: None,
            meta: None,
            created_at: Timestamp::from_millis(0),
            revoked_at: None,
            deleted_at: None,
            expires_at,
            last_used_at: None,
            created_by: None,
            application_id: None,
            application_uuid: None,
            rotated_from: None,
            rotated_to: None,
            rate_limit: None,
            credits: None,
            credits_version: 0,
            allowed_ips: None,
        }
    }

    #[test]
    fn changes_are_bounded_like_minting() {
        let (soon, later) = (Timestamp::from_millis(1_000), Timestamp::from_millis(2_000));
        let now = Timestamp::from_millis(5);
        let c = key(Grants::root(), Some(soon));
        assert_eq!(c.may_hold(None, Some(Some(soon)), now), Ok(()), "at the boundary");
        assert_eq!(c.may_hold(None, Some(Some(later)), now), Err(ApiError::Forbidden(Denied::ExpiryExceeds)));
        assert_eq!(c.may_hold(None, Some(None), now), Err(ApiError::Forbidden(Denied::ExpiryExceeds)));
        assert!(
            key(Grants::root(), None).may_hold(None, Some(None), now).is_ok(),
            "clearing needs a key that never expires"
        );
        let narrow = key(Grants::single(GrantPath::parse("/a").unwrap(), Access::Read), None);
        let wider = Grants::single(GrantPath::parse("/a").unwrap(), Access::ReadWrite);
        assert_eq!(narrow.may_hold(Some(&wider), None, now), Err(ApiError::Forbidden(Denied::GrantsExceed)));
        let same = Grants::single(GrantPath::parse("/a/b").unwrap(), Access::Read);
        assert!(narrow.may_hold(Some(&same), None, now).is_ok());
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
