//! The fresh-machine check: `cargo xtask run` in a throw-away rustup home
//! whose stable toolchain has only what a fresh machine of this kind has
//! (the host target, rustfmt and clippy), with `RUSTUP_AUTO_INSTALL=0`.
//!
//! It proves that the README's commands need nothing installed by hand:
//! xtask must notice that the kernel's target is missing and install it
//! itself, then build and boot the demo. A green run on a machine that
//! already has the target would prove nothing, so the check removes the
//! target from its toolchain before every run and fails if it is there.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::setup::{self, Need};
use crate::util;

/// The toolchain the check installs (what `rust-toolchain.toml` names).
const CHANNEL: &str = "stable";

/// The throw-away rustup home (kept between runs: the toolchain download
/// is done once; the target is removed again each time).
fn home() -> PathBuf {
    util::target_dir().join("fresh-machine/rustup")
}

/// `rustup` with the throw-away home.
fn rustup(home: &Path) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.env("RUSTUP_HOME", home)
        .env("RUSTUP_AUTO_INSTALL", "0")
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

/// The sysroot of the throw-away toolchain, if it is installed.
fn fresh_sysroot(home: &Path) -> Option<PathBuf> {
    let out = rustup(home)
        .args(["run", CHANNEL, "rustc", "--print", "sysroot"])
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !s.trim().is_empty()).then(|| PathBuf::from(s.trim()))
}

/// Runs the check; an error says what went wrong.
pub fn check() -> Result<(), String> {
    let Need::Target(target) = setup::KERNEL_TARGET else {
        unreachable!("the kernel's need is a target")
    };
    if !setup::on_path("rustup") {
        return Err("the fresh-machine check needs rustup on PATH".into());
    }
    let home = home();
    // The fixture: a stable toolchain as a fresh machine has it.
    if fresh_sysroot(&home).is_none() {
        eprintln!(
            "xtask fresh: installing a throw-away {CHANNEL} toolchain in {}",
            home.display()
        );
        util::run(rustup(&home).args([
            "toolchain",
            "install",
            CHANNEL,
            "--profile",
            "minimal",
            "--component",
            "rustfmt",
            "--component",
            "clippy",
            "--no-self-update",
        ]))?;
    }
    let sysroot = fresh_sysroot(&home).ok_or("the throw-away toolchain does not run")?;
    if setup::target_installed(&sysroot, target) {
        util::run(rustup(&home).args(["target", "remove", target, "--toolchain", CHANNEL]))?;
    }
    if setup::target_installed(&sysroot, target) {
        return Err(format!(
            "could not remove {target} from the throw-away toolchain"
        ));
    }
    eprintln!(
        "xtask fresh: {target} is not installed in {}; running `cargo xtask run`",
        sysroot.display()
    );

    // `cargo xtask run` exactly as a user types it: rustup's cargo proxy,
    // the toolchain chosen by rust-toolchain.toml, nothing inherited from
    // this xtask's own toolchain.
    let target_dir = home.with_file_name("target");
    let out = Command::new("cargo")
        .current_dir(util::root())
        .args(["xtask", "run"])
        .env("RUSTUP_HOME", &home)
        .env("RUSTUP_AUTO_INSTALL", "0")
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("MYOS_KERNEL_TARGET_DIR", target_dir.join("kernel"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTUP_TOOLCHAIN_SOURCE")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|e| format!("cannot run cargo xtask run: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let installed = format!("installing it: rustup target add {target}");
    let problems: Vec<&str> = [
        (!out.status.success()).then_some("`cargo xtask run` failed"),
        (!stderr.contains(&installed)).then_some("xtask did not say it installs the target"),
        (!stdout.contains("DEMO OK")).then_some("the demo did not finish"),
        (!setup::target_installed(&sysroot, target)).then_some("the target is still missing"),
    ]
    .into_iter()
    .flatten()
    .collect();
    for line in stderr.lines().filter(|l| l.contains("installing it")) {
        eprintln!("xtask fresh: it said: {line}");
    }
    if problems.is_empty() {
        eprintln!("xtask fresh: PASS: xtask installed {target} itself and the demo ran");
        Ok(())
    } else {
        eprintln!(
            "---- stderr ----\n{}\n---- stdout (tail) ----",
            stderr.trim_end()
        );
        for line in stdout
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            eprintln!("{line}");
        }
        Err(format!(
            "fresh-machine check failed: {}",
            problems.join("; ")
        ))
    }
}
