//! When was each key last used? Recorded in memory on every successful authentication and
//! written in batches, so the hot path never writes to SQLite: a flush every few seconds and
//! one at graceful shutdown. A kill -9 loses at most one interval of `last_used_at`
//! updates, which is telemetry, never a security decision.
//!
//! Resolution is one minute: a key already written less than [`USAGE_RESOLUTION_MS`] ago is not
//! queued again. Without this, verifying keys drawn at random from 100,000 rewrote ~100,000
//! rows every flush and cost about a tenth of the server's CPU (perf, during the benchmark).
//!
//! With a million keys in use a flush still writes up to one row per key. The rows live in
//! their own narrow table (`key_usage`, see schema.sql), are written in id order, and go in
//! transactions of at most [`USAGE_FLUSH_CHUNK`] rows, so a create or revoke queued behind a flush
//! waits for one chunk, never for the whole flush.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{USAGE_FLUSH_CHUNK, USAGE_RESOLUTION_MS};
use crate::domain::model::KeyId;
use crate::domain::timestamp::Timestamp;
use crate::error::ApiError;
use crate::storage::Db;

/// Pending `last_used_at` values, newest per key, and which keys were queued recently.
///
/// Every successful authentication calls [`Usage::record`] under one mutex, so nothing done
/// under it may grow with the number of keys: at a million keys, sweeping or refilling a
/// million-entry map there stalled every worker for milliseconds (verify p99). Hence
/// [`Usage::take`] swaps the pending map out whole, and "recent" is two maps that trade
/// places every [`USAGE_RESOLUTION_MS`] instead of being swept.
#[derive(Default)]
pub struct Usage {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Not yet handed to a flush.
    pending: HashMap<KeyId, Timestamp>,
    /// Keys queued in the current window, with the time they were queued.
    recent: HashMap<KeyId, Timestamp>,
    /// The same for the window before; older entries cannot matter and are dropped whole.
    previous: HashMap<KeyId, Timestamp>,
    /// When `recent` began, on the monotonic clock (`None` before the first take), so that
    /// no wall-clock step holds a window open or closes it early.
    window_start: Option<Instant>,
    /// When the oldest value in `pending` was recorded (`None` while nothing is pending): how
    /// far the database's `last_used_at` lags behind, for the metrics.
    oldest_pending: Option<Instant>,
}

impl Usage {
    /// Notes that `key` authenticated at `at`. O(1), no I/O.
    pub fn record(&self, key: KeyId, at: Timestamp) {
        let mut inner = self.lock();
        if let Some(slot) = inner.pending.get_mut(&key) {
            if *slot < at {
                *slot = at;
            }
            return;
        }
        let queued_within_window = |map: &HashMap<KeyId, Timestamp>| {
            map.get(&key).is_some_and(|w| at.millis() - w.millis() < USAGE_RESOLUTION_MS)
        };
        if queued_within_window(&inner.recent) || queued_within_window(&inner.previous) {
            return;
        }
        if inner.pending.is_empty() {
            inner.oldest_pending = Some(Instant::now());
        }
        inner.pending.insert(key, at);
        inner.recent.insert(key, at);
    }

    /// How long the oldest unwritten value has waited (`None` when nothing is pending).
    pub fn oldest_pending_age(&self) -> Option<Duration> {
        self.lock().oldest_pending.map(|since| since.elapsed())
    }

