//! `kfree`: the quick-list push or the checked merge of a block with its
//! free neighbours, and what happens when nothing is allocated any more.

use core::ptr::NonNull;

use super::binning::{BIN_SLOTS, BITMAP_WORDS};
use super::growth::Shrink;
use super::quick::{QUICK_CLASSES, QUICK_REQUEST};
use super::tag::{
    corrupted, flip_flags, header_ok, prefetch_line, size_of_tag, tag_of_header, FREE, PREV_FREE,
    QUICK,
};
use super::{Heap, HeapBackend, FIRST_BLOCK, GRANULE, HEADER, MIN_BLOCK, NIL, SENTINEL};
use crate::error::MmError;

/// Where the header after the block at payload `p` lies if that block was
/// allocated for a request of `size` bytes: the block starts at `p - HEADER`
/// (`p` a multiple of 16) and is `size + HEADER` rounded up to 16 bytes long
/// (as `block_size` rounds requests above the smallest block), so the next
/// header is at that end rounded up, minus the header. (The heap's start is
/// page-aligned, so rounding the address rounds the offset.)
#[inline(always)]
fn successor_header(p: *const u8, size: usize) -> *const u8 {
    let end = p
        .addr()
        .wrapping_add(size)
        .wrapping_add(HEADER + GRANULE - 1)
        & !(GRANULE - 1);
    p.with_addr(end.wrapping_sub(HEADER))
}

/// Starts loading what freeing or resizing the block at `ptr` reads first:
/// its header and the header after it, for a block that was requested with
/// `size` bytes (a `Layout`'s size). For a caller that holds the heap
/// behind a lock, before it takes the lock: the loads then overlap the wait
/// for the lock (at least the wait for the lock instruction's ordering)
/// instead of starting after it. [`LockedHeap`](super::LockedHeap) does this
/// before every `dealloc` and `realloc`.
///
/// Any pointer and size may be given: prefetching reads nothing
/// architecturally and cannot fault; a wrong pair wastes two prefetches.
#[inline(always)]
pub fn prefetch_block(ptr: *const u8, size: usize) {
    prefetch_line(ptr.wrapping_sub(HEADER));
    prefetch_line(successor_header(ptr, size));
}

