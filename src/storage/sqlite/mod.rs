//! The SQLite engine: opening the file (permissions, per-connection pragmas, migrations), the
//! read pools, and the doors to it ([`Db::read`], [`Db::read_inline`], [`Db::write`]), each
//! of which hands its closure a `&dyn Store`. The statements live in the `*_table` modules;
//! the group-commit loop behind [`Db::write`] lives in `writer`.
//!
//! Durability: WAL with `synchronous = FULL` on every connection. In WAL mode FULL syncs the
//! WAL on every commit, so a write acknowledged with 2xx survives power loss, not only a
//! process kill (NORMAL would survive kill -9 alone and could lose the last commits on power
//! loss: the power-loss mode of scripts/crash/harness.py shows both, with the test-only
//! `unsafe-synchronous-normal` build as its negative control). The level is read back and
//! checked on every connection.

mod application_table;
mod audit_table;
mod key_table;
pub mod maintenance;
mod settings_table;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

use crate::config::{BUSY_TIMEOUT, HOT_BUSY_TIMEOUT, HOT_CHECKOUT_TIMEOUT, READ_POOL_SIZE, WRITER_CACHE_KIB};
use crate::storage::fleet::FleetStatus;
use crate::storage::writer::Writer;
use crate::storage::{Store, StoreError};

/// The complete current schema.
const SCHEMA: &str = include_str!("../../../schema.sql");
/// The schema version `SCHEMA` produces.
pub const SCHEMA_VERSION: i64 = 4;
/// Steps from version N to N+1, for N = 1, 2, ...; each runs in its own transaction.
/// Never edit a shipped step: add one and update schema.sql to match.
const MIGRATIONS: &[&str] = &[
    // 1 -> 2: last_used_at moves to its own narrow table; applications get an audit trail.
    "CREATE TABLE key_usage (
         key_id        INTEGER PRIMARY KEY,
         last_used_at  INTEGER NOT NULL
     ) STRICT;
     INSERT INTO key_usage (key_id, last_used_at)
         SELECT id, last_used_at FROM api_keys WHERE last_used_at IS NOT NULL;
     ALTER TABLE api_keys DROP COLUMN last_used_at;
     CREATE TABLE application_audit (
         id              INTEGER PRIMARY KEY,
         at              INTEGER NOT NULL,
         action          TEXT    NOT NULL CHECK (action IN ('create')),
         application_id  INTEGER NOT NULL REFERENCES applications (id),
         actor_key_id    INTEGER REFERENCES api_keys (id),
         request_id      TEXT
     ) STRICT;",
    // 2 -> 3: keys gain owner, meta, enabled and rotation links; audit_log covers every
    // change to keys and applications (application_audit folds into it) and says what changed.
    // The audit ids are renumbered in time order: only the running server's key index holds
    // one, in memory, and it is rebuilt at start. The table is rebuilt under its own name (not
    // renamed), so its CREATE text is exactly schema.sql's.
    "ALTER TABLE api_keys ADD COLUMN owner TEXT;
     ALTER TABLE api_keys ADD COLUMN meta TEXT;
     ALTER TABLE api_keys ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1));
     ALTER TABLE api_keys ADD COLUMN rotated_from INTEGER REFERENCES api_keys (id);
     ALTER TABLE api_keys ADD COLUMN rotated_to INTEGER REFERENCES api_keys (id);
     CREATE TEMP TABLE audit_v3 AS
         SELECT at, action, key_id, application_id, actor_key_id, request_id FROM (
             SELECT a.at, a.action, a.key_id, k.application_id, a.actor_key_id, a.request_id, 0 AS src, a.id AS n
                 FROM audit_log a JOIN api_keys k ON k.id = a.key_id
             UNION ALL
             SELECT at, 'create_application', NULL, application_id, actor_key_id, request_id, 1, id
                 FROM application_audit)
         ORDER BY at, src, n;
     DROP TABLE application_audit;
     DROP TABLE audit_log;
     CREATE TABLE audit_log (
         id              INTEGER PRIMARY KEY,
         at              INTEGER NOT NULL,
         action          TEXT    NOT NULL CHECK (action IN ('create', 'revoke', 'delete', 'update', 'disable',
                                                            'enable', 'rotate', 'import', 'create_application')),
         key_id          INTEGER REFERENCES api_keys (id),
         application_id  INTEGER REFERENCES applications (id),
         actor_key_id    INTEGER REFERENCES api_keys (id),
         request_id      TEXT,
         changes         TEXT,
         CHECK (key_id IS NOT NULL OR action = 'create_application')
     ) STRICT;
     INSERT INTO audit_log (at, action, key_id, application_id, actor_key_id, request_id)
         SELECT at, action, key_id, application_id, actor_key_id, request_id FROM temp.audit_v3 ORDER BY rowid;
     DROP TABLE temp.audit_v3;
     CREATE INDEX audit_log_by_key ON audit_log (key_id);
     CREATE INDEX audit_log_by_application ON audit_log (application_id, id);",
    // 3 -> 4: usage control: rate limits, credits (with refill and a generation), IP allowlists.
    "ALTER TABLE api_keys ADD COLUMN rate_limit INTEGER;
     ALTER TABLE api_keys ADD COLUMN rate_window INTEGER;
     ALTER TABLE api_keys ADD COLUMN credits_remaining INTEGER;
     ALTER TABLE api_keys ADD COLUMN credits_refill_amount INTEGER;
     ALTER TABLE api_keys ADD COLUMN credits_refill_interval TEXT CHECK (credits_refill_interval IN ('daily', 'monthly'));
     ALTER TABLE api_keys ADD COLUMN credits_period INTEGER;
     ALTER TABLE api_keys ADD COLUMN credits_version INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT;
     ALTER TABLE api_keys ADD COLUMN credits_pool INTEGER REFERENCES api_keys (id);",
];
/// Pool of read connections.
pub type Pool = r2d2::Pool<SqliteConnectionManager>;

