//! Address spaces of user processes: regions, `mmap`/`munmap`/`mprotect`,
//! `fork`, and the page-fault handler (demand paging, copy-on-write, file
//! page-in, stack growth).
//!
//! # Model
//!
//! A [`VmSpace`] is one process's view of user memory. It owns a
//! [`paging::AddressSpace`](crate::paging::AddressSpace) (the page tables; the
//! kernel half is shared) and an ordered index of *regions* (Linux's VMAs,
//! SerenityOS's `Region`), keyed by start address, that split and merge.
//! Finding the region of an address, and finding a free range for `mmap`
//! (best fit, from an index of the gaps by size), are O(log n); the fault
//! path also remembers the last region it used. Each region has:
//!
//! - a page-aligned range inside `USER_MMAP_MIN..USER_END`;
//! - a protection ([`Prot`]). i386 without PAE has no NX bit: a readable page
//!   is executable, so `PROT_EXEC` is recorded (and reported) but means
//!   "readable"; `PROT_WRITE` alone also means readable (x86 has no
//!   write-only pages), as on Linux i386 without PAE; a faulting fetch has
//!   `ERR_FETCH` only when the CPU runs with SMEP. `PROT_NONE` pages may
//!   stay resident: their entries become supervisor-only and read-only, so
//!   any user access faults;
//! - shared or private;
//! - a backing: anonymous (demand-zero), a shared anonymous object, or a file
//!   object at a page-aligned offset (see [`mod@file`]).
//!
//! Mapping is lazy: `mmap` only records the region; the page-fault handler
//! ([`VmSpace::handle_fault`]) brings pages in when they are touched.
//!
//! # Who owns a frame
//!
//! Every present page-table entry holds one reference to its frame (the
//! paging layer's rule). Private pages are owned only through those entries:
//! after [`VmSpace::fork`] both spaces map the same frame read-only with its
//! reference count at 2, and a write fault copies it — or, when the count has
//! dropped back to 1, simply makes it writable again (copy-on-write lives in
//! the region's "private and writable" plus the frame's reference count, never
//! in spare PTE bits). Shared memory is owned by a backing *object* (shared
//! anonymous memory, or a file's page cache) that holds one reference per
//! page; each mapping of such a page holds one more. An object lives as long
//! as some region maps it, so shared anonymous memory survives `fork` and
//! stays shared.
//!
//! # Files
//!
//! A file mapping resolves its descriptor through a [`FdTable`] to an
//! [`OpenFile`] (a [`File`] plus its open mode). Every mapping of one file —
//! shared or private, in any process — uses the file's page cache (one
//! object per file, found through [`File::page_cache`]), so shared mappings
//! are coherent with each other. Writes through a shared mapping land in the
//! cache and reach the file on `msync`, `munmap` and exit (process
//! destruction); a private mapping reads the cache and copies a page on its
//! first write, so its writes never reach the file. Pages wholly past the end
//! of the file raise `SIGBUS`; the tail of the last page is zero-filled.
//!
//! # Driving it from a syscall layer
//!
//! ```text
//! sys_mmap(addr, len, prot, flags, fd, off) => proc.vm.map(&MapRequest { .. })  (myos-abi: raw integers → MapRequest)
//! sys_munmap(addr, len)                     => proc.vm.munmap(VirtAddr::new(addr), len)
//! sys_mprotect(addr, len, prot)             => proc.vm.protect(VirtAddr::new(addr), len, prot)
//! sys_fork()                                => child.vm = proc.vm.fork()?
//! exit                                      => drop(proc.vm) (or proc.vm.destroy())
//! #PF (CR2, error code)                     => match proc.vm.handle_fault(PageFault::new(cr2, code)) { .. }
//! read(fd, buf, n)                          => proc.vm.copy_to_user(VirtAddr::new(buf), &data)
//! ```
//! A `VmSpace` is not locked internally: the kernel keeps each process's
//! space behind that process's lock (it is `Send` when the platform is
//! `Sync`). Backing objects (shared memory, page caches) lock themselves; the
//! frame allocator is reached through `F` (e.g. `&spin::Mutex<FrameAllocator>`,
//! locked per call and never held across other locks or heap allocations).
//! A space being destroyed while loaded switches CR3 to the kernel's directory
//! first.
//!
//! Errors are [`MmError`](crate::MmError)s. The numbers a system call takes
//! and returns (`PROT_*`, `MAP_*`, errno, signal numbers) and the raw
//! six-argument `mmap` are the `myos-abi` crate's: the core knows no C.
//!
//! # Example
//!
//! On the simulated machine (the kernel does the same with its own
//! `Platform` and its locked `FrameAllocator`):
//!
//! ```
//! use myos_mm::frames::FrameAllocator;
//! use myos_mm::paging::AddressSpace;
//! use myos_mm::vm::*;
//! use myos_mm::{PhysAddr, VirtAddr};
//! use myos_sim::{Mode, SimMachine};
//!
//! let m = SimMachine::new(16 << 20).unwrap();
//! let map = m.memory_map().to_vec();
//! // SAFETY: the allocator does not outlive the machine.
//! let mut fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
//! let kernel = AddressSpace::new_kernel(&m, &mut fa, PhysAddr::new(16 << 20)).unwrap();
//! let frames = spin::Mutex::new(fa);
//!
//! let mut vm = VmSpace::new(&m, &frames, &kernel).unwrap();
//! let a = vm
//!     .map(&MapRequest {
//!         addr: None,
//!         length: 8192,
//!         prot: Prot::READ | Prot::WRITE,
//!         shared: false,
//!         fixed: false,
//!         source: MapSource::Anonymous,
//!     })
//!     .unwrap();
//! vm.activate();
//! // A user write faults (the page is not there yet); the handler brings in
//! // a zeroed page and the access is retried.
//! let f = m.write_u32(a.as_u32(), 42, Mode::User).unwrap_err();
//! let outcome = vm.handle_fault(PageFault::new(f.cr2, f.error_code));
//! assert_eq!(outcome, FaultOutcome::Resolved(FaultKind::DemandZero));
//! m.write_u32(a.as_u32(), 42, Mode::User).unwrap();
//!
//! // fork: the child sees the data, copy-on-write.
//! let mut child = vm.fork().unwrap();
//! let mut buf = [0u8; 4];
//! child.copy_from_user(a, &mut buf).unwrap();
//! assert_eq!(u32::from_le_bytes(buf), 42);
//! child.copy_to_user(a, &7u32.to_le_bytes()).unwrap(); // breaks the sharing
//! vm.copy_from_user(a, &mut buf).unwrap();
//! assert_eq!(u32::from_le_bytes(buf), 42);
//! assert_eq!(child.fault_stats().cow_copy, 1);
//!
//! // A user access outside every region: SIGSEGV for the process.
//! let bad = PageFault::new(0x2000_0000, ERR_USER);
//! assert!(matches!(vm.handle_fault(bad), FaultOutcome::Signal(Signal::Segv { .. })));
//! drop(child); // exit: every frame goes back
//! drop(vm);
//! ```