impl<B: HeapBackend> Heap<B> {
    /// `kfree`: frees a block returned by this heap. Errors (the heap is left
    /// unchanged): [`MmError::BadPointer`] for a pointer outside the heap, or
    /// not at the start of a block; [`MmError::DoubleFree`] for a block that
    /// is already free; [`MmError::HeapCorrupted`] when this block's header or
    /// a neighbour's header or footer is damaged.
    #[inline]
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), MmError> {
        self.free_block(ptr)
    }

    /// The body of [`Heap::free`] and [`Heap::free_sized`].
    #[inline(always)]
    fn free_block(&mut self, ptr: NonNull<u8>) -> Result<(), MmError> {
        let (off, tag) = self.check_block(ptr)?;
        if let Some(c) = self.quick_class(off, size_of_tag(tag)) {
            // Fast path: onto the quick list, merged later (no neighbour is
            // touched, so none needs checking beyond `check_block`).
            return self.push_quick(off, tag, c);
        }
        self.free_merge(off, tag)
    }

    /// [`Heap::free`] told the size the block was requested with (a
    /// `Layout`'s size, as `GlobalAlloc::dealloc` has it): the same checks
    /// and errors, the size only a hint. A block of that size that is
    /// merged when freed (too large for the quick lists) reads the header
    /// after it, whose address only its own header gives; with the hint,
    /// that load starts at once, beside the load of its own header, instead
    /// of after it (talc's frees get the same from the layout). Nothing
    /// trusts the hint: a wrong one costs a useless prefetch.
    #[inline(always)]
    pub fn free_sized(&mut self, ptr: NonNull<u8>, size: usize) -> Result<(), MmError> {
        if size >= QUICK_REQUEST {
            self.prefetch_successor(ptr, size);
        }
        self.free_block(ptr)
    }

    /// Prefetches the header that follows the block at `ptr` if that block
    /// was allocated for a request of `size` bytes (see [`Self::free_sized`]).
    #[inline(always)]
    pub(super) fn prefetch_successor(&self, ptr: NonNull<u8>, size: usize) {
        prefetch_line(successor_header(ptr.as_ptr(), size));
    }

    /// The rest of [`Heap::free`] for a block that is not quick-listed:
    /// checks its neighbours, then merges it.
    #[inline(never)]
    pub(super) fn free_merge(&mut self, off: usize, tag: u32) -> Result<(), MmError> {
        self.merge_block(off, tag)?;
        self.live_blocks -= 1;
        self.after_free()
    }

    /// Checks the block at `off` (allocated or quick-listed, `tag` without
    /// `QUICK`, its own header checked) and its neighbours as
    /// [`Self::check_size`] and [`Self::check_next`] do (and a free
    /// predecessor's footer and header), then merges it with
    /// its free neighbours into one listed free block — reading every
    /// header and footer once (the checks and the merge share the reads).
    /// Nothing changes on error. The caller adjusts `live_blocks`.
    #[inline(always)]
    pub(super) fn merge_block(&mut self, off: usize, tag: u32) -> Result<(), MmError> {
        let size = size_of_tag(tag);
        let end = self.len - SENTINEL;
        if size < MIN_BLOCK || size > end - off {
            return Err(corrupted());
        }
        // The successor's header (the one an overflow of this block
        // clobbers first) and, if it is free, its size.
        let next = off + size;
        let nhdr = self.read_header(next);
        let ntag = tag_of_header(nhdr);
        if !header_ok(nhdr, next, self.check_key) || ntag & PREV_FREE != 0 {
            return Err(corrupted());
        }
        let nsize = if ntag & FREE != 0 {
            let nsize = size_of_tag(ntag);
            if nsize < MIN_BLOCK || nsize > end - next {
                return Err(corrupted());
            }
            nsize
        } else {
            0
        };
        // A free predecessor's footer and header.
        let psize = if tag & PREV_FREE != 0 {
            // `off >= FIRST_BLOCK + MIN_BLOCK` when a predecessor exists; the word
            // before `off` is in the heap either way (`off >= FIRST_BLOCK`).
            let psize = self.read_word(off - 4) as usize;
            if psize < MIN_BLOCK || psize > off - FIRST_BLOCK || !psize.is_multiple_of(GRANULE) {
                return Err(corrupted());
            }
            let phdr = self.read_header(off - psize);
            let ptag = tag_of_header(phdr);
            if !header_ok(phdr, off - psize, self.check_key)
                || ptag & (FREE | PREV_FREE) != FREE
                || size_of_tag(ptag) != psize
            {
                return Err(corrupted());
            }
            psize
        } else {
            0
        };
        // Checked: merge.
        self.free_bytes += size;
        let mut start = off;
        let mut total = size;
        if psize != 0 {
            // Mark the block itself free, so a second free of it is reported
            // even though it is merged into its predecessor.
            self.set_tag(off, size as u32 | FREE);
            start = off - psize;
            total += psize;
            self.unlink_listed(start, psize);
            self.free_blocks -= 1;
        }
        if nsize != 0 {
            // The top block needs no unlinking: the merged block becomes
            // the top block below.
            if next as u32 != self.top_block {
                self.unlink_listed(next, nsize);
            }
            total += nsize;
        } else {
            // Checked above, with `PREV_FREE` clear: set it.
            self.write_header(next, nhdr ^ flip_flags(PREV_FREE));
            self.free_blocks += 1;
        }
        self.write_free(start, total, 0);
        if start + total == end {
            self.top_block = start as u32;
            if self.len > self.min_len {
                self.shrink(Shrink::PastThreshold);
            }
        } else {
            self.insert_listed(start, total);
        }
        Ok(())
    }

    /// When nothing is allocated any more, merges the quick lists (so the
    /// heap is one free block and shrinks to its initial size).
    #[inline(always)]
    pub(super) fn after_free(&mut self) -> Result<(), MmError> {
        if self.live_blocks == 0 {
            return self.flush_empty();
        }
        Ok(())
    }

    /// Nothing is allocated any more: merges the quick lists and shrinks.
    #[cold]
    #[inline(never)]
    pub(super) fn flush_empty(&mut self) -> Result<(), MmError> {
        if !self.reset_empty() {
            self.flush_quick()?;
        }
        self.shrink(Shrink::PastThreshold);
        Ok(())
    }

    /// Nothing is allocated: if every header from the first block to the
    /// sentinel passes its check (each block free or quick-listed, sizes
    /// tiling the heap), makes the heap one free block again at once —
    /// emptying the lists and the quick lists — instead of merging the
    /// quick blocks one by one (a walk of ~10 instructions per block against
    /// a checked merge of ~100). Returns false, changing nothing, if a
    /// header fails: the block-by-block merge then reports it as usual.
    pub(super) fn reset_empty(&mut self) -> bool {
        let end = self.len - SENTINEL;
        let mut cur = FIRST_BLOCK;
        while cur < end {
            let hdr = self.read_header(cur);
            let tag = tag_of_header(hdr);
            let size = size_of_tag(tag);
            if !header_ok(hdr, cur, self.check_key)
                || tag & (FREE | QUICK) == 0
                || size < MIN_BLOCK
                || size > end - cur
            {
                return false;
            }
            cur += size;
        }
        match self.checked_tag(end) {
            Some(t) if t & !PREV_FREE == 0 => {}
            _ => return false,
        }
        self.bin_heads = [NIL; BIN_SLOTS];
        self.bin_bitmap = [0; BITMAP_WORDS];
        self.bin_summary = 0;
        self.quick_heads = [0; QUICK_CLASSES];
        self.quick_len = [0; QUICK_CLASSES];
        self.top_block = NIL;
        let size = end - FIRST_BLOCK;
        self.write_free(FIRST_BLOCK, size, 0);
        self.insert(FIRST_BLOCK, size);
        self.set_tag(end, PREV_FREE);
        self.free_bytes = size;
        self.free_blocks = 1;
        true
    }
}
