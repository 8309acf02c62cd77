//! Every default and limit in one place, and the settings the core runs with. Imports
//! nothing from the crate: every other module may read it. The OpenAPI document, the
//! command line's ranges and the README's limits table are all written from these values.

use std::net::IpAddr;
use std::time::Duration;

// ---- Where it runs ----

/// Default database file, relative to the working directory.
pub const DEFAULT_DB: &str = "data/apikeyd.db";
/// Default listen address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Most HTTP worker threads `--workers` accepts.
pub const MAX_WORKERS: u16 = 256;
/// Open connections each worker accepts; past it the listener stops accepting until some
/// close (actix's default is 25,000: far more than a sidecar needs, and memory follows).
pub const MAX_CONNECTIONS_PER_WORKER: u32 = 4096;
/// Largest `--max-connections`.
pub const MAX_CONNECTIONS_LIMIT: u32 = 1_000_000;
/// Pending connections the listening socket queues before accepting (actix-web's default).
pub const LISTEN_BACKLOG: i32 = 1024;
/// How long a graceful shutdown (SIGTERM, SIGINT) waits for open requests before closing
/// connections anyway (actix's default).
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 30;

// ---- Fleet mode (PostgreSQL; docs/FLEET.md) ----

/// How often a fleet node polls PostgreSQL's change log when no NOTIFY woke it: the bound on
/// what a lost notification costs.
pub const FLEET_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Time a connection attempt to PostgreSQL may take.
pub const FLEET_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time sent data may stay unacknowledged before the kernel drops a PostgreSQL connection.
pub const FLEET_TCP_USER_TIMEOUT: Duration = Duration::from_millis(1500);
/// After a failed attempt, writes are refused at once (503) for this long before the next.
pub const FLEET_RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// Time the writer thread gives one group of writes in PostgreSQL.
pub const FLEET_WRITE_BUDGET: Duration = Duration::from_millis(1500);
/// Time a write's caller waits for its answer before hearing 503 (writes 503 within 2 s).
pub const FLEET_ANSWER_BUDGET: Duration = Duration::from_millis(1800);
/// Time one sync of the change log may take.
pub const FLEET_SYNC_BUDGET: Duration = Duration::from_secs(2);
/// Time loading a snapshot (or migrating PostgreSQL's schema) may take.
pub const FLEET_SNAPSHOT_BUDGET: Duration = Duration::from_secs(60);
/// Changes read from the log per query (and applied per replica transaction).
pub const FLEET_LOG_PAGE: i64 = 1000;
/// Default `--stale-after`: a node not synced for this long is not ready (`/readyz` 503).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(5);
/// Longest wait for `x-apikeyd-min-revision` before 503.
pub const MIN_REVISION_WAIT: Duration = Duration::from_secs(1);
/// How long a starting fleet node waits for its first sync before serving its local state.
pub const FLEET_START_WAIT: Duration = Duration::from_millis(500);
/// `Retry-After` of a write refused because PostgreSQL is unreachable, in seconds.
pub const FLEET_RETRY_AFTER_SECS: u64 = 1;

// ---- Connections ----
//
// What one connection, and one client address, may hold. `http::connection` enforces these;
// the README's limits table lists them.

