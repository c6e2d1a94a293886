//! The small-object fast path: per-size quick lists of freed blocks that are
//! not merged yet (LIFO, singly linked through the payload), popped by
//! `alloc`, pushed by `free`, and flushed (merged for real) when memory is
//! short, when the heap is empty, and on [`Heap::trim`].

use core::ptr::NonNull;

use super::tag::{flip_flags, header_ok, size_of_tag, tag_of_header, FREE, PREV_FREE, QUICK};
use super::{Heap, HeapBackend, FIRST_BLOCK, GRANULE, HEADER, MIN_BLOCK, SENTINEL};
use crate::error::MmError;

/// Blocks below this size are quick-listed when freed. Measured (see
/// `bench-heap`'s notes): the higher, the fewer list-path operations in
/// talc's random-actions workloads; the heap efficiency this costs is won
/// back by merging the quick lists when a heap that cannot grow is carved
/// down to under half (`Heap::relieve`).
pub(super) const QUICK_LIMIT: usize = 4096;
/// Quick lists, one per block size / 16 (entries 0 and 1 stay empty).
pub(super) const QUICK_CLASSES: usize = QUICK_LIMIT / GRANULE;
/// Longest quick list of any class.
const QUICK_MAX: usize = 32;
/// Bytes a quick list may hold (but at least one block; so all of them
/// hold at most 827 KiB).
const QUICK_BYTES: usize = 4096;
/// Longest quick list of each class: `QUICK_MAX` blocks or `QUICK_BYTES`
/// bytes, whichever is fewer, and at least one block.
pub(super) const QUICK_CAP: [u8; QUICK_CLASSES] = {
    let mut cap = [0u8; QUICK_CLASSES];
    let mut c = MIN_BLOCK / GRANULE;
    while c < QUICK_CLASSES {
        let n = QUICK_BYTES / (c * GRANULE);
        cap[c] = if n > QUICK_MAX {
            QUICK_MAX
        } else if n == 0 {
            1
        } else {
            n
        } as u8;
        c += 1;
    }
    cap
};
/// Largest request served by the quick lists (its block is below
/// [`QUICK_LIMIT`]).
pub(super) const QUICK_REQUEST: usize = QUICK_LIMIT - HEADER - GRANULE;

const _: () = assert!(QUICK_CAP[QUICK_CLASSES - 1] == 1 && QUICK_MAX <= u8::MAX as usize);
/// The bound the module docs give.
const _: () = assert!(QUICK_HELD <= 827 << 10);
/// Bytes all quick lists hold at most.
const QUICK_HELD: usize = {
    let (mut c, mut sum) = (MIN_BLOCK / GRANULE, 0);
    while c < QUICK_CLASSES {
        sum += QUICK_CAP[c] as usize * c * GRANULE;
        c += 1;
    }
    sum
};

impl<B: HeapBackend> Heap<B> {
    /// Takes the block with payload offset `p`, the head of quick list `c`,
    /// after checking its header and link.
    #[inline(always)]
    pub(super) fn pop_quick(&mut self, c: usize, p: usize) -> Result<NonNull<u8>, MmError> {
        let off = p - HEADER;
        let hdr = self.read_header(off);
        let tag = tag_of_header(hdr);
        let next = self.read_word(p);
        let want = (c * GRANULE) as u32 | QUICK;
        if !header_ok(hdr, off, self.check_key)
            || tag & !PREV_FREE != want
            || next as usize > self.len - SENTINEL
            || !next.is_multiple_of(GRANULE as u32)
        {
            return Err(MmError::HeapCorrupted);
        }
        self.quick_heads[c] = next;
        self.quick_len[c] -= 1;
        self.live_blocks += 1;
        // Checked above, with `QUICK` set: clear it.
        self.write_header(off, hdr ^ flip_flags(QUICK));
        Ok(self.ptr_at(p))
    }

    /// Takes the first block with an `align`-aligned payload among the first
    /// few blocks of quick list `c`, checking the headers and links it reads.
    #[inline]
    pub(super) fn pop_quick_aligned(
        &mut self,
        c: usize,
        align: usize,
    ) -> Result<Option<NonNull<u8>>, MmError> {
        // Each step reads the link of the block before (a dependent load,
        // often another cache line): the walk stays short.
        const DEPTH: usize = 2;
        let head = self.quick_heads[c] as usize;
        if (self.start + head) & (align - 1) == 0 {
            return self.pop_quick(c, head).map(Some);
        }
        let mut prev = head;
        for _ in 1..DEPTH {
            let p = self.read_word(prev) as usize;
            if p == 0 {
                break;
            }
            let off = p - HEADER;
            if p > self.len - SENTINEL || !p.is_multiple_of(GRANULE) {
                return Err(MmError::HeapCorrupted);
            }
            if (self.start + p) & (align - 1) == 0 {
                let hdr = self.read_header(off);
                let tag = tag_of_header(hdr);
                let next = self.read_word(p);
                if !header_ok(hdr, off, self.check_key)
                    || tag & !PREV_FREE != (c * GRANULE) as u32 | QUICK
                    || next as usize > self.len - SENTINEL
                    || !next.is_multiple_of(GRANULE as u32)
                {
                    return Err(MmError::HeapCorrupted);
                }
                self.write_word(prev, next);
                self.quick_len[c] -= 1;
                self.live_blocks += 1;
                self.write_header(off, hdr ^ flip_flags(QUICK));
                return Ok(Some(self.ptr_at(p)));
            }
            prev = p;
        }
        Ok(None)
    }

