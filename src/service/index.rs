//! The in-memory key index: hash -> what authentication needs, so a verification costs a
//! hash-map look-up instead of a SQLite read. Measured side by side on the 2-core machine
//! (10,000 keys, wrk, 32 connections, one run): a pooled SQLite point look-up inline on the
//! worker reached 0.32 of the `/healthz` ceiling for POST verify and 0.37 for GET /auth, most
//! of the time in SQLite's read-transaction start and page-cache locks; the index, 0.57 and
//! 0.75 (BENCHMARKS.md has the full runs).
//!
//! Coherence is the whole difficulty, and it rests on two facts:
//! 1. Every change to a key, its creation included, writes an audit row in the same
//!    transaction (see `manage`), so the audit log is a complete change feed, whoever wrote
//!    it: this server's writer or `apikeyd keys revoke` / `keys create` in another process.
//! 2. In WAL mode every commit, from any process, rewrites the WAL-index header at the start
//!    of the `-shm` file (its change counter `iChange` is bumped; format documented in
//!    SQLite's walformat.html, shared by all processes and versions). Reading those 48 bytes
//!    with one `pread` costs far less than starting a read transaction.
//!
//! So each look-up first reads the header; if it differs from the one seen at the last
//! refresh, the feed since the last applied audit row is read, with each changed key's
//! current row, and those entries are replaced before anything is answered. A revoke
//! acknowledged (committed) before a request starts has therefore always changed the header
//! that request reads.
//!
//! Once warming has loaded every key (and no oversized feed has cleared the map since), the
//! map is *complete*: every key that exists is in it, since every later creation arrives
//! through the feed. A complete map answers a miss itself: an unknown key costs no SQLite
//! read, so a flood of made-up keys costs what a valid key costs, and no memory (unknown keys
//! are never cached). Until then, misses fall through to SQLite and fill the map only if no
//! refresh happened meanwhile (`generation`), so a fill can never resurrect a state that a
//! concurrent refresh replaced. Warming writes only into empty slots, for the same reason.
//!
//! The `-shm` file stays in place while the server runs: its writer connection is open for
//! the server's whole life, and SQLite removes `-shm` only when the last connection closes.
//! If the header cannot be read, every look-up refreshes from the feed: slower, still right.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;

use crate::config::{INDEX_MAX_FEED as MAX_FEED, INDEX_WARM_PAGE as WARM_PAGE};
use crate::domain::grants::Grants;
use crate::domain::key_format::KeyHash;
use crate::domain::model::{AppId, Extras, KeyAuth, KeyId, Status};
use crate::domain::timestamp::Timestamp;
use crate::storage::ChangeMarker as Header;
use crate::storage::{Db, Interned, StoreError as DbError};

/// The map key: the first 128 bits of the key's SHA-256. Half the bytes of the full hash, which
/// matters at a million keys; landing on another key's entry still takes a 128-bit second
/// preimage of SHA-256, for a text that also passes the checksum.
type Slot = u128;

fn slot(hash: &KeyHash) -> Slot {
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash.0[..16]);
    u128::from_be_bytes(first)
}

/// A key's application, shared by all its keys in the map.
#[derive(Debug, PartialEq, Eq)]
struct AppRef {
    id: AppId,
    uuid: Option<Uuid>,
}

/// [`KeyAuth`] packed for the map (64 bytes instead of 104): measured at 1,000,000 keys the map
/// is most of the resident memory, and hashbrown rounds a million entries up to 2^21 slots.
struct Entry {
    id: KeyId,
    uuid: Uuid,
    grants: Arc<Grants>,
    /// Milliseconds; `i64::MAX` for never.
    expires_ms: i64,
    app: Option<Arc<AppRef>>,
    /// Owner and metadata: none (no allocation) for most keys.
    extras: Option<Arc<Extras>>,
    status: Status,
    enabled: bool,
}

impl Entry {
    fn pack(auth: KeyAuth, apps: &mut HashMap<i64, Arc<AppRef>>) -> Entry {
        let app = auth.application_id.map(|id| {
            let fresh = AppRef { id, uuid: auth.application_uuid };
            Arc::clone(apps.entry(id.0).or_insert_with(|| Arc::new(fresh)))
        });
        Entry {
            id: auth.id,
            uuid: auth.uuid,
            grants: auth.grants,
            expires_ms: auth.expires_at.map_or(i64::MAX, Timestamp::millis),
            app,
            extras: auth.extras,
            status: auth.status,
            enabled: auth.enabled,
        }
    }

