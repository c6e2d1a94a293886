//! The kernel heap: `create_heap`, the `kmalloc` family, `kfree` and the
//! heap statistics, as a [`Heap`] over a [`HeapBackend`].
//!
//! # Algorithm
//!
//! TLSF-class segregated fits with boundary tags:
//!
//! - The mapped heap `[start, top)` starts with an 8-byte pad, then *blocks*
//!   that tile `[start + 8, top - 8)` exactly, then an 8-byte *end sentinel*
//!   (a permanently allocated block of size 0) at `top - 8`, so no merge
//!   ever reads past the heap; the first block never has a free
//!   predecessor, so no merge reads before it. Blocks start 8 bytes past a
//!   multiple of 16 and their sizes are multiples of 16, so every payload is
//!   16-aligned (as talc's and rlsf's are): requests aligned to 16 take the
//!   fast path like any other, and large copies are aligned.
//! - Every block starts with an 8-byte header, read and written as one word:
//!   `tag` (size | `FREE` | `PREV_FREE` | `QUICK`) and `check = tag ^ offset
//!   ^ key`, where the key is mixed from the heap's start address and is
//!   never a multiple of 8 (so zeroed memory never passes for a header). A
//!   free block also holds two free-list links
//!   (32-bit offsets) and a *footer* (its size) in its last word, so the block
//!   after it finds it in O(1). Free neighbours are always merged: a free block
//!   never touches another free block.
//! - Free blocks sit in 400 segregated lists: exact lists for blocks below
//!   256 bytes (16-byte steps), then 16 lists per power of two. A two-level
//!   bitmap finds the first non-empty
//!   list at or above a size in O(1); `alloc` tries the head of the request's
//!   own list first, then the first non-empty list above it (whose blocks all
//!   fit). Allocation and free are O(1); growth and shrinking add one
//!   backend call.
//! - Small-object fast path: a freed block under 1.5 KiB goes onto a per-size
//!   *quick list* (LIFO, singly linked, 16-byte size steps, flagged `QUICK`
//!   in its header) instead of being merged, and an allocation of that size
//!   with an alignment of at most 16 pops it: a handful of instructions and
//!   one header check each way (the block's own header and nothing else),
//!   no list or bitmap of the merging lists touched, no statistics but the
//!   list's length and the count of allocated blocks. (A request with a
//!   larger alignment takes an aligned block among the first few of its
//!   list.) A list holds at most 32 blocks or 4 KiB, so the quick lists
//!   never hold more than 384 KiB. A block just
//!   below the free top of a heap that has grown is merged at once, so the
//!   heap can still shrink. Quick blocks count as free in the statistics.
//!   They are merged for real (the lists are flushed) when no free block
//!   fits a request and the heap cannot grow, when nothing is allocated any
//!   more, and on [`Heap::trim`].
//! - Sizes are multiples of 16 bytes; the smallest block is 32 bytes (24
//!   usable); an allocated block costs its 8-byte header.
//!
//! # Integrity checks
//!
//! `free`, `realloc` and `usable_size` check, before changing anything: the
//! pointer lies in the mapped heap and is a 16-aligned payload offset; its
//! header's `check` matches; the block is allocated (not free, not on a
//! quick list). Every header is checked when the heap next *touches* it,
//! before anything changes: before a merge, a resize or a move, the block's
//! size and the next block's header (the one an overflow of this block
//! clobbers first), a free successor's size, and a free predecessor's
//! footer and header when the block is merged into it (a moving `realloc`
//! merges the old block after the copy: if that check fails, the new block
//! is freed again and the old one stays as it was); popping a quick block
//! checks its header, its size
//! class and its link; taking a free block from a list checks its header;
//! merging the quick lists checks every block as a free would; growing
//! and shrinking check the end sentinel and the free block before it.
//!
//! So a header clobbered by an overflow from the block before it is found
//! when that header is next touched: when the victim is freed, resized,
//! moved or taken from a list, when a merge (of either block, or of the
//! quick lists) reads it, or by [`Heap::validate`] — not necessarily when
//! the overflowing block is freed (a free onto a quick list reads only the
//! block's own header, like talc's and rlsf's frees read none but their
//! own). Failures are reported as [`MmError::BadPointer`] (foreign or
//! interior pointer), [`MmError::DoubleFree`] or [`MmError::HeapCorrupted`]
//! and leave the heap untouched. A header that fails its check is classified
//! by a walk over the heap (the error path only): a pointer inside a block is
//! `BadPointer`, a damaged header at the pointer or before it is
//! `HeapCorrupted`. A freed block keeps a valid `FREE` header (also when it is
//! merged into its predecessor), so freeing it again is `DoubleFree` until its
//! memory is reused.
//!
//! # Memory accounting
//!
//! The heap's size is `top - start` (mapped bytes). *Free* bytes are the sum
//! of the sizes of the free blocks, headers included (a free block of `n`
//! bytes can satisfy requests of up to `n - 8` bytes). *Used* bytes are
//! everything else: allocated blocks in full (header, payload, rounding) and
//! the 8-byte pad in front and the 8-byte end sentinel, so
//! `free + used == size` always. The statistics are exact and cheap:
//! counters cover the merging lists and the allocated blocks, and the quick
//! lists add up their lengths (a fixed 64-entry sum).
//!
//! # Special requests
//!
//! - `alloc(0, _)` returns a unique minimum-size block (24 usable bytes) that
//!   must be freed like any other, as `malloc(0)` does in glibc. A `NULL`
//!   return would be indistinguishable from running out of memory.
//! - Aligned requests (`align > 16`, e.g. page-aligned) split the padding in
//!   front of the block off as a free block, so it is not wasted.
//! - Physical requests return memory whose bytes are physically contiguous
//!   (usable for DMA); see [`Heap::alloc_physical`].
//! - A size whose rounding overflows 32 bits fails with
//!   [`MmError::InvalidArgument`], a request that cannot fit below `max`
//!   with [`MmError::OutOfMemory`]. Neither changes the heap's memory: its
//!   size, free and used bytes and live blocks stay the same (an
//!   out-of-memory request may have merged quick-listed free blocks first,
//!   which lowers the block counts).

//!
//! # Growth and shrinking
//!
//! When no free block fits, the heap maps pages at its top (extending the
//! top block), up to `max`: at least [`grow_step`] bytes — an eighth of
//! the heap, between 16 KiB and 1 MiB — or what the request needs if that
//! is more, so a growing heap makes O(log size) backend calls, not one per
//! page. Near `max` it maps what is left if that is enough; if the backend
//! refuses the step (out of frames), it retries with just the pages the
//! request needs. Physically contiguous runs (for
//! [`Heap::alloc_physical`]) are never rounded up to a step.
//!
//! After a free leaves a free block at the top, whole pages at the top are
//! returned to the backend when at least [`shrink_threshold`] bytes can go
//! (twice the growth step, so growing and shrinking never alternate at
//! every operation), or when the heap is completely free; the heap never
//! shrinks below its initial size. [`Heap::trim`] returns every releasable
//! page.

mod backend;
mod locked;
#[cfg(test)]
mod tests;

pub use backend::{ArenaBackend, HeapBackend, HeapFlags, ARENA_PHYS_BASE};
pub use locked::LockedHeap;

use core::ptr::NonNull;

use crate::addr::PhysAddr;
use crate::error::MmError;
use crate::layout::PAGE_SIZE;

