//! `cargo xtask fuzz`: the cargo-fuzz targets of `fuzz/` (heap, vm, paging, vm_smp).
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
//! libFuzzer needs the nightly toolchain and `cargo-fuzz`; both are
//! installed when missing (`setup.rs`). When that is impossible, the smoke
//! run replays the committed corpus on stable instead and says loudly that
//! libFuzzer did not run: it never passes silently.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{setup, util};

/// The fuzz targets, in the order the smoke run runs them.
pub const TARGETS: [&str; 4] = ["heap", "vm", "paging", "vm_smp"];
/// Seconds per target of the smoke run.
pub const SMOKE_SECONDS: u64 = 15;
/// Seconds of a single-target run when none are given.
const LONG_SECONDS: u64 = 600;

/// The cargo-fuzz workspace.
fn fuzz_dir() -> PathBuf {
    util::root().join("fuzz")
}

/// `cargo xtask fuzz TARGET [SECONDS] [--asan]`: one target under
/// libFuzzer for `secs` seconds (default [`LONG_SECONDS`]).
pub fn long_run(target: &str, secs: Option<u64>, asan: bool) -> Result<(), String> {
    setup::ensure(&[setup::NIGHTLY, setup::CARGO_FUZZ])?;
    let san = if asan { "address" } else { "none" };
    build(san)?;
    let r = fuzz_target(target, secs.unwrap_or(LONG_SECONDS), false, san)?;
    print_table(&[r]);
    Ok(())
}

/// The smoke run of `cargo xtask test`: every target for `secs` seconds
/// under libFuzzer, or, without nightly, the stable corpus replay.
pub fn smoke(secs: u64) -> Result<(), String> {
    let t0 = Instant::now();
    setup::ensure_optional(&[setup::NIGHTLY, setup::CARGO_FUZZ]);
    if !setup::NIGHTLY.is_met() || !setup::CARGO_FUZZ.is_met() {
        eprintln!();
        eprintln!("=====================================================================");
        eprintln!("xtask fuzz: NIGHTLY OR CARGO-FUZZ MISSING - libFuzzer did NOT run.");
        eprintln!("xtask fuzz: replaying the committed corpus (fuzz/seeds) on stable");
        eprintln!("xtask fuzz: instead; for the real smoke run install them with:");
        eprintln!("xtask fuzz:   {}", setup::NIGHTLY.install_command());
        eprintln!("xtask fuzz:   {}", setup::CARGO_FUZZ.install_command());
        eprintln!("=====================================================================");
        return replay();
    }
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
pub fn replay() -> Result<(), String> {
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
