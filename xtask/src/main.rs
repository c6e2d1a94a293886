//! `cargo xtask` — builds, tests, runs and benchmarks the MyOS memory manager.
//!
//! Commands:
//! - `test [--miri]`: host tests of every crate, the C API tests and the fuzz
//!   smoke run (with `--miri`, Miri too), then the kernel's in-QEMU test suite;
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

/// Host tests of the whole workspace, the C API's tests, the fuzz smoke
/// run and the heap's unit tests under Miri (when nightly has Miri), then
/// the kernel's in-QEMU suite (`--qemu-only` skips the host tests; `--miri`
/// runs the whole `cargo xtask miri` set instead of the heap's, see
/// docs/reliability.md for its time); `--c FILE.c` runs one C file in the
/// kernel instead.
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
        if args.iter().any(|a| a == "--miri") {
            miri()?;
        } else {
            miri_heap()?;
        }
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

/// Integration tests of the core that Miri runs (simulated machines of
/// 4-64 MiB): frames, page tables, address spaces, the bad-input matrix.
/// See docs/reliability.md for what is left out and why.
const MIRI_TESTS: [&str; 6] = [
    "frames",
    "paging",
    "bad_input",
    "vm_errors",
    "vm_scenarios",
    "vm_files",
];

/// Tests too slow under Miri that exercise no unsafe code of their own:
/// proptest drivers (hundreds of cases; the same code paths run in the
/// tests kept), machines of 1-4 GiB, and long safe-code model checks.
const MIRI_SKIP: [&str; 7] = [
    "allocator_matches_model",
    "paging_matches_model",
    "four_gib_of_ram",
    "zones_are_honoured",
    "map_translate_unmap_round_trip_user_low_and_high_frames",
    "agrees_with_btreemap_under_random_updates",
    "thousands_of_regions_stay_consistent",
];

/// Heap unit tests too slow under Miri for every test run (their paths run
/// in the other growth tests).
const MIRI_HEAP_SKIP: [&str; 1] = ["growth_is_amortised_and_shrinking_gives_the_pages_back"];

/// `cargo +nightly miri test -p myos-mm ARGS -- --skip SKIP...` with strict
/// provenance (and `extra` Miri flags).
fn miri_test(args: &[&str], skip: &[&str], extra: &str) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(["+nightly", "miri", "test", "-p", "myos-mm"])
        .args(args)
        .arg("--");
    for s in skip {
        cmd.args(["--skip", s]);
    }
    cmd.env("MIRIFLAGS", format!("-Zmiri-strict-provenance {extra}"));
    cmd
}

/// The heap's unit tests (its raw block access, boundary tags, quick lists
/// and `GlobalAlloc`) under Miri: about 40 s, so part of `cargo xtask
/// test`. Skipped with a note when the nightly toolchain has no Miri
/// (`.ci/run` tries to add it).
fn miri_heap() -> Result<(), String> {
    if !util::nightly_has(Some("miri")) {
        eprintln!("xtask: note: nightly with Miri unavailable; skipping the heap tests under Miri");
        eprintln!("xtask:   (rustup toolchain install nightly --component miri)");
        return Ok(());
    }
    let t0 = std::time::Instant::now();
    util::run(&mut miri_test(&["--lib", "heap::"], &MIRI_HEAP_SKIP, ""))?;
    eprintln!(
        "xtask: heap unit tests under Miri passed in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The core's unit tests and the feasible simulated-machine tests under
/// Miri with strict provenance (needs nightly with the miri component).
fn miri() -> Result<(), String> {
    let mut args = vec!["--lib"];
    for t in MIRI_TESTS {
        args.extend(["--test", t]);
    }
    let t0 = std::time::Instant::now();
    let hint = |e| format!("{e}\n(Miri needs: rustup toolchain install nightly --component miri)");
    util::run(&mut miri_test(&args, &MIRI_SKIP, "")).map_err(hint)?;
    // The paged heap's tests leak their machines on purpose (the system
    // needs a 'static platform): run without the leak check.
    util::run(&mut miri_test(
        &["--test", "paged_heap"],
        &[],
        "-Zmiri-ignore-leaks",
    ))
    .map_err(hint)?;
    eprintln!("xtask miri: passed in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}
