//! apikeyd's integration tests, as one test binary (one link, one run): `cargo test --test it`,
//! or one subject with a filter, e.g. `cargo test --test it native::` or
//! `cargo test --test it properties::`.
//!
//! `support` holds what every module shares: `TestApp` (a fresh database, the app `main`
//! serves, as an in-process test service, with typed helpers), the envelope assertions, the
//! real-binary driver and the skip-or-require rule. Each other module is one subject:
//! - the admin page: `admin` (in-process: cookies, CSP, CSRF, logout, scope, sessions ending)
//!   and `admin_browser` (headless Chromium over WebDriver, axe-core, keyboard, screenshots);
//! - the families, in-process: `native`, `applications`, `clients`, `shard`, and `sessions`
//!   (session tokens, partly through the real binary);
//! - across families: `verify` (verify API, forward-auth, the key index, usage), `audit`,
//!   `isolation` (applications never see each other), `authz_matrix` (tests/data/authz_matrix.tsv),
//!   `limits` (failed-authentication rate limiting), `limits_table` (request limits),
//!   `overload` (write shedding), `openapi`, `usage_control` (per-key rate limits, credits,
//!   IP allowlists), `clock` (the one-way clock: dates past year 9999, and the real binary
//!   under libfaketime with its wall clock stepped);
//! - pure code: `properties` (proptest);
//! - the real binary: `process`, `credits_crash` (kill -9 while credits are spent), `tls`,
//!   `slow_clients` (connections held to the request deadline, the watchdog, the per-address
//!   cap and the pipelining bound), `gateway_nginx` and `gateway_caddy` (a real nginx or Caddy
//!   in front) and `contract_examples` (the client code in the contract documents in
//!   ../shared/seeds);
//! - operating it: `metrics` (`/metrics` and `/readyz`; promtool and a real Prometheus),
//!   `backup` (backup under load, restore, check), `service` (the systemd unit, SIGTERM,
//!   JSON logs, completions and the manual, progress lines).

mod support;

mod admin;
mod admin_browser;
mod applications;
mod audit;
mod authz_matrix;
mod backup;
mod cli;
mod clients;
mod clock;
mod contract_examples;
mod credits_crash;
mod fleet;
mod gateway_caddy;
mod gateway_nginx;
mod isolation;
mod lifecycle;
mod limits;
mod limits_table;
mod metrics;
mod native;
mod openapi;
mod overload;
mod process;
mod properties;
mod review_holes;
mod service;
mod sessions;
mod shard;
mod slow_clients;
mod tls;
mod usage_control;
mod verify;
