//! [`VmSpace`]: one process's user address space — the type, its
//! constructor, queries and teardown, and the helpers its operations share.
//!
//! The operations, one concept per file:
//! - `map.rs`: `mmap`/`map`, `map_stack`, `munmap`, `mprotect`, `msync`;
//! - `fault_handler.rs`: [`VmSpace::handle_fault`] and its handlers by cause;
//! - `fork.rs`: [`VmSpace::fork`] (copy-on-write);
//! - `user_copy.rs`: [`VmSpace::copy_to_user`], [`VmSpace::copy_from_user`].

mod fault_handler;
mod fork;
mod map;
mod user_copy;

use core::mem::ManuallyDrop;

use super::fault::FaultStats;
use super::file::OpenFile;
use super::region::{tag, Backing, Region, RegionTree, END_PAGE};
use super::Prot;
use crate::addr::{Frame, Page, VirtAddr};
use crate::error::MmError;
use crate::frames::{FrameSource, OwnedFrame};
use crate::layout::{PAGE_SHIFT, PAGE_SIZE};
use crate::paging::{AddressSpace, Classic, PageAttrs, PagingMode, PteFlags, TlbBatch};
use crate::platform::Platform;
use crate::smp::Invalidate;

/// What a mapping is backed by (the typed form of `fd`/`offset`/`MAP_ANONYMOUS`).
#[derive(Clone, Debug)]
pub enum MapSource {
    /// Anonymous memory (zero-filled).
    Anonymous,
    /// A file, from byte `offset` (page-aligned).
    File {
        /// The open file (what the descriptor named).
        file: OpenFile,
        /// Byte offset in the file; must be a multiple of the page size.
        offset: u32,
    },
}

/// A typed `mmap` request (see [`VmSpace::map`]).
#[derive(Clone, Debug)]
pub struct MapRequest {
    /// With `fixed`, the exact (page-aligned) address; otherwise a hint
    /// used when the range there is free. `None` means no hint.
    pub addr: Option<VirtAddr>,
    /// Length in bytes (rounded up to whole pages); not zero.
    pub length: u32,
    /// Protection.
    pub prot: Prot,
    /// `MAP_SHARED` (true) or `MAP_PRIVATE` (false).
    pub shared: bool,
    /// `MAP_FIXED`: place exactly at `addr`, replacing what is there.
    pub fixed: bool,
    /// Anonymous or file-backed.
    pub source: MapSource,
}

/// What backs a region, as [`RegionInfo`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackingKind {
    /// Anonymous memory (shared or private).
    Anonymous,
    /// A file, from this byte offset (for the region's first byte).
    File {
        /// Byte offset in the file.
        offset: u64,
    },
}

/// A region as seen from outside (like a line of `/proc/<pid>/maps`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// First byte.
    pub start: VirtAddr,
    /// One past the last byte.
    pub end: VirtAddr,
    /// Protection.
    pub prot: Prot,
    /// Shared or private.
    pub shared: bool,
    /// Backing.
    pub backing: BackingKind,
    /// A growable stack.
    pub stack: bool,
}

/// One process's user address space: page tables plus its regions.
///
/// `P` is the platform, `F` a cloneable handle to the frame allocator
/// (typically `&spin::Mutex<FrameAllocator>`; every space of the system
/// must use the same allocator), `M` the paging mode (classic by default;
/// in [`Pae`](crate::paging::Pae) mode pages without `PROT_EXEC` are
/// mapped no-execute). Dropping the space is `exit`: every frame,
/// page table and object reference is released (see [`destroy`](Self::destroy)).
pub struct VmSpace<'a, P: Platform + ?Sized, F: FrameSource + Clone, M: PagingMode = Classic> {
    platform: &'a P,
    frames: F,
    /// The page tables. Taken out (and destroyed) only by `drop`.
    space: ManuallyDrop<AddressSpace<M>>,
    /// The kernel's page directory: loaded when a loaded space is destroyed.
    kernel_dir: Frame,
    regions: RegionTree,
    stats: FaultStats,
}

