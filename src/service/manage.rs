//! The one core behind every family and the command line: creating, listing, revoking and
//! deleting keys, and making applications (changing and rotating keys: `lifecycle`; reading
//! the audit trail: `audit`; importing: `import`). Every call takes a [`Manager`] (so the
//! caller has passed `authority`'s check), looks keys up only through its scope
//! (`scope::Scoped`), re-checks the acting key inside the write transaction, and writes each
//! change together with its audit row. Families differ only in how they parse requests and
//! render answers.

use uuid::Uuid;

use crate::domain::grants::Grants;
use crate::domain::key_format::{ApiKey, KeyPrefix};
use crate::domain::limits::LimitSettings;
use crate::domain::model::{Action, AppId, Application, AuditContext, KeyId, KeyRecord, Meta, Scope, Status};
use crate::domain::new_key::{NewKey, Owner, Title};
use crate::domain::timestamp::Timestamp;
use crate::error::{Act, ApiError, Missing, Op};
use crate::service::authority::{Actor, GlobalManager, Manager};
use crate::service::quota::Quota;
use crate::service::scope::{KeyRef, Scoped};
use crate::storage::{AuditEntry, Db, NewKeyRow, Store};

/// Which page of a listing: at most `limit` entries older than `cursor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size.
    pub limit: u32,
    /// The previous page's last entry (a key's id, or an audit row's).
    pub cursor: Option<i64>,
}

pub use crate::service::scope::KeyQuery;

/// One page of keys, newest first, and the cursor of the next (`None` on the last page).
#[derive(Debug)]
pub struct Page {
    /// The keys.
    pub keys: Vec<KeyRecord>,
    /// Pass back as the cursor for the next page.
    pub next_cursor: Option<String>,
}

/// A key just made: its record and, this once, its plaintext.
#[derive(Debug)]
pub struct Created {
    /// As stored.
    pub record: KeyRecord,
    /// The plaintext, for the one response that shows it.
    pub key: ApiKey,
}

/// A new key after the minting rules, with its plaintext drawn: ready to be stored.
pub(super) struct Minted {
    pub(super) title: Title,
    pub(super) grants: Grants,
    pub(super) expires_at: Option<Timestamp>,
    pub(super) application: Option<Uuid>,
    pub(super) owner: Option<Owner>,
    pub(super) meta: Option<Meta>,
    pub(super) rotated_from: Option<KeyId>,
    pub(super) limits: LimitSettings,
    pub(super) key: ApiKey,
}

/// The management calls of one manager on one database, minting keys with one prefix.
pub struct Manage<'a> {
    pub(super) db: &'a Db,
    pub(super) manager: &'a Manager,
    pub(super) prefix: &'a KeyPrefix,
    /// The serving node's credit leases, whose unspent credits a key's metadata counts
    /// (none on the command line, which sees the database's count).
    quota: Option<&'a Quota>,
}

