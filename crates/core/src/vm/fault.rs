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
/// `ERR_FETCH`: the access was an instruction fetch. Classic i386 paging
/// reports it only under CR4.SMEP (or PAE with EFER.NXE): without SMEP a
/// faulting fetch looks like a read.
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
        /// Bit 4: the access was an instruction fetch (set only under
        /// SMEP on classic paging).
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

/// What the CPU's state adds to a fault that its error code does not say:
/// the supervisor-mode protections in force (CR4.SMEP, CR4.SMAP) and
/// EFLAGS.AC of the faulting context. The default (all off) is a CPU
/// without SMEP and SMAP, as classic i386 paging is.
///
/// The handler needs them to tell a kernel bug from a fault it can fix:
/// with SMEP a supervisor fetch from a user page faults although the entry
/// is present, and with SMAP (and AC clear) so does a supervisor data
/// access; neither is fixed by mapping or flushing the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultContext {
    /// CR4.SMEP was on: supervisor fetches from user pages fault (and every
    /// fetch fault has [`ERR_FETCH`]).
    pub smep: bool,
    /// CR4.SMAP was on: supervisor data accesses to user pages fault unless
    /// EFLAGS.AC is set.
    pub smap: bool,
    /// EFLAGS.AC of the faulting context (`stac` sets it, `clac` clears
    /// it): ring 0 may touch user pages under SMAP.
    pub ac: bool,
}

impl FaultContext {
    /// No SMEP, no SMAP: classic i386 paging (what [`PageFault::new`] assumes).
    pub const NONE: FaultContext = FaultContext {
        smep: false,
        smap: false,
        ac: false,
    };

    /// The protections in force and EFLAGS.AC.
    pub const fn new(smep: bool, smap: bool, ac: bool) -> Self {
        FaultContext { smep, smap, ac }
    }

    /// True when SMAP forbids supervisor data accesses to user pages now
    /// (SMAP on and AC clear).
    pub const fn smap_enforced(&self) -> bool {
        self.smap && !self.ac
    }
}

/// A page fault: the faulting address (CR2), the decoded error code and
/// the CPU state the handler needs besides them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageFault {
    /// The faulting linear address (CR2).
    pub addr: VirtAddr,
    /// The error code (unknown bits are kept).
    pub code: ErrorCode,
    /// SMEP, SMAP and EFLAGS.AC at the fault ([`FaultContext::NONE`] from
    /// [`PageFault::new`]).
    pub context: FaultContext,
}

impl PageFault {
    /// Decodes CR2 and the raw error code, on a CPU without SMEP and SMAP
    /// (add them with [`PageFault::with_context`]).
    pub const fn new(cr2: u32, error_code: u32) -> Self {
        PageFault {
            addr: VirtAddr::new(cr2),
            code: ErrorCode::from_bits_retain(error_code),
            context: FaultContext::NONE,
        }
    }

    /// The same fault, taken with the protections and AC of `context`.
    pub const fn with_context(self, context: FaultContext) -> Self {
        PageFault { context, ..self }
    }

