//! apikeyd: API keys in a local SQLite file, served over HTTP in four API shapes
//! ("families") from one core.
//!
//! Imports flow one way: `api` -> `auth` -> `manage` -> `store` -> `keys`/`grants`/`model`.
//! `keys`, `grants`, `timestamp` and `config` are pure; only `api`, `auth`, `error` and
//! `request_id` know actix exists. `main` and the tests build the app with [`app`], so both
//! serve exactly the same routes and middleware.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod grants;
pub mod index;
pub mod jwt;
pub mod keys;
pub mod limit;
pub mod manage;
pub mod model;
pub mod request_id;
pub mod store;
pub mod timestamp;
pub mod tls;
pub mod usage;
pub mod verify;
mod writer;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware, web, App, Error};

/// What every handler can reach.
pub struct AppState {
    /// The database.
    pub db: db::Db,
    /// Pending `last_used_at` values.
    pub usage: usage::Usage,
    /// Hash -> key, kept coherent with the database (see `index`).
    pub index: index::KeyIndex,
    /// JWT sessions.
    pub sessions: jwt::Sessions,
    /// Failed-authentication budget per client address.
    pub limiter: limit::FailureLimiter,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl AppState {
    /// State around an open database, with an empty (read-through) index, configured as
    /// `config` says.
    pub fn new(db: db::Db, config: &config::Config) -> Result<AppState, Box<dyn std::error::Error>> {
        let index = index::KeyIndex::open(&db)?;
        let sessions = jwt::Sessions::load(&db::open_connection(db.path())?, config.jwt_ttl)?;
        Ok(AppState {
            db,
            usage: usage::Usage::default(),
            index,
            sessions,
            limiter: limit::FailureLimiter::new(config.failure_burst, config.failure_refill_per_sec),
            trusted_proxies: config.trusted_proxies.clone(),
        })
    }
}

/// The whole application: state, request ids and access log, every route.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    App::new().app_data(state).wrap(middleware::from_fn(request_id::request_context)).configure(api::configure)
}
