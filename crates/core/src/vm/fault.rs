//! Page faults: the typed fault, its outcome, and per-space counters.
//!
//! The CPU reports a fault with CR2 (the faulting linear address) and an
//! error code; [`PageFault::new`] turns the two into a typed value, and
//! [`VmSpace::handle_fault`](super::VmSpace::handle_fault) answers with a
//! [`FaultOutcome`].

use core::fmt;

use bitflags::bitflags;

use crate::addr::VirtAddr;

/// `ERR_PRESENT`: the page was present (a protection violation).
pub const ERR_PRESENT: u32 = 0x1;
/// `ERR_WRITE`: the access was a write.
pub const ERR_WRITE: u32 = 0x2;
/// `ERR_USER`: the access came from user mode (ring 3).
pub const ERR_USER: u32 = 0x4;
/// `ERR_RESERVED`: a reserved bit was set in a paging entry.
pub const ERR_RESERVED: u32 = 0x8;
/// `ERR_FETCH`: the access was an instruction fetch.
pub const ERR_FETCH: u32 = 0x10;

bitflags! {
    /// The page-fault error code the CPU pushes (the spec's `ERR_*` bits).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct ErrorCode: u32 {
        /// Bit 0: set for a protection violation on a present page, clear
        /// when the page (or its table) was not present.
        const PRESENT = ERR_PRESENT;
        /// Bit 1: the access was a write.
        const WRITE = ERR_WRITE;
        /// Bit 2: the access came from user mode.
        const USER = ERR_USER;
        /// Bit 3: a reserved bit was set in a paging entry (corrupt tables).
        const RESERVED = ERR_RESERVED;
        /// Bit 4: the access was an instruction fetch.
        const FETCH = ERR_FETCH;
    }
}

/// What kind of access faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch (needs what a read needs: no NX).
    Fetch,
}

/// A page fault: the faulting address (CR2) and the decoded error code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageFault {
    /// The faulting linear address (CR2).
    pub addr: VirtAddr,
    /// The error code (unknown bits are kept).
    pub code: ErrorCode,
}

impl PageFault {
    /// Decodes CR2 and the raw error code.
    pub const fn new(cr2: u32, error_code: u32) -> Self {
        PageFault {
            addr: VirtAddr::new(cr2),
            code: ErrorCode::from_bits_retain(error_code),
        }
    }

    /// True when the access came from user mode.
    pub const fn is_user(&self) -> bool {
        self.code.contains(ErrorCode::USER)
    }

    /// True when the page was present (a protection fault).
    pub const fn is_protection(&self) -> bool {
        self.code.contains(ErrorCode::PRESENT)
    }

    /// The kind of access.
    pub const fn access(&self) -> AccessKind {
        if self.code.contains(ErrorCode::WRITE) {
            AccessKind::Write
        } else if self.code.contains(ErrorCode::FETCH) {
            AccessKind::Fetch
        } else {
            AccessKind::Read
        }
    }
}

impl fmt::Debug for PageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageFault({}, {:?})", self.addr, self.code)
    }
}

/// How a fault was resolved (also what [`FaultStats`] counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A private anonymous page was allocated and zeroed.
    DemandZero,
    /// A shared anonymous page was mapped from its object (zeroed on its
    /// very first touch by any process).
    SharedAnon,
    /// A file page was mapped from the page cache (read from the file if it
    /// was not cached yet).
    FilePage,
    /// A private page shared with others was copied for a write.
    CopyOnWrite,
    /// A copy-on-write page nobody else references any more was made
    /// writable in place, without a copy.
    CowReuse,
    /// The first write to a page of a shared file mapping: the page is
    /// marked dirty (to be written back) and made writable.
    WriteNotify,
    /// A growable stack region was extended down to the faulting page (which
    /// is then demand-zeroed).
    StackGrowth,
    /// The entry already allowed the access (a stale TLB entry); the page
    /// was flushed and the access can be retried.
    Spurious,
}

/// Why a `SIGSEGV` is raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegvCause {
    /// No region covers the address (`SEGV_MAPERR`).
    NoRegion,
    /// The region does not allow the access (`SEGV_ACCERR`).
    Protection,
}

/// A signal to deliver to the faulting process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `SIGSEGV`: bad address or forbidden access.
    Segv {
        /// The faulting address.
        addr: VirtAddr,
        /// What was wrong.
        cause: SegvCause,
    },
    /// `SIGBUS`: a file page wholly past the end of the file (or a failed
    /// read of the file).
    Bus {
        /// The faulting address.
        addr: VirtAddr,
    },
}

/// What the kernel must do after [`handle_fault`](super::VmSpace::handle_fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "a fault that was not resolved must be acted upon"]
pub enum FaultOutcome {
    /// The page is now mapped as the access needs: return and retry the
    /// faulting instruction.
    Resolved(FaultKind),
    /// The access is not allowed: deliver the signal to the process (for a
    /// user-mode fault; supervisor faults never produce a signal).
    Signal(Signal),
    /// The fault is legitimate but no frame (or page table) could be
    /// allocated: the kernel kills the process (or waits and retries).
    OutOfMemory,
    /// A supervisor-mode fault that no region of this space explains (or a
    /// reserved-bit fault): a bug in the kernel. Panic / oops.
    KernelBug,
}