/// Alignment of every returned pointer (and block sizes are multiples of it).
pub const GRANULE: usize = 16;
/// Bytes of header in front of every block's payload.
pub const HEADER: usize = 8;
/// Smallest block (header + two links + footer, rounded to [`GRANULE`]).
pub const MIN_BLOCK: usize = 32;
/// Offset of the first block: blocks start 8 bytes past a multiple of 16, so
/// every payload is 16-aligned. The 8 bytes in front are a permanent pad.
const FIRST: usize = GRANULE - HEADER;
/// Size of the end sentinel at `top - 8`.
const SENTINEL: usize = 8;
/// Smallest growth step (see [`grow_step`]).
pub const GROW_MIN: usize = 4 * PAGE_SIZE;
/// Largest growth step (see [`grow_step`]).
pub const GROW_MAX: usize = 256 * PAGE_SIZE;
/// Smallest number of free bytes at the top that makes the heap give pages
/// back after a free (see [`shrink_threshold`]).
pub const SHRINK_THRESHOLD: usize = 2 * GROW_MIN;

/// How much the heap grows by, at least, when `len` bytes are mapped and no
/// free block fits a request: an eighth of the heap, between [`GROW_MIN`]
/// (16 KiB) and [`GROW_MAX`] (1 MiB), in whole pages. (A request bigger than
/// that maps what it needs; near `max` the heap maps what is left up to
/// `max` if that is enough.) Growing by a fraction of the heap makes the
/// number of backend calls logarithmic in the heap's size rather than
/// linear, and leaves at most one step of mapped free memory at the top.
pub const fn grow_step(len: usize) -> usize {
    let s = len / 8;
    let s = if s < GROW_MIN {
        GROW_MIN
    } else if s > GROW_MAX {
        GROW_MAX
    } else {
        s
    };
    s & !(PAGE_SIZE - 1)
}

/// Free bytes at the top above which a free gives whole pages back, when
/// `len` bytes are mapped: twice [`grow_step`]`(len)` (so a heap that has
/// just grown does not shrink again at the next free, nor grow again at the
/// next allocation: growth and shrinking are amortised), at least
/// [`SHRINK_THRESHOLD`].
pub const fn shrink_threshold(len: usize) -> usize {
    2 * grow_step(len)
}
/// Largest heap span (`max - start`): block metadata is 32 bits wide.
pub const MAX_SPAN: usize = 0xFFFF_F000;

const FREE: u32 = 1;
const PREV_FREE: u32 = 2;
const QUICK: u32 = 4;
const FLAGS: u32 = 7;
const MAGIC: u32 = 0x6B48_6561;
const NIL: u32 = u32::MAX;

/// Blocks below this size are quick-listed when freed.
const QUICK_LIMIT: usize = 1536;
/// Quick lists, one per block size / 16 (entries 0 and 1 stay empty).
const QUICK_CLASSES: usize = QUICK_LIMIT / GRANULE;
/// Longest quick list of any class.
const QUICK_MAX: usize = 32;
/// Bytes a quick list may hold (so all of them hold at most 384 KiB).
const QUICK_BYTES: usize = 4096;
/// Longest quick list of each class: `QUICK_MAX` blocks or `QUICK_BYTES`
/// bytes, whichever is fewer.
const QUICK_CAP: [u8; QUICK_CLASSES] = {
    let mut cap = [0u8; QUICK_CLASSES];
    let mut c = MIN_BLOCK / GRANULE;
    while c < QUICK_CLASSES {
        let n = QUICK_BYTES / (c * GRANULE);
        cap[c] = if n > QUICK_MAX { QUICK_MAX } else { n } as u8;
        c += 1;
    }
    cap
};
/// Largest request served by the quick lists (its block is below
/// [`QUICK_LIMIT`]).
const QUICK_REQUEST: usize = QUICK_LIMIT - HEADER - GRANULE;

const SMALL_LIMIT: usize = 256;
const SMALL_BINS: usize = SMALL_LIMIT / GRANULE;
const SL_BITS: u32 = 4;
const SL_COUNT: usize = 1 << SL_BITS;
const FL_MIN: u32 = SMALL_LIMIT.trailing_zeros();
const BINS: usize = SMALL_BINS + (32 - FL_MIN as usize) * SL_COUNT;
const WORDS: usize = BINS.div_ceil(64);

const _: () = assert!(MIN_BLOCK >= HEADER + 8 + 4 && MIN_BLOCK.is_multiple_of(GRANULE));
const _: () = assert!(SMALL_LIMIT.is_power_of_two() && BINS == 400 && WORDS <= 32);
const _: () = assert!(QUICK_CAP[QUICK_CLASSES - 1] >= 2 && QUICK_MAX <= u8::MAX as usize);
const _: () = assert!(PAGE_SIZE.is_multiple_of(GRANULE) && MAX_SPAN.is_multiple_of(PAGE_SIZE));

/// The per-heap key of the check words: mixed from the heap's start so a
/// header copied from another heap fails its check, and never a multiple of
/// 8, so a zeroed header (tag 0, check 0) never passes at any block offset.
#[inline(always)]
const fn key_of(start: usize) -> u32 {
    (MAGIC ^ (start as u32).wrapping_mul(0x9E37_79B1).rotate_left(16)) | 5
}

/// The 8-byte header of the block at offset `off`, as one native word: the
/// tag in its first 4 bytes, the check word `tag ^ off ^ key` in the next 4
/// (so 32-bit reads at `off` see the tag on either endianness).
#[inline(always)]
const fn header_of(off: usize, tag: u32, key: u32) -> u64 {
    let check = tag ^ (off as u32) ^ key;
    if cfg!(target_endian = "little") {
        tag as u64 | (check as u64) << 32
    } else {
        check as u64 | (tag as u64) << 32
    }
}

/// Whether a header word read at offset `off` carries a valid check word:
/// `check ^ tag ^ off == key` (cheaper than rebuilding the word).
#[inline(always)]
const fn header_ok(hdr: u64, off: usize, key: u32) -> bool {
    ((hdr >> 32) as u32 ^ hdr as u32 ^ off as u32) == key
}

/// What to XOR into a valid header word to flip the `flags` of its tag: the
/// same bits of the check word flip with them (`check = tag ^ off ^ key`),
/// so the result is the valid header of the new tag, without recomputing
/// the check (on either endianness: the pattern is symmetric).
#[inline(always)]
const fn flip(flags: u32) -> u64 {
    flags as u64 | (flags as u64) << 32
}

/// The tag in a header word (see [`header_of`]).
#[inline(always)]
const fn tag_of_header(hdr: u64) -> u32 {
    if cfg!(target_endian = "little") {
        hdr as u32
    } else {
        (hdr >> 32) as u32
    }
}

/// The error for a damaged header or link, out of line (error paths only).
#[cold]
#[inline(never)]
fn corrupted() -> MmError {
    MmError::HeapCorrupted
}

/// Size of the block a tag describes.
#[inline(always)]
const fn size_of_tag(tag: u32) -> usize {
    (tag & !FLAGS) as usize
}

/// The free list that holds blocks of `size` bytes (`MIN_BLOCK <= size < 2^32`).
#[inline(always)]
const fn bin_of(size: usize) -> usize {
    if size < SMALL_LIMIT {
        size / GRANULE
    } else {
        let fl = usize::BITS - 1 - size.leading_zeros();
        let sl = (size >> (fl - SL_BITS)) & (SL_COUNT - 1);
        SMALL_BINS + (fl - FL_MIN) as usize * SL_COUNT + sl
    }
}

