//! `cargo xtask fuzz`: the cargo-fuzz targets of `fuzz/` (heap, vm, paging).
//!
//! - `cargo xtask fuzz --smoke [--seconds N]`: every target for N seconds
//!   (default [`SMOKE_SECONDS`]), failing on any crash; what `cargo xtask
//!   test` runs after the host tests.
//! - `cargo xtask fuzz TARGET [SECONDS] [--asan]`: one target, for longer
//!   runs (default 600 s); the grown corpus stays in `fuzz/corpus/TARGET`.
//! - `cargo xtask fuzz --replay`: the committed inputs (`fuzz/seeds/`)
//!   through the same target functions on stable, without libFuzzer.
//!
//! Targets are built in release mode with debug assertions (the core's
//! `debug_assert!`s are oracles too) and, by default, without a sanitizer:
//! the simulated RAM and the heap arena are single host allocations, so
//! AddressSanitizer sees little inside them and costs a factor of three in
//! executions (Miri covers the core's unsafe code instead). `--asan` turns
//! it on.
//!
//! libFuzzer needs the nightly toolchain and `cargo-fuzz`. When nightly is
//! installed and cargo-fuzz is not, it is installed once (`cargo install
//! --locked cargo-fuzz`). Without nightly, the smoke run replays the
//! committed corpus on stable instead and says loudly that libFuzzer did not
//! run: it never passes silently.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::util;

/// The fuzz targets, in the order the smoke run runs them.
pub const TARGETS: [&str; 3] = ["heap", "vm", "paging"];
/// Seconds per target of the smoke run.
pub const SMOKE_SECONDS: u64 = 15;
/// Seconds of a single-target run when none are given.
const LONG_SECONDS: u64 = 600;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .join("fuzz")
}

/// Entry point of `cargo xtask fuzz ...`.
pub fn run(args: &[String]) -> Result<(), String> {
    let usage =
        "usage: cargo xtask fuzz --smoke [--seconds N] | TARGET [SECONDS] [--asan] | --replay";
    match args.first().map(String::as_str) {
        Some("--smoke") => {
            let secs = match args.get(1).map(String::as_str) {
                Some("--seconds") => args
                    .get(2)
                    .and_then(|s| s.parse().ok())
                    .ok_or(usage.to_string())?,
                None => SMOKE_SECONDS,
                Some(_) => return Err(usage.into()),
            };
            smoke(secs)
        }
        Some("--replay") => replay(),
        Some(t) if TARGETS.contains(&t) => {
            let asan = args.iter().any(|a| a == "--asan");
            let secs = match args.get(1).filter(|a| *a != "--asan") {
                Some(s) => s.parse().map_err(|_| usage.to_string())?,
                None => LONG_SECONDS,
            };
            if !util::nightly_has(None) {
                return Err(
                    "libFuzzer needs the nightly toolchain: rustup toolchain install nightly"
                        .into(),
                );
            }
            ensure_cargo_fuzz()?;
            let san = if asan { "address" } else { "none" };
            build(san)?;
            let r = fuzz_target(t, secs, false, san)?;
            print_table(&[r]);
            Ok(())
        }
        _ => Err(format!("{usage}\n  targets: {}", TARGETS.join(", "))),
    }
}

