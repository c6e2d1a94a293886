//! Allocation: the `kmalloc` family. The quick-list and best-list fast
//! paths, aligned requests, physically contiguous requests, and carving an
//! allocated block out of a free one.

use core::ptr::NonNull;

use super::growth::Contiguity;
use super::quick::{QUICK_LIMIT, QUICK_REQUEST};
use super::tag::{flip_flags, PREV_FREE};
use super::{Heap, HeapBackend, GRANULE, HEADER, MIN_BLOCK, NIL, SENTINEL};
use crate::addr::PhysAddr;
use crate::error::MmError;
use crate::layout::PAGE_SIZE;

/// The alignments of at most [`GRANULE`] (1, 2, 4, 8 and 16), as bits: one
/// bit test tells a request that every block satisfies.
const SMALL_ALIGNS: u32 = 1 << 1 | 1 << 2 | 1 << 4 | 1 << 8 | 1 << 16;
const _: () = assert!(GRANULE == 16);

impl<B: HeapBackend> Heap<B> {
    /// Block size for a request of `size` bytes.
    #[inline(always)]
    pub(super) fn block_size(&self, size: usize) -> Result<usize, MmError> {
        let rounded = match size.checked_add(HEADER + GRANULE - 1) {
            Some(v) if v <= u32::MAX as usize => v & !(GRANULE - 1),
            _ => return Err(MmError::InvalidArgument),
        };
        let bsize = if rounded < MIN_BLOCK {
            MIN_BLOCK
        } else {
            rounded
        };
        if bsize > self.max_len - SENTINEL {
            return Err(MmError::OutOfMemory);
        }
        Ok(bsize)
    }

