//! Credit leases: a node takes credits from the database in blocks, in a committed
//! transaction, before spending any of them from memory. The database's count therefore
//! never exceeds what was really left, whatever happens to the node: a crash forfeits the
//! unspent part of its lease, and never lets a key spend more than it had. A clean stop gives
//! the unspent part back.
//!
//! A block is [`CREDIT_LEASE`] credits; for a key that spends a block within a second it
//! doubles at each take, up to [`MAX_CREDIT_LEASE`] (and halves again once a block lasts ten
//! seconds), but it never exceeds a sixteenth of what the database holds when that is more
//! than [`CREDIT_LEASE`]. The lease is topped up to a full block in the background once fewer
//! than half are left, so verdicts rarely wait for a write; between verdicts it holds at most
//! one block. So a crash forfeits at most one block: 64 credits for a key used less than 64
//! times a second, about a second of use for a busier one, never more than 4,096.
//!
//! A verdict spends from memory under a plain mutex held for a few arithmetic operations;
//! only a verdict that finds the lease short waits (on an async lock, one take at a time per
//! key) for the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Mutex as AsyncMutex;

use crate::config::{CREDIT_LEASE, MAX_CREDIT_LEASE};
use crate::domain::limits::{next_period_start, period_start, CreditPolicy, RefillInterval};
use crate::domain::model::KeyId;
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::storage::{CreditTake, Db};

/// A block spent faster than this makes the next one twice as big.
const GROW_WITHIN: Duration = Duration::from_secs(1);
/// A block lasting longer than this makes the next one half as big.
const SHRINK_AFTER: Duration = Duration::from_secs(10);

/// What the credits said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditState {
    /// Credits left (this node's unspent lease and what the database holds).
    pub remaining: u64,
    /// When they are next refilled, if they refill.
    pub refills_at: Option<Timestamp>,
}

/// Credits this node took from the database and has not spent yet.
#[derive(Debug)]
struct Lease {
    /// The credits' generation when they were taken: setting them again (create, PATCH)
    /// starts a new one and voids the lease.
    version: u64,
    /// The refill period they belong to, and the interval, as the database said (`None`
    /// without refill).
    period: Option<Timestamp>,
    interval: Option<RefillInterval>,
    /// Unspent credits.
    left: u64,
    /// What the database held after the last take.
    stored: u64,
    /// The size of a block for this key now.
    block: u64,
    /// When the last block was taken.
    taken_at: Instant,
    /// A top-up is being taken in the background.
    topping_up: bool,
    /// Tells this lease from one taken after it was voided (for a top-up in flight).
    serial: u64,
}

/// Serials of leases.
static SERIAL: AtomicU64 = AtomicU64::new(0);

impl Lease {
    /// True once the lease no longer holds: set again, or its refill period ended.
    fn void(&self, version: u64, now: Timestamp) -> bool {
        self.version != version || self.interval.is_some_and(|i| Some(period_start(i, now)) != self.period)
    }

    fn state(&self, now: Timestamp) -> CreditState {
        CreditState { remaining: self.left + self.stored, refills_at: self.interval.map(|i| next_period_start(i, now)) }
    }

    /// The size of the next block: grown for a key that spent the last one fast, shrunk for
    /// one that spent it slowly, and small when the database holds few.
    fn next_block(&self) -> u64 {
        let since = self.taken_at.elapsed();
        let block = if since < GROW_WITHIN {
            (self.block * 2).min(MAX_CREDIT_LEASE)
        } else if since > SHRINK_AFTER {
            (self.block / 2).max(CREDIT_LEASE)
        } else {
            self.block
        };
        block.min((self.stored / 16).max(CREDIT_LEASE))
    }

    /// Adds what a take brought, if it belongs to this lease's period.
    fn add(&mut self, took: CreditTake, block: u64) -> bool {
        if took.period != self.period {
            return false;
        }
        self.left += took.granted;
        self.stored = took.left;
        self.block = block;
        self.taken_at = Instant::now();
        true
    }
}

/// The outcome of spending from memory.
enum Spend {
    /// Spent (`Ok`) or refused with nothing more to take (`Err`); with a top-up to start.
    Done(Result<CreditState, CreditState>, Option<TopUp>),
    /// The lease is short and the database may hold more.
    Short,
}

/// A top-up to take in the background.
struct TopUp {
    serial: u64,
    want: u64,
    block: u64,
}

/// One key's lease.
#[derive(Debug, Default)]
struct Cell {
    /// Held only for arithmetic, never across an await.
    lease: Mutex<Option<Lease>>,
    /// One database take at a time per key.
    taking: AsyncMutex<()>,
    /// Unspent credits, readable without the lock (a key's metadata shows them).
    unspent: AtomicU64,
}

impl Cell {
    fn lock(&self) -> MutexGuard<'_, Option<Lease>> {
        self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spends `cost` from memory if the lease holds it.
    fn spend(&self, version: u64, cost: u64, now: Timestamp) -> Spend {
        let mut lease = self.lock();
        if lease.as_ref().is_some_and(|l| l.void(version, now)) {
            *lease = None;
        }
        let Some(l) = lease.as_mut() else { return Spend::Short };
        if l.left < cost.max(1) {
            self.unspent.store(l.left, Ordering::Relaxed);
            return if l.stored > 0 { Spend::Short } else { Spend::Done(Err(l.state(now)), None) };
        }
        l.left -= cost;
        self.unspent.store(l.left, Ordering::Relaxed);
        let mut top_up = None;
        if l.left < l.block / 2 && l.stored > 0 && !l.topping_up {
            l.topping_up = true;
            let block = l.next_block();
            top_up = Some(TopUp { serial: l.serial, want: block.saturating_sub(l.left), block });
        }
        Spend::Done(Ok(l.state(now)), top_up)
    }
}

