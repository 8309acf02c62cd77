//! The `apikeyd` binary: logging, the command line, and a clean exit code. Everything else
//! is in the library so tests drive the same code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = apikeyd::cli::Cli::parse();
    apikeyd::logging::init(cli.log_format());
    match apikeyd::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apikeyd: {e}");
            ExitCode::FAILURE
        }
    }
}
