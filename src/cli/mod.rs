//! The command line: `apikeyd [serve]` runs the server (`server`); `apikeyd keys …`,
//! `apikeyd applications …` and `apikeyd audit` administer the same database file through the
//! same core as the HTTP families (`service::manage`), acting as the operator: a global root
//! authority, since whoever holds the file holds every key in it (`commands`). Output is an
//! aligned table for people, or JSON with `--json` (`output`). The commands are safe while a
//! server runs on the file: WAL lets them read alongside it, busy_timeout makes writers take
//! turns, and every change they make writes its audit row in the same transaction. The
//! server's key index notices any commit and applies the change feed before answering (see
//! `service::index`), so a command-line change is honoured from the server's next request.
//! `apikeyd backup`, `restore` and `check` work on the file as a whole, and `completions` and
//! `man` print what shells and `man` read, from these same definitions (`ops`).

mod commands;
mod fleet;
mod ops;
mod output;

use std::error::Error;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    Config, ConnectionLimits, ForwardAuthHeaders, LogFormat, DEFAULT_BIND, DEFAULT_CONNECTION_WATCHDOG, DEFAULT_DB,
    DEFAULT_FAILURE_BURST, DEFAULT_FAILURE_REFILL_PER_SEC, DEFAULT_JWT_TTL, DEFAULT_KEY_PREFIX,
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, DEFAULT_MAX_PIPELINED, DEFAULT_REQUEST_DEADLINE, DEFAULT_STALE_AFTER,
    MAX_CONNECTIONS_LIMIT, MAX_CONNECTIONS_PER_WORKER, MAX_CONNECTION_WATCHDOG_SECS, MAX_JWT_TTL_SECS,
    MAX_PIPELINED_LIMIT, MAX_REQUEST_DEADLINE_SECS, MAX_WORKERS,
};
use crate::domain::clock;
use crate::domain::key_format::{ApiKey, KeyPrefix};
use crate::error::Op;
use crate::server::{self, ServeOptions, ROOT_KEY_ENV};
use crate::service::authority::{Actor, Manager};
use crate::service::clock::ClockMark;
use crate::service::manage::Manage;
use crate::storage::postgres::FleetConfig;
use crate::storage::Db;
use commands::{ApplicationsCommand, AuditArgs, KeysCommand};

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
    /// Administer keys on the database file.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Administer applications on the database file.
    #[command(subcommand)]
    Applications(ApplicationsCommand),
    /// Read the audit trail, newest first.
    Audit(AuditArgs),
    /// Copy the database to a file, safely while the server runs and writes.
    Backup(ops::BackupArgs),
    /// Replace the database with a backup (refused while a server holds it).
    Restore(ops::RestoreArgs),
    /// Check the database's integrity and its audit trail; non-zero exit on any problem.
    Check(ops::CheckArgs),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(ops::CompletionsArgs),
    /// Print the manual page (roff).
    Man,
    /// Fleet mode: move a single-node database into PostgreSQL.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
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
          value_parser = clap::value_parser!(u64).range(1..=MAX_JWT_TTL_SECS))]
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
    /// Which headers `/auth` takes the request's path and method from: `original` (nginx),
    /// `forwarded` (Traefik, Caddy), or `auto` (either; both present and different is 403).
    #[arg(long = "forward-auth-headers", env = "APIKEYD_FORWARD_AUTH_HEADERS", value_enum, default_value_t)]
    forward_auth_headers: ForwardAuthHeaders,
    #[command(flatten)]
    prefix: PrefixArg,
    /// Also serve GET /metrics here, with no credential (e.g. 127.0.0.1:9090). Off by default;
    /// on the main listener /metrics needs a key with read on /metrics.
    #[arg(long = "metrics-bind", env = "APIKEYD_METRICS_BIND")]
    metrics_bind: Option<String>,
    /// How log lines are written: text, or json (one object per line).
    #[arg(long = "log-format", env = "APIKEYD_LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
    /// HTTP worker threads (default: one per core). A sidecar sharing a node can take one.
    #[arg(long, env = "APIKEYD_WORKERS", value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_WORKERS)))]
    workers: Option<u16>,
    /// Open connections each worker accepts; past it the listener waits until some close.
    #[arg(long = "max-connections", env = "APIKEYD_MAX_CONNECTIONS", default_value_t = MAX_CONNECTIONS_PER_WORKER,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECTIONS_LIMIT)))]
    max_connections: u32,
    /// Seconds a request's head and body may take to arrive, from the connection's accept or
    /// the end of the previous answer on it; a body still awaited then is answered 408.
    #[arg(long = "request-deadline", env = "APIKEYD_REQUEST_DEADLINE", default_value_t = DEFAULT_REQUEST_DEADLINE.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=MAX_REQUEST_DEADLINE_SECS))]
    request_deadline_secs: u64,
    /// Seconds one request cycle (keep-alive wait, request, handler, answer) may last before
    /// the connection is shut, whatever it waits for; 0: never. Must exceed --request-deadline.
    #[arg(long = "connection-watchdog", env = "APIKEYD_CONNECTION_WATCHDOG",
          default_value_t = DEFAULT_CONNECTION_WATCHDOG.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=MAX_CONNECTION_WATCHDOG_SECS))]
    connection_watchdog_secs: u64,
    /// Open connections one client address may hold (an IPv6 client: its /64), over all
    /// workers; past it a connection gets 503. 0: no cap. --trusted-proxy addresses are exempt.
    #[arg(long = "max-connections-per-address", env = "APIKEYD_MAX_CONNECTIONS_PER_ADDRESS",
          default_value_t = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)]
    max_connections_per_address: u32,
    /// Requests a connection may have outstanding before apikeyd stops reading it until one
    /// is answered (bounds what a client that pipelines and never reads can make it hold).
    #[arg(long = "max-pipelined", env = "APIKEYD_MAX_PIPELINED", default_value_t = DEFAULT_MAX_PIPELINED,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PIPELINED_LIMIT)))]
    max_pipelined: u32,
    /// Fleet mode: seconds without a successful sync after which `GET /readyz` answers 503.
    #[arg(long = "stale-after", env = "APIKEYD_STALE_AFTER", default_value_t = DEFAULT_STALE_AFTER.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    stale_after_secs: u64,
    /// Fleet mode: seconds without a successful sync after which verify and `/auth` answer 503
    /// (fail closed). Off by default: a cut-off node keeps verifying from its last state.
    #[arg(long = "max-staleness", env = "APIKEYD_MAX_STALENESS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    max_staleness_secs: Option<u64>,
    /// Fleet mode, for measurements: no LISTEN/NOTIFY, learn of changes by polling alone.
    #[arg(long = "fleet-poll-only", env = "APIKEYD_FLEET_POLL_ONLY", hide = true)]
    fleet_poll_only: bool,
}