pub mod fault;
pub mod file;
mod file_io;
mod index;
mod object;
mod region;
mod space;

pub use fault::{
    AccessKind, ErrorCode, FaultContext, FaultKind, FaultOutcome, FaultStats, PageFault,
    ProtectionBug, SegvCause, Signal, ERR_FETCH, ERR_PRESENT, ERR_RESERVED, ERR_USER, ERR_WRITE,
};
pub use file::{FdTable, File, OpenFile, OpenMode, PageCache};
pub use space::{BackingKind, MapRequest, MapSource, RegionInfo, VmSpace};

use bitflags::bitflags;

/// Gap kept free below a growable stack region: the stack never grows to
/// within this many bytes of the region below it, and `mmap` never places a
/// mapping in a stack's growth reserve or its gap (1 MiB, as Linux's
/// `stack_guard_gap`).
pub const STACK_GUARD_GAP: u32 = 1 << 20;

bitflags! {
    /// Protection of a region. The empty set is `PROT_NONE`. The bits are
    /// the spec's `PROT_*` values, which `myos-abi` defines from them.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Prot: u32 {
        /// `PROT_READ`: user code may read.
        const READ = 0x1;
        /// `PROT_WRITE`: user code may write (and therefore read: no
        /// write-only pages on x86).
        const WRITE = 0x2;
        /// `PROT_EXEC`: user code may execute. Without PAE there is no NX
        /// bit, so this is recorded but grants exactly what `READ` grants,
        /// and every readable page is executable.
        const EXEC = 0x4;
    }
}

impl Prot {
    /// True when user code may read (or execute): any protection but `PROT_NONE`.
    pub fn readable(self) -> bool {
        !self.is_empty()
    }

    /// True when user code may write.
    pub fn writable(self) -> bool {
        self.contains(Prot::WRITE)
    }
}

bitflags! {
    /// The flags of `mmap`. The bits are the spec's `MAP_*` values, which
    /// `myos-abi` defines from them.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct MapFlags: u32 {
        /// `MAP_SHARED`.
        const SHARED = 0x01;
        /// `MAP_PRIVATE`.
        const PRIVATE = 0x02;
        /// `MAP_FIXED`.
        const FIXED = 0x10;
        /// `MAP_ANONYMOUS`.
        const ANONYMOUS = 0x20;
    }
}