#[inline(always)]
const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// Statistics of a heap, all exact (see the module docs for "free" and
/// "used"). `free_bytes + used_bytes == heap_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Sum of the sizes of the free blocks, headers included.
    pub free_bytes: usize,
    /// Mapped bytes that are not free: allocated blocks in full, plus the
    /// 8-byte pad in front of the first block and the 8-byte end sentinel.
    pub used_bytes: usize,
    /// Mapped bytes (`top - start`).
    pub heap_bytes: usize,
    /// Blocks, allocated and free (the sentinel is not counted).
    pub total_blocks: usize,
    /// Free blocks.
    pub free_blocks: usize,
    /// Size of the largest free block, header included (0 if none); the
    /// largest request it can serve is 8 bytes less.
    pub largest_free: usize,
}

/// A kernel heap over `[start, max)`, backed by `B`. See the module docs.
pub struct Heap<B: HeapBackend> {
    backend: B,
    /// Pointer to `start`, with provenance over `[start, max)`.
    base: NonNull<u8>,
    start: usize,
    /// Mapped bytes: the heap is `[start, start + len)`.
    len: usize,
    /// Initial size: the heap never shrinks below it.
    min_len: usize,
    /// The heap never grows beyond `start + max_len`.
    max_len: usize,
    flags: HeapFlags,
    /// Key of the header check words (see [`key_of`]).
    key: u32,
    /// Bytes in free blocks (quick-listed blocks not included).
    free_bytes: usize,
    /// Free blocks (quick-listed blocks not included).
    free_blocks: usize,
    /// Allocated blocks (all blocks are these, the free ones and the quick
    /// ones; merges change only `free_blocks`).
    live: usize,
    /// The *top block*: the free block that ends at the sentinel, or `NIL`.
    /// It is kept out of the lists (as dlmalloc's "top chunk"): requests
    /// that no listed block fits are carved from it, growth extends it and
    /// shrinking cuts it, without list or bitmap updates.
    wild: u32,
    /// Bit `w` set when `words[w] != 0`.
    summary: u32,
    /// Bit `b` set when list `b` is non-empty.
    words: [u64; WORDS],
    /// Offset of the first block of each free list, or `NIL`.
    heads: [u32; BINS],
    /// Quick lists: freed small blocks, not merged yet, by size / 16. Each
    /// entry (and each block's link) is the *payload* offset of the next
    /// block (`off + HEADER`), 0 for none.
    quick: [u32; QUICK_CLASSES],
    quick_len: [u8; QUICK_CLASSES],
}

// SAFETY: the heap owns the memory behind `base` exclusively (backend
// contract); it moves between threads together with its backend.
unsafe impl<B: HeapBackend + Send> Send for Heap<B> {}

impl<B: HeapBackend> core::fmt::Debug for Heap<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heap")
            .field("start", &format_args!("{:#x}", self.start))
            .field("top", &format_args!("{:#x}", self.start + self.len))
            .field("max", &format_args!("{:#x}", self.start + self.max_len))
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

impl<B: HeapBackend> Heap<B> {
    /// `create_heap(start, initial_end, max, supervisor, readonly)`: a heap
    /// over `[start, max)` whose first `[start, initial_end)` is mapped now.
    ///
    /// `max` is an address (the heap's exclusive upper bound), as in the
    /// kernel design the API comes from. All three addresses must be
    /// page-aligned ([`MmError::Misaligned`]), with
    /// `0 < start < initial_end <= max` ([`MmError::InvalidArgument`]) and
    /// `max - start <= MAX_SPAN` ([`MmError::OutOfRange`]). Backend errors
    /// are returned as they are.
    pub fn new(
        mut backend: B,
        start: usize,
        initial_end: usize,
        max: usize,
        flags: HeapFlags,
    ) -> Result<Self, MmError> {
        if !start.is_multiple_of(PAGE_SIZE)
            || !initial_end.is_multiple_of(PAGE_SIZE)
            || !max.is_multiple_of(PAGE_SIZE)
        {
            return Err(MmError::Misaligned);
        }
        if start == 0 || initial_end <= start || max < initial_end {
            return Err(MmError::InvalidArgument);
        }
        if max - start > MAX_SPAN {
            return Err(MmError::OutOfRange);
        }
        let base = NonNull::new(backend.pointer(start)).ok_or(MmError::InvalidArgument)?;
        let len = initial_end - start;
        backend.map(start, len / PAGE_SIZE, false, flags)?;
        let mut heap = Self {
            backend,
            base,
            start,
            len,
            min_len: len,
            max_len: max - start,
            flags,
            key: key_of(start),
            free_bytes: 0,
            free_blocks: 0,
            live: 0,
            wild: NIL,
            summary: 0,
            words: [0; WORDS],
            heads: [NIL; BINS],
            quick: [0; QUICK_CLASSES],
            quick_len: [0; QUICK_CLASSES],
        };
        let size = len - SENTINEL - FIRST;
        heap.set_free(FIRST, size, 0);
        heap.insert(FIRST, size);
        heap.set_tag(FIRST + size, PREV_FREE);
        heap.free_bytes = size;
        heap.free_blocks = 1;
        Ok(heap)
    }

    /// The backend (e.g. to inspect mapped pages in tests).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The mapping flags given at creation.
    pub fn flags(&self) -> HeapFlags {
        self.flags
    }

    /// First address of the heap.
    pub fn start(&self) -> usize {
        self.start
    }

    /// End of the mapped heap (exclusive).
    pub fn top(&self) -> usize {
        self.start + self.len
    }

    /// Exclusive upper bound the heap may grow to.
    pub fn max(&self) -> usize {
        self.start + self.max_len
    }

    // ----- raw access ------------------------------------------------------