    /// The quick list that the block `[off, off + size)` goes onto when it
    /// is freed, if any: it is below [`QUICK_LIMIT`], its list has room, and
    /// it does not lie just below the free top of a heap that has grown
    /// (that one is merged at once, so the heap can shrink).
    #[inline(always)]
    pub(super) fn quick_class(&self, off: usize, size: usize) -> Option<usize> {
        let c = size / GRANULE;
        (size < QUICK_LIMIT
            && self.quick_len[c] < QUICK_CAP[c]
            && !self.is_shrinkable_top(off + size))
        .then_some(c)
    }

    /// Puts the checked, allocated block at `off` (of size `c * 16`, below
    /// [`QUICK_LIMIT`]) on quick list `c`, which has room.
    #[inline(always)]
    pub(super) fn push_quick(&mut self, off: usize, tag: u32, c: usize) -> Result<(), MmError> {
        // The header is valid with `QUICK` clear (checked by the caller, or
        // written by the heap): set it.
        debug_assert_eq!(self.checked_tag(off), Some(tag));
        let hdr = self.read_header(off);
        self.write_header(off, hdr ^ flip_flags(QUICK));
        self.write_word(off + HEADER, self.quick_heads[c]);
        self.quick_heads[c] = (off + HEADER) as u32;
        self.quick_len[c] += 1;
        self.live_blocks -= 1;
        if self.live_blocks == 0 {
            // Nothing is allocated any more.
            return self.flush_empty();
        }
        Ok(())
    }

    /// Frees every block of the quick lists for real (merging them). The
    /// heap does not shrink meanwhile: a request that flushes and is then
    /// refused must leave the heap's size as it was, and the room a merge
    /// makes at the top must stay for the request (it used to be given back
    /// at once, refusing requests that fit). Callers that want the heap to
    /// shrink call [`Self::shrink`] afterwards.
    ///
    /// Every block is checked first as a free would check it (its link and
    /// header, its neighbours' headers and footer), since a quick block
    /// or its successor may have been clobbered while it was listed. On a
    /// failed check the merge stops with [`MmError::HeapCorrupted`]: the
    /// blocks merged so far stay merged, the rest stay listed.
    #[cold]
    pub(super) fn flush_quick(&mut self) -> Result<(), MmError> {
        let min_len = core::mem::replace(&mut self.min_len, self.len);
        let done = self.flush_quick_lists();
        self.min_len = min_len;
        done
    }

    pub(super) fn flush_quick_lists(&mut self) -> Result<(), MmError> {
        let limit = self.len - SENTINEL;
        for c in 0..QUICK_CLASSES {
            loop {
                let q = self.quick_heads[c] as usize;
                if q == 0 {
                    break;
                }
                if q.wrapping_sub(GRANULE) >= limit - FIRST_BLOCK || !q.is_multiple_of(GRANULE) {
                    return Err(MmError::HeapCorrupted);
                }
                let off = q - HEADER;
                let hdr = self.read_header(off);
                let tag = tag_of_header(hdr) & !QUICK;
                if !header_ok(hdr, off, self.check_key)
                    || tag_of_header(hdr) & (QUICK | FREE) != QUICK
                    || size_of_tag(tag) != c * GRANULE
                    || off + c * GRANULE > limit
                {
                    return Err(MmError::HeapCorrupted);
                }
                let link = self.read_word(q);
                self.merge_block(off, tag)?;
                self.quick_heads[c] = link;
                self.quick_len[c] -= 1;
            }
            self.quick_len[c] = 0;
        }
        Ok(())
    }

    /// Blocks on the quick lists (a fixed-size sum).
    pub(super) fn quick_blocks(&self) -> usize {
        self.quick_len.iter().map(|&n| n as usize).sum()
    }

    /// Bytes in quick-listed blocks.
    pub(super) fn quick_bytes(&self) -> usize {
        (0..QUICK_CLASSES)
            .map(|c| self.quick_len[c] as usize * c * GRANULE)
            .sum()
    }
}