/// Bytes of the WAL-index header that [`Db::change_marker`] returns (the first of its two
/// copies).
pub const CHANGE_MARKER_LEN: usize = 48;

/// What [`Db::change_marker`] returns: equal values mean nothing was committed in between.
pub type ChangeMarker = [u8; CHANGE_MARKER_LEN];

/// The handle on a database: a read pool for the blocking thread pool, a small pool for
/// short inline reads on the hot path, the single group-commit writer, and the `-shm` file
/// whose header tells whether anything was committed.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    hot: Pool,
    writer: Writer,
    path: PathBuf,
    shm: Option<Arc<File>>,
    /// Fleet mode: the replica's place in the fleet (`None`: single-node).
    fleet: Option<Arc<FleetStatus>>,
}

impl Db {
    /// Creates the file (mode 0600) if needed, migrates, and starts the writer thread.
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        Db::open_with(path, |conn| Ok((Writer::start(conn)?, None)))
    }

    /// [`Db::open`], with the writer (and, in fleet mode, the node's status) made by `start`
    /// from the writer's connection (`storage::postgres::open_fleet`).
    pub(crate) fn open_with(
        path: &Path,
        start: impl FnOnce(Connection) -> Result<(Writer, Option<Arc<FleetStatus>>), StoreError>,
    ) -> Result<Db, StoreError> {
        let conn = open_connection(path)?;
        let pool = r2d2::Pool::builder().max_size(READ_POOL_SIZE).build(manager(path))?;
        // The hot pool serves reads made inline on the async workers. Each worker holds at most
        // one connection at a time and never across an await, so one per worker (plus slack)
        // means checkout never waits; the short timeout bounds the worst case anyway.
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let hot = r2d2::Pool::builder()
            .max_size(u32::try_from(workers + 2).unwrap_or(8))
            .connection_timeout(HOT_CHECKOUT_TIMEOUT)
            .test_on_check_out(false)
            .build(manager(path).with_init(|c| {
                init_pooled(c)?;
                c.busy_timeout(HOT_BUSY_TIMEOUT)
            }))?;
        // The writer's page cache holds a big transaction's dirty pages (an import, a seed
        // chunk) instead of spilling them to the WAL part-way: measured on `keys import` of
        // 100,000 keys, the default 2 MB cache spent most of the writer's time re-copying pages.
        // Memory is used only as far as a transaction dirties it.
        conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        let (writer, status) = start(conn)?;
        // The writer's connection stays open for the server's whole life, so the `-shm` file
        // it created stays in place: SQLite removes it only when the last connection closes.
        let mut shm_path = PathBuf::from(path);
        shm_path.as_mut_os_string().push("-shm");
        let shm = match File::open(&shm_path) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                log::warn!("cannot open {}: {e}; every key look-up will read the change feed", shm_path.display());
                None
            }
        };
        Ok(Db { pool, hot, writer, path: path.to_owned(), shm, fleet: status })
    }

    /// Fleet mode: the replica's place in the fleet; `None` for a single node.
    pub fn fleet(&self) -> Option<&FleetStatus> {
        self.fleet.as_deref()
    }

    /// The WAL-index header at the start of the `-shm` file, or `None` if it cannot be read.
    /// Every commit, from any process, rewrites it (its change counter `iChange` is bumped;
    /// format documented in SQLite's walformat.html, shared by all processes and versions), and
    /// one `pread` of it costs far less than starting a read transaction: the key index reads
    /// it before every look-up to learn whether anything changed.
    pub fn change_marker(&self) -> Option<ChangeMarker> {
        let mut buf = [0u8; CHANGE_MARKER_LEN];
        self.shm.as_ref()?.read_exact_at(&mut buf, 0).ok()?;
        Some(buf)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a short read (a point look-up by unique index, microseconds) right here on the
    /// calling thread. For the hot path only: it blocks the async worker for the duration of
    /// `f`, which is cheaper than a hop to the blocking pool and back (measured in
    /// `verify`'s module doc). Never use it for scans.
    pub fn read_inline<T, E, F>(&self, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&dyn Store) -> Result<T, E>,
    {
        let conn = self.hot.get().map_err(StoreError::from)?;
        f(&*conn)
    }

    /// Runs `f` on a pooled connection on the blocking thread pool.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get().map_err(StoreError::from)?;
            f(&*conn)
        })
        .await
        .map_err(|_| E::from(StoreError::WorkerGone))?
    }

    /// Runs `f` inside a transaction on the writer thread and returns once that transaction
    /// has committed (and so been fsynced). If `f` fails, its changes are rolled back and its
    /// error returned; if the commit fails, the commit's error is returned. See `writer`.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
    {
        match &self.fleet {
            None => self.writer.submit(move |conn: &Connection| f(conn)).await,
            // PostgreSQL may hang (black-holed): the caller hears 503 within the budget, and a
            // job whose caller has gone is never run (`replica`).
            Some(_) => tokio::time::timeout(
                crate::config::FLEET_ANSWER_BUDGET,
                self.writer.submit(move |conn: &Connection| f(conn)),
            )
            .await
            .unwrap_or_else(|_| Err(E::from(StoreError::Unreachable("no answer within the write budget".into())))),
        }
    }

    /// Writes accepted by the writer and not yet answered (queued, or being committed): what
    /// a test of overload waits on instead of timing.
    pub fn pending_writes(&self) -> usize {
        self.writer.pending()
    }

    /// Runs an empty write transaction through the writer (its BEGIN IMMEDIATE takes SQLite's
    /// write lock, its COMMIT returns): `Ok` when the database takes writes now.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        self.writer.submit(|_conn: &Connection| Ok::<(), StoreError>(())).await
    }

    /// How long the writer's group commits take, in seconds: a histogram the metrics register.
    pub fn commit_latency(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.writer.commit_latency()
    }
}

