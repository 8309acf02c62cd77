//! Rate limiting of failed authentication, per client IP: a token bucket of failures. Only
//! failures spend tokens and only failures are refused (429 with Retry-After, or the verify
//! code RATE_LIMITED), so a valid key is never locked out, even from an address that is
//! flooding bad ones. The client IP is the TCP peer, or, when the peer is a configured trusted
//! proxy, the nearest untrusted address in `X-Forwarded-For`. Memory is bounded: at most
//! [`MAX_TRACKED_ADDRESSES`] addresses are tracked; past that, full buckets are pruned and any further
//! new address shares one overflow bucket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::MAX_TRACKED_ADDRESSES as MAX_TRACKED;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The limiter.
pub struct FailureLimiter {
    burst: f64,
    refill: f64,
    state: Mutex<State>,
}

struct State {
    buckets: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
}

impl FailureLimiter {
    /// A limiter allowing `burst` failures at once and `refill_per_sec` more each second.
    pub fn new(burst: u32, refill_per_sec: u32) -> FailureLimiter {
        let now = Instant::now();
        FailureLimiter {
            burst: f64::from(burst.max(1)),
            refill: f64::from(refill_per_sec.max(1)),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                overflow: Bucket { tokens: f64::from(burst.max(1)), updated: now },
            }),
        }
    }

    /// Records one failure from `ip`. `Err(seconds)` when the address is over its budget: the
    /// failure must then be answered as rate limited, retry after that many seconds.
    pub fn record_failure(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !state.buckets.contains_key(&ip) && state.buckets.len() >= MAX_TRACKED {
            let (burst, refill) = (self.burst, self.refill);
            state.buckets.retain(|_, b| refilled(b, now, refill) < burst);
        }
        let (burst, refill) = (self.burst, self.refill);
        let State { buckets, overflow } = &mut *state;
        let bucket = if buckets.len() < MAX_TRACKED || buckets.contains_key(&ip) {
            buckets.entry(ip).or_insert(Bucket { tokens: burst, updated: now })
        } else {
            overflow
        };
        bucket.tokens = refilled(bucket, now, refill).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            // Whole seconds until one token is back, at least 1.
            Err(((1.0 - bucket.tokens) / refill).ceil().max(1.0) as u64)
        }
    }

    /// How many addresses are tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).buckets.len()
    }
}

fn refilled(b: &Bucket, now: Instant, refill: f64) -> f64 {
    b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * refill
}

/// What a proxy may say about the client of a request.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProxySays<'a> {
    /// Every `X-Forwarded-For` header, in order (their lists, joined, are one chain).
    pub forwarded_for: &'a [&'a str],
    /// The `X-Real-IP` header, when there is exactly one.
    pub real_ip: Option<&'a str>,
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// `X-Forwarded-For` chain (all its headers, in order) is read from the right and the first
/// address that is not itself a trusted proxy is the client; an unparseable entry ends the
/// walk at the last address read. Without `X-Forwarded-For`, a trusted proxy's `X-Real-IP`
/// is believed if it parses. Nothing an untrusted peer sends is believed.
pub fn client_ip(peer: Option<IpAddr>, says: ProxySays<'_>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    if says.forwarded_for.is_empty() {
        return Some(says.real_ip.and_then(|r| r.trim().parse().ok()).unwrap_or(peer));
    }
    let chain = says.forwarded_for.iter().rev().flat_map(|h| h.rsplit(','));
    let mut client = peer;
    for hop in chain {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_is_allowed_then_failures_are_refused_per_address() {
        let limiter = FailureLimiter::new(3, 1);
        let a = ip("10.0.0.1");
        for _ in 0..3 {
            assert_eq!(limiter.record_failure(a), Ok(()));
        }
        assert_eq!(limiter.record_failure(a), Err(1));
        assert_eq!(limiter.record_failure(ip("10.0.0.2")), Ok(()), "another address is unaffected");
    }

    #[test]
    fn forwarded_for_is_trusted_only_from_trusted_proxies() {
        let proxy = ip("127.0.0.1");
        let trusted = [proxy];
        let cases: &[(&str, &[&str], Option<&str>, &str)] = &[
            ("127.0.0.1", &["203.0.113.7"], None, "203.0.113.7"),
            ("127.0.0.1", &["198.51.100.1, 203.0.113.7"], None, "203.0.113.7"),
            ("127.0.0.1", &["203.0.113.7, 127.0.0.1"], None, "203.0.113.7"),
            ("127.0.0.1", &[], None, "127.0.0.1"),
            ("127.0.0.1", &["garbage"], None, "127.0.0.1"),
            ("192.0.2.9", &["203.0.113.7"], None, "192.0.2.9"),
            // Two headers are one chain: the client's own first header is not believed over
            // the address the proxy appended in a second one.
            ("127.0.0.1", &["203.0.113.7", "198.51.100.1"], None, "198.51.100.1"),
            ("127.0.0.1", &["203.0.113.7", "198.51.100.1, 127.0.0.1"], None, "198.51.100.1"),
            // X-Real-IP only from a trusted proxy, only without X-Forwarded-For.
            ("127.0.0.1", &[], Some("203.0.113.8"), "203.0.113.8"),
            ("127.0.0.1", &[], Some("nonsense"), "127.0.0.1"),
            ("127.0.0.1", &["198.51.100.1"], Some("203.0.113.8"), "198.51.100.1"),
            ("192.0.2.9", &[], Some("203.0.113.8"), "192.0.2.9"),
        ];
        for (peer, xff, real_ip, want) in cases {
            let says = ProxySays { forwarded_for: xff, real_ip: *real_ip };
            assert_eq!(client_ip(Some(ip(peer)), says, &trusted), Some(ip(want)), "{peer} {xff:?} {real_ip:?}");
        }
    }
}