    /// Why the CPU refused a supervisor access whatever the page tables
    /// hold: a supervisor fetch under SMEP (ring 0 never runs user code), or
    /// a supervisor data access under SMAP with AC clear (ring 0 touches
    /// user memory only between `stac` and `clac`). `None` for user
    /// faults and for faults these protections do not explain.
    ///
    /// Some faults name their cause even without the context: classic
    /// paging has no NX, so [`ERR_FETCH`] is reported only under SMEP; and
    /// ring 0 may read every present page, so a supervisor read fault on a
    /// present page (AC clear) can only be SMAP's.
    ///
    /// Only faults below the user/kernel split are user pages; the handler
    /// asks this only for those.
    pub const fn protection_bug(&self) -> Option<ProtectionBug> {
        if self.is_user() {
            return None;
        }
        let smap = self.context.smap_enforced();
        match self.access() {
            AccessKind::Fetch => Some(ProtectionBug::SmepFetch),
            AccessKind::Read if smap || (self.is_protection() && !self.context.ac) => {
                Some(ProtectionBug::SmapAccess)
            }
            AccessKind::Write if smap => Some(ProtectionBug::SmapAccess),
            _ => None,
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
        write!(f, "PageFault({}, {:?}", self.addr, self.code)?;
        if self.context != FaultContext::NONE {
            write!(f, ", {:?}", self.context)?;
        }
        f.write_str(")")
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

/// A supervisor access that SMEP or SMAP refused: a kernel bug no mapping
/// fixes (the access would fault again at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtectionBug {
    /// Ring 0 fetched an instruction from a user page with CR4.SMEP on.
    SmepFetch,
    /// Ring 0 read or wrote a user page with CR4.SMAP on and EFLAGS.AC
    /// clear (outside `stac`/`clac`).
    SmapAccess,
}

impl ProtectionBug {
    /// The cause, as the oops prints it.
    pub const fn message(self) -> &'static str {
        match self {
            ProtectionBug::SmepFetch => "supervisor fetch from user page (SMEP)",
            ProtectionBug::SmapAccess => "supervisor access to user page with SMAP on (AC clear)",
        }
    }
}

impl fmt::Display for ProtectionBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
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
    /// A supervisor access to a user page that SMEP or SMAP forbids: a bug
    /// in the kernel, with its cause. Panic / oops (counted with
    /// [`FaultStats::kernel_bug`]).
    ProtectionBug(ProtectionBug),
}

impl FaultOutcome {
    /// True for the outcomes that are kernel bugs ([`FaultOutcome::KernelBug`],
    /// [`FaultOutcome::ProtectionBug`]).
    pub const fn is_kernel_bug(&self) -> bool {
        matches!(
            self,
            FaultOutcome::KernelBug | FaultOutcome::ProtectionBug(_)
        )
    }
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
    /// Faults reported as kernel bugs (SMEP and SMAP violations included).
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
            FaultOutcome::KernelBug | FaultOutcome::ProtectionBug(_) => &mut self.kernel_bug,
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
        assert_eq!(f.context, FaultContext::NONE, "new assumes no SMEP/SMAP");
    }

    #[test]
    fn protections_name_the_supervisor_bugs() {
        let on = FaultContext::new(true, true, false);
        let fetch = PageFault::new(0x1000, ERR_PRESENT | ERR_FETCH);
        assert_eq!(
            fetch.protection_bug(),
            Some(ProtectionBug::SmepFetch),
            "the I/D bit appears only under SMEP"
        );
        assert_eq!(
            fetch.with_context(on).protection_bug(),
            Some(ProtectionBug::SmepFetch)
        );
        let present_read = PageFault::new(0x1000, ERR_PRESENT);
        assert_eq!(
            present_read.protection_bug(),
            Some(ProtectionBug::SmapAccess),
            "ring 0 reads every present page but under SMAP"
        );
        let present_write = PageFault::new(0x1000, ERR_PRESENT | ERR_WRITE);
        assert_eq!(present_write.protection_bug(), None, "CR0.WP or stale TLB");
        assert_eq!(PageFault::new(0x1000, 0).protection_bug(), None);
        let write = PageFault::new(0x1000, ERR_PRESENT | ERR_WRITE).with_context(on);
        assert_eq!(write.protection_bug(), Some(ProtectionBug::SmapAccess));
        let read = PageFault::new(0x1000, 0).with_context(on);
        assert_eq!(read.protection_bug(), Some(ProtectionBug::SmapAccess));
        let stac = FaultContext::new(true, true, true);
        assert_eq!(read.with_context(stac).protection_bug(), None, "AC set");
        let user = PageFault::new(0x1000, ERR_PRESENT | ERR_USER | ERR_FETCH).with_context(on);
        assert_eq!(user.protection_bug(), None, "user faults are never these");
        assert_eq!(
            ProtectionBug::SmepFetch.message(),
            "supervisor fetch from user page (SMEP)"
        );
        let mut s = FaultStats::default();
        s.record(&FaultOutcome::ProtectionBug(ProtectionBug::SmapAccess));
        assert_eq!(s.kernel_bug, 1);
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
