//! The memory behind a heap: the [`HeapBackend`] trait and the host
//! [`ArenaBackend`].

use alloc::vec;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::addr::PhysAddr;
use crate::error::MmError;
use crate::layout::PAGE_SIZE;

/// How a heap's pages are mapped (`create_heap`'s `supervisor` and
/// `readonly` arguments).
///
/// The heap stores these flags ([`Heap::flags`](super::Heap::flags)) and
/// passes them to every [`HeapBackend::map`] call; what they mean is the
/// backend's business. A paging backend maps the pages without the U/S bit
/// when `supervisor` is set and without R/W when `readonly` is set. The heap
/// writes its own headers into its pages, so a read-only heap only works where
/// supervisor writes ignore R/W (CR0.WP clear), as in the design this API
/// comes from; the kernel heap is `supervisor: true, readonly: false`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeapFlags {
    /// Only the kernel (ring 0) may access the pages.
    pub supervisor: bool,
    /// The pages are mapped read-only (for user mode; see above).
    pub readonly: bool,
}

impl HeapFlags {
    /// The kernel heap: supervisor-only, writable.
    pub const KERNEL: Self = Self {
        supervisor: true,
        readonly: false,
    };
}

/// Supplies the pages behind a [`Heap`](super::Heap).
///
/// The heap covers the virtual range `[start, max)`. It maps a prefix
/// `[start, top)` of it: at creation `[start, initial_end)`, then it grows by
/// mapping `[top, new_top)` and shrinks by unmapping `[new_top, top)`. A
/// paging backend implements [`map`](HeapBackend::map) as "allocate frames,
/// map them at `addr` with the flags" and [`unmap`](HeapBackend::unmap) as
/// "unmap and free the frames"; the heap never maps a page twice nor unmaps a
/// page it did not map.
///
/// # Safety
///
/// Implementors promise that:
/// - after [`map`](HeapBackend::map) returns `Ok`, the range is readable and
///   writable memory, used by nothing but the heap until it is unmapped;
/// - [`pointer`](HeapBackend::pointer)`(start)` returns a pointer to `start`
///   that may be offset to reach every mapped byte of `[start, max)` (its
///   provenance covers the whole range);
/// - [`phys`](HeapBackend::phys) is correct for every mapped byte, and every
///   range mapped with `contiguous = true` is physically contiguous.
pub unsafe trait HeapBackend {
    /// A pointer to `addr` whose provenance covers the heap's whole range (see
    /// the trait's safety contract). The kernel returns `addr as *mut u8`; a
    /// host arena offsets the pointer it owns. Called once, with the heap's
    /// start address.
    fn pointer(&self, addr: usize) -> *mut u8;

    /// Backs `[addr, addr + pages * 4096)` with memory. `addr` is
    /// page-aligned and inside the heap's range, `pages > 0`. When
    /// `contiguous` is set the frames must be physically contiguous (and
    /// `phys` of the range increases with the address). On error nothing may
    /// be left mapped.
    fn map(
        &mut self,
        addr: usize,
        pages: usize,
        contiguous: bool,
        flags: HeapFlags,
    ) -> Result<(), MmError>;

    /// Releases `[addr, addr + pages * 4096)`, which the heap mapped before
    /// and no longer uses.
    fn unmap(&mut self, addr: usize, pages: usize);

    /// The physical address behind the mapped address `addr` (`None` if it
    /// is not mapped).
    fn phys(&self, addr: usize) -> Option<PhysAddr>;
}

/// Fake physical address of an [`ArenaBackend`]'s first page.
pub const ARENA_PHYS_BASE: u32 = 0x0100_0000;

