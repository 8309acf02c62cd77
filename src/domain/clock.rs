//! The one-way clock: the time every expiry, session and stored timestamp is judged by.
//! [`Timestamp::now`](crate::domain::timestamp::Timestamp::now) reads it, and only
//! [`SystemSource`] reads the operating system's wall clock.
//!
//! # The rule
//!
//! `now = max(wall clock, last answer + monotonic time elapsed since it)`, clamped to what
//! the formats can show (1970-01-01T00:00:00.000Z ..= 9999-12-31T23:59:59.999Z).
//!
//! - **Never backwards.** A wall clock stepped back (an NTP correction, an operator, a VM
//!   restored from a snapshot) is ignored until it has caught up: an expiry once passed stays
//!   passed, so an expired key or session is never accepted again, and no stored
//!   `revoked_at`/`created_at` precedes one written before it.
//! - **Never standing still.** While the wall clock is behind, time goes on at the monotonic
//!   clock's rate from where it was. A design that only took `max(wall, high-water mark)`
//!   would stop time for as long as the step back was: a session with a one-hour lifetime
//!   would then be accepted for up to an hour more *real* time. Here a session never outlives
//!   its lifetime in real time (as the monotonic clock measures it, within one process), nor
//!   its key's expiry, which is compared with the same clock.
//! - **Forward steps count.** A wall clock stepped forward moves `now` forward with it: what
//!   should expire by then expires. That step cannot be taken back (it would revive what it
//!   expired); if it was a mistake, the server's clock runs ahead of the wall clock by the
//!   step until the wall clock passes it. This is the price of the first rule, and the safe
//!   side of it: keys and sessions then end early, never late.
//! - **Across restarts** the monotonic clock is lost, so the clock is raised at start-up to
//!   the latest time the database has seen (`service::clock`: a persisted high-water mark,
//!   written before any expiry is judged passed beyond it, and every few seconds, and the
//!   latest stored timestamps). A restart therefore never revives what was judged expired.
//!   The time the process was down is not counted while the wall clock is behind that mark;
//!   that again errs on the side of the wall clock being right once it catches up.
//! - **Clamped.** A wall clock beyond year 9999 (or before 1970) is read as the last (first)
//!   millisecond the formats can show, so nothing the server writes or shows is unformattable.
//!
//! Rate and failure windows do not use this clock: they run on [`std::time::Instant`]
//! (`service::limiter`, `service::usage`, and `service::quota`'s rate windows and lease ages),
//! which no wall-clock step moves.
//!
//! The clock is one process-wide value ([`global`]) over [`SystemSource`]. Tests build their
//! own [`Clock`] over a [`ManualSource`], whose wall clock they step at will.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::domain::timestamp::Timestamp;

/// The first millisecond the formats cannot show: 10000-01-01T00:00:00.000Z.
pub const END_OF_TIME_MS: i64 = 253_402_300_800_000;
/// The last millisecond the formats can show (RFC 3339 and HTTP dates have four-digit years).
pub const LATEST_MS: i64 = END_OF_TIME_MS - 1;

/// Where a [`Clock`] reads the time.
pub trait Source: Send + Sync {
    /// The wall clock, in milliseconds since the Unix epoch. May jump either way.
    fn wall_millis(&self) -> i64;
    /// Time since some fixed origin that never jumps and never goes back.
    fn monotonic(&self) -> Duration;
}

/// The operating system's clocks: the one place the wall clock is read.
pub struct SystemSource {
    origin: Instant,
}

impl SystemSource {
    /// Monotonic time is measured from now.
    pub fn new() -> SystemSource {
        SystemSource { origin: Instant::now() }
    }
}

impl Default for SystemSource {
    fn default() -> SystemSource {
        SystemSource::new()
    }
}

impl Source for SystemSource {
    fn wall_millis(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // Before 1970: clamped to 1970 by the clock.
            Err(_) => 0,
        }
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A source whose wall clock tests set and step, and whose monotonic clock moves only when
/// [`ManualSource::advance`] says time passed.
#[derive(Debug, Default)]
pub struct ManualSource {
    wall: AtomicI64,
    monotonic_ms: AtomicI64,
}

impl ManualSource {
    /// Wall clock at `wall_ms`, monotonic clock at zero.
    pub fn at(wall_ms: i64) -> ManualSource {
        ManualSource { wall: AtomicI64::new(wall_ms), monotonic_ms: AtomicI64::new(0) }
    }

    /// `ms` of real time pass: both clocks move forward.
    pub fn advance(&self, ms: i64) {
        let ms = ms.max(0);
        self.wall.fetch_add(ms, Ordering::SeqCst);
        self.monotonic_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The wall clock is stepped by `ms` (either way); no real time passes.
    pub fn step(&self, ms: i64) {
        self.wall.fetch_add(ms, Ordering::SeqCst);
    }

    /// The wall clock is set to `ms`; no real time passes.
    pub fn set_wall(&self, ms: i64) {
        self.wall.store(ms, Ordering::SeqCst);
    }
}

impl Source for ManualSource {
    fn wall_millis(&self) -> i64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.monotonic_ms.load(Ordering::SeqCst)).unwrap_or(0))
    }
}

/// The one-way clock over a [`Source`] (see the module doc).
pub struct Clock<S: Source = SystemSource> {
    source: S,
    anchor: Mutex<Anchor>,
}