impl<P: Platform + ?Sized, F: FrameSource + Clone, M: PagingMode> core::fmt::Debug
    for VmSpace<'_, P, F, M>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VmSpace")
            .field("directory", &self.space.directory())
            .field("regions", &self.regions.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// Whether changing a present entry's attributes from `old` to `new` (same
/// frame) takes a right away (user access, write, or execute: setting NX):
/// then other CPUs may cache the wider entry and must be shot down. Adding
/// rights is IPI-free (a CPU with the narrower entry takes a spurious
/// fault and flushes it locally).
fn narrows(old: PageAttrs, new: PageAttrs) -> bool {
    let rights = PteFlags::USER | PteFlags::WRITABLE;
    !(new.flags & rights).contains(old.flags & rights) || (new.no_exec && !old.no_exec)
}

/// Drops a reference the core holds; failure is a core bug.
fn drop_ref<F: FrameSource + ?Sized>(frames: &mut F, frame: OwnedFrame) {
    let f = frame.frame();
    let r = frames.release(frame);
    debug_assert!(r.is_ok(), "releasing {f:?}: {r:?}");
}

/// Entry attributes of a present user page: `PROT_NONE` pages become
/// supervisor-only and read-only (any user access faults); in a mode with
/// NX, pages without `PROT_EXEC` are no-execute.
fn pte_flags<M: PagingMode>(prot: Prot, writable: bool) -> PageAttrs {
    let no_exec = M::NX && !prot.contains(Prot::EXEC);
    let flags = if !prot.readable() {
        PteFlags::empty()
    } else if writable && prot.writable() {
        PteFlags::USER | PteFlags::WRITABLE
    } else {
        PteFlags::USER
    };
    PageAttrs { flags, no_exec }
}

fn page_of(n: u32) -> Page {
    VirtAddr::new(n << PAGE_SHIFT).page()
}

/// Pages in `length` bytes (rounded up); 0 for 0.
fn pages_in(length: u32) -> u32 {
    length.div_ceil(PAGE_SIZE as u32)
}

/// The user page range `addr..addr+length` for munmap/mprotect/msync:
/// `addr` page-aligned, `length` non-zero, the range inside user space.
fn user_range(addr: VirtAddr, length: u32) -> Result<(u32, u32), MmError> {
    if !addr.is_page_aligned() {
        return Err(MmError::Misaligned);
    }
    if length == 0 {
        return Err(MmError::InvalidArgument);
    }
    let lo = addr.page().number();
    let hi = u64::from(lo) + u64::from(pages_in(length));
    if hi > u64::from(END_PAGE) {
        return Err(MmError::OutOfRange);
    }
    Ok((lo, hi as u32))
}

impl<'a, P: Platform + ?Sized, F: FrameSource + Clone, M: PagingMode> VmSpace<'a, P, F, M> {
    /// An empty user address space whose kernel half is `kernel`'s.
    pub fn new(platform: &'a P, mut frames: F, kernel: &AddressSpace<M>) -> Result<Self, MmError> {
        let space = AddressSpace::new_user(platform, &mut frames, kernel)?;
        Ok(VmSpace {
            platform,
            frames,
            space: ManuallyDrop::new(space),
            kernel_dir: kernel.directory(),
            regions: RegionTree::new(),
            stats: FaultStats::default(),
        })
    }

    /// The page tables.
    pub fn address_space(&self) -> &AddressSpace<M> {
        &self.space
    }

    /// The page tables, for raw page-level calls outside the regions (the C
    /// API's `get_page`/`map_page`/`unmap_page` on a process directory, e.g.
    /// the spec's example mapping at `0x1000`, below any region). Such
    /// mappings are the caller's business: the fault handler, `munmap` and
    /// `mprotect` only act inside regions, and exit releases their frames
    /// like any other entry's. Don't change entries inside regions this way.
    pub fn address_space_mut(&mut self) -> &mut AddressSpace<M> {
        &mut self.space
    }

    /// The page directory (what CR3 holds while the process runs).
    pub fn directory(&self) -> Frame {
        self.space.directory()
    }

    /// Loads this space into CR3 on the calling CPU, which joins the
    /// space's CPU set (see [`AddressSpace::activate`]; for a context
    /// switch, [`AddressSpace::switch_from`] also leaves the previous
    /// space's set).
    pub fn activate(&self) {
        self.space.activate(self.platform);
    }

    /// The platform the space's operations run on. On a machine where each
    /// CPU is its own `Platform` value (the simulator's `CpuHandle`), the
    /// caller that takes the space's lock on another CPU sets that CPU's
    /// platform first, so local flushes and `cpu_id` name the CPU it runs
    /// on. (A kernel whose one platform reads the CPU number from per-CPU
    /// data never needs this.)
    pub fn set_platform(&mut self, platform: &'a P) {
        self.platform = platform;
    }

    /// The platform the space's operations run on.
    pub fn platform(&self) -> &'a P {
        self.platform
    }

    /// Ends an operation's batch on this space (local flush, one shootdown
    /// to the other CPUs of its set, then the deferred frames are freed).
    #[inline]
    pub(super) fn finish_batch(&mut self, batch: TlbBatch) {
        let _ = batch.finish(self.platform, &self.space, &mut self.frames);
    }

    /// True when this space is loaded in CR3.
    pub fn is_active(&self) -> bool {
        self.space.is_active(self.platform)
    }

    /// The fault counters.
    pub fn fault_stats(&self) -> FaultStats {
        self.stats
    }

    /// Number of regions.
    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    /// Every region, in address order.
    pub fn regions(&self) -> impl Iterator<Item = RegionInfo> + '_ {
        self.regions.iter().map(|(s, r)| info(s, r))
    }

    /// The region containing `addr`.
    pub fn region_at(&self, addr: VirtAddr) -> Option<RegionInfo> {
        let hit = self.regions.find_hit(addr.page().number())?;
        if hit.tag & tag::FILE != 0 {
            // The file offset is only in the region record.
            return Some(info(hit.key, hit.val));
        }
        // Everything else is in the index: the record stays unread.
        let found = RegionInfo {
            start: VirtAddr::new(hit.key << PAGE_SHIFT),
            end: end_addr(hit.end),
            prot: Prot::from_bits_truncate(u32::from(hit.tag & tag::PROT)),
            shared: hit.tag & tag::SHARED != 0,
            backing: BackingKind::Anonymous,
            stack: hit.tag & tag::STACK != 0,
        };
        debug_assert_eq!(found, info(hit.key, hit.val));
        Some(found)
    }

    /// Checks the space's bookkeeping: regions ordered and disjoint, the
    /// free-gap indexes and the lookup cache in step with them. O(regions),
    /// for tests, fuzzing and debugging (like `FrameAllocator::validate`).
    pub fn validate(&self) -> Result<(), &'static str> {
        self.regions.validate()
    }

    /// Number of resident (present) user pages.
    pub fn resident_pages(&self) -> usize {
        let mut n = 0;
        self.space
            .for_each_user_mapping(self.platform, |_, _| n += 1);
        n
    }

    /// `exit`: frees everything — every mapped frame's reference, the page
    /// tables, the directory, and each region's hold on its backing object
    /// (the last hold writes dirty file pages back and frees the object's
    /// frames). If the space is loaded, the kernel's directory is loaded
    /// first. Same as dropping the space.
    pub fn destroy(self) {
        drop(self);
    }
}

