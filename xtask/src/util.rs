//! Small helpers for running commands.

use std::process::{Command, Stdio};

/// The cargo binary that invoked xtask (falls back to `cargo`).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `cmd`, echoing it first; an error if it can't start or exits non-zero.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// Whether `cargo +nightly <tool> --version` works: the nightly toolchain
/// (through rustup), with `tool` (e.g. `miri`, `fuzz`) if one is given.
pub fn nightly_has(tool: Option<&str>) -> bool {
    Command::new("cargo")
        .arg("+nightly")
        .args(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