/// A heap backend over a plain memory region, for the host (tests, Miri,
/// benchmarks): no paging, `map` and `unmap` are bookkeeping only.
///
/// The usable range is the page-aligned part of the borrowed buffer,
/// [`start`](ArenaBackend::start)..[`end`](ArenaBackend::end). Mapped pages
/// form one interval that grows and shrinks at its top (the only pattern a
/// heap uses); any other `map` is refused with [`MmError::OutOfRange`] and any
/// other `unmap` is counted in [`bad_unmaps`](ArenaBackend::bad_unmaps), so
/// tests notice a heap that misuses its backend.
///
/// [`phys`](HeapBackend::phys) returns a *fake* physical address,
/// [`ARENA_PHYS_BASE`] plus the offset in the arena: physically contiguous
/// across the whole arena, so every request for contiguous pages succeeds.
/// A [`scattered`](ArenaBackend::scattered) arena instead gives pages
/// physically scattered frames unless they were mapped with
/// `contiguous = true` (so a heap must ask for contiguous runs to serve
/// physical requests, as with a real frame allocator). A page limit
/// ([`set_page_limit`](ArenaBackend::set_page_limit)) simulates running out
/// of frames.
#[derive(Debug)]
pub struct ArenaBackend<'a> {
    base: NonNull<u8>,
    pages: usize,
    lo: usize,
    hi: usize,
    limit: usize,
    maps: usize,
    unmaps: usize,
    bad_unmaps: usize,
    /// Scattered arenas only: bit `i` set when page `i` was mapped with
    /// `contiguous = true` (empty for a plain arena).
    contiguous: Vec<u64>,
    contiguous_maps: usize,
    _mem: PhantomData<&'a mut [u8]>,
}

// SAFETY: the backend owns its borrowed buffer exclusively (`&'a mut`), so it
// can move to another thread like the `&mut [u8]` it stands for.
unsafe impl Send for ArenaBackend<'_> {}

impl<'a> ArenaBackend<'a> {
    /// A backend over the whole pages inside `mem`. Fewer than one page
    /// gives an arena with no pages (every `map` fails).
    pub fn new(mem: &'a mut [u8]) -> Self {
        Self::with_frames(mem, false)
    }

    /// A backend over the whole pages inside `mem` (as [`ArenaBackend::new`])
    /// whose pages are *physically scattered*: page `i` of an arena of `n`
    /// pages has the fake frame `ARENA_PHYS_BASE + (2n - 1 - i) * 4096`,
    /// so no two pages mapped apart are physically contiguous (each page is
    /// physically right *below* the page virtually before it), except pages
    /// mapped with `contiguous = true`, which get the frames
    /// `ARENA_PHYS_BASE + i * 4096` (identity plus a constant: contiguous,
    /// and disjoint from the scattered frames). For tests of physical
    /// requests ([`Heap::alloc_physical`](super::Heap::alloc_physical)); at
    /// most half the pages of a plain arena (the frames of both kinds fit in
    /// 32 bits).
    pub fn scattered(mem: &'a mut [u8]) -> Self {
        Self::with_frames(mem, true)
    }

    fn with_frames(mem: &'a mut [u8], scattered: bool) -> Self {
        let len = mem.len();
        let raw = mem.as_mut_ptr();
        let skip = raw.align_offset(PAGE_SIZE).min(len);
        let max_pages = ((u32::MAX - ARENA_PHYS_BASE) as usize) / PAGE_SIZE;
        let max_pages = if scattered { max_pages / 2 } else { max_pages };
        let pages = ((len - skip) / PAGE_SIZE).min(max_pages);
        // SAFETY: `skip <= len`, so the pointer stays inside (or one past)
        // the buffer; it is non-null because `raw` is.
        let base = unsafe { NonNull::new_unchecked(raw.add(skip)) };
        Self {
            base,
            pages,
            lo: 0,
            hi: 0,
            limit: pages,
            maps: 0,
            unmaps: 0,
            bad_unmaps: 0,
            // At least one word, so `is_empty` means "not scattered".
            contiguous: if scattered {
                vec![0; pages.div_ceil(64).max(1)]
            } else {
                Vec::new()
            },
            contiguous_maps: 0,
            _mem: PhantomData,
        }
    }

    /// First address of the arena (page-aligned).
    pub fn start(&self) -> usize {
        self.base.as_ptr().addr()
    }

