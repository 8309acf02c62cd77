//! Work on the database file as a whole, for the operator's commands: an online backup (while
//! a server runs and writes), a restore that never leaves a half-written file, a check of
//! integrity and of the audit trail's consistency with the keys, and the lock by which a
//! running server marks that it holds a database (so that a restore refuses to replace it).
//!
//! Every file made here is created mode 0600 by `open(2)` itself (never chmod-ed afterwards),
//! under a temporary name in the target's directory, fsynced, checked, then renamed into place
//! and the directory fsynced: a crash leaves either the old file or the whole new one.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::SCHEMA_VERSION;
use crate::config::BUSY_TIMEOUT;
use crate::storage::StoreError;

/// Pages copied per backup step (between two progress reports).
const BACKUP_STEP_PAGES: i32 = 1024;
/// After this many restarts (the source changed under a stepwise copy), the rest is copied in
/// one step: one read transaction, which in WAL mode never blocks the server's writer.
const BACKUP_RESTARTS: u32 = 2;

/// The lock file beside database `db`: a running server holds it shared for its whole life;
/// a restore takes it exclusively.
pub fn lock_path(db: &Path) -> PathBuf {
    sibling(db, "-apikeyd.lock")
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A hold on a database's lock file, released when dropped (or when the process ends,
/// however it ends: the kernel drops `flock` locks with the file).
#[derive(Debug)]
pub struct Hold {
    _file: File,
}

/// Occurs when the lock is held the other way: a restore while a server runs, a server
/// while a restore runs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Held(pub String);

fn lock(db: &Path, exclusive: bool) -> Result<Result<Hold, Held>, StoreError> {
    use rustix::fs::{flock, FlockOperation};
    std::fs::create_dir_all(directory_of(db))?;
    let file = private_file(&lock_path(db), false)?;
    let op = if exclusive { FlockOperation::NonBlockingLockExclusive } else { FlockOperation::NonBlockingLockShared };
    match flock(&file, op) {
        Ok(()) => Ok(Ok(Hold { _file: file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(Err(Held(if exclusive {
            format!("a server holds {} (stop it first)", db.display())
        } else {
            format!("a restore into {} is in progress", db.display())
        }))),
        Err(e) => Err(StoreError::Io(e.into())),
    }
}

/// What a server takes before it opens `db`: a shared hold (other servers and the command
/// line's key commands may share it; a restore may not).
pub fn hold_for_serving(db: &Path) -> Result<Result<Hold, Held>, StoreError> {
    lock(db, false)
}

/// Opens (creating it if needed) `path` with mode 0600 from its first byte; `new` refuses a
/// file already there.
fn private_file(path: &Path, new: bool) -> Result<File, StoreError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    options.open(path).map_err(|e| StoreError::Io(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))))
}

/// The directory `path` is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// fsyncs `file`, renames it to `to`, and fsyncs the directory, so the rename is durable too.
fn install(file: &Path, to: &Path) -> Result<(), StoreError> {
    File::open(file)?.sync_all()?;
    std::fs::rename(file, to)?;
    File::open(directory_of(to))?.sync_all()?;
    Ok(())
}

/// Removes `path` if it exists.
fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens an existing database file without creating, migrating or changing it.
fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}: no such database file", path.display()),
        )));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// The problems `PRAGMA integrity_check` and `foreign_key_check` find, and a schema version
/// this binary does not know. Empty when the file is sound.
fn integrity_problems(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if !(1..=SCHEMA_VERSION).contains(&version) {
        problems.push(format!("schema version {version}: this binary reads versions 1 to {SCHEMA_VERSION}"));
        return Ok(problems);
    }
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
        let row = row?;
        if row != "ok" {
            problems.push(format!("integrity: {row}"));
        }
    }
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let rows =
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, String>(2)?)))?;
    for row in rows {
        let (table, rowid, parent) = row?;
        problems.push(format!("foreign key: {table} row {} names a missing {parent} row", rowid.unwrap_or(0)));
    }
    Ok(problems)
}

