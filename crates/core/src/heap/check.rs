//! Integrity checks: the checks `free`, `realloc` and `usable_size` make on
//! a pointer and the headers next to it, the classification of a failed
//! check (error paths only), and [`Heap::validate`], the full walk.

use core::ptr::NonNull;

use super::binning::{bin_of, BINS, BITMAP_WORDS};
use super::quick::{QUICK_CLASSES, QUICK_LIMIT};
use super::tag::{corrupted, header_ok, size_of_tag, tag_of_header, FREE, PREV_FREE, QUICK};
use super::{Heap, HeapBackend, FIRST_BLOCK, GRANULE, HEADER, MIN_BLOCK, NIL, SENTINEL};
use crate::error::MmError;
use crate::layout::PAGE_SIZE;

impl<B: HeapBackend> Heap<B> {
    /// Checks that `ptr` is a live block of this heap, with a size that
    /// lies in the heap; returns `(offset, tag)` of its header.
    #[inline(always)]
    pub(super) fn check_live(&self, ptr: NonNull<u8>) -> Result<(usize, u32), MmError> {
        let (off, tag) = self.check_block(ptr)?;
        self.check_size(off, tag)?;
        Ok((off, tag))
    }

    /// The size of the checked block at `off` is sane: at least `MIN_BLOCK`,
    /// and the block ends at or before the sentinel.
    #[inline(always)]
    pub(super) fn check_size(&self, off: usize, tag: u32) -> Result<(), MmError> {
        let size = size_of_tag(tag);
        if size < MIN_BLOCK || size > self.len - SENTINEL - off {
            return Err(corrupted());
        }
        Ok(())
    }

    /// The checks every free makes (the quick path makes no others): `ptr`
    /// is the payload of a live block of this heap. Returns `(offset, tag)`
    /// of its header. (The header after the block, which an overflow of it
    /// would clobber, is checked when that block is next touched.)
    #[inline(always)]
    pub(super) fn check_block(&self, ptr: NonNull<u8>) -> Result<(usize, u32), MmError> {
        // Payload offsets are multiples of 16 from `GRANULE` (the first
        // block's) up to the sentinel's.
        let p = ptr.as_ptr().addr().wrapping_sub(self.start);
        let limit = self.len - SENTINEL;
        if p.wrapping_sub(GRANULE) >= limit - FIRST_BLOCK || !p.is_multiple_of(GRANULE) {
            return Err(MmError::BadPointer);
        }
        let off = p - HEADER;
        let hdr = self.read_header(off);
        let tag = tag_of_header(hdr);
        if !header_ok(hdr, off, self.check_key) || tag & (FREE | QUICK) != 0 {
            return Err(self.block_error(off));
        }
        Ok((off, tag))
    }

    /// Why [`Self::check_block`] refused the block at `off` (error path).
    #[cold]
    #[inline(never)]
    pub(super) fn block_error(&self, off: usize) -> MmError {
        match self.checked_tag(off) {
            None => self.classify_bad_header(off),
            Some(tag) if tag & (FREE | QUICK) != 0 => MmError::DoubleFree,
            Some(_) => MmError::HeapCorrupted,
        }
    }

    /// The header at `next`, after a checked allocated block whose size has
    /// passed `check_size` (the header an overflow of that block clobbers
    /// first), and a free block's size there.
    #[inline(always)]
    pub(super) fn check_next(&self, next: usize) -> Result<(), MmError> {
        let nhdr = self.read_header(next);
        let ntag = tag_of_header(nhdr);
        if !header_ok(nhdr, next, self.check_key) || ntag & PREV_FREE != 0 {
            return Err(corrupted());
        }
        if ntag & FREE != 0 {
            let nsize = size_of_tag(ntag);
            if nsize < MIN_BLOCK || nsize > self.len - SENTINEL - next {
                return Err(corrupted());
            }
        }
        Ok(())
    }

    /// Why the header at `off` fails its check (error path only): walks the
    /// blocks from the start.
    #[cold]
    pub(super) fn classify_bad_header(&self, off: usize) -> MmError {
        let end = self.len - SENTINEL;
        let mut cur = FIRST_BLOCK;
        while cur < end {
            let Some(tag) = self.checked_tag(cur) else {
                return MmError::HeapCorrupted;
            };
            let size = size_of_tag(tag);
            if size < MIN_BLOCK || size > end - cur {
                return MmError::HeapCorrupted;
            }
            if off > cur && off < cur + size {
                return MmError::BadPointer;
            }
            if off == cur {
                return MmError::HeapCorrupted;
            }
            cur += size;
        }
        MmError::BadPointer
    }

