//! Keys that change without being replaced, and keys replaced without an outage: updates
//! (title, grants, expiry, owner, metadata, enabled) and rotation with a grace period. Both
//! act only on keys the manager could have minted, and only within its own grants and expiry
//! (`authority`); both write an audit row saying what changed. A change applies from the next
//! request: it reaches the key index through the change feed like any other.

use serde_json::{json, Map, Value};

use crate::domain::grants::Grants;
use crate::domain::limits::{Cidr, Credits, LimitSettings, RateLimit};
use crate::domain::model::{Action, KeyRecord, Meta, Status};
use crate::domain::new_key::{Owner, Title};
use crate::domain::timestamp::Timestamp;
use crate::error::{ApiError, Missing, Op};
use crate::service::manage::{audited, generate_key_with, insert_key_row, Created, Manage, Minted};
use crate::service::scope::{KeyRef, Scoped};
use crate::storage::KeyChanges;

/// What an update asks for: `None` leaves a field as it is; for `expires_at`, `owner` and
/// `meta`, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct KeyUpdate {
    /// New title.
    pub title: Option<Title>,
    /// New grants.
    pub grants: Option<Grants>,
    /// New expiry.
    pub expires_at: Option<Option<Timestamp>>,
    /// New owner.
    pub owner: Option<Option<Owner>>,
    /// New metadata.
    pub meta: Option<Option<Meta>>,
    /// Disable (false) or enable (true).
    pub enabled: Option<bool>,
    /// New rate limit.
    pub rate_limit: Option<Option<RateLimit>>,
    /// New credits (setting them, even to the same count, starts over: leases are void).
    pub credits: Option<Option<Credits>>,
    /// New IP allowlist.
    pub allowed_ips: Option<Option<Vec<Cidr>>>,
}

impl Manage<'_> {
    /// Changes the key `target` names. Narrowing is always allowed; widening only within the
    /// manager's own grants and expiry (403). A revoked or deleted key is 409 (revocation is
    /// final; disabling is the reversible switch). Nothing asked that differs from what is
    /// stored: no write, no audit row.
    pub async fn update_key(&self, target: KeyRef, update: KeyUpdate) -> Result<KeyRecord, ApiError> {
        let sets_credits = update.credits.is_some();
        let record = self
            .change(move |store, actor, now| {
                let record = Scoped::new(store, actor.scope()).key(&target)?.ok_or(ApiError::NotFound(Missing::Key))?;
                refuse_final(&record)?;
                actor.may_act_on(&record, Op::UpdateKey)?;
                actor.may_hold(update.grants.as_ref(), update.expires_at, now)?;
                let (changes, diff) = differences(&record, update);
                if diff.is_empty() {
                    return Ok(record);
                }
                // A switch alone is a disable or an enable; anything else is an update.
                let action = match (diff.len(), changes.enabled) {
                    (1, Some(false)) => Action::Disable,
                    (1, Some(true)) => Action::Enable,
                    _ => Action::Update,
                };
                store.update_key(record.id, &changes)?;
                audited(store, action, &record, &actor.audit(now), Some(Value::Object(diff)))
            })
            .await?;
        // Credits just set are all in the database; any lease of the old ones is void.
        Ok(if sets_credits { record } else { self.counted(record) })
    }

    /// Replaces the key `target` names (or, if it was rotated already, the newest key of its
    /// line) by a new key with the same title, grants, owner, metadata, application and
    /// expiry. The old key keeps working until `now + grace_ms`, never past its own expiry,
    /// and then verifies `EXPIRED`; the two are linked (`rotated_to`, `rotated_from`).
    pub async fn rotate_key(&self, target: KeyRef, grace_ms: u64) -> Result<Created, ApiError> {
        // The random source is read here, outside the write transaction.
        let key = generate_key_with(self.prefix)?;
        let grace_ms = i64::try_from(grace_ms).unwrap_or(i64::MAX);
        self.change(move |store, actor, now| {
            let scoped = Scoped::new(store, actor.scope());
            let mut old = scoped.key(&target)?.ok_or(ApiError::NotFound(Missing::Key))?;
            while let Some(newer) = old.rotated_to.and_then(|id| scoped.key(&KeyRef::Id(id)).transpose()) {
                old = newer?;
            }
            refuse_final(&old)?;
            actor.may_act_on(&old, Op::RotateKey)?;
            let ctx = actor.audit(now);
            // The credits move to the new key, refilled first if a refill is due; the old key
            // spends from the new key's count while its grace lasts.
            let mut credits = old.credits;
            if let Some(c) = credits.as_mut() {
                c.remaining = store.lease_credits(old.id, 0, now)?.left;
            }
            let minted = Minted {
                title: Title::parse(&old.title).map_err(|e| ApiError::internal(&e))?,
                grants: old.grants.clone(),
                expires_at: old.expires_at,
                application: None,
                owner: old.owner.as_deref().map(Owner::parse).transpose().map_err(|e| ApiError::internal(&e))?,
                meta: old.meta.clone(),
                rotated_from: Some(old.id),
                limits: LimitSettings { rate_limit: old.rate_limit, credits, allowed_ips: old.allowed_ips.clone() },
                key,
            };
            let made = insert_key_row(store, old.application_id, minted, &ctx)?;
            let ends = old.expires_at.map_or(now.plus_millis(grace_ms), |own| own.min(now.plus_millis(grace_ms)));
            let changes =
                KeyChanges { expires_at: Some(Some(ends)), rotated_to: Some(made.record.id), ..KeyChanges::default() };
            store.update_key(old.id, &changes)?;
            if credits.is_some() {
                store.pool_credits(old.id, made.record.id)?;
            }
            let diff = json!({
                "expires_at": { "from": old.expires_at, "to": ends },
                "rotated_to": made.record.id,
            });
            audited(store, Action::Rotate, &old, &ctx, Some(diff))?;
            Ok(made)
        })
        .await
    }
}

