//! `realloc` (in place when the block or its free successor allows, else by
//! moving) and `usable_size`.

use core::ptr::NonNull;

use super::growth::Shrink;
use super::tag::{flip_flags, size_of_tag, FREE, PREV_FREE};
use super::{Heap, HeapBackend, HEADER, MIN_BLOCK, SENTINEL};
use crate::error::MmError;

impl<B: HeapBackend> Heap<B> {
    /// The usable size of a live block: at least what was asked for (the
    /// rounding slack included). Pointer errors are those of [`Heap::free`].
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, MmError> {
        let (_, tag) = self.check_live(ptr)?;
        Ok(size_of_tag(tag) - HEADER)
    }

    /// Resizes a block to `new_size` bytes, in place when possible (shrinking,
    /// or growing into a free successor), else by allocating a new block with
    /// alignment `align`, copying the payload and freeing the old block.
    /// Pointer errors are those of [`Heap::free`], allocation errors those of
    /// [`Heap::alloc`]; on error the old block is untouched.
    pub fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        new_size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, MmError> {
        let (off, tag) = self.check_live(ptr)?;
        let size = size_of_tag(tag);
        let bsize = self.block_size(new_size)?;
        let next = off + size;
        if bsize <= size {
            // Only a split touches the successor.
            if size - bsize >= MIN_BLOCK {
                self.check_next(next)?;
                self.split_tail(off, size, bsize, tag & PREV_FREE);
            }
            return Ok(ptr);
        }
        // Growing: every path below touches the successor (to grow into it,
        // or to merge with it when the old block is freed): check it. The
        // predecessor is touched only by that merge, which checks it then.
        self.check_next(next)?;
        if self.grow_in_place(off, tag, size, bsize)? {
            return Ok(ptr);
        }
        let new = match self.alloc_rounded(new_size, bsize, align) {
            Ok(new) => new,
            Err(e) => {
                // Out of memory, after the allocation merged the quick lists
                // (which may have freed the successor, and set this block's
                // `PREV_FREE`): try in place once more.
                if e != MmError::HeapCorrupted
                    && self.grow_in_place(off, self.read_word(off), size, bsize)?
                {
                    return Ok(ptr);
                }
                return Err(e);
            }
        };
        // SAFETY: both payloads are live blocks of this heap, distinct (the old
        // one is still allocated), and the old payload has `size - HEADER`
        // bytes, fewer than the new one's.
        unsafe { core::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), size - HEADER) };
        // Since the checks above only the heap itself changed the old block
        // (merging quick blocks may have set its `PREV_FREE`): re-read it.
        let tag = self.read_word(off);
        if let Some(c) = self.quick_class(off, size) {
            // A damaged block that a merge of the quick lists (when the heap is
            // empty) runs into stays listed (`validate` reports it).
            let _ = self.push_quick(off, tag, c);
            return Ok(new);
        }
        match self.merge_block(off, tag) {
            Ok(()) => {
                self.live_blocks -= 1;
                // As above: the old block is freed in any case.
                let _ = self.after_free();
                Ok(new)
            }
            Err(e) => {
                // A damaged predecessor: the old block stays as it was, and
                // the new one goes back.
                let _ = self.free(new);
                Err(e)
            }
        }
    }

    /// [`Heap::realloc`] told the size the block was requested with (a
    /// `Layout`'s size, as `GlobalAlloc::realloc` has it): the same checks,
    /// errors and result, the old size only a hint. A growing `realloc`
    /// reads the header after the block (to grow into a free successor, or
    /// to merge with it when the block moves); with the hint that load
    /// starts beside the load of the block's own header (see
    /// [`Heap::free_sized`]).
    #[inline]
    pub fn realloc_sized(
        &mut self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, MmError> {
        if new_size > old_size {
            self.prefetch_successor(ptr, old_size);
        }
        self.realloc(ptr, new_size, align)
    }

    /// Grows the checked, allocated block `[off, off + size)` (its successor
    /// checked too) to `bsize` bytes in place if its successor is free and
    /// large enough; returns whether it did.
    #[inline(always)]
    fn grow_in_place(
        &mut self,
        off: usize,
        tag: u32,
        size: usize,
        bsize: usize,
    ) -> Result<bool, MmError> {
        let next = off + size;
        let ntag = self.read_word(next);
        if ntag & FREE == 0 || size + size_of_tag(ntag) < bsize {
            return Ok(false);
        }
        let nsize = size_of_tag(ntag);
        // The block after the free successor gets a new header: check
        // the old one first (it is touched).
        if self.checked_tag(next + nsize).is_none() {
            return Err(MmError::HeapCorrupted);
        }
        self.unlink(next, nsize);
        self.free_blocks -= 1;
        self.free_bytes -= nsize;
        let whole = size + nsize;
        // The block now ends where the free successor ended, and the
        // block after that has PREV_FREE set: clear it, then split.
        let after = off + whole;
        let ahdr = self.read_header(after);
        self.write_header(after, ahdr ^ flip_flags(PREV_FREE));
        self.set_tag(off, whole as u32 | (tag & PREV_FREE));
        self.split_tail(off, whole, bsize, tag & PREV_FREE);
        Ok(true)
    }

    /// Shrinks the allocated block `[off, off + size)` to `keep` bytes if the
    /// tail is big enough to be a block, merging it with a free successor.
    pub(super) fn split_tail(&mut self, off: usize, size: usize, keep: usize, prev_flag: u32) {
        let rest = size - keep;
        if rest < MIN_BLOCK {
            return;
        }
        self.set_tag(off, keep as u32 | prev_flag);
        let r = off + keep;
        let next = off + size;
        let ntag = self.read_word(next);
        let mut total = rest;
        if ntag & FREE != 0 {
            let nsize = size_of_tag(ntag);
            self.unlink(next, nsize);
            total += nsize;
        } else {
            // Allocated or quick: `PREV_FREE` clear; set it.
            let nhdr = self.read_header(next);
            self.write_header(next, nhdr ^ flip_flags(PREV_FREE));
            self.free_blocks += 1;
        }
        self.write_free(r, total, 0);
        self.insert(r, total);
        self.free_bytes += rest;
        if r + total == self.len - SENTINEL && self.len > self.min_len {
            self.shrink(Shrink::PastThreshold);
        }
    }
}