/// Opens one fully configured, migrated connection: what the CLI and the writer use.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // Create the file ourselves so it is 0600 from its first byte; SQLite gives the -wal and
    // -shm files the same mode as the database file. A file that exists already (copied in,
    // restored from a backup, made by an older tool) is tightened first, before SQLite makes
    // its -wal and -shm from it, and any -wal or -shm already there too.
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    make_private(path)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        make_private(Path::new(&side))?;
    }
    let conn = Connection::open_with_flags(path, flags())?;
    // Before anything that takes a lock: another process (a server, `apikeyd keys create`)
    // may be opening the same new file right now, and switching it to WAL needs the lock.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode = set_wal(&conn)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Pragma(format!("journal_mode is {mode}, expected wal")));
    }
    apply_pragmas(&conn)?;
    migrate(&conn)?;
    Ok(conn)
}

/// Removes every group and other permission bit from `file`, if it exists. The database holds
/// the session-signing secret, from which any session token can be forged: nobody but its
/// owner may read it. A file we cannot tighten (owned by someone else) stops start-up.
fn make_private(file: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match std::fs::metadata(file) {
        Ok(meta) => meta.permissions().mode(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode & 0o700)).map_err(|e| {
        StoreError::Io(std::io::Error::new(
            e.kind(),
            format!(
                "{} is readable by others (mode {:o}) and could not be made private: {e}; \
                 run `chmod 600 {}` as its owner",
                file.display(),
                mode & 0o777,
                file.display()
            ),
        ))
    })?;
    log::warn!("{} was readable by others (mode {:o}); made it 0600", file.display(), mode & 0o777);
    Ok(())
}

