//! apikeyd: API keys in a local SQLite file, served over HTTP in four API shapes
//! ("families") from one core.
//!
//! Layers, each a folder, importing only downward:
//! - `http`: the four families (`native`, `applications`, `clients`, `shard`; `edge` for
//!   verify and forward-auth), each only parsing requests and rendering answers; error
//!   envelopes, credential extractors, middleware, the OpenAPI document, TLS, and
//!   `connection`: how connections are served and what each may hold (request deadline,
//!   pipelining bound, watchdog, connections per client address).
//! - `service`: the core every family and the command line call: who may act
//!   (`authority`), checking a credential (`credential`, `verdict`), managing keys through
//!   the caller's scope (`manage`, `scope`), the key index, usage, the failure limiter and
//!   session tokens. It knows no HTTP and names no engine.
//! - `storage`: the seam (`Store` traits, `Db` door) and the SQLite engine behind it, where
//!   every SQL statement lives.
//! - `domain`: pure types and rules (key format, grants, timestamps, records, new keys).
//!
//! Beside them: `config` (every limit and default; imports nothing), `error` (`ApiError`,
//! which every layer above `storage` returns), `server` (start-up and shutdown) and `cli`
//! (the command line), which sit on top. `main` and the tests build the app with
//! [`http::app`], so both serve exactly the same routes and middleware.
//! `scripts/module_graph.py` checks that no module imports one that imports it back.

pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod logging;
pub mod server;
pub mod service;
pub mod storage;

pub use http::app;
pub use service::AppState;