    /// Reads the word at heap offset `off`.
    ///
    /// Every caller passes a 4-aligned offset with `off + 4 <= len` (block
    /// headers, links and footers of blocks that tile the mapped heap, or
    /// offsets range-checked first); this is the heap's central invariant.
    #[inline(always)]
    fn rd(&self, off: usize) -> u32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: by the invariant above the word lies in the mapped heap,
        // which the backend keeps valid for the heap's exclusive use; `base`
        // is page-aligned so the read is aligned.
        unsafe { self.base.as_ptr().add(off).cast::<u32>().read() }
    }

    /// Writes the word at heap offset `off` (same invariant as [`Self::rd`]).
    #[inline(always)]
    fn wr(&mut self, off: usize, val: u32) {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: as in `rd`; `&mut self` gives exclusive access.
        unsafe { self.base.as_ptr().add(off).cast::<u32>().write(val) }
    }

    /// Reads the 8-byte header at heap offset `off` (8-aligned, with
    /// `off + 8 <= len`: the invariant of [`Self::rd`]).
    #[inline(always)]
    fn rd_hdr(&self, off: usize) -> u64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: as in `rd`; `base` is page-aligned and `off` 8-aligned.
        unsafe { self.base.as_ptr().add(off).cast::<u64>().read() }
    }

    /// Writes the 8-byte header at heap offset `off` (as [`Self::rd_hdr`]).
    #[inline(always)]
    fn wr_hdr(&mut self, off: usize, val: u64) {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: as in `rd_hdr`; `&mut self` gives exclusive access.
        unsafe { self.base.as_ptr().add(off).cast::<u64>().write(val) }
    }

    #[inline(always)]
    fn ptr_at(&self, off: usize) -> NonNull<u8> {
        // SAFETY: `off <= len` (a payload inside the mapped heap) and `base`
        // is non-null, so the result is a non-null in-bounds pointer.
        unsafe { self.base.add(off) }
    }

    /// Writes a block header with a fresh check word.
    #[inline(always)]
    fn set_tag(&mut self, off: usize, tag: u32) {
        self.wr_hdr(off, header_of(off, tag, self.key));
    }

    /// Reads the tag at `off` if its check word matches.
    #[inline(always)]
    fn tag(&self, off: usize) -> Option<u32> {
        let hdr = self.rd_hdr(off);
        let tag = tag_of_header(hdr);
        header_ok(hdr, off, self.key).then_some(tag)
    }

    /// Writes the header and footer of a free block.
    #[inline(always)]
    fn set_free(&mut self, off: usize, size: usize, extra: u32) {
        self.set_tag(off, size as u32 | FREE | extra);
        self.wr(off + size - 4, size as u32);
    }

    // ----- free lists --------------------------------------------------------

    /// Lists the free block `[off, off + size)`, or makes it the top block
    /// if it ends at the sentinel.
    #[inline(always)]
    fn insert(&mut self, off: usize, size: usize) {
        if off + size == self.len - SENTINEL {
            self.wild = off as u32;
            return;
        }
        let b = bin_of(size);
        let head = self.heads[b];
        self.wr(off + 8, head);
        self.wr(off + 12, NIL);
        if head != NIL {
            self.wr(head as usize + 12, off as u32);
        } else {
            self.words[b / 64] |= 1 << (b % 64);
            self.summary |= 1 << (b / 64);
        }
        self.heads[b] = off as u32;
    }

    /// Takes the free block `[off, off + size)` out of its list (or
    /// clears the top block if it is that).
    #[inline(always)]
    fn unlink(&mut self, off: usize, size: usize) {
        if off as u32 == self.wild {
            self.wild = NIL;
            return;
        }
        self.unlink_listed(off, size);
    }

    /// Takes the listed free block `[off, off + size)` (not the top block:
    /// e.g. a free predecessor, which a block follows) out of its list.
    #[inline(always)]
    fn unlink_listed(&mut self, off: usize, size: usize) {
        let next = self.rd(off + 8);
        let prev = self.rd(off + 12);
        if prev != NIL {
            self.wr(prev as usize + 8, next);
        } else {
            let b = bin_of(size);
            self.heads[b] = next;
            if next == NIL {
                self.words[b / 64] &= !(1 << (b % 64));
                if self.words[b / 64] == 0 {
                    self.summary &= !(1 << (b / 64));
                }
            }
        }
        if next != NIL {
            self.wr(next as usize + 12, prev);
        }
    }

    /// The first non-empty list at index `b` or above.
    #[inline(always)]
    fn first_bin_from(&self, b: usize) -> Option<usize> {
        let w = b / 64;
        if w >= WORDS {
            return None;
        }
        let bits = self.words[w] & (u64::MAX << (b % 64));
        if bits != 0 {
            return Some(w * 64 + bits.trailing_zeros() as usize);
        }
        let rest = self.summary & (u32::MAX << (w + 1));
        if rest == 0 {
            return None;
        }
        let w = rest.trailing_zeros() as usize;
        Some(w * 64 + self.words[w].trailing_zeros() as usize)
    }

    /// A free block of at least `need` bytes (`need < 2^32`), not unlinked.
    #[inline(always)]
    fn find(&self, need: usize) -> Result<Option<(usize, usize)>, MmError> {
        match self.find_bin(need)? {
            Some((off, size, _)) => Ok(Some((off, size))),
            None => self.wild_fit(need),
        }
    }

    /// The top block if it has at least `need` bytes (its header checked).
    #[inline(always)]
    fn wild_fit(&self, need: usize) -> Result<Option<(usize, usize)>, MmError> {
        if self.wild == NIL {
            return Ok(None);
        }
        let off = self.wild as usize;
        let size = self.free_size(off)?;
        Ok((size >= need).then_some((off, size)))
    }

    /// As [`Self::find`] among the listed blocks only (not the top block),
    /// with the list the block heads: `(off, size, bin)`.
    /// The header of a block read here is checked (it may have been
    /// clobbered by an overflow of the block before it).
    #[inline(always)]
    fn find_bin(&self, need: usize) -> Result<Option<(usize, usize, usize)>, MmError> {
        let b = bin_of(need);
        let head = self.heads[b];
        if head != NIL {
            let size = self.free_size(head as usize)?;
            if size >= need {
                return Ok(Some((head as usize, size, b)));
            }
        }
        let Some(b) = self.first_bin_from(b + 1) else {
            return Ok(None);
        };
        let off = self.heads[b] as usize;
        Ok(Some((off, self.free_size(off)?, b)))
    }

    /// The size of the listed free block at `off`, after checking its header.
    #[inline(always)]
    fn free_size(&self, off: usize) -> Result<usize, MmError> {
        let hdr = self.rd_hdr(off);
        let tag = tag_of_header(hdr);
        if !header_ok(hdr, off, self.key) || tag & FREE == 0 {
            return Err(corrupted());
        }
        Ok(size_of_tag(tag))
    }

    /// Unlinks the block at `off`, the head of list `b`.
    #[inline(always)]
    fn pop_head(&mut self, b: usize, off: usize) {
        let next = self.rd(off + 8);
        self.heads[b] = next;
        if next == NIL {
            self.words[b / 64] &= !(1 << (b % 64));
            if self.words[b / 64] == 0 {
                self.summary &= !(1 << (b / 64));
            }
        } else {
            self.wr(next as usize + 12, NIL);
        }
    }

    // ----- allocation ----------------------------------------------------------

    /// Block size for a request of `size` bytes.
    #[inline(always)]
    fn block_size(&self, size: usize) -> Result<usize, MmError> {
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
        // 16 (1, 2, 4, 8 or 16: one bit test) pops its quick list.
        const SMALL_ALIGNS: u32 = 1 << 1 | 1 << 2 | 1 << 4 | 1 << 8 | 1 << 16;
        const _: () = assert!(GRANULE == 16);
        if align < 32 && SMALL_ALIGNS & (1 << align) != 0 {
            if size <= QUICK_REQUEST {
                let c = (size + HEADER).div_ceil(GRANULE).max(MIN_BLOCK / GRANULE);
                let head = self.quick[c];
                if head != 0 {
                    return self.pop_quick(c, head as usize);
                }
                return self.alloc_fit(c * GRANULE);
            }
            return self.alloc_fit(self.block_size(size)?);
        }
        self.alloc_general(size, align)
    }

    /// A 16-aligned block of `bsize` bytes from the free lists (growing the
    /// heap if needed).
    #[inline]
    fn alloc_fit(&mut self, bsize: usize) -> Result<NonNull<u8>, MmError> {
        let (off, bs) = match self.find_bin(bsize)? {
            Some((off, bs, b)) => {
                self.pop_head(b, off);
                (off, bs)
            }
            None => {
                let (off, bs) = match self.wild_fit(bsize)? {
                    Some(found) => found,
                    None => self.refill(bsize)?,
                };
                self.unlink(off, bs);
                (off, bs)
            }
        };
        self.take(off, bs, off + HEADER, bsize);
        Ok(self.ptr_at(off + HEADER))
    }

    /// `alloc` for larger sizes and alignments.
    fn alloc_general(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, MmError> {
        let bsize = self.block_size(size)?;
        if !align.is_power_of_two() {
            return Err(MmError::InvalidArgument);
        }
        if align <= GRANULE {
            return self.alloc_fit(bsize);
        }
        // A small block with a larger alignment: one of the first blocks of
        // its quick list serves if it happens to be aligned.
        if bsize < QUICK_LIMIT && self.quick[bsize / GRANULE] != 0 {
            if let Some(p) = self.pop_quick_aligned(bsize / GRANULE, align)? {
                return Ok(p);
            }
        }
        // Small alignments: the block found for the size alone often fits
        // with the payload aligned (or with room for a gap block in front);
        // else the first listed block of at least `bsize + align + MIN_BLOCK`
        // bytes surely does (one more search, no block read twice).
        if let Some((off, bs, b)) = self.find_bin(bsize)? {
            if let Some(p) = self.place(off, bs, 0, align, bsize) {
                self.pop_head(b, off);
                self.take(off, bs, p, bsize);
                return Ok(self.ptr_at(p));
            }
            let need = bsize
                .checked_add(align)
                .and_then(|n| n.checked_add(MIN_BLOCK));
            if let Some(need) = need.filter(|&n| n <= self.max_len - SENTINEL) {
                if let Some((off, bs, b)) = self.find_bin(need)? {
                    if let Some(p) = self.place(off, bs, 0, align, bsize) {
                        self.pop_head(b, off);
                        self.take(off, bs, p, bsize);
                        return Ok(self.ptr_at(p));
                    }
                }
            }
        }
        self.alloc_aligned_slow(bsize, align, false).map(|(p, _)| p)
    }

    /// Takes the block with payload offset `p`, the head of quick list `c`,
    /// after checking its header and link.
    #[inline(always)]
    fn pop_quick(&mut self, c: usize, p: usize) -> Result<NonNull<u8>, MmError> {
        let off = p - HEADER;
        let hdr = self.rd_hdr(off);
        let tag = tag_of_header(hdr);
        let next = self.rd(p);
        let want = (c * GRANULE) as u32 | QUICK;
        if !header_ok(hdr, off, self.key)
            || tag & !PREV_FREE != want
            || next as usize > self.len - SENTINEL
            || !next.is_multiple_of(GRANULE as u32)
        {
            return Err(MmError::HeapCorrupted);
        }
        self.quick[c] = next;
        self.quick_len[c] -= 1;
        self.live += 1;
        // Checked above, with `QUICK` set: clear it.
        self.wr_hdr(off, hdr ^ flip(QUICK));
        Ok(self.ptr_at(p))
    }

    /// Takes the first block with an `align`-aligned payload among the first
    /// few blocks of quick list `c`, checking the headers and links it reads.
    #[inline]
    fn pop_quick_aligned(
        &mut self,
        c: usize,
        align: usize,
    ) -> Result<Option<NonNull<u8>>, MmError> {
        // Each step reads the link of the block before (a dependent load,
        // often another cache line): the walk stays short.
        const DEPTH: usize = 2;
        let head = self.quick[c] as usize;
        if (self.start + head) & (align - 1) == 0 {
            return self.pop_quick(c, head).map(Some);
        }
        let mut prev = head;
        for _ in 1..DEPTH {
            let p = self.rd(prev) as usize;
            if p == 0 {
                break;
            }
            let off = p - HEADER;
            if p > self.len - SENTINEL || !p.is_multiple_of(GRANULE) {
                return Err(MmError::HeapCorrupted);
            }
            if (self.start + p) & (align - 1) == 0 {
                let hdr = self.rd_hdr(off);
                let tag = tag_of_header(hdr);
                let next = self.rd(p);
                if !header_ok(hdr, off, self.key)
                    || tag & !PREV_FREE != (c * GRANULE) as u32 | QUICK
                    || next as usize > self.len - SENTINEL
                    || !next.is_multiple_of(GRANULE as u32)
                {
                    return Err(MmError::HeapCorrupted);
                }
                self.wr(prev, next);
                self.quick_len[c] -= 1;
                self.live += 1;
                self.wr_hdr(off, hdr ^ flip(QUICK));
                return Ok(Some(self.ptr_at(p)));
            }
            prev = p;
        }
        Ok(None)
    }

    /// No free block fits `need`: grows the heap, or if it cannot grow,
    /// merges the quick lists and looks again. (Merging first would throw
    /// the quick lists away on every growth step of a growing heap; they
    /// hold a bounded amount of memory.)
    #[cold]
    fn refill(&mut self, need: usize) -> Result<(usize, usize), MmError> {
        match self.grow(need, false) {
            Ok(()) => self.find(need)?.ok_or(MmError::OutOfMemory),
            Err(e) if self.quick_blocks() != 0 => {
                self.flush_quick()?;
                if let Some(found) = self.find(need)? {
                    return Ok(found);
                }
                // The merge may have freed the top: fewer pages are needed.
                self.grow(need, false).map_err(|_| e)?;
                self.find(need)?.ok_or(MmError::OutOfMemory)
            }
            Err(e) => Err(e),
        }
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
    fn flush_quick(&mut self) -> Result<(), MmError> {
        let min_len = core::mem::replace(&mut self.min_len, self.len);
        let done = self.flush_lists();
        self.min_len = min_len;
        done
    }

    fn flush_lists(&mut self) -> Result<(), MmError> {
        let limit = self.len - SENTINEL;
        for c in 0..QUICK_CLASSES {
            loop {
                let q = self.quick[c] as usize;
                if q == 0 {
                    break;
                }
                if q.wrapping_sub(GRANULE) >= limit - FIRST || !q.is_multiple_of(GRANULE) {
                    return Err(MmError::HeapCorrupted);
                }
                let off = q - HEADER;
                let hdr = self.rd_hdr(off);
                let tag = tag_of_header(hdr) & !QUICK;
                if !header_ok(hdr, off, self.key)
                    || tag_of_header(hdr) & (QUICK | FREE) != QUICK
                    || size_of_tag(tag) != c * GRANULE
                    || off + c * GRANULE > limit
                {
                    return Err(MmError::HeapCorrupted);
                }
                let link = self.rd(q);
                self.merge_block(off, tag)?;
                self.quick[c] = link;
                self.quick_len[c] -= 1;
            }
            self.quick_len[c] = 0;
        }
        Ok(())
    }

    /// Blocks on the quick lists (a fixed-size sum).
    fn quick_blocks(&self) -> usize {
        self.quick_len.iter().map(|&n| n as usize).sum()
    }

    /// Bytes in quick-listed blocks.
    fn quick_bytes(&self) -> usize {
        (0..QUICK_CLASSES)
            .map(|c| self.quick_len[c] as usize * c * GRANULE)
            .sum()
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
        let (p, phys) = self.alloc_aligned_slow(bsize, align, true)?;
        Ok((p, phys.ok_or(MmError::NotMapped)?))
    }

    /// The general path: alignment above 8 and/or physical contiguity.
    fn alloc_aligned_slow(
        &mut self,
        bsize: usize,
        align: usize,
        physical: bool,
    ) -> Result<(NonNull<u8>, Option<PhysAddr>), MmError> {
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
        for found in [self.find(bsize)?, self.find(need)?] {
            let Some((off, size)) = found else { continue };
            if let Some(p) = self.place(off, size, 0, align, bsize) {
                let phys = if physical {
                    self.phys_contiguous(p, payload)
                } else {
                    None
                };
                if !physical || phys.is_some() {
                    self.unlink(off, size);
                    self.take(off, size, p, bsize);
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
            self.grow(grow_need, physical)
        };
        if let Err(e) = grown {
            if self.quick_blocks() != 0 {
                self.flush_quick()?;
                return self.alloc_aligned_slow(bsize, align, physical);
            }
            return Err(e);
        }
        let min_p = if physical { old_len } else { 0 };
        let last = self.last_free()?.ok_or(MmError::HeapCorrupted)?;
        let (off, size) = last;
        let p = self
            .place(off, size, min_p, align, bsize)
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
        self.take(off, size, p, bsize);
        Ok((self.ptr_at(p), phys))
    }

    /// Where a block of `bsize` bytes whose payload is `align`-aligned and at
    /// offset `>= min_p` goes inside the free block `[off, off + size)`: the
    /// payload offset, or `None` if it does not fit. The gap in front is 0 or
    /// at least `MIN_BLOCK` (it becomes a free block).
    #[inline(always)]
    fn place(
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
    fn phys_contiguous(&self, p: usize, len: usize) -> Option<PhysAddr> {
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
    fn take(&mut self, off: usize, size: usize, p: usize, mut bsize: usize) {
        let b = p - HEADER;
        let gap = b - off;
        let mut prev_flag = 0;
        if gap != 0 {
            self.set_free(off, gap, 0);
            self.insert(off, gap);
            self.free_blocks += 1;
            prev_flag = PREV_FREE;
        }
        let rest = size - gap - bsize;
        if rest >= MIN_BLOCK {
            let r = b + bsize;
            self.set_free(r, rest, 0);
            self.insert(r, rest);
        } else {
            bsize += rest;
            self.free_blocks -= 1;
            let n = b + bsize;
            // The block after a free block has `PREV_FREE`: clear it (a
            // damaged header stays damaged, for its next check to find).
            let nhdr = self.rd_hdr(n);
            self.wr_hdr(n, nhdr ^ flip(PREV_FREE));
        }
        self.set_tag(b, bsize as u32 | prev_flag);
        self.free_bytes -= bsize;
        self.live += 1;
    }

    /// The last block if it is free: `(offset, size)`, after checking the
    /// sentinel's header (an overflow of the last block clobbers it) and the
    /// free block's footer and header.
    fn last_free(&self) -> Result<Option<(usize, usize)>, MmError> {
        let s = self.len - SENTINEL;
        let tag = self.tag(s).ok_or(MmError::HeapCorrupted)?;
        if tag & !PREV_FREE != 0 {
            return Err(MmError::HeapCorrupted);
        }
        if tag & PREV_FREE == 0 {
            return Ok(None);
        }
        let size = self.rd(s - 4) as usize;
        if size < MIN_BLOCK || size > s - FIRST || !size.is_multiple_of(GRANULE) {
            return Err(MmError::HeapCorrupted);
        }
        match self.tag(s - size) {
            Some(t) if t & (FREE | PREV_FREE) == FREE && size_of_tag(t) == size => {
                Ok(Some((s - size, size)))
            }
            _ => Err(MmError::HeapCorrupted),
        }
    }

    /// Maps pages at the top so that the last block becomes a free block of at
    /// least `need` bytes. Nothing changes on error.
    fn grow(&mut self, need: usize, contiguous: bool) -> Result<(), MmError> {
        let last = self.last_free()?;
        let have = if contiguous {
            0
        } else {
            last.map_or(0, |(_, s)| s)
        };
        let short = need.saturating_sub(have).max(1);
        // The amortised step (see `grow_step`), except for physically
        // contiguous runs, which are as short as they can be; near `max`,
        // what is left if that is enough.
        let step = if contiguous {
            short
        } else {
            short.max(grow_step(self.len))
        };
        let exact = align_up(
            self.len.checked_add(short).ok_or(MmError::OutOfMemory)?,
            PAGE_SIZE,
        );
        if exact > self.max_len {
            return Err(MmError::OutOfMemory);
        }
        let mut new_len = align_up(self.len.saturating_add(step), PAGE_SIZE).min(self.max_len);
        let at = self.start + self.len;
        if let Err(e) =
            self.backend
                .map(at, (new_len - self.len) / PAGE_SIZE, contiguous, self.flags)
        {
            // The backend may still have the pages the request needs.
            if new_len == exact {
                return Err(e);
            }
            new_len = exact;
            self.backend
                .map(at, (new_len - self.len) / PAGE_SIZE, contiguous, self.flags)?;
        }
        let pages = (new_len - self.len) / PAGE_SIZE;
        let old_sentinel = self.len - SENTINEL;
        self.len = new_len;
        let (off, size) = match last {
            Some((off, size)) => {
                self.unlink(off, size);
                (off, size + (new_len - SENTINEL - old_sentinel))
            }
            None => {
                self.free_blocks += 1;
                (old_sentinel, new_len - SENTINEL - old_sentinel)
            }
        };
        self.set_free(off, size, 0);
        self.insert(off, size);
        self.set_tag(new_len - SENTINEL, PREV_FREE);
        self.free_bytes += pages * PAGE_SIZE;
        Ok(())
    }

    /// Gives whole free pages at the top back to the backend: all of them
    /// when `all`, else only past the threshold (or when the heap is empty).
    fn shrink(&mut self, all: bool) {
        let Ok(Some((off, size))) = self.last_free() else {
            return;
        };
        let mut new_len = align_up(off + SENTINEL, PAGE_SIZE);
        let left = new_len - SENTINEL - off;
        if left != 0 && left < MIN_BLOCK {
            new_len += PAGE_SIZE;
        }
        let new_len = new_len.max(self.min_len);
        if new_len >= self.len {
            return;
        }
        let release = self.len - new_len;
        if !all && release < shrink_threshold(self.len) && off != FIRST {
            return;
        }
        self.unlink(off, size);
        self.len = new_len;
        let left = new_len - SENTINEL - off;
        if left == 0 {
            self.free_blocks -= 1;
            self.set_tag(new_len - SENTINEL, 0);
        } else {
            self.set_free(off, left, 0);
            self.insert(off, left);
            self.set_tag(new_len - SENTINEL, PREV_FREE);
        }
        self.free_bytes -= release;
        self.backend
            .unmap(self.start + new_len, release / PAGE_SIZE);
    }

    /// Returns every whole free page at the top of the heap (above its
    /// initial size) to the backend.
    pub fn trim(&mut self) {
        // A damaged quick block stops the merge and stays listed (`validate`
        // reports it); the pages above the merged blocks still go.
        let _ = self.flush_quick();
        self.shrink(true);
    }

    // ----- free ----------------------------------------------------------------

    /// Checks that `ptr` is a live block of this heap, with a size that
    /// lies in the heap; returns `(offset, tag)` of its header.
    #[inline(always)]
    fn check_live(&self, ptr: NonNull<u8>) -> Result<(usize, u32), MmError> {
        let (off, tag) = self.check_block(ptr)?;
        self.check_size(off, tag)?;
        Ok((off, tag))
    }

    /// The size of the checked block at `off` is sane: at least `MIN_BLOCK`,
    /// and the block ends at or before the sentinel.
    #[inline(always)]
    fn check_size(&self, off: usize, tag: u32) -> Result<(), MmError> {
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
    fn check_block(&self, ptr: NonNull<u8>) -> Result<(usize, u32), MmError> {
        // Payload offsets are multiples of 16 from `GRANULE` (the first
        // block's) up to the sentinel's.
        let p = ptr.as_ptr().addr().wrapping_sub(self.start);
        let limit = self.len - SENTINEL;
        if p.wrapping_sub(GRANULE) >= limit - FIRST || !p.is_multiple_of(GRANULE) {
            return Err(MmError::BadPointer);
        }
        let off = p - HEADER;
        let hdr = self.rd_hdr(off);
        let tag = tag_of_header(hdr);
        if !header_ok(hdr, off, self.key) || tag & (FREE | QUICK) != 0 {
            return Err(self.block_error(off));
        }
        Ok((off, tag))
    }

    /// Why [`Self::check_block`] refused the block at `off` (error path).
    #[cold]
    #[inline(never)]
    fn block_error(&self, off: usize) -> MmError {
        match self.tag(off) {
            None => self.classify(off),
            Some(tag) if tag & (FREE | QUICK) != 0 => MmError::DoubleFree,
            Some(_) => MmError::HeapCorrupted,
        }
    }

    /// The header at `next`, after a checked allocated block whose size has
    /// passed `check_size` (the header an overflow of that block clobbers
    /// first), and a free block's size there.
    #[inline(always)]
    fn check_next(&self, next: usize) -> Result<(), MmError> {
        let nhdr = self.rd_hdr(next);
        let ntag = tag_of_header(nhdr);
        if !header_ok(nhdr, next, self.key) || ntag & PREV_FREE != 0 {
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
    fn classify(&self, off: usize) -> MmError {
        let end = self.len - SENTINEL;
        let mut cur = FIRST;
        while cur < end {
            let Some(tag) = self.tag(cur) else {
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

    /// `kfree`: frees a block returned by this heap. Errors (the heap is left
    /// unchanged): [`MmError::BadPointer`] for a pointer outside the heap, or
    /// not at the start of a block; [`MmError::DoubleFree`] for a block that
    /// is already free; [`MmError::HeapCorrupted`] when this block's header or
    /// a neighbour's header or footer is damaged.
    #[inline]
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), MmError> {
        let (off, tag) = self.check_block(ptr)?;
        if let Some(c) = self.quick_class(off, size_of_tag(tag)) {
            // Fast path: onto the quick list, merged later (no neighbour is
            // touched, so none needs checking beyond `check_block`).
            return self.push_quick(off, tag, c);
        }
        self.free_merge(off, tag)
    }

    /// The quick list that the block `[off, off + size)` goes onto when it
    /// is freed, if any: it is below [`QUICK_LIMIT`], its list has room, and
    /// it does not lie just below the free top of a heap that has grown
    /// (that one is merged at once, so the heap can shrink).
    #[inline(always)]
    fn quick_class(&self, off: usize, size: usize) -> Option<usize> {
        let c = size / GRANULE;
        (size < QUICK_LIMIT && self.quick_len[c] < QUICK_CAP[c] && !self.tops(off + size))
            .then_some(c)
    }

    /// The rest of [`Heap::free`] for a block that is not quick-listed:
    /// checks its neighbours, then merges it.
    #[inline(never)]
    fn free_merge(&mut self, off: usize, tag: u32) -> Result<(), MmError> {
        self.merge_block(off, tag)?;
        self.live -= 1;
        self.after_free()
    }

    /// Checks the block at `off` (allocated or quick-listed, `tag` without
    /// `QUICK`, its own header checked) and its neighbours as
    /// [`Self::check_size`] and [`Self::check_next`] do (and a free
    /// predecessor's footer and header), then merges it with
    /// its free neighbours into one listed free block — reading every
    /// header and footer once (the checks and the merge share the reads).
    /// Nothing changes on error. The caller adjusts `live`.
    #[inline(always)]
    fn merge_block(&mut self, off: usize, tag: u32) -> Result<(), MmError> {
        let size = size_of_tag(tag);
        let end = self.len - SENTINEL;
        if size < MIN_BLOCK || size > end - off {
            return Err(corrupted());
        }
        // The successor's header (the one an overflow of this block
        // clobbers first) and, if it is free, its size.
        let next = off + size;
        let nhdr = self.rd_hdr(next);
        let ntag = tag_of_header(nhdr);
        if !header_ok(nhdr, next, self.key) || ntag & PREV_FREE != 0 {
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
            // `off >= FIRST + MIN_BLOCK` when a predecessor exists; the word
            // before `off` is in the heap either way (`off >= FIRST`).
            let psize = self.rd(off - 4) as usize;
            if psize < MIN_BLOCK || psize > off - FIRST || !psize.is_multiple_of(GRANULE) {
                return Err(corrupted());
            }
            let phdr = self.rd_hdr(off - psize);
            let ptag = tag_of_header(phdr);
            if !header_ok(phdr, off - psize, self.key)
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
            self.unlink(next, nsize);
            total += nsize;
            self.free_blocks -= 1;
        } else {
            // Checked above, with `PREV_FREE` clear: set it.
            self.wr_hdr(next, nhdr ^ flip(PREV_FREE));
        }
        self.set_free(start, total, 0);
        self.insert(start, total);
        self.free_blocks += 1;
        if start + total == end && self.len > self.min_len {
            self.shrink(false);
        }
        Ok(())
    }

    /// Whether the block at `next` with tag `ntag` is the free block at the
    /// top of a heap that has grown (a block before it is merged at once,
    /// not quick-listed, so the heap can shrink).
    /// (The tag is read unchecked: a damaged one at worst sends the block to
    /// the merge path, which checks it.)
    #[inline(always)]
    fn tops(&self, next: usize) -> bool {
        next as u32 == self.wild && self.len > self.min_len
    }

    /// Puts the checked, allocated block at `off` (of size `c * 16`, below
    /// [`QUICK_LIMIT`]) on quick list `c`, which has room.
    #[inline(always)]
    fn push_quick(&mut self, off: usize, tag: u32, c: usize) -> Result<(), MmError> {
        // The header is valid with `QUICK` clear (checked by the caller, or
        // written by the heap): set it.
        debug_assert_eq!(self.tag(off), Some(tag));
        let hdr = self.rd_hdr(off);
        self.wr_hdr(off, hdr ^ flip(QUICK));
        self.wr(off + HEADER, self.quick[c]);
        self.quick[c] = (off + HEADER) as u32;
        self.quick_len[c] += 1;
        self.live -= 1;
        if self.live == 0 {
            // Nothing is allocated any more.
            return self.flush_all();
        }
        Ok(())
    }

    /// Nothing is allocated any more: merges the quick lists and shrinks.
    #[cold]
    #[inline(never)]
    fn flush_all(&mut self) -> Result<(), MmError> {
        if !self.reset_empty() {
            self.flush_quick()?;
        }
        self.shrink(false);
        Ok(())
    }

    /// Nothing is allocated: if every header from the first block to the
    /// sentinel passes its check (each block free or quick-listed, sizes
    /// tiling the heap), makes the heap one free block again at once —
    /// emptying the lists and the quick lists — instead of merging the
    /// quick blocks one by one (a walk of ~10 instructions per block against
    /// a checked merge of ~100). Returns false, changing nothing, if a
    /// header fails: the block-by-block merge then reports it as usual.
    fn reset_empty(&mut self) -> bool {
        let end = self.len - SENTINEL;
        let mut cur = FIRST;
        while cur < end {
            let hdr = self.rd_hdr(cur);
            let tag = tag_of_header(hdr);
            let size = size_of_tag(tag);
            if !header_ok(hdr, cur, self.key)
                || tag & (FREE | QUICK) == 0
                || size < MIN_BLOCK
                || size > end - cur
            {
                return false;
            }
            cur += size;
        }
        match self.tag(end) {
            Some(t) if t & !PREV_FREE == 0 => {}
            _ => return false,
        }
        self.heads = [NIL; BINS];
        self.words = [0; WORDS];
        self.summary = 0;
        self.quick = [0; QUICK_CLASSES];
        self.quick_len = [0; QUICK_CLASSES];
        self.wild = NIL;
        let size = end - FIRST;
        self.set_free(FIRST, size, 0);
        self.insert(FIRST, size);
        self.set_tag(end, PREV_FREE);
        self.free_bytes = size;
        self.free_blocks = 1;
        true
    }

    /// When nothing is allocated any more, merges the quick lists (so the
    /// heap is one free block and shrinks to its initial size).
    #[inline(always)]
    fn after_free(&mut self) -> Result<(), MmError> {
        if self.live == 0 {
            return self.flush_all();
        }
        Ok(())
    }

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
        let ntag = self.rd(next);
        if ntag & FREE != 0 && size + size_of_tag(ntag) >= bsize {
            let nsize = size_of_tag(ntag);
            // The block after the free successor gets a new header: check
            // the old one first (it is touched).
            if self.tag(next + nsize).is_none() {
                return Err(MmError::HeapCorrupted);
            }
            self.unlink(next, nsize);
            self.free_blocks -= 1;
            self.free_bytes -= nsize;
            let whole = size + nsize;
            // The block now ends where the free successor ended, and the
            // block after that has PREV_FREE set: clear it, then split.
            let after = off + whole;
            let ahdr = self.rd_hdr(after);
            self.wr_hdr(after, ahdr ^ flip(PREV_FREE));
            self.set_tag(off, whole as u32 | (tag & PREV_FREE));
            self.split_tail(off, whole, bsize, tag & PREV_FREE);
            return Ok(ptr);
        }
        let new = self.alloc(new_size, align)?;
        // SAFETY: both payloads are live blocks of this heap, distinct (the old
        // one is still allocated), and the old payload has `size - HEADER`
        // bytes, fewer than the new one's.
        unsafe { core::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), size - HEADER) };
        // Since the checks above only the heap itself changed the old block
        // (merging quick blocks may have set its `PREV_FREE`): re-read it.
        let tag = self.rd(off);
        if let Some(c) = self.quick_class(off, size) {
            // A damaged block that a merge of the quick lists (when the heap is
            // empty) runs into stays listed (`validate` reports it).
            let _ = self.push_quick(off, tag, c);
            return Ok(new);
        }
        match self.merge_block(off, tag) {
            Ok(()) => {
                self.live -= 1;
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

    /// Shrinks the allocated block `[off, off + size)` to `keep` bytes if the
    /// tail is big enough to be a block, merging it with a free successor.
    fn split_tail(&mut self, off: usize, size: usize, keep: usize, prev_flag: u32) {
        let rest = size - keep;
        if rest < MIN_BLOCK {
            return;
        }
        self.set_tag(off, keep as u32 | prev_flag);
        let r = off + keep;
        let next = off + size;
        let ntag = self.rd(next);
        let mut total = rest;
        if ntag & FREE != 0 {
            let nsize = size_of_tag(ntag);
            self.unlink(next, nsize);
            total += nsize;
        } else {
            // Allocated or quick: `PREV_FREE` clear; set it.
            let nhdr = self.rd_hdr(next);
            self.wr_hdr(next, nhdr ^ flip(PREV_FREE));
            self.free_blocks += 1;
        }
        self.set_free(r, total, 0);
        self.insert(r, total);
        self.free_bytes += rest;
        if r + total == self.len - SENTINEL && self.len > self.min_len {
            self.shrink(false);
        }
    }

    // ----- statistics and validation --------------------------------------------

    /// Free bytes (`get_free_memory`), O(1).
    pub fn free_bytes(&self) -> usize {
        self.free_bytes + self.quick_bytes()
    }

    /// Used bytes (`get_used_memory`), O(1).
    pub fn used_bytes(&self) -> usize {
        self.len - self.free_bytes()
    }

    /// All statistics (`get_heap_stats`): O(1) (fixed-size sums over the
    /// quick lists) except `largest_free`, which also scans the highest
    /// non-empty free list.
    pub fn stats(&self) -> HeapStats {
        let free_bytes = self.free_bytes();
        HeapStats {
            free_bytes,
            used_bytes: self.len - free_bytes,
            heap_bytes: self.len,
            total_blocks: self.live + self.free_blocks + self.quick_blocks(),
            free_blocks: self.free_blocks + self.quick_blocks(),
            largest_free: self.largest_free(),
        }
    }

    fn largest_free(&self) -> usize {
        let quick = (0..QUICK_CLASSES)
            .rev()
            .find(|&c| self.quick_len[c] != 0)
            .map_or(0, |c| c * GRANULE);
        let quick = if self.wild == NIL {
            quick
        } else {
            quick.max(size_of_tag(self.rd(self.wild as usize)))
        };
        if self.summary == 0 {
            return quick;
        }
        let w = 31 - self.summary.leading_zeros() as usize;
        let b = w * 64 + 63 - self.words[w].leading_zeros() as usize;
        let mut cur = self.heads[b];
        let mut best = 0;
        while cur != NIL {
            best = best.max(size_of_tag(self.rd(cur as usize)));
            cur = self.rd(cur as usize + 8);
        }
        best.max(quick)
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
        let (mut cur, mut prev_free) = (FIRST, false);
        let (mut blocks, mut frees, mut free_bytes, mut quicks) = (0, 0, 0, 0);
        let mut wild_seen = false;
        while cur < end {
            let Some(tag) = self.tag(cur) else { return bad };
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
                if prev_free || self.rd(cur + size - 4) as usize != size {
                    return bad;
                }
                // The top block is the free block that ends at the
                // sentinel; every other one must be in its own list.
                if (cur + size == end) != (self.wild as usize == cur) {
                    return bad;
                }
                wild_seen |= cur + size == end;
                let mut x = if cur + size == end {
                    NIL
                } else {
                    self.heads[bin_of(size)]
                };
                let mut steps = 0;
                while x != NIL && x as usize != cur {
                    x = self.rd(x as usize + 8);
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
        match self.tag(end) {
            Some(t) if t & !PREV_FREE == 0 && (t & PREV_FREE != 0) == prev_free => {}
            _ => return bad,
        }
        // Lists: links, bins and bitmaps; their total length is the number of
        // free blocks found by the walk (so no list holds a stray block).
        // Quick lists: every entry a quick block of its class, lengths
        // consistent; their total is the number of quick blocks walked.
        let mut quick_listed = 0;
        for c in 0..QUICK_CLASSES {
            let (mut x, mut n) = (self.quick[c], 0usize);
            while x != 0 {
                let Some(xo) = (x as usize).checked_sub(HEADER) else {
                    return bad;
                };
                if xo >= end || !x.is_multiple_of(GRANULE as u32) || quick_listed >= quicks {
                    return bad;
                }
                match self.tag(xo) {
                    Some(t) if t & (QUICK | FREE) == QUICK && size_of_tag(t) / GRANULE == c => {}
                    _ => return bad,
                }
                n += 1;
                quick_listed += 1;
                x = self.rd(xo + 8);
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
            let nonempty = self.heads[b] != NIL;
            if nonempty != (self.words[b / 64] & (1 << (b % 64)) != 0) {
                return bad;
            }
            let (mut x, mut prev) = (self.heads[b], NIL);
            while x != NIL {
                let xo = x as usize;
                if xo >= end
                    || xo < FIRST
                    || !(xo + HEADER).is_multiple_of(GRANULE)
                    || self.rd(xo + 12) != prev
                {
                    return bad;
                }
                match self.tag(xo) {
                    Some(t) if t & FREE != 0 && bin_of(size_of_tag(t)) == b => {}
                    _ => return bad,
                }
                listed += 1;
                if listed > frees {
                    return bad;
                }
                prev = x;
                x = self.rd(xo + 8);
            }
        }
        for w in 0..WORDS {
            if (self.words[w] != 0) != (self.summary & (1 << w) != 0) {
                return bad;
            }
        }
        if wild_seen != (self.wild != NIL) {
            return bad;
        }
        if listed + wild_seen as usize != frees
            || frees != self.free_blocks
            || blocks != self.live + frees + quicks
            || free_bytes != self.free_bytes + self.quick_bytes()
        {
            return bad;
        }
        Ok(())
    }
}

impl<B: HeapBackend> Drop for Heap<B> {
    /// Unmaps the whole heap: every block dies with it.
    fn drop(&mut self) {
        self.backend.unmap(self.start, self.len / PAGE_SIZE);
    }
}
