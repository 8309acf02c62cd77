//! The durable half of the one-way clock (`domain::clock`): what keeps an expired key or
//! session expired across a restart whose wall clock has been stepped back.
//!
//! Within one process the clock never goes back. A new process starts from the wall clock,
//! which may be behind what the last process saw: after a forward step that expired a key,
//! a step back and a restart, a naive clock would find the key `VALID` again. So:
//!
//! - **At start-up** ([`ClockMark::open`]) the clock is raised to the latest time the database
//!   has seen: the persisted high-water mark (a `settings` row) and the newest stored
//!   timestamps (audit rows, applications, `last_used_at`), so a database written before the
//!   mark existed is covered too.
//! - **Before any answer that says an expiry has passed** (a key `EXPIRED`, a session refused
//!   for its age, a key shown as expired), the mark must be at least that expiry:
//!   [`ClockMark::cover`] writes `now` (durably, through the writer, like any write) if the
//!   expiry lies beyond what the database already holds, and the answer waits for it. That is
//!   the only moment a revival could be created, so it is the moment the mark is written;
//!   one write covers every expiry up to `now`.
//! - **Every few seconds** the server writes the mark anyway ([`ClockMark::refresh`]), so
//!   `cover` rarely has to (only for an expiry passed since the last refresh), and a restart
//!   loses at most that interval of the clock when the wall clock is behind.
//!
//! Why not a lease (persist `now + L` ahead and judge freely until then)? A restart would
//! then start up to `L` ahead of the wall clock, and expire keys and sessions up to `L` early
//! on every ordinary restart. Why not persist on every answer? A write per verification.
//! Writing on the first judgement past the mark costs one group commit per newly passed
//! expiry (at most), and none at all for expiries older than the last refresh.
//!
//! If the mark cannot be written (a full or failing disk), the answer is still given (an
//! expiry that has passed is still reported as passed: never `VALID`) and the failure logged;
//! only the promise across a restart with a stepped-back clock is then at risk.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::clock::{Clock, Source};
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::storage::Db;

/// What a restart is known to start at or after, and the means to raise it.
#[derive(Debug)]
pub struct ClockMark {
    /// Milliseconds: the database holds a mark or timestamps at least this late.
    durable: AtomicI64,
}

impl ClockMark {
    /// Raises `clock` to the latest time the database at `db` has seen; the mark handle.
    pub async fn open<S: Source>(db: &Db, clock: &Clock<S>) -> Result<ClockMark, ApiError> {
        let latest = db.read(|store| Ok::<_, ApiError>(store.latest_time()?)).await?;
        clock.raise_to(Timestamp::from_millis(latest));
        Ok(ClockMark { durable: AtomicI64::new(latest) })
    }

    /// What a restart's clock is known to start at or after.
    pub fn durable(&self) -> Timestamp {
        Timestamp::from_millis(self.durable.load(Ordering::SeqCst))
    }

    /// Before answering that `passed` has passed (it is at or before `now`): makes sure a
    /// restart's clock will not start before it. Writes `now` only when `passed` is beyond what
    /// the database holds. Never fails the answer: a failed write is logged.
    pub async fn cover(&self, db: &Db, passed: Timestamp, now: Timestamp) {
        if passed <= self.durable() {
            return;
        }
        if let Err(e) = self.persist(db, now.max(passed)).await {
            log::warn!("clock high-water mark not written ({e}): an expiry judged passed at {passed} could look unexpired after a restart with the wall clock set back");
        }
    }

    /// Writes `now` as the mark (the server does so every few seconds).
    pub async fn refresh(&self, db: &Db, now: Timestamp) -> Result<(), ApiError> {
        if now > self.durable() {
            self.persist(db, now).await?;
        }
        Ok(())
    }

    async fn persist(&self, db: &Db, at: Timestamp) -> Result<(), ApiError> {
        let mark = db.write(move |store| Ok::<_, ApiError>(store.raise_clock_mark(at)?)).await?;
        self.durable.fetch_max(mark, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::ManualSource;

    const T0: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    /// A forward step expires a key; the expiry is covered; the wall clock is stepped back
    /// and the process "restarts" (a new clock and a new handle on the same file): the new
    /// clock starts no earlier than the expiry.
    #[test]
    fn a_restart_after_a_step_forward_and_back_starts_after_every_covered_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let rt = runtime();
        let expiry = Timestamp::from_millis(T0 + 30_000);
        {
            let db = Db::open(&path).unwrap();
            let clock = Clock::new(ManualSource::at(T0));
            let mark = rt.block_on(ClockMark::open(&db, &clock)).unwrap();
            clock.source().step(60_000);
            let now = clock.now();
            assert!(now >= expiry, "the step forward expired it");
            rt.block_on(mark.cover(&db, expiry, now));
            assert!(mark.durable() >= expiry);
        }
        let db = Db::open(&path).unwrap();
        let clock = Clock::new(ManualSource::at(T0 - HOUR));
        rt.block_on(ClockMark::open(&db, &clock)).unwrap();
        assert!(clock.now() >= expiry, "{} < {expiry}", clock.now());
    }

    #[test]
    fn cover_writes_only_for_an_expiry_beyond_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("c.db")).unwrap();
        let rt = runtime();
        let clock = Clock::new(ManualSource::at(T0));
        let mark = rt.block_on(ClockMark::open(&db, &clock)).unwrap();
        rt.block_on(mark.refresh(&db, clock.now())).unwrap();
        assert_eq!(mark.durable().millis(), T0);
        clock.source().advance(5_000);
        // An expiry older than the mark: nothing to write, the mark stays.
        rt.block_on(mark.cover(&db, Timestamp::from_millis(T0 - 1), clock.now()));
        assert_eq!(mark.durable().millis(), T0);
        // One beyond it: the mark becomes now, which covers every expiry up to it.
        rt.block_on(mark.cover(&db, Timestamp::from_millis(T0 + 1_000), clock.now()));
        assert_eq!(mark.durable().millis(), T0 + 5_000);
    }
}
