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
//! - Small-object fast path: a freed block under 4 KiB goes onto a per-size
//!   *quick list* (LIFO, singly linked, 16-byte size steps, flagged `QUICK`
//!   in its header) instead of being merged, and an allocation of that size
//!   with an alignment of at most 16 pops it: a handful of instructions and
//!   one header check each way (the block's own header and nothing else),
//!   no list or bitmap of the merging lists touched, no statistics but the
//!   list's length and the count of allocated blocks. (A request with a
//!   larger alignment takes an aligned block among the first few of its
//!   list.) A list holds at most 32 blocks or 4 KiB (but one block above
//!   2 KiB), so the quick lists never hold more than 827 KiB. A block just
//!   below the free top of a heap that has grown is merged at once, so the
//!   heap can still shrink. Quick blocks count as free in the statistics.
//!   They are merged for real (the lists are flushed) when no free block
//!   fits a request and the heap cannot grow, when a heap that cannot grow
//!   would carve a request from a top block left under half the heap (so
//!   unmerged quick blocks do not keep the last room in pieces), when
//!   nothing is allocated any more, and on [`Heap::trim`].
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
//! [`Heap::free_sized`] and [`Heap::realloc_sized`] take the size the block
//! was requested with (as `GlobalAlloc` has it in the layout) as a hint
//! only: they make the same checks and return the same
//! errors. A merging free and a growing `realloc` read the header after the
//! block, whose address only the block's own header gives, so the two loads
//! wait for each other; with the hint the successor's cache line is
//! prefetched beside the block's own header. A wrong hint costs a useless
//! prefetch. [`prefetch_block`] starts both loads without the heap at all,
//! so a caller that keeps the heap behind a lock can issue them before it
//! takes the lock, then call `free` / `realloc` ([`LockedHeap`] does):
//! the loads then overlap the lock instruction's wait instead of starting
//! after it.
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
//! lists add up their lengths (a fixed 256-entry sum).
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

//!
//! # Source map
//!
//! After talc's layout: one mechanism per file, the public type here.
//!
//! - `mod.rs`: [`Heap`] (fields, `create_heap`, accessors, drop) and the
//!   block geometry constants;
//! - `tag.rs`: block headers — tag flags, check words, raw word access;
//! - `binning.rs`: size classes, the free lists and their two-level bitmap,
//!   finding a fitting free block;
//! - `quick.rs`: the small-object quick lists (pop, push, flush);
//! - `allocate.rs`: `kmalloc`, aligned and physical requests, carving a block;
//! - `free.rs`: `kfree`, merging with free neighbours, the empty heap;
//! - `realloc.rs`: `realloc` and `usable_size`;
//! - `growth.rs`: growing and shrinking at the top, [`Heap::trim`];
//! - `check.rs`: pointer and header checks, error classification,
//!   [`Heap::validate`];
//! - `stats.rs`: [`HeapStats`] and the statistics calls;
//! - `backend.rs`: where pages come from ([`HeapBackend`], [`ArenaBackend`]);
//! - `locked.rs`: [`LockedHeap`], the `#[global_allocator]` wrapper;
//! - `tests.rs`: unit tests.

mod allocate;
mod backend;
mod binning;
mod check;
mod free;
mod growth;
mod locked;
mod quick;
mod realloc;
mod stats;
mod tag;
#[cfg(test)]
mod tests;

pub use backend::{ArenaBackend, HeapBackend, HeapFlags, ARENA_PHYS_BASE};
pub use free::prefetch_block;
pub use growth::{grow_step, shrink_threshold, GROW_MAX, GROW_MIN, SHRINK_THRESHOLD};
pub use locked::LockedHeap;
pub use stats::HeapStats;

use core::ptr::NonNull;

use crate::error::MmError;
use crate::layout::PAGE_SIZE;
use binning::{BIN_SLOTS, BITMAP_WORDS};
use quick::QUICK_CLASSES;
use tag::{check_key_of, PREV_FREE};

/// Alignment of every returned pointer (and block sizes are multiples of it).
pub const GRANULE: usize = 16;
/// Bytes of header in front of every block's payload.
pub const HEADER: usize = 8;
/// Smallest block (header + two links + footer, rounded to [`GRANULE`]).
pub const MIN_BLOCK: usize = 32;
/// Offset of the first block: blocks start 8 bytes past a multiple of 16, so
/// every payload is 16-aligned. The 8 bytes in front are a permanent pad.
const FIRST_BLOCK: usize = GRANULE - HEADER;
/// Size of the end sentinel at `top - 8`.
const SENTINEL: usize = 8;
/// Largest heap span (`max - start`): block metadata is 32 bits wide.
pub const MAX_SPAN: usize = 0xFFFF_F000;
/// "No block": the end of a free list, or no top block.
const NIL: u32 = u32::MAX;

const _: () = assert!(MIN_BLOCK >= HEADER + 8 + 4 && MIN_BLOCK.is_multiple_of(GRANULE));
const _: () = assert!(PAGE_SIZE.is_multiple_of(GRANULE) && MAX_SPAN.is_multiple_of(PAGE_SIZE));

#[inline(always)]
const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
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
    /// Key of the header check words (see [`check_key_of`]).
    check_key: u32,
    /// Bytes in free blocks (quick-listed blocks not included).
    free_bytes: usize,
    /// Free blocks (quick-listed blocks not included).
    free_blocks: usize,
    /// Allocated blocks (all blocks are these, the free ones and the quick
    /// ones; merges change only `free_blocks`).
    live_blocks: usize,
    /// The *top block*: the free block that ends at the sentinel, or `NIL`.
    /// It is kept out of the lists (as dlmalloc's "top chunk"): requests
    /// that no listed block fits are carved from it, growth extends it and
    /// shrinking cuts it, without list or bitmap updates.
    top_block: u32,
    /// Bit `w` set when `bin_bitmap[w] != 0`.
    bin_summary: u32,
    /// Bit `b` set when list `b` is non-empty.
    bin_bitmap: [u64; BITMAP_WORDS],
    /// Offset of the first block of each free list, or `NIL`.
    bin_heads: [u32; BIN_SLOTS],
    /// Quick lists: freed small blocks, not merged yet, by size / 16. Each
    /// entry (and each block's link) is the *payload* offset of the next
    /// block (`off + HEADER`), 0 for none.
    quick_heads: [u32; QUICK_CLASSES],
    /// Blocks on each quick list.
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
            check_key: check_key_of(start),
            free_bytes: 0,
            free_blocks: 0,
            live_blocks: 0,
            top_block: NIL,
            bin_summary: 0,
            bin_bitmap: [0; BITMAP_WORDS],
            bin_heads: [NIL; BIN_SLOTS],
            quick_heads: [0; QUICK_CLASSES],
            quick_len: [0; QUICK_CLASSES],
        };
        let size = len - SENTINEL - FIRST_BLOCK;
        heap.write_free(FIRST_BLOCK, size, 0);
        heap.insert(FIRST_BLOCK, size);
        heap.set_tag(FIRST_BLOCK + size, PREV_FREE);
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
}

impl<B: HeapBackend> Drop for Heap<B> {
    /// Unmaps the whole heap: every block dies with it.
    fn drop(&mut self) {
        self.backend.unmap(self.start, self.len / PAGE_SIZE);
    }
}