    /// Walks the whole heap and checks every invariant: blocks tile the
    /// mapped heap up to the sentinel, every header's check word, sizes and
    /// alignment, `PREV_FREE` flags, footers, no two adjacent free blocks,
    /// every free block in the right list exactly once with consistent links,
    /// the bitmaps, the statistics, and that the backend maps every page.
    /// Returns [`MmError::HeapCorrupted`] on the first violation.
    pub fn validate(&self) -> Result<(), MmError> {
        let bad = Err(MmError::HeapCorrupted);
        if !self.len.is_multiple_of(PAGE_SIZE) || self.len < self.min_len || self.len > self.max_len
        {
            return bad;
        }
        let mut page = 0;
        while page < self.len {
            if self.backend.phys(self.start + page).is_none() {
                return bad;
            }
            page += PAGE_SIZE;
        }
        let end = self.len - SENTINEL;
        let (mut cur, mut prev_free) = (FIRST_BLOCK, false);
        let (mut blocks, mut frees, mut free_bytes, mut quicks) = (0, 0, 0, 0);
        let mut wild_seen = false;
        while cur < end {
            let Some(tag) = self.checked_tag(cur) else {
                return bad;
            };
            let size = size_of_tag(tag);
            if size < MIN_BLOCK
                || size > end - cur
                || !size.is_multiple_of(GRANULE)
                || (tag & PREV_FREE != 0) != prev_free
            {
                return bad;
            }
            let free = tag & FREE != 0;
            if tag & QUICK != 0 {
                if free || size >= QUICK_LIMIT {
                    return bad;
                }
                quicks += 1;
                free_bytes += size;
            }
            if free {
                if prev_free || self.read_word(cur + size - 4) as usize != size {
                    return bad;
                }
                // The top block is the free block that ends at the
                // sentinel; every other one must be in its own list.
                if (cur + size == end) != (self.top_block as usize == cur) {
                    return bad;
                }
                wild_seen |= cur + size == end;
                let mut x = if cur + size == end {
                    NIL
                } else {
                    self.bin_heads[bin_of(size)]
                };
                let mut steps = 0;
                while x != NIL && x as usize != cur {
                    x = self.read_word(x as usize + 8);
                    steps += 1;
                    if steps > self.len / MIN_BLOCK {
                        return bad;
                    }
                }
                if x == NIL && cur + size != end {
                    return bad;
                }
                frees += 1;
                free_bytes += size;
            }
            blocks += 1;
            prev_free = free;
            cur += size;
        }
        match self.checked_tag(end) {
            Some(t) if t & !PREV_FREE == 0 && (t & PREV_FREE != 0) == prev_free => {}
            _ => return bad,
        }
        // Lists: links, bins and bitmaps; their total length is the number of
        // free blocks found by the walk (so no list holds a stray block).
        // Quick lists: every entry a quick block of its class, lengths
        // consistent; their total is the number of quick blocks walked.
        let mut quick_listed = 0;
        for c in 0..QUICK_CLASSES {
            let (mut x, mut n) = (self.quick_heads[c], 0usize);
            while x != 0 {
                let Some(xo) = (x as usize).checked_sub(HEADER) else {
                    return bad;
                };
                if xo >= end || !x.is_multiple_of(GRANULE as u32) || quick_listed >= quicks {
                    return bad;
                }
                match self.checked_tag(xo) {
                    Some(t) if t & (QUICK | FREE) == QUICK && size_of_tag(t) / GRANULE == c => {}
                    _ => return bad,
                }
                n += 1;
                quick_listed += 1;
                x = self.read_word(xo + 8);
            }
            if n != self.quick_len[c] as usize {
                return bad;
            }
        }
        if quick_listed != quicks || quicks != self.quick_blocks() {
            return bad;
        }
        let mut listed = 0;
        for b in 0..BINS {
            let nonempty = self.bin_heads[b] != NIL;
            if nonempty != (self.bin_bitmap[b / 64] & (1 << (b % 64)) != 0) {
                return bad;
            }
            let (mut x, mut prev) = (self.bin_heads[b], NIL);
            while x != NIL {
                let xo = x as usize;
                if xo >= end
                    || xo < FIRST_BLOCK
                    || !(xo + HEADER).is_multiple_of(GRANULE)
                    || self.read_word(xo + 12) != prev
                {
                    return bad;
                }
                match self.checked_tag(xo) {
                    Some(t) if t & FREE != 0 && bin_of(size_of_tag(t)) == b => {}
                    _ => return bad,
                }
                listed += 1;
                if listed > frees {
                    return bad;
                }
                prev = x;
                x = self.read_word(xo + 8);
            }
        }
        for w in 0..BITMAP_WORDS {
            if (self.bin_bitmap[w] != 0) != (self.bin_summary & (1 << w) != 0) {
                return bad;
            }
        }
        if wild_seen != (self.top_block != NIL) {
            return bad;
        }
        if listed + wild_seen as usize != frees
            || frees != self.free_blocks
            || blocks != self.live_blocks + frees + quicks
            || free_bytes != self.free_bytes + self.quick_bytes()
        {
            return bad;
        }
        Ok(())
    }
}