/// Revocation and deletion are final: such a key is neither changed nor rotated.
fn refuse_final(record: &KeyRecord) -> Result<(), ApiError> {
    match record.status {
        Status::Active => Ok(()),
        Status::Revoked => Err(ApiError::KeyRevoked),
        Status::Deleted => Err(ApiError::KeyDeleted),
    }
}

/// What `update` changes on `record`: the store's changes, and for the audit row each
/// changed field's `{"from", "to"}` (never a hash or a plaintext: a key has neither here).
fn differences(record: &KeyRecord, update: KeyUpdate) -> (KeyChanges, Map<String, Value>) {
    let mut changes = KeyChanges::default();
    let mut diff = Map::new();
    let mut note = |field: &str, from: Value, to: Value| {
        diff.insert(field.to_owned(), json!({ "from": from, "to": to }));
    };
    let meta_json = |m: &Option<Meta>| m.as_ref().and_then(|m| serde_json::from_str::<Value>(m.as_str()).ok());
    if let Some(title) = update.title.filter(|t| t.as_str() != record.title) {
        note("title", json!(record.title), json!(title.as_str()));
        changes.title = Some(title.as_str().to_owned());
    }
    if let Some(grants) = update.grants.filter(|g| *g != record.grants) {
        note("grants", json!(record.grants), json!(grants));
        changes.grants = Some(grants);
    }
    if let Some(expires_at) = update.expires_at.filter(|at| *at != record.expires_at) {
        note("expires_at", json!(record.expires_at), json!(expires_at));
        changes.expires_at = Some(expires_at);
    }
    if let Some(owner) = update.owner.map(|o| o.map(Owner::into_string)).filter(|o| *o != record.owner) {
        note("owner", json!(record.owner), json!(owner));
        changes.owner = Some(owner);
    }
    if let Some(meta) = update.meta.filter(|m| *m != record.meta) {
        note("meta", json!(meta_json(&record.meta)), json!(meta_json(&meta)));
        changes.meta = Some(meta);
    }
    if let Some(enabled) = update.enabled.filter(|e| *e != record.enabled) {
        note("enabled", json!(record.enabled), json!(enabled));
        changes.enabled = Some(enabled);
    }
    if let Some(rate) = update.rate_limit.filter(|r| *r != record.rate_limit) {
        note("rate_limit", json!(record.rate_limit), json!(rate));
        changes.rate_limit = Some(rate);
    }
    // Credits asked for are always set: "100 left" twice means two fresh hundreds.
    if let Some(credits) = update.credits {
        note("credits", json!(record.credits), json!(credits));
        changes.credits = Some(credits);
    }
    let ips = |l: &Option<Vec<Cidr>>| json!(l.as_ref().map(|l| l.iter().map(ToString::to_string).collect::<Vec<_>>()));
    if let Some(allowed) = update.allowed_ips.filter(|a| *a != record.allowed_ips) {
        note("allowed_ips", ips(&record.allowed_ips), ips(&allowed));
        changes.allowed_ips = Some(allowed);
    }
    (changes, diff)
}
