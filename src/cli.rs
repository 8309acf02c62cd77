//! The command line: `apikeyd [serve]` runs the server; `apikeyd keys create|list|revoke`
//! administer the same database file offline. The offline commands are safe while a server
//! runs on the file: WAL lets them read alongside it, busy_timeout makes writers take turns,
//! and every change they make writes its audit row in the same transaction. The server's
//! in-memory key index notices any commit through the WAL-index header in the `-shm` file and
//! applies the audit log since its last look before answering (see `index`), so a CLI revoke
//! is honoured from the server's next request.

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};

use actix_web::{web, HttpServer};
use clap::{Args, Parser, Subcommand};
use rusqlite::{Connection, TransactionBehavior};

use crate::config::{
    Config, DEFAULT_BIND, DEFAULT_DB, DEFAULT_FAILURE_BURST, DEFAULT_FAILURE_REFILL_PER_SEC, DEFAULT_JWT_TTL,
    DISCONNECT_TIMEOUT, MAX_CONNECTIONS_PER_WORKER, MAX_PAGE_SIZE, REQUEST_HEAD_TIMEOUT,
};
use crate::db::{self, Db};
use crate::error::ApiError;
use crate::grants::{Access, GrantPath, Grants};
use crate::keys::ApiKey;
use crate::manage::{self, Bootstrap, KeySpec};
use crate::model::{KeyId, Scope};
use crate::store::audit::AuditContext;
use crate::store::keys::list_keys;
use crate::timestamp::Timestamp;
use crate::usage::FLUSH_INTERVAL;
use crate::AppState;

/// Anything that stops a command.
pub type CliResult = Result<(), Box<dyn Error>>;

/// apikeyd: API keys in a local SQLite file, served over HTTP.
#[derive(Parser, Debug)]
#[command(name = "apikeyd", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server (the default).
    Serve(ServeArgs),
    /// Administer keys offline, on the database file.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArg,
    /// Address to listen on.
    #[arg(long, env = "APIKEYD_BIND", default_value = DEFAULT_BIND)]
    bind: String,
    /// Lifetime of session JWTs, in seconds.
    #[arg(long = "jwt-ttl", env = "APIKEYD_JWT_TTL", default_value_t = DEFAULT_JWT_TTL.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    jwt_ttl_secs: u64,
    /// Allow a non-loopback listen address without TLS: only when a proxy in front terminates
    /// TLS (apikeyd carries keys in headers and must not take them over plain HTTP from afar).
    #[arg(long = "behind-tls-proxy", env = "APIKEYD_BEHIND_TLS_PROXY")]
    behind_tls_proxy: bool,
    /// PEM certificate chain: serve HTTPS (with --tls-key). Allows a non-loopback --bind.
    #[arg(long = "tls-cert", env = "APIKEYD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long = "tls-key", env = "APIKEYD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A proxy whose X-Forwarded-For is believed (repeatable; env: comma-separated).
    #[arg(long = "trusted-proxy", env = "APIKEYD_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Failed authentications a client address may make in a burst before 429.
    #[arg(long = "auth-failure-burst", env = "APIKEYD_AUTH_FAILURE_BURST", default_value_t = DEFAULT_FAILURE_BURST)]
    failure_burst: u32,
    /// Failed authentications per second a client address regains.
    #[arg(long = "auth-failure-rate", env = "APIKEYD_AUTH_FAILURE_RATE", default_value_t = DEFAULT_FAILURE_REFILL_PER_SEC)]
    failure_rate: u32,
    /// HTTP worker threads (default: one per core). A sidecar sharing a node can take one.
    #[arg(long, env = "APIKEYD_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
    /// Open connections each worker accepts; past it the listener waits until some close.
    #[arg(long = "max-connections", env = "APIKEYD_MAX_CONNECTIONS", default_value_t = MAX_CONNECTIONS_PER_WORKER,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
}

