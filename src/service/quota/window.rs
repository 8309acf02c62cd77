//! Rate windows: at most `limit` accepted verdicts per key in any window of
//! `window_seconds`, counted in memory on the monotonic clock (a wall-clock step changes
//! nothing here), in [`RATE_BUCKETS`] sub-windows per window.
//!
//! A verdict at time `t` is admitted only if fewer than `limit` were admitted in the
//! sub-windows overlapping `[t - window, t]`, counted whole. That bounds every window
//! exactly: in any window `[a, a + S)`, when its last admitted verdict came at `t`, every
//! earlier one in it lay in `[t - S, t]` and was counted, so fewer than `limit` came before
//! it. Counting whole sub-windows only ever refuses early: a verdict is counted until its
//! sub-window has wholly left the window, at most one tenth of the window late.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::config::RATE_BUCKETS;
use crate::domain::limits::RateLimit;
use crate::domain::model::KeyId;

/// Shards of the window map, so keys of different shards never wait for each other.
const SHARDS: usize = 16;

/// What a rate window said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateState {
    /// The limit.
    pub limit: u64,
    /// Verdicts left in the current window (after this one, when admitted).
    pub remaining: u64,
    /// Milliseconds until a verdict is given back (the oldest counted sub-window leaves).
    pub reset_ms: u64,
}

/// Slots of a window's ring: `[t - window, t]` overlaps at most `RATE_BUCKETS + 2`
/// sub-windows, and each must keep its own count.
const SLOTS: usize = RATE_BUCKETS as usize + 2;

/// One key's sliding window: counts of the last [`SLOTS`] sub-windows.
#[derive(Debug)]
struct Window {
    config: RateLimit,
    width_ms: u64,
    /// The sub-window index each slot counts (`u64::MAX`: none yet).
    index: [u64; SLOTS],
    count: [u64; SLOTS],
}

impl Window {
    fn new(config: RateLimit) -> Window {
        let window_ms = config.window_seconds * 1000;
        Window {
            config,
            width_ms: window_ms.div_ceil(RATE_BUCKETS).max(1),
            index: [u64::MAX; SLOTS],
            count: [0; SLOTS],
        }
    }

    /// The sub-windows overlapping `[now - window, now]`, as indexes.
    fn span(&self, now_ms: u64) -> (u64, u64) {
        let last = now_ms / self.width_ms;
        let first = now_ms.saturating_sub(self.config.window_seconds * 1000) / self.width_ms;
        (first, last)
    }

    /// Admits one verdict at `now_ms` if the window has room: `Ok` with the state after it,
    /// `Err` with the state that refused it.
    fn admit(&mut self, now_ms: u64) -> Result<RateState, RateState> {
        let (first, last) = self.span(now_ms);
        let slots = self.index.len() as u64;
        let mut used = 0;
        let mut oldest = None;
        for (i, c) in self.index.iter().zip(&self.count) {
            if *i != u64::MAX && *i >= first && *i <= last && *c > 0 {
                used += c;
                oldest = Some(oldest.map_or(*i, |o: u64| o.min(*i)));
            }
        }
        let reset = |oldest: Option<u64>| {
            oldest.map_or(0, |o| ((o + 1) * self.width_ms + self.config.window_seconds * 1000).saturating_sub(now_ms))
        };
        let limit = self.config.limit;
        if used >= limit {
            return Err(RateState { limit, remaining: 0, reset_ms: reset(oldest) });
        }
        let slot = (last % slots) as usize;
        if self.index[slot] != last {
            self.index[slot] = last;
            self.count[slot] = 0;
        }
        self.count[slot] += 1;
        let oldest = Some(oldest.map_or(last, |o| o.min(last)));
        Ok(RateState { limit, remaining: limit - used - 1, reset_ms: reset(oldest) })
    }

    /// True when nothing admitted is counted at `now_ms` any more: dropping the window then
    /// changes no answer.
    fn is_empty_at(&self, now_ms: u64) -> bool {
        let (first, _) = self.span(now_ms);
        self.index.iter().zip(&self.count).all(|(i, c)| *c == 0 || *i == u64::MAX || *i < first)
    }

    /// Gives back one verdict admitted at `now_ms` (its sub-window, if still counted).
    fn give_back(&mut self, now_ms: u64) {
        let last = now_ms / self.width_ms;
        let slot = (last % self.index.len() as u64) as usize;
        if self.index[slot] == last && self.count[slot] > 0 {
            self.count[slot] -= 1;
        }
    }
}

/// Every key's window, sharded.
pub struct Windows {
    shards: Vec<Mutex<Shard>>,
}