/// Checks of the audit trail against the keys: each names the keys that fail it. Every
/// change to a key writes its audit row in the same transaction, so a key created without a
/// `create`/`import` row, a revoked or deleted key without its row, or an active key with a
/// revoke or delete row means rows were lost or edited behind apikeyd's back.
const AUDIT_CHECKS: &[(&str, &str)] = &[
    (
        "has no create or import audit row",
        "SELECT k.id FROM api_keys k WHERE NOT EXISTS (SELECT 1 FROM audit_log a
             WHERE a.key_id = k.id AND a.action IN ('create', 'import')) ORDER BY k.id",
    ),
    (
        "is revoked but has no revoke audit row",
        "SELECT k.id FROM api_keys k WHERE k.status = 'revoked' AND NOT EXISTS (SELECT 1 FROM audit_log a
             WHERE a.key_id = k.id AND a.action = 'revoke') ORDER BY k.id",
    ),
    (
        "is deleted but has no delete audit row",
        "SELECT k.id FROM api_keys k WHERE k.status = 'deleted' AND NOT EXISTS (SELECT 1 FROM audit_log a
             WHERE a.key_id = k.id AND a.action = 'delete') ORDER BY k.id",
    ),
    (
        "is active but has a revoke or delete audit row",
        "SELECT k.id FROM api_keys k WHERE k.status = 'active' AND EXISTS (SELECT 1 FROM audit_log a
             WHERE a.key_id = k.id AND a.action IN ('revoke', 'delete')) ORDER BY k.id",
    ),
];

/// At most this many key ids are named per failed audit check.
const NAMED_PER_CHECK: usize = 10;

fn audit_problems(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    for (what, sql) in AUDIT_CHECKS {
        let mut stmt = conn.prepare(sql)?;
        let ids = stmt.query_map([], |r| r.get::<_, i64>(0))?.collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            continue;
        }
        let named: Vec<String> = ids.iter().take(NAMED_PER_CHECK).map(ToString::to_string).collect();
        let more = if ids.len() > NAMED_PER_CHECK {
            format!(" and {} more", ids.len() - NAMED_PER_CHECK)
        } else {
            String::new()
        };
        problems.push(format!("audit: {} key(s) {what}: id {}{more}", ids.len(), named.join(", ")));
    }
    Ok(problems)
}

/// What `apikeyd check` found: nothing when the database is sound.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Keys in the database.
    pub keys: i64,
    /// Audit rows.
    pub audit_rows: i64,
    /// Every problem found, one line each.
    pub problems: Vec<String>,
}

/// Checks database `db` (without changing it): integrity, foreign keys, schema version, and
/// the audit trail's consistency with the keys.
pub fn check(db: &Path) -> Result<CheckReport, StoreError> {
    let conn = open_existing(db)?;
    let mut problems = integrity_problems(&conn)?;
    if !problems.is_empty() {
        return Ok(CheckReport { problems, ..CheckReport::default() });
    }
    problems.extend(audit_problems(&conn)?);
    let keys = conn.query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))?;
    let audit_rows = conn.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))?;
    Ok(CheckReport { keys, audit_rows, problems })
}

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    /// Pages copied.
    pub pages: i64,
    /// Size of the backup file, in bytes.
    pub bytes: u64,
}

/// Copies database `db` into `out` with SQLite's online backup, while a server may be
/// running and writing: the copy is one consistent state of the database. The copy is made
/// under a temporary name (mode 0600 from creation), checked (`integrity_check`), fsynced,
/// then renamed to `out` (replacing a file there) and its directory fsynced. `progress` is
/// told (pages copied, pages in all) after each step.
pub fn backup(db: &Path, out: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<BackupReport, StoreError> {
    let source = open_existing(db)?;
    let temporary = sibling(out, &format!(".partial-{}", std::process::id()));
    let result = copy_into(&source, &temporary, progress).and_then(|pages| {
        install(&temporary, out)?;
        Ok(BackupReport { pages, bytes: std::fs::metadata(out)?.len() })
    });
    if result.is_err() {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let _ = remove_if_present(&sibling(&temporary, suffix));
        }
    }
    result
}

