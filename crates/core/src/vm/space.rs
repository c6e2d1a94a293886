//! [`VmSpace`]: one process's user address space.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::fault::{
    AccessKind, ErrorCode, FaultKind, FaultOutcome, FaultStats, PageFault, SegvCause, Signal,
};
use super::file::{FdTable, OpenFile, PageCache};
use super::object::{PageError, VmObject};
use super::region::{tag, Backing, Region, RegionTree, END_PAGE, GUARD_PAGES, MIN_PAGE};
use super::{MapFlags, Prot};
use crate::addr::{Frame, Page, VirtAddr};
use crate::error::MmError;
use crate::frames::{FrameSource, Zone};
use crate::layout::{PAGE_SHIFT, PAGE_SIZE, USER_END};
use crate::paging::{AddressSpace, Flush, PageTableEntry, PteFlags};
use crate::platform::Platform;

/// Above this many changed entries, one full TLB flush replaces `invlpg`s.
const FLUSH_ALL_AFTER: u32 = 16;

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
/// must use the same allocator). Dropping the space is `exit`: every frame,
/// page table and object reference is released (see [`destroy`](Self::destroy)).
pub struct VmSpace<'a, P: Platform + ?Sized, F: FrameSource + Clone> {
    platform: &'a P,
    frames: F,
    /// Always `Some` until the space is dropped.
    space: Option<AddressSpace>,
    /// The kernel's page directory: loaded when a loaded space is destroyed.
    kernel_dir: Frame,
    regions: RegionTree,
    stats: FaultStats,
}

