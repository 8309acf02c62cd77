//! What the server counts, for Prometheus: verdicts of `POST /api/v1/keys/verify` and `/auth`
//! by code, HTTP requests by route template, method and status with their latency, the write
//! queue and its commit latency, the key index (size, completeness, change-feed lag), failed
//! authentications denied by the budget, and how far `last_used_at` lags behind.
//!
//! Counting is atomics on the hot path: the verdict counters are created once, at start, one
//! per (endpoint, code), so counting one is a single `fetch_add` with no map look-up. The
//! gauges (queue depth, index, pending usage) are read only when scraped ([`render`]).
//!
//! No label ever holds anything a caller chose: the route label is a template from
//! `http::ROUTES` (or `unmatched`), the method one of a fixed set (or `OTHER`), the code a
//! [`Code`] name, the status a number. Never a key, hash, display prefix, title or raw path.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::service::verdict::Code;
use crate::service::AppState;
use crate::storage::{Db, StoreError};

/// The `Content-Type` of what [`render`] writes (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Which edge endpoint gave a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /api/v1/keys/verify`.
    Verify,
    /// Forward-auth, `/auth`.
    ForwardAuth,
}

impl Endpoint {
    const ALL: [Endpoint; 2] = [Endpoint::Verify, Endpoint::ForwardAuth];

    fn label(self) -> &'static str {
        match self {
            Endpoint::Verify => "verify",
            Endpoint::ForwardAuth => "auth",
        }
    }
}

/// The label of a verdict code: its name in the verify API's answers.
fn code_label(code: Code) -> &'static str {
    match code {
        Code::Valid => "VALID",
        Code::NotFound => "NOT_FOUND",
        Code::Revoked => "REVOKED",
        Code::Deleted => "DELETED",
        Code::Disabled => "DISABLED",
        Code::Expired => "EXPIRED",
        Code::Forbidden => "FORBIDDEN",
        Code::IpNotAllowed => "IP_NOT_ALLOWED",
        Code::RateLimited => "RATE_LIMITED",
        Code::UsageExceeded => "USAGE_EXCEEDED",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    endpoint: &'static str,
    code: &'static str,
}

/// The labels of one HTTP request's latency: all from fixed sets (see the module doc).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latencies: 100 µs to about 2.4 s.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 12))
}

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    /// `[endpoint][position in Code::ALL]`.
    verdicts: [[Counter; Code::ALL.len()]; Endpoint::ALL.len()],
    denials: Counter,
    http: HistogramFamily<HttpLabels>,
    write_queue: Gauge,
    index_keys: Gauge,
    index_complete: Gauge,
    index_lag: Gauge,
    usage_pending: Gauge,
    usage_lag: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// The metrics of a server on `db` (whose writer times its commits).
    pub fn new(db: &Db) -> Metrics {
        let mut registry = Registry::with_prefix("apikeyd");
        let verdict_family = Family::<VerdictLabels, Counter>::default();
        let verdicts = Endpoint::ALL.map(|endpoint| {
            Code::ALL.map(|code| {
                verdict_family
                    .get_or_create(&VerdictLabels { endpoint: endpoint.label(), code: code_label(code) })
                    .clone()
            })
        });
        registry.register(
            "verdicts",
            "Verdicts given by POST /api/v1/keys/verify (endpoint=verify) and forward-auth (endpoint=auth), by code",
            verdict_family,
        );
        let denials = Counter::default();
        registry.register(
            "auth_failure_denials",
            "Checks refused (RATE_LIMITED, 429) because the client spent its failed-authentication budget",
            denials.clone(),
        );
        let http: HistogramFamily<HttpLabels> = Family::new_with_constructor(request_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests by route template, method and status, and how long each took",
            http.clone(),
        );
        registry.register(
            "write_commit_duration_seconds",
            "Groups of writes committed by the single writer (their statements and one fsync), and how long each took",
            db.commit_latency(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let write_queue = gauge(&mut registry, "write_queue_depth", "Writes queued or being committed");
        let index_keys = gauge(&mut registry, "key_index_keys", "Keys held in the in-memory key index");
        let index_complete =
            gauge(&mut registry, "key_index_complete", "1 when the key index holds every key (warmed), else 0");
        let index_lag = gauge(
            &mut registry,
            "key_index_lag_changes",
            "Changes committed that the key index has not applied yet (it applies them at the next look-up)",
        );
        let usage_pending =
            gauge(&mut registry, "last_used_pending_keys", "Keys whose last_used_at is recorded but not yet written");
        let usage_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_used_flush_lag_seconds",
            "Age of the oldest last_used_at value not yet written (0 when none is pending)",
            usage_lag.clone(),
        );
        Metrics {
            registry,
            verdicts,
            denials,
            http,
            write_queue,
            index_keys,
            index_complete,
            index_lag,
            usage_pending,
            usage_lag,
        }
    }

    /// Counts a verdict of `endpoint`. One atomic add.
    pub fn verdict(&self, endpoint: Endpoint, code: Code) {
        let e = Endpoint::ALL.iter().position(|x| *x == endpoint).unwrap_or(0);
        if let Some(counter) = Code::ALL.iter().position(|c| *c == code).and_then(|c| self.verdicts[e].get(c)) {
            counter.inc();
        }
    }

    /// Counts a check refused because the client is over its failed-authentication budget.
    pub fn denial(&self) {
        self.denials.inc();
    }

    /// Records one HTTP request. `route` and `method` must come from fixed sets (a route
    /// template, a method name): never from the request's own text.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, seconds: f64) {
        self.http.get_or_create(&HttpLabels { route, method, status }).observe(seconds);
    }
}

/// Every metric of `state` in the Prometheus text format, its gauges read now.
pub async fn render(state: &AppState) -> Result<String, StoreError> {
    let metrics = &state.metrics;
    let last_change = state.db.read(|store| store.last_audit_id()).await?;
    metrics.write_queue.set(gauge_value(state.db.pending_writes()));
    metrics.index_keys.set(gauge_value(state.index.len()));
    metrics.index_complete.set(i64::from(state.index.is_complete()));
    metrics.index_lag.set((last_change - state.index.applied_change()).max(0));
    metrics.usage_pending.set(gauge_value(state.usage.pending()));
    metrics.usage_lag.set(state.usage.oldest_pending_age().map_or(0.0, |age| age.as_secs_f64()));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &metrics.registry)
        .map_err(|_| StoreError::Malformed("metrics could not be encoded"))?;
    Ok(text)
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_and_endpoint_has_its_own_counter() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        let metrics = Metrics::new(&db);
        metrics.verdict(Endpoint::ForwardAuth, Code::Revoked);
        metrics.verdict(Endpoint::Verify, Code::Valid);
        metrics.verdict(Endpoint::Verify, Code::Valid);
        for (e, endpoint) in Endpoint::ALL.iter().enumerate() {
            for (c, code) in Code::ALL.iter().enumerate() {
                let expected = match (endpoint, code) {
                    (Endpoint::Verify, Code::Valid) => 2,
                    (Endpoint::ForwardAuth, Code::Revoked) => 1,
                    _ => 0,
                };
                assert_eq!(metrics.verdicts[e][c].get(), expected, "{endpoint:?} {code:?}");
            }
        }
    }
}
