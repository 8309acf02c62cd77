//! The `apikeyd` binary: logging, the command line, and a clean exit code. Everything else
//! is in the library so tests drive the same code.

use std::io::Write;
use std::process::ExitCode;

use apikeyd::domain::timestamp::Timestamp;
use clap::Parser;

fn main() -> ExitCode {
    // Each line stamped by the server's own clock (one-way, within years 1970..=9999):
    // env_logger's own timestamp fails to format a system clock past year 9999, and a failed
    // format panics the thread that logs.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            writeln!(buf, "[{} {:<5} {}] {}", Timestamp::now(), record.level(), record.target(), record.args())
        })
        .init();
    match apikeyd::cli::run(apikeyd::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apikeyd: {e}");
            ExitCode::FAILURE
        }
    }
}