impl<P: Platform + ?Sized, F: FrameSource + Clone, M: PagingMode> Drop for VmSpace<'_, P, F, M> {
    /// See [`VmSpace::destroy`].
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and nothing uses `self.space` after it;
        // the field is taken nowhere else.
        let space = unsafe { ManuallyDrop::take(&mut self.space) };
        if space.is_active(self.platform) {
            // SAFETY: the kernel's directory maps the kernel half every
            // space shares, so the running code stays mapped.
            unsafe { self.platform.set_root(self.kernel_dir) };
        }
        let me = self.platform.cpu_id();
        if space.cpu_set(self.platform).contains(me) {
            space.deactivate(self.platform);
        }
        // Other CPUs must have switched away (the kernel's job); a CPU left
        // in the set may still cache entries lazily: drop them before the
        // tables and frames go.
        let others = space.cpu_set(self.platform).without(me);
        if !others.is_empty() {
            self.platform.shootdown(others, Invalidate::AllNonGlobal);
        }
        space.destroy(self.platform, &mut self.frames);
        for (start, region) in self.regions.take_all() {
            self.release_region(start, region);
        }
    }
}

/// The address of end page `end` (`u32::MAX` for the end of the address
/// space).
fn end_addr(end: u32) -> VirtAddr {
    VirtAddr::new(((u64::from(end) << PAGE_SHIFT).min(u64::from(u32::MAX))) as u32)
}

fn info(start: u32, r: &Region) -> RegionInfo {
    let backing = match &r.backing {
        Backing::Object { object, offset, .. } if object.is_file() => BackingKind::File {
            offset: u64::from(*offset) << PAGE_SHIFT,
        },
        _ => BackingKind::Anonymous,
    };
    RegionInfo {
        start: VirtAddr::new(start << PAGE_SHIFT),
        end: end_addr(r.end),
        prot: r.prot,
        shared: r.shared,
        backing,
        stack: r.stack_limit.is_some(),
    }
}
