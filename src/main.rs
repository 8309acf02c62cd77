//! The `apikeyd` binary: logging, the command line, and a clean exit code. Everything else
//! is in the library so tests drive the same code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match apikeyd::cli::run(apikeyd::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apikeyd: {e}");
            ExitCode::FAILURE
        }
    }
}
