//! `cargo xtask` — builds, tests, runs and benchmarks the MyOS memory manager.
//!
//! Commands:
//! - `test`: host tests of every crate, then the kernel's in-QEMU test suite;
//! - `bench frames|heap|vm`: the benchmark binaries, side by side with peers;
//! - `run [--memory SIZE] [--c FILE.c]`: boots the reference kernel's demo
//!   under QEMU, or the C program `FILE.c` linked into the kernel;
//! - `gdb`: boots it stopped, waiting for gdb;
//! - `capi lib|test|kernel-obj FILE.c`: the C API's host library, C tests, kernel objects;
//! - `miri`: the core's unit tests and the feasible simulated-machine tests
//!   under Miri (nightly);
//! - `fuzz --smoke | TARGET [SECONDS] | --replay`: the cargo-fuzz targets
//!   (see `xtask/src/fuzz.rs` and `docs/reliability.md`).

use std::process::{Command, ExitCode};

mod capi;
mod fuzz;
mod qemu;
mod util;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "test" => test(rest),
        "bench" => bench(rest),
        "miri" => miri(),
        "run" => qemu::run(rest),
        "gdb" => qemu::gdb(rest),
        "capi" => capi::main(rest),
        "fuzz" => fuzz::run(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|run [--memory SIZE]|gdb|bench frames|heap|vm|miri|fuzz>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Host tests of the whole workspace, then the kernel's in-QEMU suite
/// (`--qemu-only` skips the host tests); `--c FILE.c` runs one C file in
/// the kernel instead.
fn test(args: &[String]) -> Result<(), String> {
    if let Some(i) = args.iter().position(|a| a == "--c") {
        let file = args
            .get(i + 1)
            .ok_or("usage: cargo xtask test --c FILE.c")?;
        return qemu::test_c(std::path::Path::new(file));
    }
    if !args.iter().any(|a| a == "--qemu-only") {
        util::run(Command::new(util::cargo()).args(["test", "--workspace", "--release"]))?;
        capi::host_tests()?;
        fuzz::smoke(fuzz::SMOKE_SECONDS)?;
    }
    qemu::kernel_tests()
}

/// One benchmark binary of `myos-bench`, in release mode.
fn bench(args: &[String]) -> Result<(), String> {
    let which = args
        .first()
        .ok_or("usage: cargo xtask bench frames|heap|vm")?;
    util::run(
        Command::new(util::cargo())
            .args(["run", "--release", "-p", "myos-bench", "--bin"])
            .arg(format!("bench-{which}"))
            .arg("--")
            .args(&args[1..]),
    )
}

/// The core's unit tests under Miri (needs the nightly toolchain with miri).
fn miri() -> Result<(), String> {
    util::run(
        Command::new("cargo")
            .args(["+nightly", "miri", "test", "-p", "myos-mm", "--lib"])
            .env("MIRIFLAGS", "-Zmiri-strict-provenance"),
    )
}
