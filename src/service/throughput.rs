//! Verifications per minute over the last hour, for the admin page's chart. Every verdict of
//! the edge path (`credential::verify`) costs one relaxed atomic add into the slot of its
//! minute; nothing else is done there. Slots are made ready (zeroed, stamped with their
//! minute) ahead of time by [`VerifyRate::prepare`], which the server's flush task calls
//! every few seconds and every reader calls too; a reader trusts only slots stamped with the
//! minute it asks about. Counts live in memory only: a restart starts the chart afresh.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::domain::timestamp::Timestamp;

/// Minutes the chart shows.
pub const MINUTES: usize = 60;
/// Slots in the ring: more than [`MINUTES`] plus the minutes prepared ahead.
const SLOTS: usize = 64;
/// Minutes made ready beyond the current one.
const AHEAD: i64 = 2;

/// A ring of per-minute verification counts.
pub struct VerifyRate {
    counts: [AtomicU64; SLOTS],
    minute_of: [AtomicI64; SLOTS],
}

impl std::fmt::Debug for VerifyRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRate").finish_non_exhaustive()
    }
}

fn minute(at: Timestamp) -> i64 {
    at.millis().div_euclid(60_000)
}

fn slot(minute: i64) -> usize {
    // SLOTS is a power of two: rem_euclid of a non-negative modulus is in range.
    minute.rem_euclid(SLOTS as i64) as usize
}

impl VerifyRate {
    /// An empty ring, ready from `now`'s minute on.
    pub fn new(now: Timestamp) -> VerifyRate {
        let rate = VerifyRate {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            minute_of: std::array::from_fn(|_| AtomicI64::new(i64::MIN)),
        };
        rate.prepare(now);
        rate
    }

    /// Counts one verification at `at`: one relaxed atomic add.
    #[inline]
    pub fn record(&self, at: Timestamp) {
        self.counts[slot(minute(at))].fetch_add(1, Ordering::Relaxed);
    }

    /// Makes the slots of `now`'s minute and the next ones ready, zeroing any that still hold
    /// an older minute's count. Called ahead of time, so a minute's slot is zeroed before its
    /// first verification (only a slot never made ready, when nothing called this for longer
    /// than [`AHEAD`] minutes, loses the current minute's first counts).
    pub fn prepare(&self, now: Timestamp) {
        let current = minute(now);
        for m in current..=current + AHEAD {
            let i = slot(m);
            if self.minute_of[i].load(Ordering::Relaxed) != m {
                self.counts[i].store(0, Ordering::Relaxed);
                self.minute_of[i].store(m, Ordering::Relaxed);
            }
        }
    }

    /// The counts of the [`MINUTES`] minutes up to and including `now`'s, oldest first, each
    /// with the start of its minute.
    pub fn last_hour(&self, now: Timestamp) -> Vec<(Timestamp, u64)> {
        self.prepare(now);
        let current = minute(now);
        (current - (MINUTES as i64 - 1)..=current)
            .map(|m| {
                let i = slot(m);
                let count = if self.minute_of[i].load(Ordering::Relaxed) == m {
                    self.counts[i].load(Ordering::Relaxed)
                } else {
                    0
                };
                (Timestamp::from_millis(m * 60_000), count)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_minute(m: i64) -> Timestamp {
        Timestamp::from_millis(m * 60_000 + 1_234)
    }

    #[test]
    fn counts_land_in_their_minute_and_old_ones_fall_out_of_the_hour() {
        let start = 29_000_000;
        let rate = VerifyRate::new(at_minute(start));
        rate.record(at_minute(start));
        rate.record(at_minute(start));
        rate.prepare(at_minute(start + 1));
        rate.record(at_minute(start + 1));
        let hour = rate.last_hour(at_minute(start + 1));
        assert_eq!(hour.len(), MINUTES);
        assert_eq!(hour[MINUTES - 1], (Timestamp::from_millis((start + 1) * 60_000), 1));
        assert_eq!(hour[MINUTES - 2].1, 2);
        assert_eq!(hour.iter().map(|(_, c)| c).sum::<u64>(), 3);
        // An hour and more later, with the ring prepared as time went by, none is left.
        for m in start + 2..start + 70 {
            rate.prepare(at_minute(m));
        }
        assert_eq!(rate.last_hour(at_minute(start + 70)).iter().map(|(_, c)| c).sum::<u64>(), 0);
    }

    #[test]
    fn a_slot_reused_after_a_lap_of_the_ring_starts_from_zero() {
        let start = 1_000;
        let rate = VerifyRate::new(at_minute(start));
        rate.record(at_minute(start));
        // The same slot, one lap later, prepared (as the flush task would) before use.
        let later = start + SLOTS as i64;
        rate.prepare(at_minute(later - 1));
        rate.record(at_minute(later));
        let hour = rate.last_hour(at_minute(later));
        assert_eq!(hour[MINUTES - 1].1, 1, "the old lap's count was zeroed");
    }
}
