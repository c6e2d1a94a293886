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

/// `n` inputs of the second `vm_smp` format.
fn v2_inputs(n: usize) -> Vec<Vec<u8>> {
    random_inputs(n)
        .into_iter()
        .map(|data| [&myos_fuzz::vm_smp::V2_HEADER[..], &data].concat())
        .collect()
}

#[test]
fn vm_smp_random_inputs() {
    // A deterministic N-CPU run beside the committed corpus, in both
    // formats; the second must reach what it is for.
    let (inputs0, ops0) = myos_fuzz::stats();
    let mut v1 = 0;
    for data in random_inputs(40) {
        v1 += myos_fuzz::vm_smp::run_with_stats(&data)
            .shootdowns
            .shootdowns;
    }
    let mut total = myos_sim::model::smp::RunStats::default();
    for data in v2_inputs(60) {
        let s = myos_fuzz::vm_smp::run_with_stats(&data);
        total.forks += s.forks;
        total.big_remote_unmaps += s.big_remote_unmaps;
        total.races += s.races;
        total.race_spurious += s.race_spurious;
        total.cow += s.cow;
        total.heap_remote_unmaps += s.heap_remote_unmaps;
        total.shared_maps += s.shared_maps;
        total.shootdowns.shootdowns += s.shootdowns.shootdowns;
        total.shootdowns.full_flushes += s.shootdowns.full_flushes;
    }
    let (inputs, ops) = myos_fuzz::stats();
    eprintln!(
        "vm_smp: {} inputs, {} operations; first format: {v1} shootdowns; second: {} \
         shootdowns ({} full flushes), {} forks, {} copy-on-write faults, {} shared \
         mappings, {} races ({} spurious second handlers), {} remote unmaps past 32 \
         pages, {} remote heap shrinks",
        inputs - inputs0,
        ops - ops0,
        total.shootdowns.shootdowns,
        total.shootdowns.full_flushes,
        total.forks,
        total.cow,
        total.shared_maps,
        total.races,
        total.race_spurious,
        total.big_remote_unmaps,
        total.heap_remote_unmaps,
    );
    assert!(v1 > 20, "the first format hardly narrows anything");
    assert!(total.shootdowns.shootdowns > 100, "{total:?}");
    assert!(total.shootdowns.full_flushes > 0, "{total:?}");
    assert!(total.forks > 0 && total.shared_maps > 0, "{total:?}");
    assert!(total.races > 0 && total.race_spurious > 0, "{total:?}");
    assert!(total.big_remote_unmaps > 0, "{total:?}");
    assert!(total.heap_remote_unmaps > 0, "{total:?}");
}

#[test]
fn vm_smp_catches_dropped_shootdowns() {
    // The same inputs on a platform that drops every shootdown: the model
    // or the coherence checker must object to at least one, in each format.
    for inputs in [random_inputs(40), v2_inputs(40)] {
        let caught = inputs
            .iter()
            .any(|data| std::panic::catch_unwind(|| myos_fuzz::vm_smp::run_broken(data)).is_err());
        assert!(caught, "no input noticed the missing shootdowns");
    }
}
