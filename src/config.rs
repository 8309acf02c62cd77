//! Every default and limit in one place, and the server's run-time configuration.
//! `Debug` never prints secrets.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::keys::ApiKey;

/// Default database file, relative to the working directory.
pub const DEFAULT_DB: &str = "data/apikeyd.db";
/// Default listen address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Largest accepted request body. Every body here is a small JSON object.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest bulk-delete body: 1,000 UUIDs of 36 characters, quoted and separated, fit.
pub const MAX_BULK_BODY_BYTES: usize = 64 * 1024;
/// Largest total size of a request's header names and values. Keys are 52 bytes and JWTs a
/// few hundred; 8 KiB leaves room for proxies' headers and refuses header floods early.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Most request headers. actix-http itself refuses a request with more than 96 with a bare
/// 431 before any routing; this lower limit is enforced by the app, so the 431 comes in the
/// endpoint's own envelope.
pub const MAX_HEADERS: usize = 64;
/// Open connections each worker accepts; past it the listener stops accepting until some
/// close (actix's default is 25,000: far more than a sidecar needs, and memory follows).
pub const MAX_CONNECTIONS_PER_WORKER: u32 = 4096;
/// A client must send its whole request head within this (slowloris is cut off).
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a clean close after the response.
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Writes waiting for the writer beyond this many are refused with 503, so a write flood
/// costs bounded memory.
pub const WRITE_QUEUE_DEPTH: usize = 4096;
/// Most queued writes committed in one transaction (one WAL fsync).
pub const WRITE_GROUP_MAX: usize = 512;
/// Longest key title or name, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Page size when a list call names none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Failed authentications a client address may make in a burst.
pub const DEFAULT_FAILURE_BURST: u32 = 50;
/// Failed authentications per second a client address regains.
pub const DEFAULT_FAILURE_REFILL_PER_SEC: u32 = 10;
/// Lifetime of a session JWT unless configured.
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(3600);
/// Largest page a list call may ask for.
pub const MAX_PAGE_SIZE: u32 = 200;

/// How the server runs.
#[derive(Clone)]
pub struct Config {
    /// SQLite file.
    pub db_path: PathBuf,
    /// Listen address.
    pub bind: String,
    /// Root key to install on first start (APIKEYD_ROOT_KEY); generated when absent.
    pub root_key: Option<ApiKey>,
    /// Lifetime of session JWTs.
    pub jwt_ttl: Duration,
    /// Proxies whose `X-Forwarded-For` is believed when finding the client's address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Failed authentications an address may make in a burst.
    pub failure_burst: u32,
    /// Failed authentications per second an address regains.
    pub failure_refill_per_sec: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            db_path: PathBuf::from(DEFAULT_DB),
            bind: DEFAULT_BIND.to_owned(),
            root_key: None,
            jwt_ttl: DEFAULT_JWT_TTL,
            trusted_proxies: Vec::new(),
            failure_burst: DEFAULT_FAILURE_BURST,
            failure_refill_per_sec: DEFAULT_FAILURE_REFILL_PER_SEC,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("db_path", &self.db_path)
            .field("bind", &self.bind)
            .field("root_key", &self.root_key.as_ref().map(|_| "<set>"))
            .field("jwt_ttl", &self.jwt_ttl)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("failure_burst", &self.failure_burst)
            .field("failure_refill_per_sec", &self.failure_refill_per_sec)
            .finish()
    }
}
