//! N-CPU target: operation sequences on four simulated CPUs, the core
//! doing its own shootdowns, checked after every operation by the
//! TLB-coherence checker and against a model of every page: the run of
//! [`myos_sim::model::smp`] (several processes, fork and copy-on-write,
//! shared anonymous and file mappings, `mprotect`, `munmap` past the
//! full-flush threshold, several CPUs faulting on one page, kernel heap
//! pages mapped and shrunk, frames back to the baseline at the end), shared
//! with the property test `crates/sim/tests/smp_prop.rs`.
//!
//! Two input formats. An input starting with [`V2_HEADER`] decodes the
//! bytes after it as [`smp::Op`]s (every operation, up to three processes;
//! the simulator derives their `Arbitrary` under its `arbitrary` feature).
//! Any other input decodes as the first format's [`V1`] operations (private
//! anonymous mappings, up to two processes), exactly as inputs made before
//! the second format did, and runs on the same model.

use arbitrary::Arbitrary;
use myos_sim::model::smp::{self, Backing, Limits, RunStats};

/// Marks an input of the second format.
pub const V2_HEADER: &[u8; 4] = b"SMP2";

/// An operation of the first format (inputs without [`V2_HEADER`]): what,
/// on which CPU, for which process, where. Kept as it was so that those
/// inputs decode as before; each becomes one [`smp::Op`].
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum V1 {
    /// `mmap(MAP_FIXED)` of private anonymous memory.
    Map { page: u16, len: u8, prot: u8 },
    /// `munmap`.
    Unmap { cpu: u8, page: u16, len: u16 },
    /// `mprotect`.
    Protect {
        cpu: u8,
        page: u16,
        len: u16,
        prot: u8,
    },
    /// A write through the fault handler on `cpu`.
    Write { cpu: u8, page: u16, value: u32 },
    /// A read through the fault handler on `cpu`.
    Read { cpu: u8, page: u16 },
    /// A raw read on `cpu` with whatever it has loaded (no fault handling).
    RawRead { cpu: u8, page: u16 },
    /// A raw write on `cpu` (no fault handling).
    RawWrite { cpu: u8, page: u16, value: u32 },
    /// Context switch: `cpu` loads the process.
    Load { cpu: u8 },
    /// `cpu` switches to the kernel space.
    Unload { cpu: u8 },
    /// `fork` of process 0 on `cpu` (when there is no child).
    Fork { cpu: u8 },
    /// The child exits.
    Exit,
}

/// A window page of the first format (its pages were taken modulo 1536).
fn v1_page(page: u16) -> u16 {
    page % smp::PAGES as u16
}

impl From<V1> for smp::Op {
    fn from(op: V1) -> smp::Op {
        use smp::Op as S;
        match op {
            V1::Map { page, len, prot } => S::Map {
                cpu: 0,
                page: v1_page(page),
                len: len % 64,
                prot,
                backing: Backing::Private,
            },
            V1::Unmap { cpu, page, len } => S::Unmap {
                cpu,
                page: v1_page(page),
                len,
            },
            V1::Protect {
                cpu,
                page,
                len,
                prot,
            } => S::Protect {
                cpu,
                page: v1_page(page),
                len,
                prot,
            },
            V1::Write { cpu, page, value } => S::Write {
                cpu,
                page: v1_page(page),
                value,
            },
            V1::Read { cpu, page } => S::Read {
                cpu,
                page: v1_page(page),
            },
            V1::RawRead { cpu, page } => S::RawRead {
                cpu,
                page: v1_page(page),
            },
            V1::RawWrite { cpu, page, value } => S::RawWrite {
                cpu,
                page: v1_page(page),
                value,
            },
            // The first format picked process `cpu / 4` (modulo the count).
            V1::Load { cpu } => S::Load {
                cpu,
                p: cpu / smp::CPUS as u8,
            },
            V1::Unload { cpu } => S::Unload { cpu },
            V1::Fork { cpu } => S::Fork { cpu, p: 0 },
            V1::Exit => S::Exit { p: 0 },
        }
    }
}

/// The first format's decoding, as it was: operations until one fails to
/// decode or the bytes run out (an empty input is one operation).
fn decode_v1(data: &[u8]) -> Vec<V1> {
    let mut u = arbitrary::Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < crate::MAX_OPS {
        match V1::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
        if u.is_empty() {
            break;
        }
    }
    ops
}

/// The operations of an input (either format) and the limits to run them
/// with.
pub fn decode(data: &[u8]) -> (Vec<smp::Op>, Limits) {
    match data.strip_prefix(V2_HEADER) {
        Some(rest) => (crate::decode(rest), Limits::default()),
        None => {
            let ops = decode_v1(data);
            let limits = Limits {
                procs: 2,
                ..Limits::default()
            };
            (ops.into_iter().map(Into::into).collect(), limits)
        }
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    run_with_stats(data);
}

/// Runs one input; returns what it did.
pub fn run_with_stats(data: &[u8]) -> RunStats {
    let (ops, limits) = decode(data);
    if crate::tracing() {
        for (i, op) in ops.iter().enumerate() {
            eprintln!("{i}: {op:?}");
        }
    }
    let stats = smp::run(&ops, limits);
    crate::count_ops(ops.len());
    stats
}

/// Runs one input on a platform that drops every shootdown (the bug the
/// protocol prevents, reintroduced): some input must then fail.
pub fn run_broken(data: &[u8]) -> RunStats {
    let (ops, limits) = decode(data);
    smp::run(
        &ops,
        Limits {
            drop_shootdowns: true,
            ..limits
        },
    )
}