    /// How many keys have an unwritten value.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// The pending values, leaving none, without walking any map under the lock. A map that
    /// aged out is returned with them so that it is freed after the lock is released. The
    /// maps put in their place start at the size of the ones taken out, so refilling them
    /// does not rehash under the lock either.
    fn take(&self) -> (HashMap<KeyId, Timestamp>, HashMap<KeyId, Timestamp>) {
        let now = Instant::now();
        let mut inner = self.lock();
        let size = inner.pending.len();
        let batch = std::mem::replace(&mut inner.pending, HashMap::with_capacity(size));
        inner.oldest_pending = None;
        let mut expired = HashMap::new();
        let window = Duration::from_millis(USAGE_RESOLUTION_MS.unsigned_abs());
        if inner.window_start.is_none_or(|start| now.saturating_duration_since(start) >= window) {
            let size = inner.recent.len();
            let recent = std::mem::replace(&mut inner.recent, HashMap::with_capacity(size));
            expired = std::mem::replace(&mut inner.previous, recent);
            inner.window_start = Some(now);
        }
        (batch, expired)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-insert; the maps are still
        // maps, and losing telemetry is better than failing a verification.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes every pending value, in id order, [`USAGE_FLUSH_CHUNK`] rows per transaction.
    /// Returns how many keys were written; on an error, the chunks before it stay written.
    pub async fn flush(&self, db: &Db) -> Result<usize, ApiError> {
        let (batch, expired) = self.take();
        if batch.is_empty() && expired.is_empty() {
            return Ok(0);
        }
        // Sorting a big batch, or freeing a big map, takes milliseconds: off the async
        // worker, which would stall every connection it serves meanwhile.
        let chunks = tokio::task::spawn_blocking(move || {
            drop(expired);
            let mut rows: Vec<(KeyId, Timestamp)> = batch.into_iter().collect();
            rows.sort_unstable_by_key(|(key, _)| *key);
            rows.chunks(USAGE_FLUSH_CHUNK).map(<[_]>::to_vec).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ApiError::internal(&e))?;
        let mut written = 0;
        for chunk in chunks {
            let n = chunk.len();
            db.write(move |store| {
                for (key, at) in &chunk {
                    store.touch_last_used(*key, *at)?;
                }
                Ok::<_, ApiError>(())
            })
            .await?;
            written += n;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(usage: &Usage) -> Vec<(KeyId, Timestamp)> {
        let mut rows: Vec<_> = usage.take().0.into_iter().collect();
        rows.sort_unstable();
        rows
    }

    #[test]
    fn a_key_is_queued_once_per_resolution_window() {
        let usage = Usage::default();
        let k = KeyId(1);
        usage.record(k, Timestamp::from_millis(1_000));
        usage.record(k, Timestamp::from_millis(2_000));
        assert_eq!(taken(&usage), vec![(k, Timestamp::from_millis(2_000))]);
        // Queued just now: further uses inside the window are not queued again...
        usage.record(k, Timestamp::from_millis(3_000));
        assert_eq!(usage.pending(), 0);
        // ...but one past the window is.
        usage.record(k, Timestamp::from_millis(1_000 + USAGE_RESOLUTION_MS));
        assert_eq!(usage.pending(), 1);
    }

    #[test]
    fn recent_keys_survive_one_window_change_and_age_out_after_two() {
        let usage = Usage::default();
        let (a, b) = (KeyId(1), KeyId(2));
        let now = Timestamp::now();
        usage.record(a, now);
        // The first take starts a window: `a` moves to the previous one, still remembered.
        assert_eq!(taken(&usage), vec![(a, now)]);
        usage.record(a, now.plus_millis(10));
        assert_eq!(usage.pending(), 0, "queued within the window, in the previous map");
        // Two window changes later `a` is forgotten, and may be queued again (the windows are
        // moved back by hand; the times recorded stay close, so only forgetting lets it in).
        let back = |usage: &Usage| {
            let mut inner = usage.lock();
            inner.window_start = inner.window_start.and_then(|s| s.checked_sub(Duration::from_millis(60_001)));
        };
        back(&usage);
        usage.record(b, now);
        assert_eq!(taken(&usage), vec![(b, now)]);
        back(&usage);
        assert_eq!(taken(&usage), vec![]);
        usage.record(a, now.plus_millis(20));
        assert_eq!(taken(&usage), vec![(a, now.plus_millis(20))]);
    }
}
