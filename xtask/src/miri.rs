//! Miri: the core's unsafe code under the interpreter, with strict
//! provenance (nightly with the `miri` and `rust-src` components).

use std::process::Command;

use crate::{setup, util};

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
/// test`. Nightly with Miri is installed when missing; when that is
/// impossible the stage is skipped with a loud note.
pub fn heap() -> Result<(), String> {
    setup::ensure_optional(&[setup::NIGHTLY_MIRI]);
    if !setup::NIGHTLY_MIRI.is_met() {
        eprintln!("xtask: note: nightly with Miri unavailable; skipping the heap tests under Miri");
        eprintln!("xtask:   ({})", setup::NIGHTLY_MIRI.install_command());
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
pub fn all() -> Result<(), String> {
    setup::ensure(&[setup::NIGHTLY_MIRI])?;
    let mut args = vec!["--lib"];
    for t in MIRI_TESTS {
        args.extend(["--test", t]);
    }
    let t0 = std::time::Instant::now();
    let hint = |e| {
        format!(
            "{e}\n(Miri needs: {})",
            setup::NIGHTLY_MIRI.install_command()
        )
    };
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
