//! `apikeyd fleet …`: fleet administration that is not key management (`fleet import`), and
//! the throwaway replica through which `apikeyd keys … --postgres URL` acts on a fleet.

use std::error::Error;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{CliResult, DbArg};
/// How long an administrator's command waits to reach PostgreSQL.
const ADMIN_CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
use crate::storage::postgres::{import, FleetConfig};
use crate::storage::Db;

/// `apikeyd fleet …`.
#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// Move a single-node database (ids, hashes, grants, statuses, applications, audit, the
    /// session secret) into an empty PostgreSQL store: all or nothing.
    Import {
        #[command(flatten)]
        db: DbArg,
    },
}

/// Runs a `fleet` command.
pub fn run(command: FleetCommand) -> CliResult {
    match command {
        FleetCommand::Import { db } => {
            let url = db.postgres_url()?.ok_or("fleet import needs --postgres URL (or --postgres-url-file)")?;
            let terminal = std::io::stderr().is_terminal();
            let mut progress = |done: usize, total: usize| {
                if terminal {
                    let width = 30;
                    let filled = (done * width).checked_div(total).unwrap_or(width);
                    eprint!("\r[{}{}] {done}/{total} rows", "#".repeat(filled), " ".repeat(width - filled));
                }
            };
            let imported = import::import_sqlite(&db.path, &url, &mut progress)?;
            if terminal {
                eprintln!();
            }
            println!(
                "imported {} rows ({} keys) from {} as revision {}",
                imported.rows,
                imported.keys,
                db.path.display(),
                imported.revision
            );
            Ok(())
        }
    }
}

/// A private temporary directory, removed when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Makes one (mode 0700) under the system's temporary directory.
    pub fn new() -> std::io::Result<ScratchDir> {
        use std::os::unix::fs::DirBuilderExt;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
        let name = format!("apikeyd-cli-{}-{}", std::process::id(), u64::from_be_bytes(random));
        let path = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A replica of the fleet at `url` in `dir`, loaded from PostgreSQL; an error if PostgreSQL
/// cannot be reached (an administrator's command acts on the fleet's truth, or not at all).
pub fn open_admin_replica(dir: &ScratchDir, url: String) -> Result<Db, Box<dyn Error>> {
    let config =
        FleetConfig { url, stale_after: crate::config::DEFAULT_STALE_AFTER, max_staleness: None, listen: false };
    let db = crate::storage::postgres::open_fleet(&dir.path().join("replica.db"), config)?;
    if !db.fleet().is_some_and(|f| f.wait_first_sync(ADMIN_CONNECT_WAIT)) {
        return Err("PostgreSQL could not be reached (see --postgres)".into());
    }
    Ok(db)
}
