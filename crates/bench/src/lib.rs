//! Shared helpers of the benchmark binaries (`src/bin/bench-*.rs`): the
//! simulated machine with the memory manager on it ([`world`]), and the
//! measurements more than one binary runs — paging ([`paging`]), frame
//! allocation ([`frames`]) and page faults ([`faults`]), each generic over
//! the paging mode, so `bench-pae` times the same code in both modes.

use std::path::{Path, PathBuf};
use std::time::Instant;

pub mod faults;
pub mod frames;
pub mod paging;
pub mod world;

/// A small deterministic generator for pre-generated sequences (no RNG in
/// a timed loop).
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value (31 bits).
    pub fn draw(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The smallest of `v`: the best round, since other load on the machine
/// only ever adds time.
pub fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// ns per op of `f`, which performs `ops` operations.
pub fn time(ops: u32, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / f64::from(ops)
}

/// The repository root (the bench crate lives at `crates/bench`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The machine a run was measured on: CPU model, CPUs visible, OS and
/// architecture.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cpu}, {cpus} CPUs visible, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// [`machine`] and how busy the shared machine was: the 1-minute load
/// average at the end of the run.
pub fn machine_with_load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .map_or_else(String::new, |l| {
            format!(", 1-minute load average {l} at the end of the run")
        });
    format!("{}{load}", machine())
}

/// Replaces the section of `BENCHMARKS.md` between `<!-- NAME:begin -->`
/// and `<!-- NAME:end -->` with `section` (which carries both markers), or
/// appends it when the markers are missing. Says what it did on stderr.
pub fn write_benchmarks_section(name: &str, section: &str) {
    let bm = repo_root().join("BENCHMARKS.md");
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let old = std::fs::read_to_string(&bm).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            let stop = b + end.len();
            let rest = old[stop..].strip_prefix('\n').unwrap_or(&old[stop..]);
            format!("{}{section}{rest}", &old[..a])
        }
        _ => format!("{}\n\n{section}", old.trim_end()),
    };
    match std::fs::write(&bm, new) {
        Ok(()) => eprintln!("wrote the {name} section of {}", bm.display()),
        Err(e) => eprintln!("cannot write {}: {e}", bm.display()),
    }
}
