//! Running the server: opening the database, installing the root key on a new one, the
//! background tasks (index warming, `last_used_at` and clock high-water mark flushes), the
//! HTTP listener (plain or TLS), and a graceful shutdown that writes what is pending. The
//! command line hands it a [`ServeOptions`]; everything it serves is `http::app`, on
//! connections served and limited by `http::connection` (actix-server's workers, as
//! actix-web's `HttpServer` would run them).

use std::error::Error;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;

use actix_server::ServerBuilder;
use actix_web::web;

use crate::config::{Config, ConnectionLimits, LISTEN_BACKLOG, SHUTDOWN_TIMEOUT_SECS, USAGE_FLUSH_INTERVAL};
use crate::domain::key_format::ApiKey;
use crate::domain::timestamp::Timestamp;
use crate::http::connection::{self, Admission};
use crate::service::manage::{bootstrap, Bootstrap};
use crate::service::AppState;
use crate::storage::sqlite::maintenance;
use crate::storage::Db;

/// The variable that chooses the root key of a new database.
pub const ROOT_KEY_ENV: &str = "APIKEYD_ROOT_KEY";

/// What a server runs with, beyond the core's [`Config`].
pub struct ServeOptions {
    /// SQLite file.
    pub db_path: PathBuf,
    /// Listen address.
    pub bind: String,
    /// Root key to install on first start; generated when absent.
    pub root_key: Option<ApiKey>,
    /// HTTPS, when a certificate was given.
    pub tls: Option<rustls::ServerConfig>,
    /// A TLS-terminating proxy is declared in front (allows a non-loopback plain bind).
    pub behind_tls_proxy: bool,
    /// HTTP worker threads (actix's default when `None`).
    pub workers: Option<usize>,
    /// Open connections per worker.
    pub max_connections: usize,
    /// What each connection, and each client address, is held to.
    pub limits: ConnectionLimits,
    /// Where to serve `GET /metrics` with no credential, besides the main listener (where it
    /// needs read on `/metrics`); `None`: nowhere else.
    pub metrics_bind: Option<String>,
    /// The core's settings.
    pub config: Config,
    /// Fleet mode: the PostgreSQL the fleet shares (`None`: single node).
    pub fleet: Option<crate::storage::postgres::FleetConfig>,
}

/// Runs the server until it is told to stop (SIGTERM, SIGINT).
pub fn serve(options: ServeOptions) -> Result<(), Box<dyn Error>> {
    refuse_plaintext_exposure(&options.bind, options.behind_tls_proxy || options.tls.is_some())?;
    log::debug!("starting on {} with {:?}", options.bind, options.config);
    // Held until the process ends: `apikeyd restore` refuses to replace a database in use. A
    // file system without flock (some FUSE ones) serves anyway, with a warning.
    let _hold = match maintenance::hold_for_serving(&options.db_path) {
        Ok(hold) => Some(hold?),
        Err(e) => {
            log::warn!(
                "cannot lock {}: {e}; `apikeyd restore` will not see that this server holds it",
                maintenance::lock_path(&options.db_path).display()
            );
            None
        }
    };
    let db = match &options.fleet {
        None => Db::open(&options.db_path)?,
        Some(fleet) => open_fleet_node(&options.db_path, fleet.clone())?,
    };
    let place = match &options.fleet {
        None => options.db_path.display().to_string(),
        Some(_) => "the fleet's PostgreSQL".to_owned(),
    };
    actix_web::rt::System::new().block_on(async move {
        if db.fleet().is_none_or(|f| f.since_last_sync().is_some()) {
            install_root_key(&db, options.root_key.as_ref(), &place).await?;
        } else {
            // Cut off from PostgreSQL at start: serve the local replica now, and install the root
            // key (on an empty fleet) once PostgreSQL is reached.
            let (db, root_key) = (db.clone(), options.root_key.clone());
            actix_web::rt::spawn(async move {
                while db.fleet().is_some_and(|f| f.since_last_sync().is_none()) {
                    actix_web::rt::time::sleep(crate::config::FLEET_POLL_INTERVAL).await;
                }
                if let Err(e) = install_root_key(&db, root_key.as_ref(), &place).await {
                    log::error!("root key not checked after reaching PostgreSQL: {e}");
                }
            });
        }
        let state = web::Data::new(AppState::new(db, &options.config).await?);
        let warming = state.clone();
        std::thread::Builder::new()
            .name("apikeyd-warm".to_owned())
            .spawn(move || warming.index.keep_warm(&warming.db))?;
        let mut builder = ServerBuilder::new()
            .max_concurrent_connections(options.max_connections)
            .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
        if let Some(workers) = options.workers {
            builder = builder.workers(workers);
        }
        let admission = Admission::new(options.limits, &options.config.trusted_proxies);
        let mut addrs = Vec::new();
        for listener in bind(&options.bind)? {
            let local = listener.local_addr()?;
            let (state, tls, admission) = (state.clone(), options.tls.clone(), admission.clone());
            let shutdown = builder.graceful_shutdown_signal();
            // Called once per worker, on its thread: each has its own app and services.
            builder = builder.listen(format!("apikeyd-{local}"), listener, move || {
                let app = crate::http::app(state.clone());
                connection::service(app, local, tls.clone(), admission.clone(), shutdown.clone())
            })?;
            addrs.push(local);
        }
        if let Some(metrics_bind) = &options.metrics_bind {
            for listener in bind(metrics_bind)? {
                let local = listener.local_addr()?;
                let (state, admission) = (state.clone(), admission.clone());
                let shutdown = builder.graceful_shutdown_signal();
                builder = builder.listen(format!("apikeyd-metrics-{local}"), listener, move || {
                    let app = actix_web::App::new().app_data(state.clone()).configure(crate::http::metrics_only);
                    connection::service(app, local, None, admission.clone(), shutdown.clone())
                })?;
                log::info!("metrics listening on {local}");
                eprintln!("metrics listening on {local}");
            }
        }
        for addr in addrs {
            log::info!("listening on {addr}");
            eprintln!("listening on {addr}");
        }
        let flusher = actix_web::rt::spawn(flush_usage_periodically(state.clone()));
        let result = builder.run().await;
        // Graceful shutdown (SIGTERM, SIGINT): the server has drained; write what is pending.
        flusher.abort();
        state.quota.give_back_leases(&state.db).await;
        if let Err(e) = state.usage.flush(&state.db).await {
            log::warn!("last_used_at not flushed at shutdown: {e}");
        }
        Ok::<_, Box<dyn Error>>(result?)
    })
}