/// The last time the wall clock (or a floor) set the clock, and the monotonic reading then.
/// While the wall clock is behind, `now` is `at + (monotonic - since)`.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    at: i64,
    since: Duration,
}

impl<S: Source> Clock<S> {
    /// A clock that starts at the source's wall clock.
    pub fn new(source: S) -> Clock<S> {
        let anchor = Anchor { at: clamp(source.wall_millis()), since: source.monotonic() };
        Clock { source, anchor: Mutex::new(anchor) }
    }

    /// The source, for tests that step it.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The current time: never earlier than any earlier answer, and later by at least the
    /// monotonic time elapsed since it.
    pub fn now(&self) -> Timestamp {
        let wall = clamp(self.source.wall_millis());
        let mono = self.source.monotonic();
        let mut anchor = self.anchor.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = i64::try_from(mono.saturating_sub(anchor.since).as_millis()).unwrap_or(i64::MAX);
        let carried = anchor.at.saturating_add(elapsed).min(LATEST_MS);
        if wall > carried {
            *anchor = Anchor { at: wall, since: mono };
            Timestamp::from_millis(wall)
        } else {
            Timestamp::from_millis(carried)
        }
    }

    /// Makes the clock read at least `floor` from now on (at start-up: the latest time the
    /// database has seen). Never moves it back.
    pub fn raise_to(&self, floor: Timestamp) {
        let floor = clamp(floor.millis());
        let current = self.now();
        if floor > current.millis() {
            let mut anchor = self.anchor.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *anchor = Anchor { at: floor, since: self.source.monotonic() };
        }
    }

    /// How far the clock is ahead of the wall clock, in milliseconds (0 when it follows it):
    /// for diagnostics.
    pub fn ahead_of_wall(&self) -> i64 {
        let now = self.now().millis();
        now.saturating_sub(self.source.wall_millis()).max(0)
    }
}

/// A wall reading brought into the range the formats can show.
fn clamp(ms: i64) -> i64 {
    ms.clamp(0, LATEST_MS)
}

static GLOBAL: LazyLock<Clock> = LazyLock::new(|| Clock::new(SystemSource::new()));

impl Timestamp {
    /// The current time by the process's one-way clock ([`global`]): never earlier than any
    /// earlier answer, within years 1970..=9999. Everything the server judges or stores a
    /// time by comes from here.
    pub fn now() -> Timestamp {
        GLOBAL.now()
    }
}

/// The process's clock, which [`Timestamp::now`] reads.
pub fn global() -> &'static Clock {
    &GLOBAL
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    fn clock() -> Clock<ManualSource> {
        Clock::new(ManualSource::at(T0))
    }

    #[test]
    fn follows_the_wall_clock_while_it_runs_normally() {
        let c = clock();
        assert_eq!(c.now().millis(), T0);
        c.source().advance(1500);
        assert_eq!(c.now().millis(), T0 + 1500);
        assert_eq!(c.ahead_of_wall(), 0);
    }

    #[test]
    fn a_step_back_is_ignored_and_time_goes_on_at_the_monotonic_rate() {
        let c = clock();
        c.source().advance(10_000);
        c.source().step(-3_600_000);
        assert_eq!(c.now().millis(), T0 + 10_000, "not one millisecond back");
        c.source().advance(250);
        assert_eq!(c.now().millis(), T0 + 10_250, "real time still passes");
        assert_eq!(c.ahead_of_wall(), 3_600_000);
        // Once the wall clock is right again (stepped forward past us), it leads again.
        c.source().step(3_600_000 + 5_000);
        assert_eq!(c.now().millis(), T0 + 15_250);
    }

    #[test]
    fn a_step_forward_counts_and_cannot_be_taken_back() {
        let c = clock();
        c.source().step(60_000);
        assert_eq!(c.now().millis(), T0 + 60_000);
        c.source().step(-60_000 - 3_600_000);
        c.source().advance(1);
        assert_eq!(c.now().millis(), T0 + 60_001);
    }

    #[test]
    fn many_small_reads_do_not_lose_elapsed_time() {
        // Reads a fraction of a millisecond apart must still add up while the wall is behind.
        let c = clock();
        c.source().step(-1_000_000);
        for _ in 0..1000 {
            c.source().advance(1);
            c.now();
        }
        assert_eq!(c.now().millis(), T0 + 1000);
    }

    #[test]
    fn raise_to_moves_forward_only() {
        let c = clock();
        c.raise_to(Timestamp::from_millis(T0 + 5_000));
        assert_eq!(c.now().millis(), T0 + 5_000);
        c.raise_to(Timestamp::from_millis(T0));
        assert_eq!(c.now().millis(), T0 + 5_000);
        c.source().advance(10);
        assert_eq!(c.now().millis(), T0 + 5_010);
    }

    #[test]
    fn readings_beyond_the_formats_are_clamped() {
        let c = Clock::new(ManualSource::at(END_OF_TIME_MS + 5_000));
        assert_eq!(c.now().millis(), LATEST_MS);
        assert_eq!(c.now().to_string(), "9999-12-31T23:59:59.999Z");
        c.source().advance(10_000);
        assert_eq!(c.now().millis(), LATEST_MS, "the clock stops at the last showable millisecond");
        let before = Clock::new(ManualSource::at(-86_400_000));
        assert_eq!(before.now().millis(), 0);
    }
}
