//! Errors of the simulator's own API (building a machine, physical access).

use core::fmt;

use myos_mm::frames::MemoryRegion;

use crate::fault::PageFault;

/// Why building a [`SimMachine`](crate::SimMachine) or a physical access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// The RAM size is zero.
    ZeroRam,
    /// The RAM size is above 4 GiB, the most a 32-bit machine without PAE
    /// can address.
    RamTooLarge(u64),
    /// The RAM size is not a multiple of the 4 KiB frame size.
    RamNotPageMultiple(u64),
    /// A memory-map region is empty or inverted (`start >= end`).
    EmptyRegion(MemoryRegion),
    /// A usable memory-map region reaches past the end of RAM.
    UsableOutsideRam(MemoryRegion),
    /// The host could not reserve the RAM buffer.
    HostAllocFailed(u64),
    /// A physical access reaches outside RAM.
    PhysOutOfRange {
        /// First byte of the access.
        addr: u64,
        /// Length of the access in bytes.
        len: usize,
    },
    /// An N-CPU machine was asked for no CPU, or more than
    /// [`MAX_CPUS`](myos_mm::smp::MAX_CPUS).
    BadCpuCount(usize),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::ZeroRam => write!(f, "RAM size is zero"),
            SimError::RamTooLarge(b) => write!(f, "RAM size {b:#x} is above 4 GiB"),
            SimError::RamNotPageMultiple(b) => {
                write!(f, "RAM size {b:#x} is not a multiple of 4 KiB")
            }
            SimError::EmptyRegion(r) => {
                write!(f, "memory-map region {:#x}..{:#x} is empty", r.start, r.end)
            }
            SimError::UsableOutsideRam(r) => write!(
                f,
                "usable memory-map region {:#x}..{:#x} reaches past the end of RAM",
                r.start, r.end
            ),
            SimError::HostAllocFailed(b) => {
                write!(f, "host could not allocate {b:#x} bytes of RAM")
            }
            SimError::PhysOutOfRange { addr, len } => {
                write!(
                    f,
                    "physical access of {len} bytes at {addr:#x} is outside RAM"
                )
            }
            SimError::BadCpuCount(n) => write!(f, "{n} CPUs: need 1 to 32"),
        }
    }
}

impl std::error::Error for SimError {}

/// Why [`SimMachine::run_with_faults`](crate::SimMachine::run_with_faults)
/// gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// The handler returned `false` for this fault (e.g. it would signal the
    /// process, or the fault is a kernel bug).
    Unhandled(PageFault),
    /// The handler kept resolving faults but the access kept faulting; this
    /// is the fault raised once the bound was reached.
    TooManyFaults(PageFault),
}

impl FaultError {
    /// The last fault raised.
    pub const fn fault(self) -> PageFault {
        match self {
            FaultError::Unhandled(f) | FaultError::TooManyFaults(f) => f,
        }
    }
}

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultError::Unhandled(p) => write!(f, "unhandled {p}"),
            FaultError::TooManyFaults(p) => write!(f, "too many faults, last: {p}"),
        }
    }
}

impl std::error::Error for FaultError {}
