//! When was each key last used? Recorded in memory on every successful authentication and
//! written in batches, so the hot path never writes to SQLite: a flush every few seconds and
//! one at graceful shutdown. A kill -9 loses at most one interval of `last_used_at`
//! updates, which is telemetry, never a security decision.
//!
//! Resolution is one minute: a key already written less than [`RESOLUTION_MS`] ago is not
//! queued again. Without this, verifying keys drawn at random from 100,000 rewrote ~100,000
//! rows every flush and cost about a tenth of the server's CPU (perf, during the benchmark).
//!
//! With a million keys in use a flush still writes up to one row per key. The rows live in
//! their own narrow table (`key_usage`, see schema.sql), are written in id order, and go in
//! transactions of at most [`FLUSH_CHUNK`] rows, so a create or revoke queued behind a flush
//! waits for one chunk, never for the whole flush.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::db::Db;
use crate::error::ApiError;
use crate::model::KeyId;
use crate::store::keys::touch_last_used;
use crate::timestamp::Timestamp;

/// How often pending `last_used_at` values are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// `last_used_at` is kept to this resolution.
pub const RESOLUTION_MS: i64 = 60_000;

/// Most rows one flush transaction writes.
pub const FLUSH_CHUNK: usize = 1_000;

/// Pending `last_used_at` values, newest per key.
#[derive(Default)]
pub struct Usage {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Not yet written.
    pending: HashMap<KeyId, Timestamp>,
    /// Written (or being written) within the last [`RESOLUTION_MS`].
    recent: HashMap<KeyId, Timestamp>,
}

impl Usage {
    /// Notes that `key` authenticated at `at`. O(1), no I/O.
    pub fn record(&self, key: KeyId, at: Timestamp) {
        let mut inner = self.lock();
        if inner.recent.get(&key).is_some_and(|w| at.millis() - w.millis() < RESOLUTION_MS) {
            return;
        }
        let slot = inner.pending.entry(key).or_insert(at);
        if *slot < at {
            *slot = at;
        }
    }

    /// How many keys have an unwritten value.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    fn take(&self) -> Vec<(KeyId, Timestamp)> {
        let mut inner = self.lock();
        let batch: Vec<(KeyId, Timestamp)> = inner.pending.drain().collect();
        let now = Timestamp::now();
        inner.recent.retain(|_, w| now.millis() - w.millis() < RESOLUTION_MS);
        inner.recent.extend(batch.iter().copied());
        batch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-insert; the maps are still
        // maps, and losing telemetry is better than failing a verification.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes every pending value, in id order, [`FLUSH_CHUNK`] rows per transaction.
    /// Returns how many keys were written; on an error, the chunks before it stay written.
    pub async fn flush(&self, db: &Db) -> Result<usize, ApiError> {
        let mut batch = self.take();
        batch.sort_unstable_by_key(|(key, _)| *key);
        let mut written = 0;
        for chunk in batch.chunks(FLUSH_CHUNK) {
            let chunk = chunk.to_vec();
            let n = chunk.len();
            db.write(move |conn| {
                for (key, at) in &chunk {
                    touch_last_used(conn, *key, *at)?;
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

    #[test]
    fn a_key_is_queued_once_per_resolution_window() {
        let usage = Usage::default();
        let k = KeyId(1);
        usage.record(k, Timestamp::from_millis(1_000));
        usage.record(k, Timestamp::from_millis(2_000));
        assert_eq!(usage.take(), vec![(k, Timestamp::from_millis(2_000))]);
        // Written just now: further uses inside the window are not queued again...
        usage.record(k, Timestamp::from_millis(3_000));
        assert_eq!(usage.pending(), 0);
        // ...but one past the window is.
        usage.record(k, Timestamp::from_millis(2_000 + RESOLUTION_MS));
        assert_eq!(usage.pending(), 1);
    }
}