/// Per-space fault counters (the kernel demo prints them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// [`FaultKind::DemandZero`] faults.
    pub demand_zero: u64,
    /// [`FaultKind::SharedAnon`] faults.
    pub shared_anon: u64,
    /// [`FaultKind::FilePage`] faults.
    pub file_page: u64,
    /// [`FaultKind::CopyOnWrite`] faults (a page was copied).
    pub cow_copy: u64,
    /// [`FaultKind::CowReuse`] faults (no copy needed).
    pub cow_reuse: u64,
    /// [`FaultKind::WriteNotify`] faults.
    pub write_notify: u64,
    /// [`FaultKind::StackGrowth`] faults.
    pub stack_growth: u64,
    /// [`FaultKind::Spurious`] faults.
    pub spurious: u64,
    /// Faults answered with `SIGSEGV`.
    pub sigsegv: u64,
    /// Faults answered with `SIGBUS`.
    pub sigbus: u64,
    /// Faults that could not get memory.
    pub out_of_memory: u64,
    /// Faults reported as kernel bugs.
    pub kernel_bug: u64,
}

impl FaultStats {
    /// Counts one outcome.
    pub fn record(&mut self, outcome: &FaultOutcome) {
        let c = match outcome {
            FaultOutcome::Resolved(FaultKind::DemandZero) => &mut self.demand_zero,
            FaultOutcome::Resolved(FaultKind::SharedAnon) => &mut self.shared_anon,
            FaultOutcome::Resolved(FaultKind::FilePage) => &mut self.file_page,
            FaultOutcome::Resolved(FaultKind::CopyOnWrite) => &mut self.cow_copy,
            FaultOutcome::Resolved(FaultKind::CowReuse) => &mut self.cow_reuse,
            FaultOutcome::Resolved(FaultKind::WriteNotify) => &mut self.write_notify,
            FaultOutcome::Resolved(FaultKind::StackGrowth) => &mut self.stack_growth,
            FaultOutcome::Resolved(FaultKind::Spurious) => &mut self.spurious,
            FaultOutcome::Signal(Signal::Segv { .. }) => &mut self.sigsegv,
            FaultOutcome::Signal(Signal::Bus { .. }) => &mut self.sigbus,
            FaultOutcome::OutOfMemory => &mut self.out_of_memory,
            FaultOutcome::KernelBug => &mut self.kernel_bug,
        };
        *c += 1;
    }

    /// Faults resolved, of every kind.
    pub fn resolved(&self) -> u64 {
        self.demand_zero
            + self.shared_anon
            + self.file_page
            + self.cow_copy
            + self.cow_reuse
            + self.write_notify
            + self.stack_growth
            + self.spurious
    }
}

impl fmt::Display for FaultStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "demand-zero {} shared {} file {} cow-copy {} cow-reuse {} write-notify {} \
             stack {} spurious {} | SIGSEGV {} SIGBUS {} OOM {} kernel-bug {}",
            self.demand_zero,
            self.shared_anon,
            self.file_page,
            self.cow_copy,
            self.cow_reuse,
            self.write_notify,
            self.stack_growth,
            self.spurious,
            self.sigsegv,
            self.sigbus,
            self.out_of_memory,
            self.kernel_bug
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_bits_are_the_spec_s() {
        assert_eq!(
            (ERR_PRESENT, ERR_WRITE, ERR_USER, ERR_RESERVED, ERR_FETCH),
            (1, 2, 4, 8, 16)
        );
        let f = PageFault::new(0x1234, ERR_PRESENT | ERR_WRITE | ERR_USER | 0x8000);
        assert!(f.is_user() && f.is_protection());
        assert_eq!(f.access(), AccessKind::Write);
        assert_eq!(f.code.bits() & 0x8000, 0x8000, "unknown bits are kept");
        assert_eq!(PageFault::new(0, ERR_FETCH).access(), AccessKind::Fetch);
        assert_eq!(PageFault::new(0, 0).access(), AccessKind::Read);
    }

    #[test]
    fn stats_count_each_outcome() {
        let mut s = FaultStats::default();
        s.record(&FaultOutcome::Resolved(FaultKind::DemandZero));
        s.record(&FaultOutcome::Resolved(FaultKind::CopyOnWrite));
        s.record(&FaultOutcome::Signal(Signal::Bus {
            addr: VirtAddr::new(0),
        }));
        s.record(&FaultOutcome::KernelBug);
        assert_eq!(
            (s.demand_zero, s.cow_copy, s.sigbus, s.kernel_bug),
            (1, 1, 1, 1)
        );
        assert_eq!(s.resolved(), 2);
    }
}