#[derive(Args, Debug, Clone)]
struct DbArg {
    /// SQLite database file.
    #[arg(long = "db", env = "APIKEYD_DB", default_value = DEFAULT_DB)]
    path: PathBuf,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create a key and print it once.
    Create {
        #[command(flatten)]
        db: DbArg,
        /// Label.
        #[arg(long)]
        title: String,
        /// ACCESS:PATH, e.g. write:/uploads (repeatable). Default: read_write:/.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// RFC 3339 expiry.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Create many keys at once (for load tests and benchmarks); prints each key once, one
    /// per line, after the transaction holding it has committed.
    Seed {
        #[command(flatten)]
        db: DbArg,
        /// How many keys.
        #[arg(long)]
        count: u64,
        /// ACCESS:PATH, e.g. read:/data (repeatable). Default: read_write:/.
        #[arg(long = "grant")]
        grants: Vec<String>,
    },
    /// List keys, newest first (metadata only).
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Revoke a key by numeric id.
    Revoke {
        #[command(flatten)]
        db: DbArg,
        /// The key's numeric id.
        id: String,
    },
}

/// The variable that chooses the root key of a new database.
const ROOT_KEY_ENV: &str = "APIKEYD_ROOT_KEY";

/// What the command line asks for, once "no subcommand" has been read as `serve`.
#[derive(Debug)]
enum Action {
    Serve(ServeArgs),
    Keys(KeysCommand),
}

impl Cli {
    fn action(self) -> Action {
        match self.command {
            None => Action::Serve(self.serve),
            Some(Command::Serve(args)) => Action::Serve(args),
            Some(Command::Keys(keys)) => Action::Keys(keys),
        }
    }
}

/// Runs what the command line asked for.
pub fn run(cli: Cli) -> CliResult {
    match cli.action() {
        Action::Serve(args) => serve(args),
        Action::Keys(KeysCommand::Create { db, title, grants, expires_at }) => {
            create(&db.path, &title, &grants, expires_at.as_deref())
        }
        Action::Keys(KeysCommand::Seed { db, count, grants }) => seed(&db.path, count, &grants),
        Action::Keys(KeysCommand::List { db }) => list(&db.path),
        Action::Keys(KeysCommand::Revoke { db, id }) => revoke(&db.path, &id),
    }
}

/// [`ROOT_KEY_ENV`]: `None` when unset. Set but not UTF-8, or not a well-formed key, is an
/// error: the operator meant to choose the root key, and quietly generating another would
/// hide that. Messages never include the value.
fn root_key_from_env() -> Result<Option<ApiKey>, Box<dyn Error>> {
    const EXPECTED: &str = "expected sk- followed by 49 letters and digits; \
                            generate one with `apikeyd keys create` or leave it unset";
    let Some(raw) = std::env::var_os(ROOT_KEY_ENV) else { return Ok(None) };
    let text = raw.into_string().map_err(|_| format!("{ROOT_KEY_ENV} is set but is not valid UTF-8 ({EXPECTED})"))?;
    let key =
        ApiKey::parse(text.trim()).map_err(|_| format!("{ROOT_KEY_ENV} is not a well-formed key ({EXPECTED})"))?;
    Ok(Some(key))
}

fn serve(args: ServeArgs) -> CliResult {
    let root_key = root_key_from_env()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
        _ => None,
    };
    refuse_plaintext_exposure(&args.bind, args.behind_tls_proxy || tls.is_some())?;
    let (workers, max_connections) = (args.workers, args.max_connections);
    let config = Config {
        db_path: args.db.path,
        bind: args.bind,
        root_key,
        jwt_ttl: std::time::Duration::from_secs(args.jwt_ttl_secs),
        trusted_proxies: args.trusted_proxies,
        failure_burst: args.failure_burst,
        failure_refill_per_sec: args.failure_rate,
    };
    log::debug!("starting with {config:?}");
    let mut conn = db::open_connection(&config.db_path)?;
    match manage::bootstrap(&mut conn, config.root_key.as_ref())? {
        // The one time this key is ever shown: the database keeps only its hash.
        Bootstrap::Generated(key) => eprintln!("root key: {}", key.expose()),
        // Straight to stderr, not through the logger, so no log filter can hide it.
        Bootstrap::AlreadyInitialised if config.root_key.is_some() => eprintln!(
            "apikeyd: warning: {ROOT_KEY_ENV} is set but was ignored: {} already has keys, and the \
             variable only chooses the root key of a new database. Nothing was stored; unset it.",
            config.db_path.display()
        ),
        Bootstrap::AlreadyInitialised | Bootstrap::Installed => {}
    }
    drop(conn);
    let state = web::Data::new(AppState::new(Db::open(&config.db_path)?, &config)?);
    let warming = state.clone();
    std::thread::Builder::new().name("apikeyd-warm".to_owned()).spawn(move || warming.index.keep_warm(&warming.db))?;
    actix_web::rt::System::new().block_on(async move {
        let app_state = state.clone();
        let mut server = HttpServer::new(move || crate::app(app_state.clone()))
            .max_connections(max_connections as usize)
            .client_request_timeout(REQUEST_HEAD_TIMEOUT)
            .client_disconnect_timeout(DISCONNECT_TIMEOUT);
        if let Some(workers) = workers {
            server = server.workers(usize::from(workers));
        }
        let server = match tls {
            Some(tls) => server.bind_rustls_0_23(&config.bind, tls)?,
            None => server.bind(&config.bind)?,
        };
        for addr in server.addrs() {
            log::info!("listening on {addr}");
            eprintln!("listening on {addr}");
        }
        let flusher = actix_web::rt::spawn(flush_usage_periodically(state.clone()));
        let result = server.run().await;
        // Graceful shutdown (SIGTERM, SIGINT): the server has drained; write what is pending.
        flusher.abort();
        if let Err(e) = state.usage.flush(&state.db).await {
            log::warn!("last_used_at not flushed at shutdown: {e}");
        }
        result
    })?;
    Ok(())
}