    fn unpack(&self) -> KeyAuth {
        KeyAuth {
            id: self.id,
            uuid: self.uuid,
            grants: Arc::clone(&self.grants),
            status: self.status,
            enabled: self.enabled,
            expires_at: (self.expires_ms != i64::MAX).then_some(Timestamp::from_millis(self.expires_ms)),
            application_id: self.app.as_ref().map(|a| a.id),
            application_uuid: self.app.as_ref().and_then(|a| a.uuid),
            extras: self.extras.clone(),
        }
    }
}

/// The index. One per database, shared by all workers.
pub struct KeyIndex {
    state: RwLock<State>,
    /// Set (and signalled) when the map was cleared and should be warmed again.
    rewarm: (Mutex<bool>, Condvar),
    /// Look-ups that had to ask SQLite (misses of an incomplete map).
    database_lookups: AtomicU64,
}

struct State {
    keys: HashMap<Slot, Entry>,
    /// The last audit row whose change has been applied.
    cursor: i64,
    /// Bumped by every refresh. A miss that began before a refresh must not fill the map.
    generation: u64,
    /// The WAL-index header read before the last refresh's feed query.
    seen: Option<Header>,
    /// Every key that exists is in `keys` (see the module doc).
    complete: bool,
    /// Bumped whenever `keys` is cleared: a warming that began before must not mark the
    /// map complete.
    epoch: u64,
    /// Parsed grants shared by the entries the feed brings.
    interned: Interned,
    /// Applications shared by the entries the feed brings.
    apps: HashMap<i64, Arc<AppRef>>,
}

impl KeyIndex {
    /// An empty, incomplete index positioned at the current end of the change feed.
    pub fn open(db: &Db) -> Result<KeyIndex, DbError> {
        let mut index = KeyIndex {
            state: RwLock::new(State {
                keys: HashMap::new(),
                cursor: 0,
                generation: 0,
                seen: None,
                complete: false,
                epoch: 0,
                interned: Interned::new(),
                apps: HashMap::new(),
            }),
            database_lookups: AtomicU64::new(0),
            rewarm: (Mutex::new(false), Condvar::new()),
        };
        let seen = db.change_marker();
        let cursor = db.read_inline(|store| store.last_audit_id())?;
        let state = index.state.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.seen = seen;
        state.cursor = cursor;
        Ok(index)
    }

    /// The key whose hash is `hash`, in any status, as of a state no older than the start of
    /// this call. `None` when no such key exists.
    pub fn find(&self, db: &Db, hash: &KeyHash) -> Result<Option<KeyAuth>, DbError> {
        let header = db.change_marker();
        let generation = {
            let state = self.read();
            if header.is_some() && state.seen == header {
                match state.keys.get(&slot(hash)) {
                    Some(found) => return Ok(Some(found.unpack())),
                    None if state.complete => return Ok(None),
                    None => Some(state.generation),
                }
            } else {
                None
            }
        };
        let generation = match generation {
            Some(g) => g,
            None => {
                self.refresh(db, header)?;
                let state = self.read();
                match state.keys.get(&slot(hash)) {
                    Some(found) => return Ok(Some(found.unpack())),
                    None if state.complete => return Ok(None),
                    None => state.generation,
                }
            }
        };
        self.database_lookups.fetch_add(1, Ordering::Relaxed);
        let Some(record) = db.read_inline(|store| store.find_key_by_hash(hash))? else {
            return Ok(None);
        };
        let auth = record.auth();
        let mut state = self.write();
        if state.generation == generation {
            let State { keys, apps, .. } = &mut *state;
            keys.entry(slot(hash)).or_insert_with(|| Entry::pack(auth.clone(), apps));
        }
        Ok(Some(auth))
    }