impl ServeArgs {
    /// The connection limits these arguments ask for; a watchdog that would cut a request
    /// before its deadline (and its 408) is refused.
    fn connection_limits(&self) -> Result<ConnectionLimits, Box<dyn Error>> {
        if self.connection_watchdog_secs != 0 && self.connection_watchdog_secs <= self.request_deadline_secs {
            return Err(format!(
                "--connection-watchdog ({} s) must be longer than --request-deadline ({} s), or 0 for none: \
                 it would shut connections before a late request could be answered 408",
                self.connection_watchdog_secs, self.request_deadline_secs
            )
            .into());
        }
        let secs = std::time::Duration::from_secs;
        Ok(ConnectionLimits {
            request_deadline: secs(self.request_deadline_secs),
            watchdog: (self.connection_watchdog_secs != 0).then(|| secs(self.connection_watchdog_secs)),
            per_address: (self.max_connections_per_address != 0).then_some(self.max_connections_per_address),
            max_pipelined: self.max_pipelined,
        })
    }
}

#[derive(Args, Debug, Clone)]
struct DbArg {
    /// SQLite database file (in fleet mode: this node's replica).
    #[arg(long = "db", env = "APIKEYD_DB", default_value = DEFAULT_DB)]
    path: PathBuf,
    /// Fleet mode: the PostgreSQL every node shares (URL or key=value string; see docs/FLEET.md).
    #[arg(long = "postgres", env = "APIKEYD_POSTGRES_URL", hide_env_values = true,
          value_parser = |s: &str| Ok::<_, String>(PostgresUrl(s.to_owned())))]
    postgres: Option<PostgresUrl>,
    /// Fleet mode: a file holding the PostgreSQL URL, so the password sits in neither the
    /// environment nor the command line.
    #[arg(long = "postgres-url-file", env = "APIKEYD_POSTGRES_URL_FILE", conflicts_with = "postgres")]
    postgres_url_file: Option<PathBuf>,
}

