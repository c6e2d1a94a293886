//! Fuzz targets of the MyOS memory manager, as plain library functions.
//!
//! Each module turns the fuzzer's bytes into a sequence of operations
//! (derived with [`arbitrary`]) and runs it against the core and a plain
//! model, panicking on the first disagreement:
//!
//! - [`heap`]: `kmalloc`/aligned/physical/`realloc`/`kfree` (with bad frees
//!   of foreign, interior and already-freed pointers) over
//!   [`ArenaBackend`](myos_mm::heap::ArenaBackend);
//! - [`vm`]: `mmap`/`munmap`/`mprotect`/`fork`/accesses as user and
//!   supervisor/`exit` on the simulated machine, faults serviced by the
//!   core's handler;
//! - [`paging`]: page-table `map`/`remap`/`unmap`/`protect`/`translate`,
//!   checked by both `AddressSpace::translate` and the simulator's MMU;
//! - [`vm_smp`]: address-space operations on four simulated CPUs (several
//!   processes, fork, shared anonymous and file mappings, several CPUs
//!   faulting one page, kernel heap pages), the core doing its own TLB
//!   shootdowns, checked by the coherence checker at every shootdown and
//!   after every operation ([`myos_sim::model::smp`]).
//!
//! The libFuzzer binaries in `fuzz_targets/` call `run`; so does the stable
//! replay test (`tests/replay.rs`), which runs every committed input in
//! `seeds/<target>/` without libFuzzer. [`stats`] counts the operations run
//! (for the reliability report).

pub mod heap;
pub mod paging;
pub mod vm;
pub mod vm_smp;

use std::sync::atomic::{AtomicU64, Ordering};

/// Operations executed by every target in this process so far.
static OPS: AtomicU64 = AtomicU64::new(0);
/// Inputs run to the end so far.
static INPUTS: AtomicU64 = AtomicU64::new(0);

/// Counts one input of `n` operations, run to the end.
pub(crate) fn count_ops(n: usize) {
    OPS.fetch_add(n as u64, Ordering::Relaxed);
    INPUTS.fetch_add(1, Ordering::Relaxed);
}

/// `(inputs, operations)` run to the end by the targets in this process.
pub fn stats() -> (u64, u64) {
    (INPUTS.load(Ordering::Relaxed), OPS.load(Ordering::Relaxed))
}

extern "C" fn print_stats() {
    let (inputs, ops) = stats();
    eprintln!("myos-fuzz: {inputs} inputs, {ops} operations");
}

/// Makes the process print `myos-fuzz: N inputs, M operations` to stderr
/// when it exits (`cargo xtask fuzz` reads that line). libFuzzer ends a
/// timed run with `exit()`, which runs `atexit` handlers but no Rust
/// destructors. Idempotent: the fuzz targets call it on every input.
pub fn report_at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" {
        fn atexit(cb: extern "C" fn()) -> std::ffi::c_int;
    }
    ONCE.call_once(|| {
        // SAFETY: C's `atexit` with a handler that never unwinds (it only
        // prints) and stays valid for the life of the process.
        unsafe { atexit(print_stats) };
    });
}

/// True when `MYOS_FUZZ_TRACE` is set: the targets print every operation
/// before running it (to read a crashing input).
pub(crate) fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MYOS_FUZZ_TRACE").is_some())
}

/// Longest operation sequence a single input runs (longer inputs are cut),
/// so one execution stays in the millisecond range.
pub const MAX_OPS: usize = 256;

/// Decodes up to [`MAX_OPS`] operations from `data`.
pub(crate) fn decode<'a, T: arbitrary::Arbitrary<'a>>(data: &'a [u8]) -> Vec<T> {
    let mut u = arbitrary::Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS && !u.is_empty() {
        match T::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}
