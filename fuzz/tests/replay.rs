//! Replays the committed inputs of every target (`seeds/<target>/`: the seed
//! corpus and the inputs of bugs found and fixed) through the same functions
//! the libFuzzer binaries call. Runs on stable, without libFuzzer:
//! `cargo test --manifest-path fuzz/Cargo.toml --no-default-features`.
//!
//! `MYOS_FUZZ_REPLAY=DIR` replays the files of `DIR/<target>/` as well (for
//! example a corpus grown by `cargo fuzz run`).

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)];
    if let Some(extra) = std::env::var_os("MYOS_FUZZ_REPLAY") {
        dirs.push(Path::new(&extra).join(target));
    }
    let mut files = Vec::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no committed inputs for {target}");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        eprintln!("{target}: {}", f.display());
        run(&data);
    }
    let (inputs, ops) = myos_fuzz::stats();
    eprintln!(
        "{target}: {} files replayed ({inputs} inputs, {ops} operations in this process)",
        files.len()
    );
}

#[test]
fn heap_corpus() {
    replay("heap", myos_fuzz::heap::run);
}

#[test]
fn vm_corpus() {
    replay("vm", myos_fuzz::vm::run);
}

#[test]
fn paging_corpus() {
    replay("paging", myos_fuzz::paging::run);
}

#[test]
fn vm_smp_corpus() {
    replay("vm_smp", myos_fuzz::vm_smp::run);
}

/// Inputs from a fixed generator.
fn random_inputs(n: usize) -> Vec<Vec<u8>> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            (0..1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect()
        })
        .collect()
}

#[test]
fn vm_smp_random_inputs() {
    // A deterministic N-CPU run beside the committed corpus.
    let (inputs0, ops0) = myos_fuzz::stats();
    let mut shootdowns = 0;
    for data in random_inputs(150) {
        shootdowns += myos_fuzz::vm_smp::run_with_count(&data);
    }
    let (inputs, ops) = myos_fuzz::stats();
    eprintln!(
        "vm_smp: {} inputs, {} operations, {shootdowns} shootdowns",
        inputs - inputs0,
        ops - ops0
    );
    assert!(shootdowns > 100, "the inputs hardly narrow anything");
}

#[test]
fn vm_smp_catches_dropped_shootdowns() {
    // The same inputs on a platform that drops every shootdown: the model
    // or the coherence checker must object to at least one.
    let caught = random_inputs(150)
        .iter()
        .any(|data| std::panic::catch_unwind(|| myos_fuzz::vm_smp::run_broken(data)).is_err());
    assert!(caught, "no input noticed the missing shootdowns");
}