fn copy_into(source: &Connection, temporary: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<i64, StoreError> {
    // Created 0600 here, before SQLite opens it: SQLite gives its journal the same mode.
    drop(private_file(temporary, true)?);
    let mut copy =
        Connection::open_with_flags(temporary, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let pages = {
        let backup = Backup::new(source, &mut copy)?;
        let (mut restarts, mut last_remaining) = (0, i32::MAX);
        loop {
            let step = if restarts >= BACKUP_RESTARTS { -1 } else { BACKUP_STEP_PAGES };
            match backup.step(step)? {
                StepResult::Done => break,
                StepResult::More => {}
                // Busy or locked (a checkpoint, another process's write lock): wait a little.
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
            let p = backup.progress();
            if p.remaining > last_remaining {
                restarts += 1;
            }
            last_remaining = p.remaining;
            let total = u64::try_from(p.pagecount).unwrap_or(0);
            progress(total.saturating_sub(u64::try_from(p.remaining).unwrap_or(0)), total);
        }
        let p = backup.progress();
        let total = u64::try_from(p.pagecount).unwrap_or(0);
        progress(total, total);
        i64::from(p.pagecount)
    };
    let problems = integrity_problems(&copy)?;
    if !problems.is_empty() {
        return Err(StoreError::Malformed("the backup copy failed its integrity check"));
    }
    // Leaves no -wal beside the copy: the file alone is the backup.
    copy.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    copy.close().map_err(|(_, e)| StoreError::Sqlite(e))?;
    Ok(pages)
}

/// Occurs when a restore is refused: the lock is held, or the backup is not one to restore.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A server holds the database.
    #[error(transparent)]
    Held(#[from] Held),
    /// The backup failed its checks; nothing was changed.
    #[error("{file} cannot be restored: {problems}")]
    Unsound {
        /// The backup file.
        file: String,
        /// What is wrong with it.
        problems: String,
    },
    /// The file system or SQLite failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Replaces database `db` with backup `from`, unless a server holds `db`. The backup is
/// first copied beside `db` (mode 0600), and the copy checked: integrity, foreign keys and a
/// schema version this binary reads. Only then is the old database checkpointed (so its WAL
/// holds nothing that could be replayed onto the new file), its -wal and -shm removed, and
/// the copy renamed over it. A crash at any point leaves the old database or the new one,
/// whole.
pub fn restore(from: &Path, db: &Path) -> Result<u64, RestoreError> {
    let _hold = lock(db, true)?.map_err(RestoreError::Held)?;
    let unsound = |problems: String| RestoreError::Unsound { file: from.display().to_string(), problems };
    if sibling(from, "-wal").exists() {
        return Err(unsound("it has a -wal file beside it: it is a live database, not a backup".to_owned()));
    }
    let mut source = File::open(from).map_err(|e| unsound(e.to_string()))?;
    let temporary = sibling(db, &format!(".restoring-{}", std::process::id()));
    let result = (|| {
        let mut copy = private_file(&temporary, true)?;
        let bytes = std::io::copy(&mut source, &mut copy).map_err(StoreError::from)?;
        drop(copy);
        let problems = match open_existing(&temporary).and_then(|conn| {
            let problems = integrity_problems(&conn);
            conn.close().map_err(|(_, e)| StoreError::Sqlite(e))?;
            problems
        }) {
            Ok(problems) => problems,
            // Not a database at all ("file is not a database"), or unreadable.
            Err(e) => vec![e.to_string()],
        };
        if !problems.is_empty() {
            return Err(unsound(problems.join("; ")));
        }
        if db.exists() {
            let old = open_existing(db)?;
            old.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(StoreError::from)?;
            old.close().map_err(|(_, e)| StoreError::Sqlite(e))?;
        }
        remove_if_present(&sibling(db, "-wal"))?;
        remove_if_present(&sibling(db, "-shm"))?;
        install(&temporary, db)?;
        Ok(bytes)
    })();
    if result.is_err() {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let _ = remove_if_present(&sibling(&temporary, suffix));
        }
    }
    result
}