/// Refuses to listen beyond loopback over plain HTTP, unless apikeyd serves TLS itself or a
/// TLS-terminating proxy is declared (`encrypted`).
fn refuse_plaintext_exposure(bind: &str, encrypted: bool) -> Result<(), Box<dyn Error>> {
    use std::net::ToSocketAddrs;
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

/// Writes pending `last_used_at` values every [`FLUSH_INTERVAL`].
async fn flush_usage_periodically(state: web::Data<AppState>) {
    let mut tick = actix_web::rt::time::interval(FLUSH_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = state.usage.flush(&state.db).await {
            log::warn!("last_used_at flush failed, will retry with newer values: {e}");
        }
    }
}

fn create(path: &Path, title: &str, grant_args: &[String], expires_at: Option<&str>) -> CliResult {
    let title = manage::validate_title(Some(&serde_json::Value::from(title)), "title")?;
    let grants = if grant_args.is_empty() { Grants::root() } else { parse_grant_args(grant_args)? };
    let expires_at = expires_at.map(Timestamp::parse_rfc3339).transpose()?;
    if expires_at.is_some_and(|at| at <= Timestamp::now()) {
        return Err("--expires-at must be in the future".into());
    }
    let spec = KeySpec { title, grants, expires_at, application_id: None };
    let key = manage::generate_key()?;
    let mut conn = db::open_connection(path)?;
    let record = in_transaction(&mut conn, |tx| manage::insert_new_key(tx, &spec, &key, &offline()))?;
    println!("{}", key.expose());
    eprintln!("created key {} ({}); this is the only time it is shown", record.id, record.prefix);
    Ok(())
}

fn seed(path: &Path, count: u64, grant_args: &[String]) -> CliResult {
    const CHUNK: u64 = 10_000;
    let grants = if grant_args.is_empty() { Grants::root() } else { parse_grant_args(grant_args)? };
    let spec = KeySpec { title: "seeded".to_owned(), grants, expires_at: None, application_id: None };
    let mut conn = db::open_connection(path)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut done = 0;
    while done < count {
        let n = CHUNK.min(count - done);
        let keys = in_transaction(&mut conn, |tx| {
            let ctx = offline();
            (0..n)
                .map(|_| {
                    let key = manage::generate_key()?;
                    manage::insert_new_key(tx, &spec, &key, &ctx)?;
                    Ok(key)
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })?;
        for key in &keys {
            writeln!(out, "{}", key.expose())?;
        }
        done += n;
    }
    out.flush()?;
    Ok(())
}

fn list(path: &Path) -> CliResult {
    let conn = db::open_connection(path)?;
    let now = Timestamp::now();
    let mut before = None;
    loop {
        let page = list_keys(&conn, Scope::Global, before, None, MAX_PAGE_SIZE)?;
        for k in &page {
            let grants: Vec<String> = k.grants.iter().map(|g| format!("{}:{}", g.access.as_str(), g.path)).collect();
            let status = if k.status.as_str() == "active" && k.is_expired(now) { "expired" } else { k.status.as_str() };
            println!("{}\t{}\t{}\t{}\t{}\t{}", k.id, k.uuid, status, k.prefix, grants.join(","), k.title);
        }
        match page.last() {
            Some(last) if page.len() == MAX_PAGE_SIZE as usize => before = Some(last.id),
            _ => return Ok(()),
        }
    }
}

fn revoke(path: &Path, id: &str) -> CliResult {
    let id = KeyId::parse(id).ok_or("ID must be a positive integer")?;
    let mut conn = db::open_connection(path)?;
    let record = in_transaction(&mut conn, |tx| manage::revoke_key(tx, Scope::Global, None, id, &offline()))?;
    println!("revoked key {} ({})", record.id, record.prefix);
    Ok(())
}

/// `access:path` pairs from `--grant`.
fn parse_grant_args(args: &[String]) -> Result<Grants, Box<dyn Error>> {
    let mut bodies = Vec::with_capacity(args.len());
    for arg in args {
        let (access, path) = arg.split_once(':').ok_or_else(|| format!("--grant {arg}: expected ACCESS:PATH"))?;
        let access =
            Access::parse(access).ok_or_else(|| format!("--grant {arg}: access is read, write or read_write"))?;
        let path = GrantPath::parse(path).map_err(|e| format!("--grant {arg}: {e}"))?;
        bodies.push(crate::grants::GrantBody { path: path.as_str().to_owned(), access });
    }
    Ok(Grants::from_bodies(&bodies)?)
}

fn offline() -> AuditContext {
    AuditContext { actor: None, request_id: None, at: Timestamp::now() }
}

/// Runs `f` in an IMMEDIATE transaction (takes the write lock up front, waiting for the
/// server's writer through busy_timeout) and commits only if it succeeds.
fn in_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<T, ApiError>,
) -> Result<T, Box<dyn Error>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn plaintext_beyond_loopback_needs_tls_or_a_declared_proxy() {
        assert!(refuse_plaintext_exposure("127.0.0.1:8080", false).is_ok());
        assert!(refuse_plaintext_exposure("[::1]:8080", false).is_ok());
        assert!(refuse_plaintext_exposure("0.0.0.0:8080", false).is_err());
        assert!(refuse_plaintext_exposure("0.0.0.0:8080", true).is_ok());
    }

    fn parse(args: &[&str]) -> Action {
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).action()
    }

    /// The `--db`-style option `long` of `cmd`: (default, env variable).
    fn option(cmd: &clap::Command, long: &str) -> (Vec<String>, Option<String>) {
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long)).unwrap_or_else(|| panic!("--{long}"));
        let defaults = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
        (defaults, arg.get_env().map(|e| e.to_string_lossy().into_owned()))
    }

    #[test]
    fn no_subcommand_means_serve() {
        assert!(matches!(parse(&["apikeyd"]), Action::Serve(_)));
        assert!(matches!(parse(&["apikeyd", "serve"]), Action::Serve(_)));
        match parse(&["apikeyd", "--db", "/tmp/x.db", "--bind", "127.0.0.1:9"]) {
            Action::Serve(args) => {
                assert_eq!(args.db.path, Path::new("/tmp/x.db"));
                assert_eq!(args.bind, "127.0.0.1:9");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&["apikeyd", "keys", "list"]), Action::Keys(KeysCommand::List { .. })));
        // Serve options belong before no subcommand or after `serve`, never both ways at once.
        assert!(Cli::try_parse_from(["apikeyd", "--bind", "127.0.0.1:9", "keys", "list"]).is_err());
    }

    #[test]
    fn serve_defaults_and_environment_variables() {
        assert_eq!(DEFAULT_DB, "data/apikeyd.db");
        assert_eq!(DEFAULT_BIND, "127.0.0.1:8080");
        let top = Cli::command();
        let serve = top.find_subcommand("serve").expect("serve subcommand").clone();
        for cmd in [&top, &serve] {
            assert_eq!(option(cmd, "db"), (vec![DEFAULT_DB.to_owned()], Some("APIKEYD_DB".to_owned())));
            assert_eq!(option(cmd, "bind"), (vec![DEFAULT_BIND.to_owned()], Some("APIKEYD_BIND".to_owned())));
        }
        let keys = top.find_subcommand("keys").expect("keys subcommand");
        for name in ["create", "seed", "list", "revoke"] {
            let sub = keys.find_subcommand(name).unwrap_or_else(|| panic!("keys {name}"));
            assert_eq!(option(sub, "db"), (vec![DEFAULT_DB.to_owned()], Some("APIKEYD_DB".to_owned())), "{name}");
        }
        // What a bare `apikeyd` resolves to, when the environment does not override it.
        if std::env::var_os("APIKEYD_DB").is_none() && std::env::var_os("APIKEYD_BIND").is_none() {
            match parse(&["apikeyd"]) {
                Action::Serve(args) => {
                    assert_eq!(args.db.path, Path::new(DEFAULT_DB));
                    assert_eq!(args.bind, DEFAULT_BIND);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