    /// Loads every key into the map, a page at a time, while look-ups go on, and marks the map
    /// complete when done (unless it was cleared meanwhile). Returns how many keys it loaded.
    /// The server answers correctly before it finishes.
    pub fn warm(&self, db: &Db) -> Result<usize, DbError> {
        let total = db.read_inline(|store| store.max_key_id())?;
        let epoch = {
            let mut state = self.write();
            let missing = usize::try_from(total).unwrap_or(0).saturating_sub(state.keys.len());
            state.keys.reserve(missing);
            state.epoch
        };
        let mut interned = Interned::new();
        let mut apps: HashMap<i64, Arc<AppRef>> = HashMap::new();
        let mut after = KeyId(0);
        let mut loaded = 0;
        loop {
            let page = db.read_inline(|store| store.load_auth_page(after, WARM_PAGE, &mut interned))?;
            let Some((_, last)) = page.last() else { break };
            after = last.id;
            let mut state = self.write();
            if state.epoch != epoch {
                return Ok(loaded); // cleared meanwhile: a newer warming will run
            }
            for (hash, auth) in page {
                // Never over an entry already there: a refresh may have put a newer state.
                state.keys.entry(slot(&hash)).or_insert_with(|| Entry::pack(auth, &mut apps));
                loaded += 1;
            }
        }
        let mut state = self.write();
        if state.epoch == epoch {
            state.complete = true;
        }
        Ok(loaded)
    }

    /// Warms the index, then again each time a refresh had to clear it; never returns. For
    /// the server's background thread.
    pub fn keep_warm(&self, db: &Db) {
        loop {
            let started = std::time::Instant::now();
            match self.warm(db) {
                Ok(n) => log::info!("key index warm: {n} keys in {:.0?}", started.elapsed()),
                Err(e) => log::warn!("key index warming stopped (look-ups fall back to the database): {e}"),
            }
            let (flag, signal) = &self.rewarm;
            let mut wanted = flag.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            while !*wanted {
                wanted = signal.wait(wanted).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            *wanted = false;
        }
    }

    /// How many keys the map holds.
    pub fn len(&self) -> usize {
        self.read().keys.len()
    }

    /// True when the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when every key that exists is in the map, so misses are answered without SQLite.
    pub fn is_complete(&self) -> bool {
        self.read().complete
    }

    /// The last audit row (change) the index has applied: the database's newest minus this is
    /// how far the index lags behind the change feed.
    pub fn applied_change(&self) -> i64 {
        self.read().cursor
    }

    /// How many look-ups have asked SQLite so far (misses of an incomplete map).
    pub fn database_lookups(&self) -> u64 {
        self.database_lookups.load(Ordering::Relaxed)
    }

    /// Applies the change feed since the last refresh: each changed key's entry is replaced
    /// by its current state.
    fn refresh(&self, db: &Db, header: Option<Header>) -> Result<(), DbError> {
        let mut state = self.write();
        if header.is_some() && state.seen == header {
            return Ok(()); // another worker refreshed while this one waited for the lock
        }
        let State { keys, cursor, complete, epoch, interned, apps, .. } = &mut *state;
        let after = *cursor;
        let changes = db.read_inline(|store| store.changes_since(after, MAX_FEED + 1, interned))?;
        if changes.len() > MAX_FEED as usize {
            // Too many to apply under the lock: start over, empty and incomplete, from the
            // current end of the feed, and have the background thread warm it again.
            keys.clear();
            *complete = false;
            *epoch += 1;
            *cursor = db.read_inline(|store| store.last_audit_id())?;
            let (flag, signal) = &self.rewarm;
            *flag.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
            signal.notify_all();
        } else {
            for (id, changed) in changes {
                if let Some((hash, auth)) = changed {
                    keys.insert(slot(&hash), Entry::pack(auth, apps));
                }
                *cursor = id;
            }
        }
        state.generation += 1;
        state.seen = header;
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // The state is only ever replaced whole-field under the lock; a panic elsewhere
        // cannot leave it half-written, so a poisoned lock is still a consistent one.
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_pack_small_and_unpack_to_what_was_packed() {
        assert_eq!(std::mem::size_of::<Entry>(), 64);
        let mut apps = HashMap::new();
        for (expires_at, app) in [(None, None), (Some(Timestamp::from_millis(5)), Some(AppId(3)))] {
            let auth = KeyAuth {
                id: KeyId(9),
                uuid: Uuid::new_v4(),
                grants: Arc::new(Grants::root()),
                status: Status::Revoked,
                enabled: false,
                expires_at,
                application_id: app,
                application_uuid: app.map(|_| Uuid::new_v4()),
                extras: Extras::of(Some("owner".into()), None, crate::domain::limits::Limits::default()),
            };
            assert_eq!(Entry::pack(auth.clone(), &mut apps).unpack(), auth);
        }
    }
}
