//! A throwaway PostgreSQL for the fleet tests: its own cluster in a temp dir, listening on a
//! Unix socket there only (no port, so parallel tests never clash), stopped by its postmaster
//! PID when dropped. `initdb` runs once per build into `CARGO_TARGET_TMPDIR` and each cluster
//! starts from a copy of that template. As root (initdb refuses root) everything runs as the
//! `postgres` user through `runuser`. Without PostgreSQL's binaries, [`Postgres::start`]
//! returns `None` after the skip-or-require rule (`APIKEYD_REQUIRE_POSTGRES`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::support::prerequisite::skip_unless_required;

/// The variable that turns a missing PostgreSQL into a failure.
pub const REQUIRE: &str = "APIKEYD_REQUIRE_POSTGRES";

/// A running cluster.
pub struct Postgres {
    /// Holds the data directory and the socket.
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<String>,
}

/// Where `initdb`, `pg_ctl` and `postgres` are: on the PATH, or Debian's versioned directory.
fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file());
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Serialises template creation between the tests of this binary.
static TEMPLATE: Mutex<()> = Mutex::new(());

impl Postgres {
    /// Starts a fresh cluster, or says SKIPPED (or fails, under `APIKEYD_REQUIRE_POSTGRES`).
    pub fn start(test: &str) -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            skip_unless_required(REQUIRE, test, "PostgreSQL (initdb, pg_ctl) not found");
            return None;
        };
        let user = is_root().then(|| "postgres".to_owned());
        if user.as_deref().is_some_and(|u| Command::new("id").arg(u).output().map_or(true, |o| !o.status.success())) {
            skip_unless_required(REQUIRE, test, "running as root and there is no `postgres` user to run initdb as");
            return None;
        }
        let template = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pg-template");
        {
            let _one = TEMPLATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !template.join("PG_VERSION").is_file() {
                let _ = std::fs::remove_dir_all(&template);
                std::fs::create_dir_all(&template).unwrap();
                chown(&template, user.as_deref());
                let ok = run_as(
                    user.as_deref(),
                    &bin.join("initdb"),
                    &["-D", &s(&template), "-A", "trust", "-U", "postgres", "--no-sync"],
                );
                assert!(ok, "initdb failed");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let copied = Command::new("cp").arg("-a").arg(&template).arg(&data).status().unwrap().success();
        assert!(copied, "copying the template cluster failed");
        chown(dir.path(), user.as_deref());
        let pg = Postgres { dir, bin, user };
        pg.start_again();
        Some(pg)
    }

    /// The connection string of this cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("host={} user=postgres dbname=postgres", self.dir.path().display())
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the cluster (again, after [`Postgres::stop_now`]).
    pub fn start_again(&self) {
        let opts = format!("-c listen_addresses='' -k {} -c fsync=off", self.dir.path().display());
        let log = self.dir.path().join("log");
        let ok = run_as(
            self.user.as_deref(),
            &self.bin.join("pg_ctl"),
            &["-D", &s(&self.data()), "-w", "-l", &s(&log), "-o", &opts, "start"],
        );
        assert!(ok, "pg_ctl start failed: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }

    /// Stops the cluster at once, as a crash would (`-m immediate`).
    pub fn stop_now(&self) {
        let _ = self.postmaster().map(|pid| Command::new("kill").args(["-QUIT", &pid.to_string()]).status());
        // Wait (bounded) until the postmaster is gone.
        for _ in 0..200 {
            if !self.data().join("postmaster.pid").exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    fn postmaster(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Runs `sql` through psql, returning its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let psql = self.bin.join("psql");
        let psql = if psql.is_file() { psql } else { PathBuf::from("psql") };
        let out = Command::new(psql)
            .args(["-h", &s(self.dir.path()), "-U", "postgres", "-d", "postgres", "-At", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(pid) = self.postmaster() {
            let _ = Command::new("kill").args(["-QUIT", &pid.to_string()]).status();
        }
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn chown(path: &Path, user: Option<&str>) {
    if let Some(user) = user {
        let ok = Command::new("chown").args(["-R", user, &s(path)]).status().is_ok_and(|s| s.success());
        assert!(ok, "chown {user} {}", path.display());
    }
}

fn run_as(user: Option<&str>, program: &Path, args: &[&str]) -> bool {
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}