    /// `kmalloc`: `size` bytes aligned to `align` (a power of two; at least 16
    /// is always given). Errors: [`MmError::InvalidArgument`] for a bad
    /// alignment or a size that overflows when rounded,
    /// [`MmError::OutOfMemory`] when the heap cannot grow enough (or a backend
    /// error). Nothing changes on error (but see the module docs on quick
    /// lists).
    #[inline]
    pub fn alloc(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, MmError> {
        // Small-object fast path: a small size with an alignment of at most
        // 16 (one bit test) pops its quick list.
        if align < 32 && SMALL_ALIGNS & (1 << align) != 0 {
            if size <= QUICK_REQUEST {
                let c = (size + HEADER).div_ceil(GRANULE).max(MIN_BLOCK / GRANULE);
                let head = self.quick_heads[c];
                if head != 0 {
                    return self.pop_quick(c, head as usize);
                }
                return self.alloc_fit(c * GRANULE);
            }
            return self.alloc_fit(self.block_size(size)?);
        }
        self.alloc_general(size, align)
    }

    /// [`Heap::alloc`] for a request of `size` bytes whose block size
    /// `bsize` is already known (`block_size(size)`): `realloc`'s new block,
    /// without rounding the size again.
    #[inline(always)]
    pub(super) fn alloc_rounded(
        &mut self,
        size: usize,
        bsize: usize,
        align: usize,
    ) -> Result<NonNull<u8>, MmError> {
        if align < 32 && SMALL_ALIGNS & (1 << align) != 0 {
            if bsize < QUICK_LIMIT {
                let c = bsize / GRANULE;
                let head = self.quick_heads[c];
                if head != 0 {
                    return self.pop_quick(c, head as usize);
                }
            }
            return self.alloc_fit(bsize);
        }
        self.alloc_general(size, align)
    }

    /// A 16-aligned block of `bsize` bytes from the free lists (growing the
    /// heap if needed).
    #[inline]
    pub(super) fn alloc_fit(&mut self, bsize: usize) -> Result<NonNull<u8>, MmError> {
        let (off, bs) = match self.find_listed(bsize)? {
            Some((off, bs, b)) => {
                self.pop_head(b, off);
                (off, bs)
            }
            None => {
                if self.len == self.max_len && self.relieve(bsize)? {
                    return self.alloc_fit(bsize);
                }
                let (off, bs) = match self.top_block_fit(bsize)? {
                    Some(found) => found,
                    None => self.make_room(bsize)?,
                };
                self.unlink(off, bs);
                (off, bs)
            }
        };
        self.carve(off, bs, off + HEADER, bsize);
        Ok(self.ptr_at(off + HEADER))
    }

    /// No listed block fits `bsize` and the heap cannot grow: if the top
    /// block (its header checked) is gone or would be left under half the
    /// heap, merges the quick lists first, so that the room left is not
    /// kept in pieces by unmerged quick blocks (heap efficiency in talc's
    /// protocol, 4 MiB: 89.6% without this, 90.7% with it). Returns whether
    /// it merged any. Each quick block is merged at most once per free, so
    /// this costs a heap under pressure at most what merging every free
    /// would.
    #[cold]
    #[inline(never)]
    fn relieve(&mut self, bsize: usize) -> Result<bool, MmError> {
        let top = if self.top_block == NIL {
            0
        } else {
            self.checked_free_size(self.top_block as usize)?
        };
        if top >= self.len / 2 + bsize || self.quick_blocks() == 0 {
            return Ok(false);
        }
        self.flush_quick()?;
        Ok(true)
    }

    /// `alloc` for larger sizes and alignments.
    pub(super) fn alloc_general(
        &mut self,
        size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, MmError> {
        let bsize = self.block_size(size)?;
        if !align.is_power_of_two() {
            return Err(MmError::InvalidArgument);
        }
        if align <= GRANULE {
            return self.alloc_fit(bsize);
        }
        // A small block with a larger alignment: one of the first blocks of
        // its quick list serves if it happens to be aligned.
        if bsize < QUICK_LIMIT && self.quick_heads[bsize / GRANULE] != 0 {
            if let Some(p) = self.pop_quick_aligned(bsize / GRANULE, align)? {
                return Ok(p);
            }
        }
        // Small alignments: the block found for the size alone often fits
        // with the payload aligned (or with room for a gap block in front);
        // else the first listed block of at least `bsize + align + MIN_BLOCK`
        // bytes surely does (one more search, no block read twice).
        if let Some((off, bs, b)) = self.find_listed(bsize)? {
            if let Some(p) = self.fit_aligned(off, bs, 0, align, bsize) {
                self.pop_head(b, off);
                self.carve(off, bs, p, bsize);
                return Ok(self.ptr_at(p));
            }
            let need = bsize
                .checked_add(align)
                .and_then(|n| n.checked_add(MIN_BLOCK));
            if let Some(need) = need.filter(|&n| n <= self.max_len - SENTINEL) {
                if let Some((off, bs, b)) = self.find_listed(need)? {
                    if let Some(p) = self.fit_aligned(off, bs, 0, align, bsize) {
                        self.pop_head(b, off);
                        self.carve(off, bs, p, bsize);
                        return Ok(self.ptr_at(p));
                    }
                }
            }
        }
        self.alloc_aligned_slow(bsize, align, Contiguity::Virtual)
            .map(|(p, _)| p)
    }

    /// `kmalloc_aligned`: `size` bytes on a page boundary.
    pub fn alloc_page_aligned(&mut self, size: usize) -> Result<NonNull<u8>, MmError> {
        self.alloc(size, PAGE_SIZE)
    }

    /// `kmalloc_physical` / `kmalloc_aligned_physical`: `size` bytes (16-byte
    /// or page-aligned) whose memory is physically contiguous, with the
    /// physical address of the first byte.
    ///
    /// A candidate block is placed as usual and its pages' physical addresses
    /// are checked; if they are not contiguous, the heap grows at its top by a
    /// physically contiguous run (`map(.., contiguous = true)`) and the block
    /// is carved from the new pages. The returned memory is freed with
    /// [`Heap::free`].
    pub fn alloc_physical(
        &mut self,
        size: usize,
        page_aligned: bool,
    ) -> Result<(NonNull<u8>, PhysAddr), MmError> {
        let bsize = self.block_size(size)?;
        let align = if page_aligned { PAGE_SIZE } else { GRANULE };
        let (p, phys) = self.alloc_aligned_slow(bsize, align, Contiguity::Physical)?;
        Ok((p, phys.ok_or(MmError::NotMapped)?))
    }

    /// The general path: alignment above 16 and/or physical contiguity.
    pub(super) fn alloc_aligned_slow(
        &mut self,
        bsize: usize,
        align: usize,
        memory: Contiguity,
    ) -> Result<(NonNull<u8>, Option<PhysAddr>), MmError> {
        let physical = memory == Contiguity::Physical;
        if !align.is_power_of_two() {
            return Err(MmError::InvalidArgument);
        }
        let span = self.max_len - SENTINEL;
        let extra = if align > GRANULE {
            align + MIN_BLOCK
        } else {
            0
        };
        let need = match bsize.checked_add(extra) {
            Some(n) if n <= span => n,
            _ => return Err(MmError::OutOfMemory),
        };
        let payload = bsize - HEADER;
        // A block found for the size alone may fit with the payload aligned
        // (after a merge of the quick lists too); else one that surely fits.
        for found in [self.find_free(bsize)?, self.find_free(need)?] {
            let Some((off, size)) = found else { continue };
            if let Some(p) = self.fit_aligned(off, size, 0, align, bsize) {
                let phys = if physical {
                    self.phys_contiguous(p, payload)
                } else {
                    None
                };
                if !physical || phys.is_some() {
                    self.unlink(off, size);
                    self.carve(off, size, p, bsize);
                    return Ok((self.ptr_at(p), phys));
                }
            }
        }
        // Grow: for a physical request, by a contiguous run that will hold the
        // whole payload (it starts at the old top). If the heap cannot grow,
        // merge the quick lists and look again.
        let old_len = self.len;
        let grow_need = if physical {
            need + PAGE_SIZE + MIN_BLOCK
        } else {
            need
        };
        let grown = if grow_need > span {
            Err(MmError::OutOfMemory)
        } else {
            self.grow(grow_need, memory)
        };
        if let Err(e) = grown {
            if self.quick_blocks() != 0 {
                self.flush_quick()?;
                return self.alloc_aligned_slow(bsize, align, memory);
            }
            return Err(e);
        }
        let min_p = if physical { old_len } else { 0 };
        let last = self.last_free()?.ok_or(MmError::HeapCorrupted)?;
        let (off, size) = last;
        let p = self
            .fit_aligned(off, size, min_p, align, bsize)
            .ok_or(MmError::OutOfMemory)?;
        let phys = if physical {
            Some(
                self.phys_contiguous(p, payload)
                    .ok_or(MmError::HeapCorrupted)?,
            )
        } else {
            None
        };
        self.unlink(off, size);
        self.carve(off, size, p, bsize);
        Ok((self.ptr_at(p), phys))
    }

    /// Where a block of `bsize` bytes whose payload is `align`-aligned and at
    /// offset `>= min_p` goes inside the free block `[off, off + size)`: the
    /// payload offset, or `None` if it does not fit. The gap in front is 0 or
    /// at least `MIN_BLOCK` (it becomes a free block).
    #[inline(always)]
    pub(super) fn fit_aligned(
        &self,
        off: usize,
        size: usize,
        min_p: usize,
        align: usize,
        bsize: usize,
    ) -> Option<usize> {
        // Alignment is relative to the heap start, which is page-aligned; for
        // larger alignments use the absolute address.
        let abs = self.start;
        let want = (off + HEADER).max(min_p);
        let up = |x: usize| Some(x.checked_add(abs)?.checked_add(align - 1)? & !(align - 1));
        let mut p = up(want)? - abs;
        let gap = p - HEADER - off;
        if gap != 0 && gap < MIN_BLOCK {
            p = up((off + HEADER + MIN_BLOCK).max(want))? - abs;
        }
        (p - HEADER - off + bsize <= size).then_some(p)
    }

    /// The physical address of `[p, p + len)` (heap offsets) if it is
    /// physically contiguous.
    pub(super) fn phys_contiguous(&self, p: usize, len: usize) -> Option<PhysAddr> {
        let addr = self.start + p;
        let first = self.backend.phys(addr)?;
        let last = addr + len.max(1) - 1;
        let mut page = (addr & !(PAGE_SIZE - 1)) + PAGE_SIZE;
        while page <= last {
            let expect = first.as_usize() + (page - addr);
            if self.backend.phys(page).map(PhysAddr::as_usize) != Some(expect) {
                return None;
            }
            page += PAGE_SIZE;
        }
        Some(first)
    }

    /// Turns the (unlinked) free block `[off, off + size)` into an allocated
    /// block of `bsize` bytes with payload at `p`; the gap in front and the
    /// tail (if at least `MIN_BLOCK`) go back to the free lists.
    #[inline(always)]
    pub(super) fn carve(&mut self, off: usize, size: usize, p: usize, mut bsize: usize) {
        let b = p - HEADER;
        let gap = b - off;
        let mut prev_flag = 0;
        if gap != 0 {
            self.write_free(off, gap, 0);
            self.insert(off, gap);
            self.free_blocks += 1;
            prev_flag = PREV_FREE;
        }
        let rest = size - gap - bsize;
        if rest >= MIN_BLOCK {
            let r = b + bsize;
            self.write_free(r, rest, 0);
            self.insert(r, rest);
        } else {
            bsize += rest;
            self.free_blocks -= 1;
            let n = b + bsize;
            // The block after a free block has `PREV_FREE`: clear it (a
            // damaged header stays damaged, for its next check to find).
            let nhdr = self.read_header(n);
            self.write_header(n, nhdr ^ flip_flags(PREV_FREE));
        }
        self.set_tag(b, bsize as u32 | prev_flag);
        self.free_bytes -= bsize;
        self.live_blocks += 1;
    }
}