/// A whole request, head and body, must arrive within this, counted from the connection's
/// accept (after the TLS handshake) or from the end of the previous response on it. Past it a
/// request whose body is still awaited is answered 408 and the connection closed. Request
/// bodies here are at most 64 KiB: a client that cannot send one in 10 s is stalling.
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Longest `--request-deadline`, in seconds.
pub const MAX_REQUEST_DEADLINE_SECS: u64 = 3600;
/// A connection whose request cycle (idle keep-alive, the request arriving, the handler, the
/// response being written) lasts longer than this is shut, whatever it is waiting for: a
/// second request head that never completes, a client that stopped reading its answers. It
/// must exceed keep-alive (5 s) + the request deadline (10 s) + the slowest handler (a write
/// waits up to 5 s for SQLite's lock), so that only a stalled connection ever meets it.
pub const DEFAULT_CONNECTION_WATCHDOG: Duration = Duration::from_secs(30);
/// Longest `--connection-watchdog`, in seconds.
pub const MAX_CONNECTION_WATCHDOG_SECS: u64 = 86_400;
/// Idle time before a keep-alive connection is closed (actix's default, now stated here).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Time a client has for its TLS handshake (actix-tls's default, now stated here).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// Open connections one client address may hold at once, over all workers (0: no cap). An
/// IPv6 client is counted by its /64, the block one host is normally given. Connections from
/// a `--trusted-proxy` are not counted: behind a proxy every client shares its address. A
/// connection past the cap is answered 503 (with `Retry-After`) to its first request and
/// closed. A sidecar's or a service's connection pool stays far below this.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: u32 = 512;
/// How long a connection past the per-address cap may stay open to send the request its
/// 503 answers; one that sends nothing is shut after this.
pub const OVER_CAP_GRACE: Duration = Duration::from_secs(1);
/// `Retry-After` of the 503 for a connection past the per-address cap, in seconds.
pub const OVER_CAP_RETRY_AFTER_SECS: u64 = 1;
/// Requests one connection may have outstanding (received but not yet answered in full).
/// Past it apikeyd stops reading the connection until an answer is done, so a client that
/// pipelines requests and never reads the answers makes the kernel's socket buffers fill
/// and its own writes block, instead of the server's memory grow. actix-http's own queue
/// holds 16.
pub const DEFAULT_MAX_PIPELINED: u32 = 16;
/// Largest `--max-pipelined`.
pub const MAX_PIPELINED_LIMIT: u32 = 64;

// ---- Requests ----

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
/// A client must send its whole request head within this (slowloris is cut off).
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a clean close after the response.
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// What new keys start with unless `--key-prefix` says otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "sk-";
/// Longest key title or application name, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest key owner, in characters.
pub const MAX_OWNER_CHARS: usize = 200;
/// Largest key metadata object, in bytes of JSON.
pub const MAX_META_BYTES: usize = 4 * 1024;
/// Longest rotation grace: 30 days.
pub const MAX_GRACE_SECONDS: u64 = 2_592_000;
/// Most grants one key may hold.
pub const MAX_GRANTS: usize = 32;
/// Longest grant path, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest RFC 3339 text accepted (the parser is never handed more).
pub const MAX_TIMESTAMP_LEN: usize = 64;
/// Page size when a list call names none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page a list call may ask for.
pub const MAX_PAGE_SIZE: u32 = 200;
/// Most ids one bulk delete may name.
pub const MAX_BULK: usize = 1000;
/// Malformed ids a bulk delete's 400 names, at most, and how many characters of each.
pub const MAX_BAD_IDS_SHOWN: usize = 20;
/// See [`MAX_BAD_IDS_SHOWN`].
pub const MAX_BAD_ID_CHARS: usize = 64;
/// Longest parser message passed on to a client, in characters.
pub const MAX_PARSER_MESSAGE_CHARS: usize = 300;

// ---- Authentication ----

/// Failed authentications a client address may make in a burst.
pub const DEFAULT_FAILURE_BURST: u32 = 50;
/// Failed authentications per second a client address regains.
pub const DEFAULT_FAILURE_REFILL_PER_SEC: u32 = 10;
/// Client addresses whose failures are tracked one by one; past it, new addresses share one
/// bucket.
pub const MAX_TRACKED_ADDRESSES: usize = 100_000;
/// Lifetime of a session JWT unless configured.
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(3600);
/// Longest session lifetime `--jwt-ttl` accepts, in seconds.
pub const MAX_JWT_TTL_SECS: u64 = 86_400;

// ---- Storage ----

/// Writes waiting for the writer beyond this many are refused with 503, so a write flood
/// costs bounded memory.
pub const WRITE_QUEUE_DEPTH: usize = 4096;
/// Most queued writes committed in one transaction (one WAL fsync).
pub const WRITE_GROUP_MAX: usize = 512;
/// How long a connection waits for another writer (the CLI, another process) before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The writer connection's page cache, as SQLite's `cache_size` takes it (negative: KiB).
pub const WRITER_CACHE_KIB: i64 = -65_536;
/// Read connections kept open for the blocking pool.
pub const READ_POOL_SIZE: u32 = 8;
/// Longest wait for a hot-path connection; past it the request fails closed with 5xx.
pub const HOT_CHECKOUT_TIMEOUT: Duration = Duration::from_millis(250);
/// Hot-path reads wait this long for a lock (WAL readers rarely wait at all); a stalled
/// async worker would stall every connection on it.
pub const HOT_BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// Keys `apikeyd keys seed` writes per transaction.
pub const SEED_CHUNK: usize = 10_000;

// ---- Usage control (rate limits, credits, IP allowlists) ----