/// One shard's windows, and when it is next swept.
#[derive(Default)]
struct Shard {
    windows: HashMap<KeyId, Window>,
    /// Takes until the next sweep.
    until_sweep: u32,
}

/// A shard is swept for windows that hold nothing every this many takes, once it holds more
/// than this many windows: the map stays about as large as the keys used lately, not every
/// key ever used, and the sweep costs well under one look-up per take.
const SWEEP_EVERY: usize = 1024;

impl Default for Windows {
    fn default() -> Windows {
        Windows { shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect() }
    }
}

impl Windows {
    fn shard(&self, key: KeyId) -> MutexGuard<'_, Shard> {
        self.shards[(key.0.unsigned_abs() as usize) % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Windows held, over all shards.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).windows.len()).sum()
    }

    /// Takes one slot of `key`'s window at `now_ms` (a changed limit starts a fresh window).
    pub fn take(&self, key: KeyId, config: RateLimit, now_ms: u64) -> Result<RateState, RateState> {
        let mut shard = self.shard(key);
        if shard.windows.len() > SWEEP_EVERY {
            if shard.until_sweep == 0 {
                shard.windows.retain(|_, w| !w.is_empty_at(now_ms));
                shard.until_sweep = u32::try_from(SWEEP_EVERY).unwrap_or(u32::MAX);
            }
            shard.until_sweep -= 1;
        }
        let window = shard.windows.entry(key).or_insert_with(|| Window::new(config));
        if window.config != config {
            *window = Window::new(config);
        }
        window.admit(now_ms)
    }

    /// Gives back a slot taken at `now_ms` for a verdict refused later.
    pub fn give_back(&self, key: KeyId, now_ms: u64) {
        if let Some(w) = self.shard(key).windows.get_mut(&key) {
            w.give_back(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_window_admits_its_limit_refuses_the_next_and_frees_them_as_it_slides() {
        let mut w = Window::new(RateLimit { limit: 3, window_seconds: 10 });
        for i in 0..3 {
            assert_eq!(w.admit(1_000).map(|s| s.remaining), Ok(2 - i));
        }
        let refused = w.admit(1_500).unwrap_err();
        assert_eq!(refused.remaining, 0);
        // The sub-window counted last at 1,000 ms (index 1 of 1 s) leaves at 2 s + 10 s.
        assert_eq!(refused.reset_ms, 12_000 - 1_500);
        assert!(w.admit(11_999).is_err(), "still inside the window");
        assert_eq!(w.admit(12_000).map(|s| s.remaining), Ok(2), "the old sub-window has left");
        assert_eq!(w.admit(12_000).map(|s| s.remaining), Ok(1));
        w.give_back(12_000);
        assert_eq!(w.admit(12_001).map(|s| s.remaining), Ok(1), "the slot given back is free again");
    }

    #[test]
    fn windows_that_hold_nothing_are_swept_once_a_shard_is_large() {
        let windows = Windows::default();
        let config = RateLimit { limit: 5, window_seconds: 1 };
        // Keys of shard 0 only, more than a sweep's threshold, each used once at 0 ms.
        for i in 0..(SWEEP_EVERY as i64 + 100) {
            assert!(windows.take(KeyId(i * SHARDS as i64), config, 0).is_ok());
        }
        assert_eq!(windows.len(), SWEEP_EVERY + 100);
        // Two seconds later all of them are empty; the next takes sweep them away.
        // (Key 0 is admitted 5 times at 2,000 ms and refused after: the answers do not matter.)
        for _ in 0..=SWEEP_EVERY {
            let _ = windows.take(KeyId(0), config, 2_000);
        }
        assert_eq!(windows.len(), 1, "only key 0's window, which still counts, is left");
        // The window kept still counts: key 0 is refused at 2,001 ms.
        assert_eq!(windows.take(KeyId(0), config, 2_001).unwrap_err().remaining, 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the arrival times, no window of `window` seconds ever holds more than
        /// `limit` admitted verdicts.
        #[test]
        fn no_window_ever_admits_more_than_the_limit(
            limit in 1u64..20,
            window in 1u64..5,
            gaps in prop::collection::vec(0u64..700, 1..400),
        ) {
            let mut w = Window::new(RateLimit { limit, window_seconds: window });
            let mut t = 0u64;
            let mut admitted = Vec::new();
            for g in gaps {
                t += g;
                if w.admit(t).is_ok() {
                    admitted.push(t);
                }
            }
            let span = window * 1000;
            for (i, start) in admitted.iter().enumerate() {
                let inside = admitted[i..].iter().take_while(|a| **a < start + span).count() as u64;
                prop_assert!(inside <= limit, "{} admitted in [{}, {})", inside, start, start + span);
            }
        }
    }
}