/// `PRAGMA journal_mode = WAL`, returning the mode now in force. Switching a new file to WAL
/// upgrades a read lock to a write lock, and SQLite answers SQLITE_BUSY at once, without the
/// busy handler, when another connection is doing the same (waiting could deadlock). So the
/// wait busy_timeout would give is done here: retry, briefly, up to [`BUSY_TIMEOUT`].
fn set_wal(conn: &Connection) -> Result<String, StoreError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

fn flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

fn manager(path: &Path) -> SqliteConnectionManager {
    SqliteConnectionManager::file(path).with_flags(flags()).with_init(init_pooled)
}

/// [`apply_pragmas`] in the error type r2d2_sqlite's init hook wants.
fn init_pooled(c: &mut Connection) -> rusqlite::Result<()> {
    apply_pragmas(c).map_err(|e| match e {
        StoreError::Sqlite(e) => e,
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    })
}

/// The `synchronous` level every connection runs with, and its number: FULL (2). Only the
/// test-only negative-control build (`unsafe-synchronous-normal`) runs NORMAL (1).
const SYNCHRONOUS: (&str, i64) = if cfg!(feature = "unsafe-synchronous-normal") { ("NORMAL", 1) } else { ("FULL", 2) };

/// Per-connection pragmas, checked after being set.
fn apply_pragmas(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let (level, number) = SYNCHRONOUS;
    conn.execute_batch(&format!("PRAGMA foreign_keys = ON; PRAGMA synchronous = {level};"))?;
    let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    if sync != number {
        return Err(StoreError::Pragma(format!("synchronous is {sync}, expected {number} ({level})")));
    }
    let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    if fk != 1 {
        return Err(StoreError::Pragma("foreign_keys is off".to_owned()));
    }
    Ok(())
}

/// Every migration step exists: the steps run 1 -> 2 -> ... -> SCHEMA_VERSION.
const _: () = assert!(MIGRATIONS.len() as i64 + 1 == SCHEMA_VERSION);

