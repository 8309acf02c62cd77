//! Request ids: `req_` + 26 Crockford base32 characters, 48 bits of milliseconds then 80
//! random bits (ULID-style, so ids sort by time), and the task-local that holds the id of the
//! request being handled, so an error envelope rendered deep inside actix can carry it. The
//! middleware (`middleware`) assigns one to every request.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header::HeaderName;

use crate::domain::timestamp::Timestamp;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The response header carrying the id.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Length of an id: `req_` and 26 characters.
const LEN: usize = 30;

/// One request's id, held inline: it is copied into the request, the task-local and the
/// response header of every request, `/healthz` included, so it allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; LEN]);

thread_local! {
    /// This thread's generator state and 16 fixed bits, both from getrandom at first use.
    static RANDOM: Cell<(u64, u16)> = Cell::new(seed());
}

/// A thread's starting state. If the random source fails, time and a process counter still
/// keep threads apart, so a request never fails for want of an id.
fn seed() -> (u64, u16) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 10];
    if getrandom::fill(&mut bytes).is_err() {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&(n ^ Timestamp::now().millis().unsigned_abs().rotate_left(20)).to_le_bytes());
    }
    let mut state = [0u8; 8];
    state.copy_from_slice(&bytes[..8]);
    (u64::from_le_bytes(state), u16::from_le_bytes([bytes[8], bytes[9]]))
}

/// 80 bits: the thread's fixed 16 and the next SplitMix64 output. SplitMix64 is a bijection
/// of its counter, so a thread never repeats itself. The ids are labels for logs and audit
/// rows, not secrets: a generator seeded once per thread replaces a getrandom system call per
/// request.
fn next_random() -> u128 {
    RANDOM.with(|cell| {
        let (state, fixed) = cell.get();
        let state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        cell.set((state, fixed));
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (u128::from(fixed) << 64) | u128::from(z ^ (z >> 31))
    })
}

impl RequestId {
    /// A fresh id: 48 bits of milliseconds, then 80 random bits.
    pub fn generate() -> RequestId {
        let ms = u128::from(Timestamp::now().millis().unsigned_abs()) & ((1 << 48) - 1);
        let value = (ms << 80) | next_random();
        let mut out = [0u8; LEN];
        out[..4].copy_from_slice(b"req_");
        for (i, c) in out[4..].iter_mut().enumerate() {
            *c = CROCKFORD[((value >> ((25 - i) * 5)) & 31) as usize];
        }
        RequestId(out)
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        // Only ever filled from `req_` and the Crockford alphabet: ASCII.
        std::str::from_utf8(&self.0).unwrap_or("req_unknown")
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runs `f` as part of the request `id`.
pub async fn scope<F: Future>(id: RequestId, f: F) -> F::Output {
    CURRENT.scope(id, f).await
}

/// Runs `f` synchronously as part of the request `id`.
pub fn sync_scope<R>(id: RequestId, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(id, f)
}

/// The id of the request being handled, or `req_unknown` outside a request.
pub fn current_request_id() -> String {
    CURRENT.try_with(|id| id.as_str().to_owned()).unwrap_or_else(|_| "req_unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape_and_differ() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        // Threads draw from different seeds: no id repeats across them either.
        let ids: Vec<RequestId> = std::thread::scope(|s| {
            let workers: Vec<_> =
                (0..4).map(|_| s.spawn(|| (0..10_000).map(|_| RequestId::generate()).collect::<Vec<_>>())).collect();
            workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
        });
        let distinct: std::collections::HashSet<&str> = ids.iter().map(RequestId::as_str).collect();
        assert_eq!(distinct.len(), ids.len());
        assert_eq!(a.as_str().len(), 30);
        assert!(a.as_str().starts_with("req_"));
        assert!(a.as_str()[4..].bytes().all(|c| CROCKFORD.contains(&c)));
    }
}
