//! The PostgreSQL side of fleet mode (docs/FLEET.md): where the fleet's truth lives, and how a
//! node reaches it. This module owns the connection target (URL, TLS, deadlines; the password
//! never printed), the versioned PostgreSQL schema, the SQL run there, and the node's
//! [`FleetStatus`] (revision applied, last successful sync). `replica` is the writer-thread
//! engine that keeps the local SQLite replica in step; `rows` turns rows into images;
//! `listener` turns NOTIFY into a wake-up.
//!
//! Every call to PostgreSQL is made from a dedicated thread through [`Link`], on that
//! thread's own current-thread runtime, with a deadline: an unreachable or black-holed server
//! costs a bounded wait, never a hung thread.

pub mod import;
pub(crate) mod listener;
pub(crate) mod replica;
pub(crate) mod rows;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::storage::fleet::{redact_url, FleetConfig, FleetStatus};

use serde_json::Value as Json;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use crate::config::{FLEET_CONNECT_TIMEOUT, FLEET_TCP_USER_TIMEOUT};
use crate::storage::sqlite::Db;
use crate::storage::writer::Writer;
use crate::storage::StoreError;
use rows::{Kind, Table};

/// The PostgreSQL schema version this binary writes.
pub const PG_SCHEMA_VERSION: i64 = 1;

