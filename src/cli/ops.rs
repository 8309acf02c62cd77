//! The operator's commands on the database file as a whole (`backup`, `restore`, `check`),
//! and the shell completions and manual page, generated from the same clap definitions the
//! command line parses with. The work itself is `storage::sqlite::maintenance`'s.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::output::Progress;
use super::{Cli, CliResult, DbArg};
use crate::storage::sqlite::maintenance;

/// `apikeyd backup`.
#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    #[command(flatten)]
    db: DbArg,
    /// The backup file to write (replaced if it exists; created mode 0600).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// `apikeyd restore`.
#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The backup file (made by `apikeyd backup`).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    #[command(flatten)]
    db: DbArg,
}

/// `apikeyd check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    db: DbArg,
}

/// `apikeyd completions`.
#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Writes a consistent copy of the database while the server may run and write.
pub fn backup(args: &BackupArgs) -> CliResult {
    let progress = Progress::new("backing up (pages)", 0);
    let report = maintenance::backup(&args.db.path, &args.out, &mut |done, total| progress.update_of(done, total))?;
    progress.finish();
    println!(
        "backed up {} to {} ({} pages, {} bytes)",
        args.db.path.display(),
        args.out.display(),
        report.pages,
        report.bytes
    );
    Ok(())
}

/// Replaces the database with a backup, unless a server holds it.
pub fn restore(args: &RestoreArgs) -> CliResult {
    let bytes = maintenance::restore(&args.from, &args.db.path)?;
    println!("restored {} from {} ({bytes} bytes)", args.db.path.display(), args.from.display());
    Ok(())
}

/// Checks integrity and the audit trail; an error (non-zero exit) lists every problem.
pub fn check(args: &CheckArgs) -> CliResult {
    let report = maintenance::check(&args.db.path)?;
    if report.problems.is_empty() {
        println!("ok: {} ({} keys, {} audit rows)", args.db.path.display(), report.keys, report.audit_rows);
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    for problem in &report.problems {
        writeln!(err, "{}: {problem}", args.db.path.display())?;
    }
    Err(format!("{} failed its check: {} problem(s)", args.db.path.display(), report.problems.len()).into())
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: &CompletionsArgs) -> CliResult {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "apikeyd", &mut script);
    print_all(&script)
}

/// Prints the manual page (roff).
pub fn man() -> CliResult {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    print_all(&page)
}

/// Writes `bytes` to standard output; a reader that stopped early (`| head`) is no error.
fn print_all(bytes: &[u8]) -> CliResult {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