/// On a new database (or an empty fleet), installs the root key and shows it once.
async fn install_root_key(db: &Db, root_key: Option<&ApiKey>, place: &str) -> Result<(), Box<dyn Error>> {
    match bootstrap(db, root_key).await? {
        // The one time this key is ever shown: the database keeps only its hash.
        Bootstrap::Generated(key) => eprintln!("root key: {}", key.expose()),
        // Straight to stderr, not through the logger, so no log filter can hide it.
        Bootstrap::AlreadyInitialised if root_key.is_some() => eprintln!(
            "apikeyd: warning: {ROOT_KEY_ENV} is set but was ignored: {place} already has keys, and the \
             variable only chooses the root key of a new database. Nothing was stored; unset it."
        ),
        Bootstrap::AlreadyInitialised | Bootstrap::Installed => {}
    }
    Ok(())
}

/// Opens the replica at `path` as a node of `fleet` and waits briefly for its first sync: a
/// node with a local copy serves it at once if PostgreSQL is down (not ready until it syncs);
/// a node with nothing local has nothing to serve, and waits longer.
fn open_fleet_node(path: &std::path::Path, fleet: crate::storage::postgres::FleetConfig) -> Result<Db, Box<dyn Error>> {
    let db = crate::storage::postgres::open_fleet(path, fleet)?;
    if let Some(status) = db.fleet() {
        let wait =
            if status.applied() > 0 { crate::config::FLEET_START_WAIT } else { crate::config::FLEET_SNAPSHOT_BUDGET };
        if !status.wait_first_sync(wait) {
            eprintln!(
                "apikeyd: PostgreSQL is not reachable yet: serving the local replica (revision {}); \
                 not ready until it syncs",
                status.applied()
            );
        }
    }
    Ok(db)
}

/// Listening sockets for every address `bind` names, made as actix-web's `HttpServer` makes
/// them (address reuse, a backlog of [`LISTEN_BACKLOG`]); an error only if none could be.
fn bind(bind: &str) -> Result<Vec<TcpListener>, Box<dyn Error>> {
    let mut listeners = Vec::new();
    let mut last_error = None;
    for addr in bind.to_socket_addrs()? {
        match listen_on(addr) {
            Ok(listener) => listeners.push(listener),
            Err(e) => last_error = Some(e),
        }
    }
    match (listeners.is_empty(), last_error) {
        (false, _) => Ok(listeners),
        (true, Some(e)) => Err(format!("cannot listen on {bind}: {e}").into()),
        (true, None) => Err(format!("cannot listen on {bind}: it names no address").into()),
    }
}

fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Refuses to listen beyond loopback over plain HTTP, unless apikeyd serves TLS itself or a
/// TLS-terminating proxy is declared (`encrypted`).
pub fn refuse_plaintext_exposure(bind: &str, encrypted: bool) -> Result<(), Box<dyn Error>> {
    let exposed: Vec<_> = bind.to_socket_addrs()?.filter(|a| !a.ip().is_loopback()).collect();
    if exposed.is_empty() || encrypted {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {bind} (not loopback) without TLS: keys would cross the network in clear. \
         Serve TLS with --tls-cert and --tls-key, or put a TLS-terminating proxy in front and pass \
         --behind-tls-proxy (APIKEYD_BEHIND_TLS_PROXY=true), or bind to 127.0.0.1"
    )
    .into())
}

/// Writes pending `last_used_at` values, and the clock's high-water mark, every
/// [`USAGE_FLUSH_INTERVAL`]; makes the verification chart's next minutes ready.
async fn flush_usage_periodically(state: web::Data<AppState>) {
    let mut tick = actix_web::rt::time::interval(USAGE_FLUSH_INTERVAL);
    loop {
        tick.tick().await;
        // Zeroes the chart's next minutes before their first verification.
        state.verify_rate.prepare(Timestamp::now());
        if let Err(e) = state.usage.flush(&state.db).await {
            log::warn!("last_used_at flush failed, will retry with newer values: {e}");
        }
        if let Err(e) = state.clock.refresh(&state.db, Timestamp::now()).await {
            log::warn!("clock high-water mark not written, will retry: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_beyond_loopback_needs_tls_or_a_declared_proxy() {
        assert!(refuse_plaintext_exposure("127.0.0.1:8080", false).is_ok());
        assert!(refuse_plaintext_exposure("[::1]:8080", false).is_ok());
        assert!(refuse_plaintext_exposure("0.0.0.0:8080", false).is_err());
        assert!(refuse_plaintext_exposure("0.0.0.0:8080", true).is_ok());
    }
}