/// Steps from version N to N+1 (N = 0, 1, ...), each run in the migration's transaction. The
/// tables mirror SQLite's replicated tables (schema.sql) column for column; a SQLite migration
/// that changes one needs its step here too (tests/it/fleet.rs compares the columns). Never edit
/// a shipped step.
const PG_MIGRATIONS: &[&str] = &["
    CREATE TABLE fleet_meta (fleet_id TEXT NOT NULL);
    -- The one-row counter every write transaction increments first: its row lock serialises
    -- the fleet's writers, so change ids are gapless and in commit order (docs/FLEET.md).
    CREATE TABLE fleet_head (last BIGINT NOT NULL);
    INSERT INTO fleet_head (last) VALUES (0);
    CREATE TABLE fleet_changes (
        id       BIGINT PRIMARY KEY,
        at       BIGINT NOT NULL,
        payload  TEXT   NOT NULL
    );
    CREATE TABLE applications (
        id BIGINT PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, name TEXT NOT NULL, created_at BIGINT NOT NULL
    );
    CREATE TABLE api_keys (
        id BIGINT PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, title TEXT NOT NULL, prefix TEXT NOT NULL,
        key_hash BYTEA NOT NULL UNIQUE, grants TEXT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL,
        revoked_at BIGINT, deleted_at BIGINT, expires_at BIGINT, created_by BIGINT, application_id BIGINT,
        owner TEXT, meta TEXT, enabled BIGINT NOT NULL, rotated_from BIGINT, rotated_to BIGINT,
        rate_limit BIGINT, rate_window BIGINT, credits_remaining BIGINT, credits_refill_amount BIGINT,
        credits_refill_interval TEXT, credits_period BIGINT, credits_version BIGINT NOT NULL,
        allowed_ips TEXT, credits_pool BIGINT
    );
    CREATE TABLE audit_log (
        id BIGINT PRIMARY KEY, at BIGINT NOT NULL, action TEXT NOT NULL, key_id BIGINT, application_id BIGINT,
        actor_key_id BIGINT, request_id TEXT, changes TEXT
    );
    CREATE TABLE key_usage (key_id BIGINT PRIMARY KEY, last_used_at BIGINT NOT NULL);
    CREATE TABLE settings (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
"];

/// Every step exists.
const _: () = assert!(PG_MIGRATIONS.len() as i64 == PG_SCHEMA_VERSION);

/// The advisory lock that serialises schema migrations between nodes starting together.
const MIGRATION_LOCK: i64 = 0x0061_7069_6b65_7964;

/// The channel every committed change is announced on.
pub const CHANNEL: &str = "apikeyd_changes";

/// A parsed connection target: the driver's config and, for `sslmode=require` or
/// `verify-full`, the rustls connector.
#[derive(Clone)]
pub(crate) struct Target {
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Target {
    /// Parses `url`. `sslmode=require`, `verify-ca` and `verify-full` all mean TLS through
    /// rustls with the server's certificate verified against `sslrootcert` (a PEM file):
    /// stricter than libpq's `require`, which checks nothing.
    pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
        let (driver_text, ssl, root) = split_tls_options(url);
        let mut config = tokio_postgres::Config::from_str(&driver_text)
            .map_err(|e| StoreError::Config(format!("invalid --postgres URL ({}): {e}", redact_url(url))))?;
        config
            .connect_timeout(FLEET_CONNECT_TIMEOUT)
            .tcp_user_timeout(FLEET_TCP_USER_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(1))
            .application_name("apikeyd");
        let tls = if ssl {
            let root = root.ok_or_else(|| {
                StoreError::Config("sslmode=require/verify-full needs sslrootcert=PATH (the server's CA, PEM)".into())
            })?;
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Some(tls_connector(&root)?)
        } else {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            None
        };
        Ok(Target { config, tls })
    }

    async fn connect(&self) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        match &self.tls {
            None => {
                let (client, conn) = self.config.connect(NoTls).await?;
                Ok((client, tokio::spawn(async move { drop(conn.await) })))
            }
            Some(tls) => {
                let (client, conn) = self.config.connect(tls.clone()).await?;
                Ok((client, tokio::spawn(async move { drop(conn.await) })))
            }
        }
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL or key=value string (the driver knows only
/// `disable`, `prefer` and `require`, and no root file): (rest, TLS wanted, root file).
fn split_tls_options(url: &str) -> (String, bool, Option<String>) {
    let mut ssl = false;
    let mut root = None;
    let mut keep = |k: &str, v: &str| -> bool {
        match k {
            "sslmode" => {
                ssl = matches!(v, "require" | "verify-ca" | "verify-full");
                false
            }
            "sslrootcert" => {
                root = Some(v.to_owned());
                false
            }
            _ => true,
        }
    };
    let rest = if url.contains("://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        keep(k, v)
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_owned(),
        }
    } else {
        url.split_whitespace()
            .filter(|w| {
                let (k, v) = w.split_once('=').unwrap_or((w, ""));
                keep(k, v)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (rest, ssl, root)
}

fn tls_connector(root: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(root)
        .map_err(|e| StoreError::Config(format!("sslrootcert {root}: {e}")))?
    {
        let cert = cert.map_err(|e| StoreError::Config(format!("sslrootcert {root}: {e}")))?;
        roots.add(cert).map_err(|e| StoreError::Config(format!("sslrootcert {root}: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// One connection to PostgreSQL, owned by one thread, each call bounded by a deadline. A failed
/// call drops the connection; the next call reconnects, at most once per
/// [`crate::config::FLEET_RECONNECT_PAUSE`].
pub(crate) struct Link {
    rt: tokio::runtime::Runtime,
    target: Target,
    client: Option<(Client, tokio::task::JoinHandle<()>)>,
    retry_at: Option<Instant>,
}

impl Link {
    /// A link to `target`, not yet connected.
    pub(crate) fn new(target: Target) -> Result<Link, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Link { rt, target, client: None, retry_at: None })
    }

    /// Drops the connection (after an error, or when its state is unknown).
    pub(crate) fn reset(&mut self) {
        if let Some((client, task)) = self.client.take() {
            drop(client);
            task.abort();
        }
    }

    fn fail(&mut self, e: impl fmt::Display) -> StoreError {
        self.reset();
        self.retry_at = Some(Instant::now() + crate::config::FLEET_RECONNECT_PAUSE);
        StoreError::Unreachable(e.to_string())
    }

    /// Connects, unless connected (or a failed attempt was too recent).
    fn connect(&mut self, deadline: Instant) -> Result<(), StoreError> {
        if self.client.is_some() {
            return Ok(());
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(StoreError::Unreachable("PostgreSQL was unreachable a moment ago".into()));
        }
        let target = self.target.clone();
        match bounded(&self.rt, deadline, target.connect()) {
            Ok(Ok(c)) => {
                self.client = Some(c);
                self.retry_at = None;
                Ok(())
            }
            Ok(Err(e)) => Err(self.fail(e)),
            Err(_) => Err(self.fail("connecting timed out")),
        }
    }

    /// What a call's outcome means: a statement PostgreSQL refused leaves the connection
    /// sound; any other failure (or the deadline) drops it.
    fn finish<T>(
        &mut self,
        outcome: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.as_db_error().is_some() && !e.is_closed() => {
                Err(StoreError::Refused(e.as_db_error().map_or_else(String::new, |d| d.message().to_owned())))
            }
            Ok(Err(e)) => Err(self.fail(e)),
            Err(_) => Err(self.fail("PostgreSQL did not answer in time")),
        }
    }

    /// Runs `sql` (no parameters, several statements allowed).
    pub(crate) fn batch(&mut self, sql: &str, deadline: Instant) -> Result<(), StoreError> {
        self.connect(deadline)?;
        let outcome = match &self.client {
            Some((c, _)) => bounded(&self.rt, deadline, c.batch_execute(sql)),
            None => return Err(StoreError::Unreachable("not connected".into())),
        };
        self.finish(outcome)
    }

    /// Runs a query and returns its rows.
    pub(crate) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        deadline: Instant,
    ) -> Result<Vec<Row>, StoreError> {
        self.connect(deadline)?;
        let outcome = match &self.client {
            Some((c, _)) => bounded(&self.rt, deadline, c.query(sql, params)),
            None => return Err(StoreError::Unreachable("not connected".into())),
        };
        self.finish(outcome)
    }

    /// Runs a statement and returns how many rows it touched.
    pub(crate) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        deadline: Instant,
    ) -> Result<u64, StoreError> {
        self.connect(deadline)?;
        let outcome = match &self.client {
            Some((c, _)) => bounded(&self.rt, deadline, c.execute(sql, params)),
            None => return Err(StoreError::Unreachable("not connected".into())),
        };
        self.finish(outcome)
    }

    /// Rolls back whatever transaction is open; a failure drops the connection (the server
    /// then rolls back itself).
    pub(crate) fn rollback(&mut self, deadline: Instant) {
        if self.client.is_some() && self.batch("ROLLBACK", deadline).is_err() {
            self.reset();
        }
    }
}

/// Fleet mode: opens the SQLite file at `path` as a replica of the fleet whose PostgreSQL
/// `config` names. Writes go through PostgreSQL (`replica`); the writer thread applies the
/// fleet's changes between them, and a listener thread wakes it at each NOTIFY. Returns at
/// once: PostgreSQL is reached in the background (wait with [`FleetStatus::wait_first_sync`]).
pub fn open_fleet(path: &std::path::Path, config: FleetConfig) -> Result<Db, StoreError> {
    let target = Target::parse(&config.url)?;
    Db::open_with(path, move |conn| {
        let applied = replica::local_position(&conn)?.map_or(0, |(_, r)| r);
        let listen = config.listen;
        let status = Arc::new(FleetStatus::new(config, applied));
        let mut engine = replica::FleetCommit::new(&conn, Link::new(target.clone())?, status.clone())?;
        if !listen {
            engine = engine.without_notify();
        }
        let writer = Writer::start_with(conn, engine)?;
        if listen {
            listener::start(target, writer.waker())?;
        }
        // The first sync starts now, not one poll interval from now.
        writer.waker().wake();
        Ok((writer, Some(status)))
    })
}

/// Runs `fut` on `rt` until it ends or `deadline` passes.
fn bounded<F: std::future::Future>(
    rt: &tokio::runtime::Runtime,
    deadline: Instant,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    rt.block_on(async move { tokio::time::timeout_at(deadline.into(), fut).await })
}

/// Brings PostgreSQL's schema to [`PG_SCHEMA_VERSION`] (refusing a newer one) and returns the
/// fleet's id, made by the first node to find it empty.
pub(crate) fn ensure_schema(link: &mut Link, deadline: Instant) -> Result<String, StoreError> {
    let result = migrate(link, deadline);
    if result.is_err() {
        link.rollback(deadline);
    }
    result
}

fn migrate(link: &mut Link, deadline: Instant) -> Result<String, StoreError> {
    link.batch("BEGIN", deadline)?;
    link.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK], deadline)?;
    link.batch("CREATE TABLE IF NOT EXISTS fleet_schema (version BIGINT NOT NULL)", deadline)?;
    let found: Option<i64> = link.query("SELECT version FROM fleet_schema", &[], deadline)?.first().map(|r| r.get(0));
    let version = match found {
        Some(v) => v,
        None => {
            link.execute("INSERT INTO fleet_schema (version) VALUES (0)", &[], deadline)?;
            0
        }
    };
    if version > PG_SCHEMA_VERSION {
        return Err(StoreError::TooNew { found: version, expected: PG_SCHEMA_VERSION });
    }
    for step in PG_MIGRATIONS.iter().skip(usize::try_from(version).unwrap_or(0)) {
        link.batch(step, deadline)?;
    }
    link.execute("UPDATE fleet_schema SET version = $1", &[&PG_SCHEMA_VERSION], deadline)?;
    let fresh = uuid::Uuid::new_v4().to_string();
    link.execute(
        "INSERT INTO fleet_meta (fleet_id) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM fleet_meta)",
        &[&fresh],
        deadline,
    )?;
    let id: String = link
        .query("SELECT fleet_id FROM fleet_meta", &[], deadline)?
        .first()
        .map(|r| r.get(0))
        .ok_or(StoreError::Malformed("fleet_meta is empty"))?;
    link.batch("COMMIT", deadline)?;
    Ok(id)
}

/// Sets PostgreSQL's rows to `images` (inside the caller's transaction).
pub(crate) fn apply_images(
    link: &mut Link,
    tables: &[Table],
    images: &[Json],
    deadline: Instant,
) -> Result<(), StoreError> {
    for image in images {
        let name = image.get("t").and_then(Json::as_str).ok_or(StoreError::Malformed("image without a table"))?;
        let table = tables.iter().find(|t| t.name == name).ok_or(StoreError::Malformed("image of an unknown table"))?;
        match image.get("r") {
            Some(Json::Object(row)) => {
                let values: Vec<Box<dyn ToSql + Sync + Send>> =
                    table.columns.iter().map(|(c, kind)| pg_value(*kind, row.get(c).unwrap_or(&Json::Null))).collect();
                let params: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect();
                link.execute(&upsert_sql(table), &params, deadline)?;
            }
            _ => {
                let key = pg_value(table.key_kind(), image.get("k").unwrap_or(&Json::Null));
                let sql = format!("DELETE FROM {} WHERE {} = $1", table.name, table.key);
                link.execute(&sql, &[key.as_ref() as &(dyn ToSql + Sync)], deadline)?;
            }
        }
    }
    Ok(())
}

fn upsert_sql(table: &Table) -> String {
    let marks = (1..=table.columns.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let set = table
        .columns
        .iter()
        .filter(|(c, _)| c != table.key)
        .map(|(c, _)| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {} ({}) VALUES ({marks}) ON CONFLICT ({}) DO UPDATE SET {set}",
        table.name,
        table.column_list(),
        table.key
    )
}

fn pg_value(kind: Kind, v: &Json) -> Box<dyn ToSql + Sync + Send> {
    use rusqlite::types::Value;
    match (kind, rows::from_json(v)) {
        (Kind::Integer, Value::Integer(i)) => Box::new(Some(i)),
        (Kind::Integer, _) => Box::new(None::<i64>),
        (Kind::Text, Value::Text(s)) => Box::new(Some(s)),
        (Kind::Text, _) => Box::new(None::<String>),
        (Kind::Blob, Value::Blob(b)) => Box::new(Some(b)),
        (Kind::Blob, _) => Box::new(None::<Vec<u8>>),
    }
}

/// Every row of `table` in PostgreSQL, as images.
pub(crate) fn read_table(link: &mut Link, table: &Table, deadline: Instant) -> Result<Vec<Json>, StoreError> {
    use rusqlite::types::Value;
    let sql = format!("SELECT {} FROM {} ORDER BY {}", table.column_list(), table.name, table.key);
    let rows = link.query(&sql, &[], deadline)?;
    let mut images = Vec::with_capacity(rows.len());
    for row in rows {
        let mut out = serde_json::Map::new();
        let mut key = Json::Null;
        for (i, (column, kind)) in table.columns.iter().enumerate() {
            let value = match kind {
                Kind::Integer => row.try_get::<_, Option<i64>>(i).ok().flatten().map_or(Value::Null, Value::Integer),
                Kind::Text => row.try_get::<_, Option<String>>(i).ok().flatten().map_or(Value::Null, Value::Text),
                Kind::Blob => row.try_get::<_, Option<Vec<u8>>>(i).ok().flatten().map_or(Value::Null, Value::Blob),
            };
            let json = rows::to_json(value);
            if column == table.key {
                key = json.clone();
            }
            out.insert(column.clone(), json);
        }
        images.push(serde_json::json!({"t": table.name, "k": key, "r": out}));
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_taken_out_of_the_url() {
        let (rest, ssl, root) = split_tls_options("postgres://u@h/d?sslmode=verify-full&sslrootcert=/ca.pem&x=1");
        assert_eq!((rest.as_str(), ssl, root.as_deref()), ("postgres://u@h/d?x=1", true, Some("/ca.pem")));
        let (rest, ssl, _) = split_tls_options("host=/tmp sslmode=disable user=u");
        assert_eq!((rest.as_str(), ssl), ("host=/tmp user=u", false));
        assert!(matches!(Target::parse("postgres://u@h/d?sslmode=require"), Err(StoreError::Config(_))));
        assert!(Target::parse("host=/tmp user=u").is_ok());
    }
}
