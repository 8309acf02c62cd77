//! Bringing existing keys over without reissuing them: each is stored by its SHA-256 (of the
//! plaintext given, or as given), with the minting rules applied as for a new key, all in one
//! transaction: all or nothing, the first bad line named. A key of another service's format
//! then verifies by hash (`credential`); one of ours keeps its checksum fast-reject.

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::grants::Grants;
use crate::domain::key_format::KeyHash;
use crate::domain::limits::LimitSettings;
use crate::domain::model::{Action, Meta};
use crate::domain::new_key::{NewKey, Owner, Title};
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::service::manage::Manage;
use crate::service::scope::Scoped;
use crate::storage::{AuditEntry, NewKeyRow};

/// One key to bring in.
#[derive(Clone, Debug)]
pub struct ImportedKey {
    /// Where it came from, for error messages (e.g. its line number).
    pub line: usize,
    /// The SHA-256 of its plaintext.
    pub hash: KeyHash,
    /// How lists show it (never more than a few characters of a plaintext).
    pub prefix: String,
    /// Label.
    pub title: Title,
    /// Grants (the manager's own when `None`).
    pub grants: Option<Grants>,
    /// Expiry (the manager's own when `None`); must be in the future.
    pub expires_at: Option<Timestamp>,
    /// Who it belongs to.
    pub owner: Option<Owner>,
    /// Metadata.
    pub meta: Option<Meta>,
    /// Its application, by UUID (in the manager's scope).
    pub application: Option<Uuid>,
}

/// Occurs when the line `line` of an import cannot be taken: nothing was imported.
fn refused(line: usize, reason: impl std::fmt::Display) -> ApiError {
    ApiError::invalid("line", format!("line {line}: {reason}"))
}

impl Manage<'_> {
    /// Stores every key of `keys`, or none: returns how many.
    pub async fn import_keys(&self, keys: Vec<ImportedKey>) -> Result<usize, ApiError> {
        let now = Timestamp::now();
        let actor = self.manager.actor();
        let mut first_seen: HashMap<[u8; 32], usize> = HashMap::with_capacity(keys.len());
        let mut rows = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(earlier) = first_seen.insert(k.hash.0, k.line) {
                return Err(refused(k.line, format!("the same key as line {earlier}")));
            }
            let asked = NewKey {
                title: k.title.clone(),
                grants: k.grants.clone(),
                expires_at: k.expires_at,
                application: k.application,
                owner: None,
                meta: None,
                limits: LimitSettings::default(),
            };
            let (grants, expires_at) = actor.mint(&asked, now).map_err(|e| refused(k.line, e.message()))?;
            rows.push((k, grants, expires_at));
        }
        let count = rows.len();
        self.change(move |store, actor, now| {
            let scoped = Scoped::new(store, actor.scope());
            let ctx = actor.audit(now);
            let mut applications = HashMap::new();
            let no_limits = LimitSettings::default();
            for (k, grants, expires_at) in &rows {
                let application_id = match k.application {
                    None => actor.scope().application(),
                    Some(uuid) => match applications.get(&uuid) {
                        Some(id) => Some(*id),
                        None => {
                            let app = scoped.application(uuid).map_err(|_| refused(k.line, "no such application"))?;
                            applications.insert(uuid, app.id);
                            Some(app.id)
                        }
                    },
                };
                let inserted = store.insert_key_row(&NewKeyRow {
                    uuid: Uuid::new_v4(),
                    title: k.title.as_str(),
                    prefix: &k.prefix,
                    hash: &k.hash,
                    grants,
                    created_at: now,
                    expires_at: *expires_at,
                    created_by: ctx.actor,
                    application_id,
                    owner: k.owner.as_ref().map(Owner::as_str),
                    meta: k.meta.as_ref(),
                    rotated_from: None,
                    limits: &no_limits,
                })?;
                let Some(id) = inserted else {
                    let found = store.find_key_by_hash(&k.hash)?.map_or(0, |f| f.id.0);
                    return Err(refused(k.line, format!("a key with this value exists already (id {found})")));
                };
                let entry =
                    AuditEntry { action: Action::Import, key: Some(id), application: application_id, changes: None };
                store.insert_audit(&entry, &ctx)?;
            }
            Ok(count)
        })
        .await
    }
}