/// A PostgreSQL URL as given: it may hold a password, so Debug shows it redacted.
#[derive(Clone)]
struct PostgresUrl(String);

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::storage::postgres::redact_url(&self.0))
    }
}

impl DbArg {
    /// The PostgreSQL URL asked for, from `--postgres` or the file `--postgres-url-file` names.
    fn postgres_url(&self) -> Result<Option<String>, Box<dyn Error>> {
        if let Some(url) = &self.postgres {
            return Ok(Some(url.0.trim().to_owned()));
        }
        let Some(file) = &self.postgres_url_file else { return Ok(None) };
        let text = std::fs::read_to_string(file).map_err(|e| format!("--postgres-url-file {}: {e}", file.display()))?;
        Ok(Some(text.trim().to_owned()))
    }
}

#[derive(Args, Debug, Clone)]
struct PrefixArg {
    /// What new keys start with: 2 to 16 characters, a letter, then letters, digits or _,
    /// ending in - or _ (e.g. acme_live_). Keys made with another prefix keep working.
    #[arg(long = "key-prefix", env = "APIKEYD_KEY_PREFIX", default_value = DEFAULT_KEY_PREFIX,
          value_parser = |s: &str| KeyPrefix::parse(s).map(|_| s.to_owned()))]
    key_prefix: String,
}

/// What the command line asks for, once "no subcommand" has been read as `serve`.
#[derive(Debug)]
enum Action {
    Serve(ServeArgs),
    Keys(KeysCommand),
    Applications(ApplicationsCommand),
    Audit(AuditArgs),
    Backup(ops::BackupArgs),
    Restore(ops::RestoreArgs),
    Check(ops::CheckArgs),
    Completions(ops::CompletionsArgs),
    Man,
    Fleet(fleet::FleetCommand),
}

impl Cli {
    /// The log format asked for: `serve`'s `--log-format`; text for every other command.
    pub fn log_format(&self) -> LogFormat {
        match &self.command {
            None => self.serve.log_format,
            Some(Command::Serve(args)) => args.log_format,
            Some(_) => LogFormat::Text,
        }
    }

    fn action(self) -> Action {
        match self.command {
            None => Action::Serve(self.serve),
            Some(Command::Serve(args)) => Action::Serve(args),
            Some(Command::Keys(keys)) => Action::Keys(keys),
            Some(Command::Applications(apps)) => Action::Applications(apps),
            Some(Command::Audit(args)) => Action::Audit(args),
            Some(Command::Backup(args)) => Action::Backup(args),
            Some(Command::Restore(args)) => Action::Restore(args),
            Some(Command::Check(args)) => Action::Check(args),
            Some(Command::Completions(args)) => Action::Completions(args),
            Some(Command::Man) => Action::Man,
            Some(Command::Fleet(command)) => Action::Fleet(command),
        }
    }
}