/// Every key's credit lease on this node.
#[derive(Default)]
pub struct Leases {
    cells: Mutex<HashMap<KeyId, Arc<Cell>>>,
}

impl Leases {
    fn cell(&self, key: KeyId) -> Arc<Cell> {
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(cells.entry(key).or_default())
    }

    /// Credits of `key` this node holds unspent.
    pub fn unspent(&self, key: KeyId) -> u64 {
        let cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        cells.get(&key).map_or(0, |c| c.unspent.load(Ordering::Relaxed))
    }

    /// Spends `cost` credits of `key`, taking more from the database when the lease runs
    /// short. `Ok(Err(..))` when there are not enough (a cost of 0 checks that some are left).
    pub async fn spend(
        &self,
        db: &Db,
        key: KeyId,
        policy: CreditPolicy,
        cost: u64,
        now: Timestamp,
    ) -> Result<Result<CreditState, CreditState>, ApiError> {
        let cell = self.cell(key);
        if let Spend::Done(answer, top_up) = cell.spend(policy.version, cost, now) {
            spawn_top_up(db, &cell, key, top_up);
            return Ok(answer);
        }
        let _taking = cell.taking.lock().await;
        // Another verdict (or a top-up) may have taken a block while this one waited.
        if let Spend::Done(answer, top_up) = cell.spend(policy.version, cost, now) {
            spawn_top_up(db, &cell, key, top_up);
            return Ok(answer);
        }
        let (held, block) = cell.lock().as_ref().map_or((0, CREDIT_LEASE), |l| (l.left, l.next_block()));
        let block = block.max(cost);
        let took = take(db, key, block.saturating_sub(held), now).await?;
        {
            let mut lease = cell.lock();
            let merged = lease.as_mut().is_some_and(|l| !l.void(policy.version, now) && l.add(took, block));
            if !merged {
                *lease = Some(Lease {
                    version: policy.version,
                    period: took.period,
                    interval: took.interval,
                    left: took.granted,
                    stored: took.left,
                    block,
                    taken_at: Instant::now(),
                    topping_up: false,
                    serial: SERIAL.fetch_add(1, Ordering::Relaxed),
                });
            }
        }
        match cell.spend(policy.version, cost, now) {
            Spend::Done(answer, top_up) => {
                spawn_top_up(db, &cell, key, top_up);
                Ok(answer)
            }
            // Just taken and still short: the database had no more.
            Spend::Short => {
                Ok(Err(cell.lock().as_ref().map_or(CreditState { remaining: 0, refills_at: None }, |l| l.state(now))))
            }
        }
    }

    /// Gives every unspent lease back to the database: on a clean stop, nothing is forfeited.
    pub async fn give_back(&self, db: &Db) {
        let cells: Vec<(KeyId, Arc<Cell>)> = {
            let cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
            cells.iter().map(|(k, c)| (*k, Arc::clone(c))).collect()
        };
        for (key, cell) in cells {
            let _taking = cell.taking.lock().await;
            let Some(l) = cell.lock().take() else { continue };
            cell.unspent.store(0, Ordering::Relaxed);
            if l.left > 0 {
                let (version, period, left) = (l.version, l.period, l.left);
                let back = db.write(move |s| Ok::<_, ApiError>(s.return_credits(key, version, period, left)?)).await;
                if let Err(e) = back {
                    log::warn!("could not give back {left} leased credits of key {}: {e}", key.0);
                }
            }
        }
    }
}

fn spawn_top_up(db: &Db, cell: &Arc<Cell>, key: KeyId, top_up: Option<TopUp>) {
    if let Some(t) = top_up {
        let (db, cell) = (db.clone(), Arc::clone(cell));
        tokio::spawn(async move { top_up_now(&db, &cell, key, t).await });
    }
}

/// Tops the lease up (in the background), as one take of the key's: what is taken is added
/// only to the lease it was started for (its serial: not one taken after that was voided),
/// and only for the same refill period, else it is void, forfeited like a crash's.
async fn top_up_now(db: &Db, cell: &Cell, key: KeyId, t: TopUp) {
    let _taking = cell.taking.lock().await;
    let took = take(db, key, t.want, Timestamp::now()).await;
    let mut lease = cell.lock();
    let Some(l) = lease.as_mut().filter(|l| l.serial == t.serial) else { return };
    l.topping_up = false;
    match took {
        Ok(took) => {
            if l.add(took, t.block) {
                cell.unspent.store(l.left, Ordering::Relaxed);
            } else {
                // A refill boundary passed meanwhile: the next verdict starts over.
                *lease = None;
                cell.unspent.store(0, Ordering::Relaxed);
            }
        }
        Err(e) => log::warn!("credit lease failed, the next verdict will retry: {e}"),
    }
}

/// Takes up to `block` credits of `key` from the database, refilling first if a boundary
/// passed.
async fn take(db: &Db, key: KeyId, block: u64, now: Timestamp) -> Result<CreditTake, ApiError> {
    db.write(move |store| Ok::<_, ApiError>(store.lease_credits(key, block, now)?)).await
}