/// Largest `rate_limit.limit`.
pub const MAX_RATE_LIMIT: u64 = 1_000_000_000;
/// Largest `rate_limit.window_seconds`: a day.
pub const MAX_RATE_WINDOW_SECONDS: u64 = 86_400;
/// The sub-windows a rate window is counted in: a verdict is refused at most one sub-window
/// early (1/10 of the window), never admitted past the limit.
pub const RATE_BUCKETS: u64 = 10;
/// Most credits a key may hold or be refilled to.
pub const MAX_CREDITS: u64 = 1_000_000_000_000;
/// Most credits one verification may spend (`"cost"`).
pub const MAX_VERIFY_COST: u64 = 1_000;
/// Credits a node takes from the database at a time and spends from memory (a crash
/// forfeits at most one block; it never lets a key spend more than it had).
pub const CREDIT_LEASE: u64 = 64;
/// The largest block, for a key spending a block within a second (`service::quota::lease`).
pub const MAX_CREDIT_LEASE: u64 = 4_096;
/// Most networks in one key's IP allowlist.
pub const MAX_ALLOWED_IPS: usize = 64;

// ---- The key index and usage ----

/// A change feed longer than this (a bulk load by another process) clears the key index and
/// warms it again in the background, instead of being applied under the lock.
pub const INDEX_MAX_FEED: u32 = 10_000;
/// Rows per warming page; the index's write lock is held for one page at a time.
pub const INDEX_WARM_PAGE: u32 = 10_000;
/// How often pending `last_used_at` values are written.
pub const USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// `last_used_at` is kept to this resolution.
pub const USAGE_RESOLUTION_MS: i64 = 60_000;
/// Most rows one `last_used_at` flush transaction writes.
pub const USAGE_FLUSH_CHUNK: usize = 1_000;

/// Which request headers forward-auth (`/auth`) believes for the path and method asked about.
/// Gateways differ: nginx sets `X-Original-URI`/`X-Original-Method` itself; Traefik and Caddy
/// set `X-Forwarded-Uri`/`X-Forwarded-Method` and pass the client's other headers through, so a
/// client can add an `X-Original-URI` of its own. Naming the gateway's pair closes that.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardAuthHeaders {
    /// Only `X-Original-URI` and `X-Original-Method` (nginx `auth_request`).
    Original,
    /// Only `X-Forwarded-Uri` and `X-Forwarded-Method` (Traefik `ForwardAuth`, Caddy
    /// `forward_auth`).
    Forwarded,
    /// Whichever pair is sent; a request that carries both, disagreeing, is refused.
    #[default]
    Auto,
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `[time level target] message`, for people.
    #[default]
    Text,
    /// One JSON object per line: time, level, target, message, and the record's fields.
    Json,
}

/// What each connection is held to (`http::connection`): the settings a deployment may
/// change of the limits above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Head and body of a request must arrive within this.
    pub request_deadline: Duration,
    /// A request cycle lasting longer shuts the connection (`None`: never).
    pub watchdog: Option<Duration>,
    /// Connections one client address may hold (`None`: no cap).
    pub per_address: Option<u32>,
    /// Requests one connection may have outstanding before it is no longer read.
    pub max_pipelined: u32,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            request_deadline: DEFAULT_REQUEST_DEADLINE,
            watchdog: Some(DEFAULT_CONNECTION_WATCHDOG),
            per_address: Some(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS),
            max_pipelined: DEFAULT_MAX_PIPELINED,
        }
    }
}

/// What the core runs with: the settings a deployment may change. No secrets.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lifetime of session JWTs.
    pub jwt_ttl: Duration,
    /// Proxies whose `X-Forwarded-For` is believed when finding the client's address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Failed authentications an address may make in a burst.
    pub failure_burst: u32,
    /// Failed authentications per second an address regains.
    pub failure_refill_per_sec: u32,
    /// Which headers forward-auth believes.
    pub forward_auth_headers: ForwardAuthHeaders,
    /// What new keys start with (checked by `domain::key_format::KeyPrefix`).
    pub key_prefix: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            jwt_ttl: DEFAULT_JWT_TTL,
            trusted_proxies: Vec::new(),
            failure_burst: DEFAULT_FAILURE_BURST,
            failure_refill_per_sec: DEFAULT_FAILURE_REFILL_PER_SEC,
            forward_auth_headers: ForwardAuthHeaders::default(),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
        }
    }
}