impl<'a> Manage<'a> {
    /// `manager`'s calls on `db`; new keys start with `prefix`.
    pub fn new(db: &'a Db, manager: &'a Manager, prefix: &'a KeyPrefix) -> Manage<'a> {
        Manage { db, manager, prefix, quota: None }
    }

    /// The same, on a node whose credit leases are `quota`.
    pub fn serving(self, quota: &'a Quota) -> Manage<'a> {
        Manage { quota: Some(quota), ..self }
    }

    /// `record` with its credits as this node can spend them: the database's count plus the
    /// unspent part of this node's lease.
    pub(super) fn counted(&self, mut record: KeyRecord) -> KeyRecord {
        if let (Some(quota), Some(credits)) = (self.quota, record.credits.as_mut()) {
            credits.remaining += quota.unspent(record.id);
        }
        record
    }

    /// Runs `work` in a write transaction after re-checking the acting key (see
    /// [`in_transaction`]).
    pub(super) async fn change<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store, &Actor, Timestamp) -> Result<T, ApiError> + Send + 'static,
    {
        in_transaction(self.db, self.manager.actor(), work).await
    }

    /// Makes a key. Its grants and expiry are bounded by the manager's (`Actor::mint`); it
    /// joins the manager's application, or `new.application` when that is in scope.
    pub async fn create_key(&self, new: NewKey) -> Result<Created, ApiError> {
        let mut made = self.create_keys(vec![new]).await?;
        made.pop().ok_or_else(|| ApiError::internal(&"a create made no key"))
    }

    /// Makes several keys in one transaction: all or none.
    pub async fn create_keys(&self, batch: Vec<NewKey>) -> Result<Vec<Created>, ApiError> {
        let now = Timestamp::now();
        // The random source is read here, outside the write transaction.
        let minted = batch
            .into_iter()
            .map(|new| mint(self.manager.actor(), new, self.prefix, now))
            .collect::<Result<Vec<_>, _>>()?;
        self.change(move |store, actor, now| {
            let ctx = actor.audit(now);
            minted.into_iter().map(|m| insert_minted(store, actor.scope(), m, &ctx)).collect()
        })
        .await
    }

    /// Revokes the key `target` names. Revoking a revoked key answers as success without a
    /// second audit row, so a retried revoke is safe; a deleted key is 409; the acting key may
    /// not revoke itself (400), nor a key it could not have minted (403).
    pub async fn revoke_key(&self, target: KeyRef) -> Result<KeyRecord, ApiError> {
        self.change(move |store, actor, now| {
            let record = Scoped::new(store, actor.scope()).key(&target)?.ok_or(ApiError::NotFound(Missing::Key))?;
            refuse_own_key(actor, &record, Act::Revoke)?;
            actor.may_act_on(&record, Op::RevokeKey)?;
            match record.status {
                Status::Revoked => Ok(record),
                Status::Deleted => Err(ApiError::KeyDeleted),
                Status::Active => {
                    store.mark_revoked(record.id, now)?;
                    audited(store, Action::Revoke, &record, &actor.audit(now), None)
                }
            }
        })
        .await
    }

    /// Deletes the key `target` names (active or revoked; 404 if already deleted).
    pub async fn delete_key(&self, target: KeyRef) -> Result<KeyRecord, ApiError> {
        self.change(move |store, actor, now| {
            let record = Scoped::new(store, actor.scope())
                .key(&target)?
                .filter(|k| k.status != Status::Deleted)
                .ok_or(ApiError::NotFound(Missing::Key))?;
            delete(store, actor, vec![record], Op::DeleteKey, now).map(|mut v| v.remove(0))
        })
        .await
    }

    /// Deletes the active key whose plaintext is `key`. Unknown, out-of-scope, revoked and
    /// already deleted keys are all 404 ("no such active key").
    pub async fn delete_key_by_value(&self, key: ApiKey) -> Result<KeyRecord, ApiError> {
        self.change(move |store, actor, now| {
            let record = Scoped::new(store, actor.scope())
                .key_by_hash(&key.hash())?
                .filter(|k| k.status == Status::Active)
                .ok_or(ApiError::NotFound(Missing::ActiveKey))?;
            delete(store, actor, vec![record], Op::DeleteKey, now).map(|mut v| v.remove(0))
        })
        .await
    }

    /// Deletes the keys with these UUIDs, all or nothing, in one transaction: every one must
    /// be in scope and not deleted already (404 naming the missing ones otherwise), and none
    /// may be the acting key (400).
    pub async fn delete_keys(&self, uuids: Vec<Uuid>) -> Result<Vec<KeyRecord>, ApiError> {
        self.change(move |store, actor, now| {
            let scoped = Scoped::new(store, actor.scope());
            let mut found = Vec::with_capacity(uuids.len());
            let mut missing = Vec::new();
            for uuid in uuids {
                match scoped.key(&KeyRef::Uuid(uuid))? {
                    Some(k) if k.status != Status::Deleted => found.push(k),
                    _ => missing.push(uuid),
                }
            }
            if !missing.is_empty() {
                return Err(ApiError::NotFound(Missing::Keys(missing)));
            }
            delete(store, actor, found, Op::DeleteKeys, now)
        })
        .await
    }

    /// The key `target` names, in any status.
    pub async fn get_key(&self, target: KeyRef) -> Result<KeyRecord, ApiError> {
        let scope = self.manager.actor().scope();
        let record = self
            .db
            .read(move |store| Scoped::new(store, scope).key(&target)?.ok_or(ApiError::NotFound(Missing::Key)))
            .await?;
        Ok(self.counted(record))
    }

    /// One page of the keys in scope that `query` selects, newest first.
    pub async fn list_keys(&self, query: KeyQuery, page: PageRequest) -> Result<Page, ApiError> {
        let scope = self.manager.actor().scope();
        let PageRequest { limit, cursor } = page;
        let now = Timestamp::now();
        let keys = self
            .db
            .read(move |store| Scoped::new(store, scope).keys(&query, now, cursor.map(KeyId), limit + 1))
            .await?;
        let (keys, next_cursor) = cut_page(keys, limit, |k| k.id.0);
        Ok(Page { keys: keys.into_iter().map(|k| self.counted(k)).collect(), next_cursor })
    }

    /// The application with this UUID, if in scope.
    pub async fn get_application(&self, uuid: Uuid) -> Result<Application, ApiError> {
        let scope = self.manager.actor().scope();
        self.db.read(move |store| Scoped::new(store, scope).application(uuid)).await
    }

    /// Every application in scope, newest first.
    pub async fn list_applications(&self) -> Result<Vec<Application>, ApiError> {
        let scope = self.manager.actor().scope();
        self.db.read(move |store| Ok(Scoped::new(store, scope).applications()?)).await
    }
}

impl Manage<'_> {
    /// Makes an application, with its audit row: only a global manager may.
    pub async fn create_application(&self, name: Title) -> Result<Application, ApiError> {
        let global = self.manager.clone().global()?;
        create_application(self.db, &global, name).await
    }
}