impl<P: Platform + ?Sized, F: FrameSource + Clone> core::fmt::Debug for VmSpace<'_, P, F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VmSpace")
            .field("directory", &self.space.as_ref().map(|s| s.directory()))
            .field("regions", &self.regions.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// TLB invalidations of one operation: page by page while few, then one
/// full flush.
struct Flusher {
    count: u32,
}

impl Flusher {
    fn new() -> Self {
        Flusher { count: 0 }
    }
    fn push<P: Platform + ?Sized>(&mut self, platform: &P, flush: Flush) {
        self.count += 1;
        if self.count <= FLUSH_ALL_AFTER {
            flush.flush(platform);
        } else {
            flush.ignore();
        }
    }
    fn finish<P: Platform + ?Sized>(self, platform: &P, space: &AddressSpace) {
        if self.count > FLUSH_ALL_AFTER && space.is_active(platform) {
            platform.flush_all();
        }
    }
}

/// Drops a reference the core holds; failure is a core bug.
fn drop_ref<F: FrameSource + ?Sized>(frames: &mut F, frame: Frame) {
    let r = frames.release(frame);
    debug_assert!(r.is_ok(), "releasing {frame:?}: {r:?}");
}

/// Entry flags of a present user page: `PROT_NONE` pages become
/// supervisor-only and read-only (any user access faults).
fn pte_flags(prot: Prot, writable: bool) -> PteFlags {
    if !prot.readable() {
        return PteFlags::empty();
    }
    if writable && prot.writable() {
        PteFlags::USER | PteFlags::WRITABLE
    } else {
        PteFlags::USER
    }
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

impl<'a, P: Platform + ?Sized, F: FrameSource + Clone> VmSpace<'a, P, F> {
    /// An empty user address space whose kernel half is `kernel`'s.
    pub fn new(platform: &'a P, mut frames: F, kernel: &AddressSpace) -> Result<Self, MmError> {
        let space = AddressSpace::new_user(platform, &mut frames, kernel)?;
        Ok(VmSpace {
            platform,
            frames,
            space: Some(space),
            kernel_dir: kernel.directory(),
            regions: RegionTree::new(),
            stats: FaultStats::default(),
        })
    }

    fn space(&self) -> &AddressSpace {
        self.space.as_ref().expect("VmSpace used after destroy")
    }

    /// The page tables.
    pub fn address_space(&self) -> &AddressSpace {
        self.space()
    }

    /// The page tables, for raw page-level calls outside the regions (the C
    /// API's `get_page`/`map_page`/`unmap_page` on a process directory, e.g.
    /// the spec's example mapping at `0x1000`, below any region). Such
    /// mappings are the caller's business: the fault handler, `munmap` and
    /// `mprotect` only act inside regions, and exit releases their frames
    /// like any other entry's. Don't change entries inside regions this way.
    pub fn address_space_mut(&mut self) -> &mut AddressSpace {
        self.space.as_mut().expect("VmSpace used after destroy")
    }

    /// The page directory (what CR3 holds while the process runs).
    pub fn directory(&self) -> Frame {
        self.space().directory()
    }

    /// Loads this space into CR3.
    pub fn activate(&self) {
        self.space().activate(self.platform);
    }

    /// True when this space is loaded in CR3.
    pub fn is_active(&self) -> bool {
        self.space().is_active(self.platform)
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
        self.space()
            .for_each_user_mapping(self.platform, |_, _| n += 1);
        n
    }

    // ----------------------------------------------------------------- mmap

    /// `mmap(addr, length, prot, flags, fd, offset)` with the spec's raw
    /// arguments (what a syscall layer has in registers); `fd` is resolved
    /// through `fds`. Returns the mapping's address.
    ///
    /// Errors (nothing changes on error):
    /// - `InvalidArgument` (EINVAL): `length` 0; unknown `prot` or `flags`
    ///   bits; neither or both of `MAP_SHARED`/`MAP_PRIVATE`;
    ///   `MAP_ANONYMOUS` with `fd != -1` or `offset != 0`; a file `offset`
    ///   that is not page-aligned, or `offset + length` past 4 GiB;
    /// - `Misaligned` (EINVAL): `MAP_FIXED` at an unaligned address;
    /// - `OutOfRange` (EINVAL): `MAP_FIXED` range outside
    ///   `USER_MMAP_MIN..USER_END`;
    /// - `BadFileDescriptor` (EBADF): `fd` names no open file;
    /// - `AccessDenied` (EACCES): the file is not open for reading, or a
    ///   shared writable mapping of a file not open for writing;
    /// - `OutOfMemory` (ENOMEM): no free range is large enough.
    #[allow(clippy::too_many_arguments)] // the spec's C signature
    pub fn mmap(
        &mut self,
        fds: &FdTable,
        addr: VirtAddr,
        length: u32,
        prot: u32,
        flags: u32,
        fd: i32,
        offset: u32,
    ) -> Result<VirtAddr, MmError> {
        if length == 0 {
            return Err(MmError::InvalidArgument);
        }
        let prot = Prot::from_raw(prot)?;
        let flags = MapFlags::from_bits(flags).ok_or(MmError::InvalidArgument)?;
        let shared = match (
            flags.contains(MapFlags::SHARED),
            flags.contains(MapFlags::PRIVATE),
        ) {
            (true, false) => true,
            (false, true) => false,
            _ => return Err(MmError::InvalidArgument),
        };
        let source = if flags.contains(MapFlags::ANONYMOUS) {
            if fd != -1 || offset != 0 {
                return Err(MmError::InvalidArgument);
            }
            MapSource::Anonymous
        } else {
            MapSource::File {
                file: fds.get(fd)?.clone(),
                offset,
            }
        };
        let fixed = flags.contains(MapFlags::FIXED);
        let addr = (fixed || addr.as_u32() != 0).then_some(addr);
        self.map(&MapRequest {
            addr,
            length,
            prot,
            shared,
            fixed,
            source,
        })
    }

    /// The typed `mmap`: validates `req` as [`mmap`](Self::mmap) documents,
    /// places the region (the hint if free, else the best-fitting free gap,
    /// found in O(log n)), and records it. No frame is allocated: pages come
    /// in on first touch.
    pub fn map(&mut self, req: &MapRequest) -> Result<VirtAddr, MmError> {
        if req.length == 0 {
            return Err(MmError::InvalidArgument);
        }
        let pages = pages_in(req.length);
        if pages > END_PAGE - MIN_PAGE {
            return Err(MmError::OutOfMemory);
        }
        // Validate the source before anything changes.
        let file_offset = match &req.source {
            MapSource::Anonymous => None,
            MapSource::File { file, offset } => {
                if offset % PAGE_SIZE as u32 != 0 {
                    return Err(MmError::InvalidArgument);
                }
                if !file.mode().readable()
                    || (req.shared && req.prot.writable() && !file.mode().writable())
                {
                    return Err(MmError::AccessDenied);
                }
                // File offsets are 32-bit (the spec's `uint32_t offset`).
                let off_pages = offset >> PAGE_SHIFT;
                if u64::from(off_pages) + u64::from(pages) > 1 << (32 - PAGE_SHIFT) {
                    return Err(MmError::InvalidArgument);
                }
                Some(off_pages)
            }
        };
        let start = if req.fixed {
            let a = req.addr.ok_or(MmError::InvalidArgument)?;
            if !a.is_page_aligned() {
                return Err(MmError::Misaligned);
            }
            let s = a.page().number();
            if s < MIN_PAGE || u64::from(s) + u64::from(pages) > u64::from(END_PAGE) {
                return Err(MmError::OutOfRange);
            }
            s
        } else {
            let hint = req
                .addr
                .and_then(|a| a.checked_align_up(PAGE_SIZE as u32))
                .map(|a| a.page().number())
                .filter(|&s| {
                    s >= MIN_PAGE
                        && u64::from(s) + u64::from(pages) <= u64::from(END_PAGE)
                        && self.regions.is_free(s, s + pages)
                });
            match hint {
                Some(s) => s,
                None => self.regions.find_free(pages).ok_or(MmError::OutOfMemory)?,
            }
        };
        let backing = match (&req.source, file_offset) {
            (MapSource::File { file, .. }, Some(offset)) => Backing::Object {
                object: PageCache::object(file.file()),
                offset,
                may_write: file.mode().writable(),
            },
            _ if req.shared => Backing::Object {
                object: Arc::new(VmObject::anonymous()),
                offset: 0,
                may_write: true,
            },
            _ => Backing::Anonymous,
        };
        if req.fixed {
            self.unmap_range(start, start + pages);
        }
        let region = Region {
            end: start + pages,
            prot: req.prot,
            shared: req.shared,
            backing,
            stack_limit: None,
        };
        self.regions.insert(start, region);
        self.regions.merge_around(start);
        Ok(VirtAddr::new(start << PAGE_SHIFT))
    }

    /// Creates a growable stack: a private read/write region of `size`
    /// bytes ending at `top`, which the fault handler extends downwards on
    /// demand as far as `top - max`, never to within [`STACK_GUARD_GAP`]
    /// of the region below. `mmap` never places anything in the growth
    /// range or the gap. Returns the current bottom.
    ///
    /// `top` must be page-aligned and at most `USER_END`; `size` non-zero
    /// and at most `max`; `top - max` not below `USER_MMAP_MIN`
    /// (`InvalidArgument`/`Misaligned`/`OutOfRange`); the initial range must
    /// be free (`AlreadyMapped`).
    ///
    /// [`STACK_GUARD_GAP`]: super::STACK_GUARD_GAP
    pub fn map_stack(&mut self, top: VirtAddr, size: u32, max: u32) -> Result<VirtAddr, MmError> {
        if !top.is_page_aligned() {
            return Err(MmError::Misaligned);
        }
        if size == 0 || size > max {
            return Err(MmError::InvalidArgument);
        }
        let top_page = u64::from(top.as_u32()) >> PAGE_SHIFT;
        let (size_p, max_p) = (u64::from(pages_in(size)), u64::from(pages_in(max)));
        if top_page > u64::from(END_PAGE) || top_page < u64::from(MIN_PAGE) + max_p {
            return Err(MmError::OutOfRange);
        }
        let (top_page, bottom, limit) = (
            top_page as u32,
            (top_page - size_p) as u32,
            (top_page - max_p) as u32,
        );
        if !self.regions.is_free(bottom, top_page) {
            return Err(MmError::AlreadyMapped);
        }
        let region = Region {
            end: top_page,
            prot: Prot::READ | Prot::WRITE,
            shared: false,
            backing: Backing::Anonymous,
            // `limit >= MIN_PAGE > 0` (checked above).
            stack_limit: core::num::NonZeroU32::new(limit),
        };
        self.regions.insert(bottom, region);
        Ok(VirtAddr::new(bottom << PAGE_SHIFT))
    }

    // --------------------------------------------------------------- munmap

    /// `munmap(addr, length)`: removes every mapping in the range (regions
    /// partly inside are split); unmapping an unmapped range succeeds.
    /// Frames go back through their reference counts, page tables left
    /// empty are freed, and dirty pages of shared file mappings are written
    /// back (a write-back error is not reported here: call
    /// [`msync`](Self::msync) first to see it). `Misaligned` (EINVAL) for an unaligned `addr`,
    /// `InvalidArgument` (EINVAL) for length 0, `OutOfRange` (EINVAL) past
    /// user space.
    pub fn munmap(&mut self, addr: VirtAddr, length: u32) -> Result<(), MmError> {
        let (lo, hi) = user_range(addr, length)?;
        self.unmap_range(lo, hi);
        Ok(())
    }

    fn unmap_range(&mut self, lo: u32, hi: u32) {
        self.regions.split_at(lo);
        self.regions.split_at(hi);
        let removed = self.regions.remove_range(lo, hi);
        for (start, region) in removed {
            self.unmap_pages(start, region.end);
            self.release_region(start, region);
        }
    }

    /// Present pages in `lo..hi` with their entries (skips absent tables).
    fn present_pages(&self, lo: u32, hi: u32) -> Vec<(u32, PageTableEntry)> {
        let space = self.space();
        let mut out = Vec::new();
        let mut p = lo;
        while p < hi {
            match space.entry(self.platform, page_of(p)) {
                None => p = (p | 0x3FF).saturating_add(1),
                Some(e) => {
                    if e.is_present() {
                        out.push((p, e));
                    }
                    p += 1;
                }
            }
        }
        out
    }

    /// Unmaps the present pages of `lo..hi`, dropping their references.
    fn unmap_pages(&mut self, lo: u32, hi: u32) {
        let platform = self.platform;
        let space = self.space.as_mut().expect("VmSpace used after destroy");
        let mut flusher = Flusher::new();
        let mut p = lo;
        while p < hi {
            match space.entry(platform, page_of(p)) {
                // No page table: skip to the next 4 MiB.
                None => p = (p | 0x3FF).saturating_add(1),
                Some(e) => {
                    if e.is_present() {
                        if let Ok((frame, flush)) =
                            space.unmap(platform, &mut self.frames, page_of(p))
                        {
                            flusher.push(platform, flush);
                            drop_ref(&mut self.frames, frame);
                        }
                    }
                    p += 1;
                }
            }
        }
        flusher.finish(platform, space);
    }

    /// Lets go of a removed region's backing (its pages are unmapped).
    fn release_region(&mut self, start: u32, region: Region) {
        if let Backing::Object { object, offset, .. } = region.backing {
            if region.shared && object.is_file() && Arc::strong_count(&object) > 1 {
                let _ = object.writeback(self.platform, offset, offset + (region.end - start));
            }
            VmObject::release(object, self.platform, &mut self.frames);
        }
    }

    // ------------------------------------------------------------- mprotect

    /// `mprotect(addr, length, prot)` with the raw `prot` bits.
    pub fn mprotect(&mut self, addr: VirtAddr, length: u32, prot: u32) -> Result<(), MmError> {
        self.protect(addr, length, Prot::from_raw(prot)?)
    }

    /// Changes the protection of every page in the range: regions are split
    /// at the bounds and merged with equal neighbours afterwards, live
    /// entries are updated and the TLB flushed. Private pages shared
    /// copy-on-write stay read-only in the entries (their next write
    /// copies), as do shared file pages not yet dirty.
    ///
    /// Errors (nothing changes): `Misaligned`/`InvalidArgument`/`OutOfRange`
    /// (EINVAL) as for [`munmap`](Self::munmap); `NoRegion` (ENOMEM) when
    /// part of the range is not mapped; `AccessDenied` (EACCES) for write
    /// access to a shared mapping of a file not open for writing.
    pub fn protect(&mut self, addr: VirtAddr, length: u32, prot: Prot) -> Result<(), MmError> {
        let (lo, hi) = user_range(addr, length)?;
        let mut p = lo;
        while p < hi {
            let (_, r) = self.regions.find(p).ok_or(MmError::NoRegion)?;
            if let Backing::Object {
                may_write: false, ..
            } = r.backing
            {
                if r.shared && prot.writable() {
                    return Err(MmError::AccessDenied);
                }
            }
            p = r.end;
        }
        self.regions.split_at(lo);
        self.regions.split_at(hi);
        let starts: Vec<u32> = self.regions.range(lo, hi).map(|(s, _)| s).collect();
        let mut flusher = Flusher::new();
        for &s in &starts {
            let Some(region) = self.regions.update(s, |r| {
                r.prot = prot;
                r.clone()
            }) else {
                continue;
            };
            for (page, e) in self.present_pages(s, region.end) {
                let writable = self.may_write_in_place(s, &region, page, e.frame());
                let flags = pte_flags(prot, writable);
                let platform = self.platform;
                let space = self.space.as_mut().expect("VmSpace used after destroy");
                if let Ok(flush) = space.protect(platform, page_of(page), flags) {
                    flusher.push(platform, flush);
                }
            }
        }
        flusher.finish(self.platform, self.space());
        for s in starts {
            if self.regions.get(s).is_some() {
                self.regions.merge_around(s);
            }
        }
        Ok(())
    }

    /// Whether a present page of `region` may be mapped writable right now
    /// (given a writable protection): private pages only when nobody else
    /// references the frame, shared file pages only once dirty.
    fn may_write_in_place(&self, start: u32, region: &Region, page: u32, frame: Frame) -> bool {
        if !region.shared {
            return self.frames.refcount(frame) == Ok(1);
        }
        match region.object_index(start, page) {
            Some((object, index)) if object.is_file() => object.is_dirty(index),
            _ => true,
        }
    }

    /// `msync(addr, length)`: writes the dirty pages of shared file
    /// mappings in the range back to their files. Errors as
    /// [`protect`](Self::protect) (`NoRegion` for unmapped parts).
    pub fn msync(&mut self, addr: VirtAddr, length: u32) -> Result<(), MmError> {
        let (lo, hi) = user_range(addr, length)?;
        let mut p = lo;
        let mut result = Ok(());
        while p < hi {
            let (s, r) = self.regions.find(p).ok_or(MmError::NoRegion)?;
            let end = r.end.min(hi);
            if let (true, Some((object, index))) = (r.shared, r.object_index(s, p)) {
                if let Err(e) = object.writeback(self.platform, index, index + (end - p)) {
                    result = Err(e);
                }
            }
            p = end;
        }
        result
    }

    // ---------------------------------------------------------- page faults

    /// The page-fault handler: services a fault of this space (CR2 and the
    /// error code, decoded by [`PageFault::new`]).
    ///
    /// Not-present faults inside a region bring the page in (demand-zero,
    /// shared object page, file page-in); write faults on present read-only
    /// pages of writable private regions copy-on-write (or reuse the frame
    /// when its count is 1); faults just below a growable stack extend it.
    /// User faults outside any region, or forbidden by the region's
    /// protection, give `SIGSEGV`; file pages wholly past EOF give `SIGBUS`.
    /// Supervisor faults are serviced like user ones when a region allows
    /// the access; otherwise (or with `ERR_RESERVED`) they are a
    /// [`FaultOutcome::KernelBug`]. Every outcome is counted in
    /// [`fault_stats`](Self::fault_stats).
    pub fn handle_fault(&mut self, fault: PageFault) -> FaultOutcome {
        let out = self.resolve(fault);
        self.stats.record(&out);
        out
    }

    fn resolve(&mut self, fault: PageFault) -> FaultOutcome {
        let user = fault.is_user();
        let addr = fault.addr;
        let deny = |cause| {
            if user {
                FaultOutcome::Signal(Signal::Segv { addr, cause })
            } else {
                FaultOutcome::KernelBug
            }
        };
        if fault.code.contains(ErrorCode::RESERVED) {
            return FaultOutcome::KernelBug;
        }
        if addr.as_u32() >= USER_END {
            return deny(if fault.is_protection() {
                SegvCause::Protection
            } else {
                SegvCause::NoRegion
            });
        }
        let page = addr.page().number();
        let (start, region, grew) = match self.regions.lookup(page) {
            Some((s, r)) => (s, r, false),
            None => match self.grow_stack(page) {
                Some((s, r)) => (s, r, true),
                None => return deny(SegvCause::NoRegion),
            },
        };
        let write = fault.access() == AccessKind::Write;
        if !region.prot.readable() || (write && !region.prot.writable()) {
            return deny(SegvCause::Protection);
        }
        let entry = self
            .space()
            .entry(self.platform, page_of(page))
            .filter(|e| e.is_present());
        let out = match entry {
            None => self.fault_in(start, &region, page, write, addr),
            Some(e) if write && !e.flags().contains(PteFlags::WRITABLE) => {
                self.write_fault(start, &region, page, e)
            }
            Some(e) if !e.flags().contains(PteFlags::USER) => {
                // Entry flags lag behind the region (cannot happen through
                // this API; repair rather than loop).
                let writable = self.may_write_in_place(start, &region, page, e.frame());
                self.set_flags(page, pte_flags(region.prot, writable));
                FaultOutcome::Resolved(FaultKind::Spurious)
            }
            Some(_) => {
                // The entry allows the access: a stale TLB entry.
                self.platform.flush(page_of(page));
                FaultOutcome::Resolved(FaultKind::Spurious)
            }
        };
        match out {
            FaultOutcome::Resolved(_) if grew => FaultOutcome::Resolved(FaultKind::StackGrowth),
            out => out,
        }
    }

    /// Extends a growable stack down to `page` when `page` lies in its
    /// growth range and keeps the guard gap to the region below.
    fn grow_stack(&mut self, page: u32) -> Option<(u32, Region)> {
        if page < MIN_PAGE {
            return None;
        }
        let (s, r) = self.regions.next_above(page)?;
        let limit = r.stack_limit?.get();
        if page < limit {
            return None;
        }
        if let Some((_, prev)) = self.regions.prev_below(page) {
            if prev.end.saturating_add(GUARD_PAGES) > page {
                return None;
            }
        }
        self.regions.extend_down(s, page);
        self.regions.lookup(page)
    }

    /// Maps `frame` (a reference the caller owns) at `page`. A not-present
    /// entry is never cached by the TLB, so no flush is needed.
    fn install(&mut self, page: u32, frame: Frame, flags: PteFlags) -> Result<(), MmError> {
        let platform = self.platform;
        let space = self.space.as_mut().expect("VmSpace used after destroy");
        match space.map(platform, &mut self.frames, page_of(page), frame, flags) {
            Ok(flush) => {
                flush.ignore();
                Ok(())
            }
            Err(e) => {
                drop_ref(&mut self.frames, frame);
                Err(e)
            }
        }
    }

    fn set_flags(&mut self, page: u32, flags: PteFlags) {
        let platform = self.platform;
        let space = self.space.as_mut().expect("VmSpace used after destroy");
        if let Ok(flush) = space.protect(platform, page_of(page), flags) {
            flush.flush(platform);
        }
    }

    /// A not-present fault in a region that allows the access.
    fn fault_in(
        &mut self,
        start: u32,
        region: &Region,
        page: u32,
        write: bool,
        addr: VirtAddr,
    ) -> FaultOutcome {
        let oom = |_| FaultOutcome::OutOfMemory;
        let Some((object, index)) = region.object_index(start, page) else {
            // Private anonymous: demand-zero.
            let frame = match self.frames.alloc(Zone::High) {
                Ok(f) => f,
                Err(_) => return FaultOutcome::OutOfMemory,
            };
            self.platform.zero_frame(frame);
            return match self.install(page, frame, pte_flags(region.prot, true)) {
                Ok(()) => FaultOutcome::Resolved(FaultKind::DemandZero),
                Err(e) => oom(e),
            };
        };
        let cached = match object.page(self.platform, &mut self.frames, index) {
            Ok(f) => f,
            Err(PageError::PastEof) => return FaultOutcome::Signal(Signal::Bus { addr }),
            Err(PageError::NoMemory) => return FaultOutcome::OutOfMemory,
        };
        let kind = if object.is_file() {
            FaultKind::FilePage
        } else {
            FaultKind::SharedAnon
        };
        if !region.shared && write {
            // Private file page, first touched by a write: copy it now.
            let frame = match self.frames.alloc(Zone::High) {
                Ok(f) => f,
                Err(_) => return FaultOutcome::OutOfMemory,
            };
            self.platform.copy_frame(frame, cached);
            return match self.install(page, frame, pte_flags(region.prot, true)) {
                Ok(()) => FaultOutcome::Resolved(kind),
                Err(e) => oom(e),
            };
        }
        if self.frames.share(cached).is_err() {
            return FaultOutcome::OutOfMemory;
        }
        // Shared anonymous pages are writable at once; shared file pages
        // only on a write (so the first write is seen and marks the page
        // dirty); private file pages never (their first write copies).
        let writable = region.shared && (!object.is_file() || write);
        if writable && object.is_file() {
            object.mark_dirty(index);
        }
        match self.install(page, cached, pte_flags(region.prot, writable)) {
            Ok(()) => FaultOutcome::Resolved(kind),
            Err(e) => oom(e),
        }
    }

    /// A write to a present read-only page of a writable region.
    fn write_fault(
        &mut self,
        start: u32,
        region: &Region,
        page: u32,
        e: PageTableEntry,
    ) -> FaultOutcome {
        let writable = pte_flags(region.prot, true);
        if region.shared {
            let kind = match region.object_index(start, page) {
                Some((object, index)) if object.is_file() => {
                    object.mark_dirty(index);
                    FaultKind::WriteNotify
                }
                _ => FaultKind::Spurious,
            };
            self.set_flags(page, writable);
            return FaultOutcome::Resolved(kind);
        }
        let old = e.frame();
        if self.frames.refcount(old) == Ok(1) {
            self.set_flags(page, writable);
            return FaultOutcome::Resolved(FaultKind::CowReuse);
        }
        let frame = match self.frames.alloc(Zone::High) {
            Ok(f) => f,
            Err(_) => return FaultOutcome::OutOfMemory,
        };
        self.platform.copy_frame(frame, old);
        let platform = self.platform;
        let space = self.space.as_mut().expect("VmSpace used after destroy");
        match space.remap(platform, &mut self.frames, page_of(page), frame, writable) {
            Ok((prev, flush)) => {
                flush.flush(platform);
                if let Some(prev) = prev {
                    drop_ref(&mut self.frames, prev);
                }
                FaultOutcome::Resolved(FaultKind::CopyOnWrite)
            }
            Err(_) => {
                drop_ref(&mut self.frames, frame);
                FaultOutcome::OutOfMemory
            }
        }
    }

    // ----------------------------------------------------------------- fork

    /// `fork`: a copy of this address space. Page tables are copied, data
    /// pages never: private writable pages become read-only in both spaces
    /// with their reference counts raised (copy-on-write), shared pages stay
    /// shared (and writable where they were). The parent's TLB is flushed
    /// once at the end, not per page. The child gets the same regions and
    /// zeroed fault counters. Raw mappings outside every region (see
    /// [`address_space_mut`](Self::address_space_mut)) are shared as they are.
    ///
    /// On `OutOfMemory` the child is torn down and the parent keeps working
    /// (some of its pages may have become copy-on-write read-only, which
    /// only costs a reuse fault later).
    pub fn fork(&mut self) -> Result<Self, MmError> {
        let platform = self.platform;
        let mut frames = self.frames.clone();
        let child_space = AddressSpace::new_user(platform, &mut frames, self.space())?;
        let mut child = VmSpace {
            platform,
            frames,
            space: Some(child_space),
            kernel_dir: self.kernel_dir,
            regions: self.regions.clone(),
            stats: FaultStats::default(),
        };
        let mut entries = Vec::new();
        self.space()
            .for_each_user_mapping(platform, |page, e| entries.push((page, e)));
        let mut parent_changed = false;
        let mut cursor: Option<(u32, u32, bool)> = None; // (start, end, shared) of the current region
        let space = self.space.as_mut().expect("VmSpace used after destroy");
        let child_space = child.space.as_mut().expect("fresh space");
        for (page, e) in entries {
            let n = page.number();
            let shared = match cursor {
                Some((s, end, shared)) if s <= n && n < end => shared,
                _ => match self.regions.find(n) {
                    Some((s, r)) => {
                        cursor = Some((s, r.end, r.shared));
                        r.shared
                    }
                    // A raw mapping outside every region (made through
                    // `address_space_mut`): the child shares it as it is.
                    None => true,
                },
            };
            let mut flags = e.flags() & (PteFlags::USER | PteFlags::WRITABLE);
            if !shared && flags.contains(PteFlags::WRITABLE) {
                flags.remove(PteFlags::WRITABLE);
                if let Ok(flush) = space.protect(platform, page, flags) {
                    flush.ignore();
                    parent_changed = true;
                }
            }
            // Frames the allocator doesn't manage (device memory mapped by
            // address through `address_space_mut`) carry no reference.
            let counted = match self.frames.share(e.frame()) {
                Ok(()) => true,
                Err(MmError::FrameReserved | MmError::OutOfRange) => false,
                Err(err) => {
                    if parent_changed && space.is_active(platform) {
                        platform.flush_all();
                    }
                    return Err(err);
                }
            };
            match child_space.map(platform, &mut self.frames, page, e.frame(), flags) {
                Ok(flush) => flush.ignore(),
                Err(err) => {
                    if counted {
                        drop_ref(&mut self.frames, e.frame());
                    }
                    if parent_changed && space.is_active(platform) {
                        platform.flush_all();
                    }
                    return Err(err);
                }
            }
        }
        if parent_changed && space.is_active(platform) {
            platform.flush_all();
        }
        Ok(child)
    }

    // ------------------------------------------------------------- teardown

    /// `exit`: frees everything — every mapped frame's reference, the page
    /// tables, the directory, and each region's hold on its backing object
    /// (the last hold writes dirty file pages back and frees the object's
    /// frames). If the space is loaded, the kernel's directory is loaded
    /// first. Same as dropping the space.
    pub fn destroy(self) {
        drop(self);
    }

    fn teardown(&mut self) {
        let Some(space) = self.space.take() else {
            return;
        };
        if space.is_active(self.platform) {
            // SAFETY: the kernel's directory maps the kernel half every
            // space shares, so the running code stays mapped.
            unsafe { self.platform.set_root(self.kernel_dir) };
        }
        space.destroy(self.platform, &mut self.frames);
        for (start, region) in self.regions.take_all() {
            self.release_region(start, region);
        }
    }

    // ------------------------------------------------------- user copies

    /// Copies `src` to user memory at `dst`, as a user-mode write would:
    /// pages are faulted in and copy-on-write is broken through the fault
    /// handler, then bytes are written through the frames
    /// ([`Platform::write_frame`]), not through the MMU.
    ///
    /// `BadAddress` (EFAULT) when a page of the range is not writable user
    /// memory (no region, protection, past EOF); `OutOfMemory` when a page
    /// could not be brought in. On error, the pages before the bad one may
    /// have been written.
    pub fn copy_to_user(&mut self, dst: VirtAddr, src: &[u8]) -> Result<(), MmError> {
        let mut done = 0usize;
        while done < src.len() {
            let va = user_addr(dst, done)?;
            let off = va.page_offset() as usize;
            let n = (PAGE_SIZE - off).min(src.len() - done);
            let frame = self.user_frame(va, true)?;
            self.platform.write_frame(frame, off, &src[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Copies user memory at `src` into `dst`, as a user-mode read would
    /// (pages are faulted in). Errors as [`copy_to_user`](Self::copy_to_user).
    pub fn copy_from_user(&mut self, src: VirtAddr, dst: &mut [u8]) -> Result<(), MmError> {
        let mut done = 0usize;
        while done < dst.len() {
            let va = user_addr(src, done)?;
            let off = va.page_offset() as usize;
            let n = (PAGE_SIZE - off).min(dst.len() - done);
            let frame = self.user_frame(va, false)?;
            self.platform
                .read_frame(frame, off, &mut dst[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// The frame behind user address `va`, for a user read or write:
    /// walks the page table and, when the entry does not allow the access,
    /// runs the fault handler as for a user fault.
    fn user_frame(&mut self, va: VirtAddr, write: bool) -> Result<Frame, MmError> {
        for _ in 0..3 {
            let e = self
                .space()
                .entry(self.platform, va.page())
                .filter(|e| e.is_present());
            let mut code = ErrorCode::USER;
            if write {
                code |= ErrorCode::WRITE;
            }
            match e {
                Some(e)
                    if e.flags().contains(PteFlags::USER)
                        && (!write || e.flags().contains(PteFlags::WRITABLE)) =>
                {
                    return Ok(e.frame());
                }
                Some(_) => code |= ErrorCode::PRESENT,
                None => {}
            }
            match self.handle_fault(PageFault { addr: va, code }) {
                FaultOutcome::Resolved(_) => {}
                FaultOutcome::OutOfMemory => return Err(MmError::OutOfMemory),
                FaultOutcome::Signal(_) | FaultOutcome::KernelBug => {
                    return Err(MmError::BadAddress)
                }
            }
        }
        Err(MmError::BadAddress)
    }
}

/// `base + offset` as a user address; `BadAddress` past user space.
fn user_addr(base: VirtAddr, offset: usize) -> Result<VirtAddr, MmError> {
    let off = u32::try_from(offset).map_err(|_| MmError::BadAddress)?;
    match base.checked_add(off) {
        Some(va) if va.as_u32() < USER_END => Ok(va),
        _ => Err(MmError::BadAddress),
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

impl<P: Platform + ?Sized, F: FrameSource + Clone> Drop for VmSpace<'_, P, F> {
    fn drop(&mut self) {
        self.teardown();
    }
}