/// Runs what the command line asked for.
pub fn run(cli: Cli) -> CliResult {
    match cli.action() {
        Action::Serve(args) => serve(args),
        Action::Keys(command) => commands::keys(command),
        Action::Applications(command) => commands::applications(command),
        Action::Audit(args) => commands::audit(args),
        Action::Backup(args) => ops::backup(&args),
        Action::Restore(args) => ops::restore(&args),
        Action::Check(args) => ops::check(&args),
        Action::Completions(args) => ops::completions(&args),
        Action::Man => ops::man(),
        Action::Fleet(command) => fleet::run(command),
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
    let limits = args.connection_limits()?;
    let root_key = root_key_from_env()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::http::tls::server_config(cert, key)?),
        _ => None,
    };
    let fleet = args.db.postgres_url()?.map(|url| FleetConfig {
        url,
        stale_after: std::time::Duration::from_secs(args.stale_after_secs),
        max_staleness: args.max_staleness_secs.map(std::time::Duration::from_secs),
        listen: !args.fleet_poll_only,
    });
    server::serve(ServeOptions {
        fleet,
        db_path: args.db.path,
        bind: args.bind,
        root_key,
        tls,
        behind_tls_proxy: args.behind_tls_proxy,
        workers: args.workers.map(usize::from),
        max_connections: args.max_connections as usize,
        limits,
        metrics_bind: args.metrics_bind,
        config: Config {
            jwt_ttl: std::time::Duration::from_secs(args.jwt_ttl_secs),
            trusted_proxies: args.trusted_proxies,
            failure_burst: args.failure_burst,
            failure_refill_per_sec: args.failure_rate,
            forward_auth_headers: args.forward_auth_headers,
            key_prefix: args.prefix.key_prefix,
        },
    })
}

/// Runs `work` against the database `db` names as the operator, minting keys with `prefix`,
/// on a runtime of its own. With `--postgres`, against the fleet: through a throwaway replica
/// loaded from PostgreSQL (`--db` is not touched), writing through PostgreSQL as a node does.
fn as_operator<T>(
    db: &DbArg,
    prefix: &str,
    work: impl AsyncFnOnce(Manage<'_>) -> Result<T, Box<dyn Error>>,
) -> Result<T, Box<dyn Error>> {
    let prefix = KeyPrefix::parse(prefix)?;
    let _replica;
    let db = match db.postgres_url()? {
        None => Db::open(&db.path)?,
        Some(url) => {
            let dir = fleet::ScratchDir::new()?;
            let opened = fleet::open_admin_replica(&dir, url)?;
            _replica = dir;
            opened
        }
    };

    let manager: Manager = Actor::operator().manager(Op::Manage)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        // What this process stamps and judges is then never earlier than what the database
        // has seen (the one-way clock, service::clock).
        ClockMark::open(&db, clock::global()).await?;
        work(Manage::new(&db, &manager, &prefix)).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::Path;

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
        assert!(matches!(parse(&["apikeyd", "audit", "--json"]), Action::Audit(_)));
        assert!(matches!(parse(&["apikeyd", "applications", "list"]), Action::Applications(_)));
        // Serve options belong before no subcommand or after `serve`, never both ways at once.
        assert!(Cli::try_parse_from(["apikeyd", "--bind", "127.0.0.1:9", "keys", "list"]).is_err());
    }

    #[test]
    fn connection_limits_default_to_config_and_a_short_watchdog_is_refused() {
        let serve_args = |extra: &[&str]| match parse(&[&["apikeyd"], extra].concat()) {
            Action::Serve(args) => args,
            other => panic!("{other:?}"),
        };
        if [
            "APIKEYD_REQUEST_DEADLINE",
            "APIKEYD_CONNECTION_WATCHDOG",
            "APIKEYD_MAX_CONNECTIONS_PER_ADDRESS",
            "APIKEYD_MAX_PIPELINED",
        ]
        .iter()
        .all(|v| std::env::var_os(v).is_none())
        {
            assert_eq!(serve_args(&[]).connection_limits().unwrap(), ConnectionLimits::default());
        }
        let off = serve_args(&["--connection-watchdog", "0", "--max-connections-per-address", "0"]);
        let off = off.connection_limits().unwrap();
        assert_eq!((off.watchdog, off.per_address), (None, None));
        let short = serve_args(&["--request-deadline", "10", "--connection-watchdog", "10"]);
        assert!(short.connection_limits().is_err());
        assert!(Cli::try_parse_from(["apikeyd", "--max-pipelined", "0"]).is_err());
        assert!(Cli::try_parse_from(["apikeyd", "--request-deadline", "0"]).is_err());
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
        for name in
            ["create", "seed", "list", "get", "update", "disable", "enable", "rotate", "revoke", "delete", "import"]
        {
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