/// Makes an application, with its audit row.
async fn create_application(db: &Db, by: &GlobalManager, name: Title) -> Result<Application, ApiError> {
    in_transaction(db, by.manager().actor(), move |store, actor, now| {
        let app = store.insert_application(Uuid::new_v4(), name.as_str(), now)?;
        let entry =
            AuditEntry { action: Action::CreateApplication, key: None, application: Some(app.id), changes: None };
        store.insert_audit(&entry, &actor.audit(now))?;
        Ok(app)
    })
    .await
}

/// Cuts rows fetched with `limit + 1` to `limit`, with the cursor of the next page.
pub(super) fn cut_page<T>(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    let next = if rows.len() > limit { rows.get(limit - 1).map(|r| id(r).to_string()) } else { None };
    rows.truncate(limit);
    (rows, next)
}

/// Runs `work` in one write transaction, on behalf of `actor` at the transaction's instant,
/// after re-checking inside it that the acting key is still usable: every change goes through
/// here, so a key revoked a moment ago (by this server, the command line or another node)
/// cannot act.
pub(super) async fn in_transaction<T, F>(db: &Db, actor: &Actor, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store, &Actor, Timestamp) -> Result<T, ApiError> + Send + 'static,
{
    let actor = actor.clone();
    let expires_at = actor.expires_at();
    let result = db
        .write(move |store| {
            let now = Timestamp::now();
            actor.ensure_usable(store, now)?;
            work(store, &actor, now)
        })
        .await;
    // A refusal because the acting key has just expired says that expiry has passed: it must
    // stay passed across a restart (service::clock), as authentication's refusals do.
    if let (Err(ApiError::Unauthenticated(_)), Some(expiry)) = (&result, expires_at) {
        let now = Timestamp::now();
        if expiry <= now {
            let written = db.write(move |store| Ok::<_, ApiError>(store.raise_clock_mark(now)?)).await;
            if let Err(e) = written {
                log::warn!("clock high-water mark not written after an expired key was refused: {e}");
            }
        }
    }
    result
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
/// A database that already has keys is left as it is, whatever `provided` says. The check and
/// the insert are one transaction, so two processes starting on one new file install one key.
pub async fn bootstrap(db: &Db, provided: Option<&ApiKey>) -> Result<Bootstrap, ApiError> {
    let (key, generated) = match provided {
        Some(k) => (k.clone(), false),
        None => (generate_key()?, true),
    };
    let title = Title::parse("root").map_err(|e| ApiError::internal(&e))?;
    let minted = Minted {
        title,
        grants: Grants::root(),
        expires_at: None,
        application: None,
        owner: None,
        meta: None,
        rotated_from: None,
        limits: LimitSettings::default(),
        key: key.clone(),
    };
    let installed = db
        .write(move |store| {
            if store.any_keys()? {
                return Ok(false);
            }
            let ctx = AuditContext { actor: None, request_id: None, at: Timestamp::now() };
            insert_minted(store, Scope::Global, minted, &ctx)?;
            Ok::<_, ApiError>(true)
        })
        .await?;
    Ok(match (installed, generated) {
        (false, _) => Bootstrap::AlreadyInitialised,
        (true, false) => Bootstrap::Installed,
        (true, true) => Bootstrap::Generated(key),
    })
}

/// Applies the minting rules to `new` and draws its plaintext.
fn mint(actor: &Actor, new: NewKey, prefix: &KeyPrefix, now: Timestamp) -> Result<Minted, ApiError> {
    let (grants, expires_at) = actor.mint(&new, now)?;
    Ok(Minted {
        title: new.title,
        grants,
        expires_at,
        application: new.application,
        owner: new.owner,
        meta: new.meta,
        rotated_from: None,
        limits: new.limits,
        key: generate_key_with(prefix)?,
    })
}

fn generate_key() -> Result<ApiKey, ApiError> {
    generate_key_with(&KeyPrefix::default())
}

/// A fresh key starting with `prefix`, from the operating system's random source.
pub(super) fn generate_key_with(prefix: &KeyPrefix) -> Result<ApiKey, ApiError> {
    ApiKey::generate_with(prefix).map_err(|e| ApiError::internal(&e))
}

/// Stores a minted key and its audit row: in the creator's application (from `scope`), or
/// the one it asked for, which must be in scope.
pub(super) fn insert_minted(
    store: &dyn Store,
    scope: Scope,
    m: Minted,
    ctx: &AuditContext,
) -> Result<Created, ApiError> {
    let application_id: Option<AppId> = match m.application {
        Some(uuid) => Some(Scoped::new(store, scope).application(uuid)?.id),
        None => scope.application(),
    };
    insert_key_row(store, application_id, m, ctx)
}

/// Stores a minted key in `application_id`, with its `create` audit row.
pub(super) fn insert_key_row(
    store: &dyn Store,
    application_id: Option<AppId>,
    m: Minted,
    ctx: &AuditContext,
) -> Result<Created, ApiError> {
    let record = store.insert_key(&NewKeyRow {
        uuid: Uuid::new_v4(),
        title: m.title.as_str(),
        prefix: &m.key.display_prefix(),
        hash: &m.key.hash(),
        grants: &m.grants,
        created_at: ctx.at,
        expires_at: m.expires_at,
        created_by: ctx.actor,
        application_id,
        owner: m.owner.as_ref().map(Owner::as_str),
        meta: m.meta.as_ref(),
        rotated_from: m.rotated_from,
        limits: &m.limits,
    })?;
    let changes = m.rotated_from.map(|from| serde_json::json!({ "rotated_from": from }));
    audit(store, Action::Create, &record, ctx, changes)?;
    Ok(Created { record, key: m.key })
}

/// The acting key may not revoke or delete itself.
pub(super) fn refuse_own_key(actor: &Actor, record: &KeyRecord, act: Act) -> Result<(), ApiError> {
    if actor.key_id() == Some(record.id) {
        return Err(ApiError::OwnKey { act, key: record.uuid });
    }
    Ok(())
}

/// Marks `records` deleted, with their audit rows: all or none. None may be the acting key
/// or one it could not have minted.
fn delete(
    store: &dyn Store,
    actor: &Actor,
    records: Vec<KeyRecord>,
    op: Op,
    now: Timestamp,
) -> Result<Vec<KeyRecord>, ApiError> {
    for record in &records {
        refuse_own_key(actor, record, Act::Delete)?;
    }
    for record in &records {
        actor.may_act_on(record, op)?;
    }
    let ctx = actor.audit(now);
    records
        .iter()
        .map(|k| {
            store.mark_deleted(k.id, now)?;
            audited(store, Action::Delete, k, &ctx, None)
        })
        .collect()
}

/// Writes the audit row of a change to `key` (what changed in `changes`, as JSON).
pub(super) fn audit(
    store: &dyn Store,
    action: Action,
    key: &KeyRecord,
    ctx: &AuditContext,
    changes: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    let entry = AuditEntry { action, key: Some(key.id), application: key.application_id, changes };
    Ok(store.insert_audit(&entry, ctx)?)
}

/// [`audit`], then the key as it now stands.
pub(super) fn audited(
    store: &dyn Store,
    action: Action,
    key: &KeyRecord,
    ctx: &AuditContext,
    changes: Option<serde_json::Value>,
) -> Result<KeyRecord, ApiError> {
    audit(store, action, key, ctx, changes)?;
    store.find_key_by_id(key.id)?.ok_or_else(|| ApiError::internal(&"key vanished inside its own transaction"))
}
