//! The command line: `apikeyd [serve]` runs the server (`server`); `apikeyd keys
//! create|list|revoke|seed` administer the same database file through the same core as the
//! HTTP families (`service::manage`), acting as the operator: a global root authority, since
//! whoever holds the file holds every key in it. The commands are safe while a server runs
//! on the file: WAL lets them read alongside it, busy_timeout makes writers take turns, and
//! every change they make writes its audit row in the same transaction. The server's key
//! index notices any commit and applies the change feed before answering (see
//! `service::index`), so a command-line revoke is honoured from the server's next request.

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{
    Config, ForwardAuthHeaders, DEFAULT_BIND, DEFAULT_DB, DEFAULT_FAILURE_BURST, DEFAULT_FAILURE_REFILL_PER_SEC,
    DEFAULT_JWT_TTL, MAX_CONNECTIONS_LIMIT, MAX_CONNECTIONS_PER_WORKER, MAX_JWT_TTL_SECS, MAX_PAGE_SIZE, MAX_WORKERS,
    SEED_CHUNK,
};
use crate::domain::grants::{Access, GrantBody, GrantPath, Grants};
use crate::domain::key_format::ApiKey;
use crate::domain::model::{KeyId, Standing};
use crate::domain::new_key::{NewKey, Title};
use crate::domain::timestamp::Timestamp;
use crate::error::Op;
use crate::server::{self, ServeOptions, ROOT_KEY_ENV};
use crate::service::authority::{Actor, Manager};
use crate::service::manage::{Manage, PageRequest};
use crate::service::scope::KeyRef;
use crate::storage::Db;

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
    /// HTTP worker threads (default: one per core). A sidecar sharing a node can take one.
    #[arg(long, env = "APIKEYD_WORKERS", value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_WORKERS)))]
    workers: Option<u16>,
    /// Open connections each worker accepts; past it the listener waits until some close.
    #[arg(long = "max-connections", env = "APIKEYD_MAX_CONNECTIONS", default_value_t = MAX_CONNECTIONS_PER_WORKER,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECTIONS_LIMIT)))]
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
        (Some(cert), Some(key)) => Some(crate::http::tls::server_config(cert, key)?),
        _ => None,
    };
    server::serve(ServeOptions {
        db_path: args.db.path,
        bind: args.bind,
        root_key,
        tls,
        behind_tls_proxy: args.behind_tls_proxy,
        workers: args.workers.map(usize::from),
        max_connections: args.max_connections as usize,
        config: Config {
            jwt_ttl: std::time::Duration::from_secs(args.jwt_ttl_secs),
            trusted_proxies: args.trusted_proxies,
            failure_burst: args.failure_burst,
            failure_refill_per_sec: args.failure_rate,
            forward_auth_headers: args.forward_auth_headers,
        },
    })
}

/// Runs `work` against the database at `path` as the operator, on a runtime of its own.
fn as_operator<T>(
    path: &Path,
    work: impl AsyncFnOnce(Manage<'_>) -> Result<T, Box<dyn Error>>,
) -> Result<T, Box<dyn Error>> {
    let db = Db::open(path)?;
    let manager: Manager = Actor::operator().manager(Op::Manage)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(work(Manage::new(&db, &manager)))
}

fn create(path: &Path, title: &str, grant_args: &[String], expires_at: Option<&str>) -> CliResult {
    let title = Title::parse(title).map_err(|e| format!("--title: {e}"))?;
    let grants = if grant_args.is_empty() { Grants::root() } else { parse_grant_args(grant_args)? };
    let expires_at = expires_at.map(Timestamp::parse_rfc3339).transpose().map_err(|e| format!("--expires-at: {e}"))?;
    let made = as_operator(path, async |keys| Ok(keys.create_key(NewKey::with(title, grants, expires_at)).await?))?;
    println!("{}", made.key.expose());
    eprintln!("created key {} ({}); this is the only time it is shown", made.record.id, made.record.prefix);
    Ok(())
}

fn seed(path: &Path, count: u64, grant_args: &[String]) -> CliResult {
    let grants = if grant_args.is_empty() { Grants::root() } else { parse_grant_args(grant_args)? };
    let title = Title::parse("seeded")?;
    as_operator(path, async |keys| {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut done = 0;
        while done < count {
            let n = (SEED_CHUNK as u64).min(count - done);
            let batch = (0..n).map(|_| NewKey::with(title.clone(), grants.clone(), None)).collect();
            // Printed only after the transaction holding them has committed.
            for made in keys.create_keys(batch).await? {
                writeln!(out, "{}", made.key.expose())?;
            }
            done += n;
        }
        out.flush()?;
        Ok(())
    })
}

fn list(path: &Path) -> CliResult {
    as_operator(path, async |keys| {
        let now = Timestamp::now();
        let mut cursor = None;
        loop {
            let page = keys.list_keys(None, None, PageRequest { limit: MAX_PAGE_SIZE, cursor }).await?;
            for k in &page.keys {
                let grants: Vec<String> =
                    k.grants.iter().map(|g| format!("{}:{}", g.access.as_str(), g.path)).collect();
                let status = match k.standing(now) {
                    Standing::Expired => "expired",
                    _ => k.status.as_str(),
                };
                println!("{}\t{}\t{}\t{}\t{}\t{}", k.id, k.uuid, status, k.prefix, grants.join(","), k.title);
            }
            match (page.next_cursor, page.keys.last()) {
                (Some(_), Some(last)) => cursor = Some(last.id),
                _ => return Ok(()),
            }
        }
    })
}

fn revoke(path: &Path, id: &str) -> CliResult {
    let id = KeyId::parse(id).ok_or("ID must be a positive integer")?;
    let record = as_operator(path, async |keys| Ok(keys.revoke_key(KeyRef::Id(id)).await?))?;
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
        bodies.push(GrantBody { path: path.as_str().to_owned(), access });
    }
    Ok(Grants::from_bodies(&bodies)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