/// Brings the schema to [`SCHEMA_VERSION`]; refuses a newer database.
///
/// Several processes may open one new file at once (a server and `apikeyd keys create`
/// started together). Each step therefore takes the write lock first (BEGIN IMMEDIATE,
/// waiting through busy_timeout) and only then reads `user_version` and decides: a version
/// read before the lock may already be stale, and acting on it would run schema.sql twice
/// ("table already exists"). The read outside a transaction is only a fast path for the
/// common case, a database that is already current, which then takes no write lock at all.
pub fn migrate(conn: &Connection) -> Result<(), StoreError> {
    if user_version(conn)? == SCHEMA_VERSION {
        return Ok(());
    }
    loop {
        let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        let version = user_version(&tx)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { found: version, expected: SCHEMA_VERSION });
        }
        if version == SCHEMA_VERSION {
            return Ok(()); // another connection finished the job while we waited for the lock
        }
        if version == 0 {
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        } else {
            // For 1 <= version < SCHEMA_VERSION the step exists (see the assertion above).
            let step = usize::try_from(version - 1)
                .ok()
                .and_then(|i| MIGRATIONS.get(i))
                .ok_or(StoreError::UnknownVersion { found: version })?;
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", version + 1)?;
        }
        tx.commit()?;
    }
}

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn new_database_is_wal_full_private_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("k.db");
        let conn = open_connection(&path).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, SYNCHRONOUS.1);
        drop(conn);
        // Opening again must not re-run the schema.
        open_connection(&path).unwrap();
    }

    #[test]
    fn a_database_readable_by_others_is_made_private_with_its_wal_and_shm() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        drop(open_connection(&path).unwrap());
        let side = |s: &str| dir.path().join(format!("k.db{s}"));
        // As a copy made with the default umask leaves them: the database 0644 and a stale,
        // empty -wal 0664 beside it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(side("-wal"), b"").unwrap();
        std::fs::set_permissions(side("-wal"), std::fs::Permissions::from_mode(0o664)).unwrap();
        let conn = open_connection(&path).unwrap();
        let tables: i64 = conn.query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(tables, 0, "the database itself is intact");
        for file in [path.clone(), side("-wal"), side("-shm")] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
        drop(conn);
    }

    #[test]
    fn newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let conn = open_connection(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        assert!(matches!(open_connection(&path), Err(StoreError::TooNew { .. })));
    }

    /// A server and `apikeyd keys create` (or several of either) opening one new file at the
    /// same moment: every one must find a complete schema, none may run it a second time.
    #[test]
    fn concurrent_opens_of_one_new_file_all_succeed() {
        const OPENERS: usize = 8;
        for _round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("k.db");
            let start = std::sync::Barrier::new(OPENERS);
            let results: Vec<Result<i64, String>> = std::thread::scope(|s| {
                let openers: Vec<_> = (0..OPENERS)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            let conn = open_connection(&path).map_err(|e| e.to_string())?;
                            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| e.to_string())
                        })
                    })
                    .collect();
                openers.into_iter().map(|t| t.join().unwrap()).collect()
            });
            for r in results {
                assert_eq!(r, Ok(SCHEMA_VERSION));
            }
            let conn = open_connection(&path).unwrap();
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'api_keys'", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(tables, 1);
        }
    }

    /// Tables, columns, indexes, foreign keys and the normalised CREATE text of each object:
    /// what must be the same for a migrated and a fresh database.
    fn schema_shape(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        let objects: Vec<(String, String, String, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut shape = Vec::new();
        for (kind, name, table, sql) in objects {
            // Comments and line breaks differ between schema.sql and ALTER-edited text.
            let sql: String = sql
                .unwrap_or_default()
                .lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace("( ", "(")
                .replace(" )", ")")
                .replace(" ,", ",");
            shape.push(format!("{kind} {name} on {table}: {sql}"));
            if kind == "table" {
                for pragma in ["table_xinfo", "foreign_key_list", "index_list"] {
                    let mut p = conn.prepare(&format!("SELECT * FROM pragma_{pragma}(?1)")).unwrap();
                    let n = p.column_count();
                    let rows = p
                        .query_map([&name], |r| {
                            (0..n)
                                .map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .unwrap();
                    for row in rows {
                        shape.push(format!("{pragma} {name}: {}", row.unwrap().join(" ")));
                    }
                }
            }
        }
        shape
    }

    #[test]
    fn a_version_1_database_migrates_to_the_fresh_schema_keeping_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("v1.db");
        {
            let conn = Connection::open(&old).unwrap();
            conn.execute_batch(include_str!("../../../tests/data/schema_v1.sql")).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO api_keys (uuid, title, prefix, key_hash, grants, created_at, last_used_at) \
                 VALUES ('u1', 'used', 'sk-a', zeroblob(32), '[]', 1, 123456), \
                        ('u2', 'unused', 'sk-b', randomblob(32), '[]', 2, NULL);",
            )
            .unwrap();
        }
        let migrated = open_connection(&old).unwrap();
        let v: i64 = migrated.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let usage: Vec<(i64, i64)> = migrated
            .prepare("SELECT key_id, last_used_at FROM key_usage ORDER BY key_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(usage, [(1, 123_456)]);
        let titles: i64 = migrated.query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(titles, 2);
        let fresh = open_connection(&dir.path().join("fresh.db")).unwrap();
        assert_eq!(schema_shape(&migrated), schema_shape(&fresh));
    }

    #[test]
    fn a_version_2_database_migrates_its_audit_trails_into_one_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("v2.db");
        {
            let conn = Connection::open(&old).unwrap();
            conn.execute_batch(include_str!("../../../tests/data/schema_v2.sql")).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute_batch(
                "INSERT INTO applications (id, uuid, name, created_at) VALUES (1, 'a1', 'A', 15); \
                 INSERT INTO api_keys (id, uuid, title, prefix, key_hash, grants, created_at, application_id) \
                 VALUES (1, 'u1', 'root', 'sk-a', zeroblob(32), '[]', 10, NULL), \
                        (2, 'u2', 'app key', 'sk-b', randomblob(32), '[]', 20, 1); \
                 INSERT INTO audit_log (at, action, key_id, actor_key_id, request_id) \
                 VALUES (10, 'create', 1, NULL, NULL), (20, 'create', 2, 1, 'req_b'), (30, 'revoke', 2, 1, 'req_c'); \
                 INSERT INTO application_audit (at, action, application_id, actor_key_id, request_id) \
                 VALUES (15, 'create', 1, 1, 'req_a');",
            )
            .unwrap();
        }
        let migrated = open_connection(&old).unwrap();
        type Row = (i64, String, Option<i64>, Option<i64>, Option<String>);
        let rows: Vec<Row> = migrated
            .prepare("SELECT at, action, key_id, application_id, request_id FROM audit_log ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            [
                (10, "create".to_owned(), Some(1), None, None),
                (15, "create_application".to_owned(), None, Some(1), Some("req_a".to_owned())),
                (20, "create".to_owned(), Some(2), Some(1), Some("req_b".to_owned())),
                (30, "revoke".to_owned(), Some(2), Some(1), Some("req_c".to_owned())),
            ]
        );
        let enabled: i64 = migrated.query_row("SELECT min(enabled) FROM api_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(enabled, 1, "every existing key stays enabled");
        let fresh = open_connection(&dir.path().join("fresh.db")).unwrap();
        assert_eq!(schema_shape(&migrated), schema_shape(&fresh));
    }

    #[test]
    fn a_negative_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let conn = open_connection(&path).unwrap();
        conn.pragma_update(None, "user_version", -1).unwrap();
        drop(conn);
        assert!(matches!(open_connection(&path), Err(StoreError::UnknownVersion { found: -1 })));
    }
}