    /// End of the arena (exclusive, page-aligned).
    pub fn end(&self) -> usize {
        self.start() + self.pages * PAGE_SIZE
    }

    /// Pages currently mapped.
    pub fn mapped_pages(&self) -> usize {
        self.hi - self.lo
    }

    /// Successful `map` calls so far.
    pub fn map_calls(&self) -> usize {
        self.maps
    }

    /// `unmap` calls so far.
    pub fn unmap_calls(&self) -> usize {
        self.unmaps
    }

    /// Whether pages are physically scattered (see
    /// [`ArenaBackend::scattered`]).
    pub fn is_scattered(&self) -> bool {
        !self.contiguous.is_empty()
    }

    /// Successful `map` calls with `contiguous = true`.
    pub fn contiguous_maps(&self) -> usize {
        self.contiguous_maps
    }

    /// `unmap` calls that did not release the top of the mapped interval
    /// (always 0 for a correct heap).
    pub fn bad_unmaps(&self) -> usize {
        self.bad_unmaps
    }

    /// Refuses maps that would bring the mapped pages above `pages` (as if
    /// the frame allocator ran dry).
    pub fn set_page_limit(&mut self, pages: usize) {
        self.limit = pages.min(self.pages);
    }

    fn page_index(&self, addr: usize) -> Option<usize> {
        let off = addr.checked_sub(self.start())?;
        (off < self.pages * PAGE_SIZE).then_some(off / PAGE_SIZE)
    }
}

// SAFETY: the buffer is borrowed mutably for 'a, so nothing else uses it;
// `pointer` derives from the buffer's own pointer (provenance over the whole
// buffer); `phys` is injective (scattered frames lie above every identity
// frame), and increasing across every run mapped with `contiguous = true`
// (the whole arena for a plain one), so those runs are physically
// contiguous.
unsafe impl HeapBackend for ArenaBackend<'_> {
    fn pointer(&self, addr: usize) -> *mut u8 {
        self.base.as_ptr().with_addr(addr)
    }

    fn map(
        &mut self,
        addr: usize,
        pages: usize,
        contig: bool,
        _f: HeapFlags,
    ) -> Result<(), MmError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::Misaligned);
        }
        let first = self.page_index(addr).ok_or(MmError::OutOfRange)?;
        let end = first.checked_add(pages).ok_or(MmError::OutOfRange)?;
        if pages == 0 || end > self.pages {
            return Err(MmError::OutOfRange);
        }
        let empty = self.lo == self.hi;
        if !empty && first != self.hi {
            return Err(MmError::OutOfRange);
        }
        if self.mapped_pages() + pages > self.limit {
            return Err(MmError::OutOfMemory);
        }
        if empty {
            self.lo = first;
        }
        self.hi = end;
        self.maps += 1;
        self.contiguous_maps += contig as usize;
        if self.is_scattered() {
            for page in first..end {
                let (w, bit) = (page / 64, 1u64 << (page % 64));
                if contig {
                    self.contiguous[w] |= bit;
                } else {
                    self.contiguous[w] &= !bit;
                }
            }
        }
        Ok(())
    }

    fn unmap(&mut self, addr: usize, pages: usize) {
        self.unmaps += 1;
        match self.page_index(addr) {
            Some(first) if first >= self.lo && first + pages == self.hi => self.hi = first,
            _ => self.bad_unmaps += 1,
        }
        if self.hi == self.lo {
            self.lo = 0;
            self.hi = 0;
        }
    }

    fn phys(&self, addr: usize) -> Option<PhysAddr> {
        let page = self.page_index(addr)?;
        if page < self.lo || page >= self.hi {
            return None;
        }
        let off = addr - self.start();
        if self.is_scattered() && self.contiguous[page / 64] & (1 << (page % 64)) == 0 {
            let frame = 2 * self.pages - 1 - page;
            return Some(PhysAddr::new(
                ARENA_PHYS_BASE + (frame * PAGE_SIZE + off % PAGE_SIZE) as u32,
            ));
        }
        Some(PhysAddr::new(ARENA_PHYS_BASE + off as u32))
    }
}