/// The smoke run of `cargo xtask test`: every target for `secs` seconds
/// under libFuzzer, or, without nightly, the stable corpus replay.
pub fn smoke(secs: u64) -> Result<(), String> {
    let t0 = Instant::now();
    if !util::nightly_has(None) {
        eprintln!();
        eprintln!("=====================================================================");
        eprintln!("xtask fuzz: NIGHTLY TOOLCHAIN NOT FOUND - libFuzzer did NOT run.");
        eprintln!("xtask fuzz: replaying the committed corpus (fuzz/seeds) on stable");
        eprintln!("xtask fuzz: instead; install nightly for the real smoke run:");
        eprintln!("xtask fuzz:   rustup toolchain install nightly");
        eprintln!("=====================================================================");
        return replay();
    }
    ensure_cargo_fuzz()?;
    build("none")?;
    let mut rows = Vec::new();
    for t in TARGETS {
        rows.push(fuzz_target(t, secs, true, "none")?);
    }
    print_table(&rows);
    eprintln!(
        "xtask fuzz: smoke run passed in {:.0} s (build included)",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The committed inputs through the target functions, on stable.
fn replay() -> Result<(), String> {
    let dir = fuzz_dir();
    util::run(
        Command::new(util::cargo())
            .args([
                "test",
                "--release",
                "--no-default-features",
                "--manifest-path",
            ])
            .arg(dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", dir.join("target")),
    )
}

/// Installs cargo-fuzz unless `cargo fuzz` already works.
fn ensure_cargo_fuzz() -> Result<(), String> {
    if util::nightly_has(Some("fuzz")) {
        return Ok(());
    }
    eprintln!("xtask fuzz: cargo-fuzz not found, installing it (once)");
    util::run(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))
}

/// `cargo +nightly fuzz` in `fuzz/`, with its own target directory.
fn cargo_fuzz() -> Command {
    let dir = fuzz_dir();
    let mut c = Command::new("cargo");
    c.args(["+nightly", "fuzz"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"));
    c
}

/// Builds every target once (release, debug assertions on, sanitizer
/// `san`: `none` or `address`).
fn build(san: &str) -> Result<(), String> {
    util::run(cargo_fuzz().args(["build", "--debug-assertions", "--sanitizer", san]))
}

/// What one target's run did.
struct Row {
    target: &'static str,
    seconds: f64,
    inputs: u64,
    ops: u64,
}

/// Runs `target` for `secs` seconds over its working corpus
/// (`fuzz/corpus/TARGET`, not committed) and the committed seeds. libFuzzer's
/// progress lines are dropped when `quiet`; on a crash the tail of the
/// output is shown (the input is saved under `fuzz/artifacts/TARGET/`).
fn fuzz_target(target: &str, secs: u64, quiet: bool, san: &str) -> Result<Row, String> {
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let seeds = dir.join("seeds").join(target);
    let mut cmd = cargo_fuzz();
    cmd.args(["run", "--debug-assertions", "--sanitizer", san, target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        .arg("-rss_limit_mb=4096")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("$ {cmd:?}");
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    // libFuzzer writes everything to stderr; stdout is drained by a thread.
    let out = child.stdout.take().expect("piped");
    let drain = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut tail: Vec<String> = Vec::new();
    let (mut inputs, mut ops) = (0, 0);
    for line in BufReader::new(child.stderr.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
    {
        if let Some(rest) = line.strip_prefix("myos-fuzz: ") {
            (inputs, ops) = parse_report(rest).unwrap_or((inputs, ops));
        }
        let progress = line.starts_with('#')
            || line.starts_with("\tNEW_FUNC")
            || line.starts_with("INFO:")
            || line.contains("# Uses:");
        if !quiet || !progress {
            eprintln!("{line}");
        }
        tail.push(line);
        if tail.len() > 200 {
            tail.remove(0);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let stdout = drain.join().unwrap_or_default();
    let seconds = t0.elapsed().as_secs_f64();
    if !status.success() {
        if quiet {
            eprintln!("---- last lines of the {target} run ----");
            for l in stdout.iter().chain(tail.iter().rev().take(60).rev()) {
                eprintln!("{l}");
            }
        }
        return Err(format!(
            "fuzz target {target} failed ({status}); the input is in fuzz/artifacts/{target}/ \
             (reproduce: cargo +nightly fuzz run {target} fuzz/artifacts/{target}/<file>)"
        ));
    }
    Ok(Row {
        target: TARGETS.into_iter().find(|t| *t == target).unwrap_or("?"),
        seconds,
        inputs,
        ops,
    })
}

/// Parses `N inputs, M operations`.
fn parse_report(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(" inputs, ")?;
    let ops = b.strip_suffix(" operations")?;
    Some((a.trim().parse().ok()?, ops.trim().parse().ok()?))
}

fn print_table(rows: &[Row]) {
    eprintln!();
    eprintln!("| target | seconds | inputs run | operations |");
    eprintln!("|---|---:|---:|---:|");
    for r in rows {
        eprintln!(
            "| {} | {:.0} | {} | {} |",
            r.target, r.seconds, r.inputs, r.ops
        );
    }
}
