//! Tests that need something a machine or a checkout may lack: nginx, python3, node, the
//! contract documents in ../shared/seeds. Without it, such a test prints `SKIPPED <what>:
//! <why>` past the output capture and passes; with its `APIKEYD_REQUIRE_*` variable set (to
//! anything but empty or `0`: CI sets them) it fails instead, so a missing install cannot
//! pass unseen there.

use std::io::Write;

/// Writes `line` to the real stderr. `eprintln!` would be captured by the test harness and
/// shown only for failures or with --nocapture; a skip must be visible in every run.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// True when the environment variable `var` is set to anything but empty or `0`.
pub fn required(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| v != "0" && !v.is_empty())
}

/// Reports that `what` cannot run because of `why`: fails the test when `require_var` is set
/// (see [`required`]), else prints `SKIPPED <what>: <why>` and returns, for the caller to
/// return from the test.
pub fn skip_unless_required(require_var: &str, what: &str, why: &str) {
    if required(require_var) {
        panic!("{what}: {why}, but {require_var} is set");
    }
    say(&format!("SKIPPED {what}: {why} (set {require_var}=1 to fail instead)"));
}
