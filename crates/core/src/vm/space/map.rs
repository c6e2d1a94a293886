//! The mapping calls: `mmap`/`map`, `map_stack`, `munmap`, `mprotect` and
//! `msync`, and unmapping the pages of a range.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{narrows, page_of, pages_in, pte_flags, user_range, MapRequest, MapSource, VmSpace};
use crate::addr::{Frame, VirtAddr};
use crate::error::MmError;
use crate::frames::FrameSource;
use crate::layout::{PAGE_SHIFT, PAGE_SIZE};
use crate::paging::{Entry, PagingMode, TlbBatch};
use crate::platform::Platform;
use crate::vm::file::PageCache;
use crate::vm::object::VmObject;
use crate::vm::region::{Backing, Region, END_PAGE, MIN_PAGE};
use crate::vm::Prot;

impl<P: Platform + ?Sized, F: FrameSource + Clone, M: PagingMode> VmSpace<'_, P, F, M> {
    /// `mmap`: validates `req`, places the region (the hint if free, else
    /// the best-fitting free gap, found in O(log n)), and records it. No
    /// frame is allocated: pages come in on first touch. (The spec's raw
    /// six-integer form is `myos_abi::RawMman::mmap`, which validates the
    /// integers into a `MapRequest` and calls this.)
    ///
    /// Errors (nothing changes on error):
    /// - `InvalidArgument` (EINVAL): `length` 0; a file `offset` that is not
    ///   page-aligned, or `offset + length` past 4 GiB; `fixed` without an
    ///   address;
    /// - `Misaligned` (EINVAL): `fixed` at an unaligned address;
    /// - `OutOfRange` (EINVAL): `fixed` range outside
    ///   `USER_MMAP_MIN..USER_END`;
    /// - `AccessDenied` (EACCES): the file is not open for reading, or a
    ///   shared writable mapping of a file not open for writing;
    /// - `OutOfMemory` (ENOMEM): no free range is large enough.
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
    /// [`STACK_GUARD_GAP`]: crate::vm::STACK_GUARD_GAP
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

    pub(super) fn unmap_range(&mut self, lo: u32, hi: u32) {
        self.regions.split_at(lo);
        self.regions.split_at(hi);
        let removed = self.regions.remove_range(lo, hi);
        // One batch for the whole range: one shootdown, then the frames and
        // page tables are freed, then the regions' backings let go.
        let mut batch = TlbBatch::new();
        for (start, region) in &removed {
            self.unmap_pages(*start, region.end, &mut batch);
        }
        self.finish_batch(batch);
        for (start, region) in removed {
            self.release_region(start, region);
        }
    }

    /// Present pages in `lo..hi` with their entries (skips absent tables).
    pub(super) fn present_pages(&self, lo: u32, hi: u32) -> Vec<(u32, M::Entry)> {
        let space = &*self.space;
        let mut out = Vec::new();
        let mut p = lo;
        while p < hi {
            match space.entry(self.platform, page_of(p)) {
                None => p = (p | (M::ENTRIES as u32 - 1)).saturating_add(1),
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

    /// Unmaps the present pages of `lo..hi` into `batch` (their references
    /// and emptied page tables are released when the batch finishes).
    pub(super) fn unmap_pages(&mut self, lo: u32, hi: u32, batch: &mut TlbBatch) {
        let platform = self.platform;
        let space = &mut *self.space;
        let mut p = lo;
        while p < hi {
            match space.entry(platform, page_of(p)) {
                // No page table: skip to the next table's span (4 or 2 MiB).
                None => p = (p | (M::ENTRIES as u32 - 1)).saturating_add(1),
                Some(e) => {
                    if e.is_present() {
                        let r = space.unmap_batched(platform, page_of(p), batch);
                        debug_assert!(r.is_ok(), "unmapping a present page: {r:?}");
                    }
                    p += 1;
                }
            }
        }
    }

    /// Lets go of a removed region's backing (its pages are unmapped).
    pub(super) fn release_region(&mut self, start: u32, region: Region) {
        if let Backing::Object { object, offset, .. } = region.backing {
            if region.shared && object.is_file() && Arc::strong_count(&object) > 1 {
                let _ = object.writeback(self.platform, offset, offset + (region.end - start));
            }
            VmObject::release(object, self.platform, &mut self.frames);
        }
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
        // Narrowed entries go into one batch (one shootdown at the end);
        // widened ones need no invalidation anywhere.
        let (mut batch, mut widened) = (TlbBatch::new(), TlbBatch::local_only());
        for &s in &starts {
            let Some(region) = self.regions.update(s, |r| {
                r.prot = prot;
                r.clone()
            }) else {
                continue;
            };
            for (page, e) in self.present_pages(s, region.end) {
                let writable = self.may_write_in_place(s, &region, page, e.frame());
                let flags = pte_flags::<M>(prot, writable);
                let platform = self.platform;
                let space = &mut *self.space;
                if let Ok(flush) = space.protect(platform, page_of(page), flags) {
                    if narrows(e.attrs(), flags) {
                        batch.push(flush);
                    } else {
                        widened.push(flush);
                    }
                }
            }
        }
        self.finish_batch(batch);
        self.finish_batch(widened);
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
    pub(super) fn may_write_in_place(
        &self,
        start: u32,
        region: &Region,
        page: u32,
        frame: Frame,
    ) -> bool {
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
}
