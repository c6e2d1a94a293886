//! The heap's reference model: the live blocks a sequence of requests must
//! have left, and everything that must hold of the heap given them.
//!
//! Both users (`crates/core/tests/heap_prop.rs` and the `heap` fuzz target)
//! build the same heap ([`new_heap`]: an [`ArenaBackend`], [`INIT_PAGES`]
//! pages growing up to [`MAX_PAGES`]), keep a [`Model`] of its live blocks
//! and go through it for every allocation, `realloc` and free. After every
//! step [`Model::check`] asserts: `validate()` passes; live blocks are
//! aligned as asked and don't overlap; the last block of the list still
//! holds the bytes written into it (every live block does, on the steps
//! that ask for the full comparison, and every block is compared when it is
//! freed or resized); `usable_size` is at least the request and at most a small slack
//! above it; physical blocks are physically contiguous at the reported
//! address; the statistics equal the model's (live blocks, used bytes,
//! `free + used == heap`, heap size == pages the backend maps, within its
//! bounds). A refused request ([`refused`]) leaves every byte and the heap's
//! size as they were, and is refused again if tried again at once
//! ([`spurious`]); a bad free ([`bad_free`]) changes nothing. At the end
//! ([`Model::finish`]) freeing every block brings the heap and the backend
//! back to their initial state.

use std::fmt::Debug;
use std::ptr::NonNull;

use myos_mm::heap::{ArenaBackend, Heap, HeapBackend, HeapFlags, HeapStats, HEADER};
use myos_mm::{MmError, PhysAddr};

/// Bytes per page.
pub const PAGE: usize = 4096;
/// Initial heap size, in pages (the heap never shrinks below it).
pub const INIT_PAGES: usize = 2;
/// The heap's `max`, in pages from its start.
pub const MAX_PAGES: usize = 64;

/// The heap under test.
pub type ArenaHeap<'a> = Heap<ArenaBackend<'a>>;

/// A kernel heap of [`INIT_PAGES`] pages, growing up to [`MAX_PAGES`], over
/// `mem` (at least `MAX_PAGES` pages once page-aligned, to reach its max).
/// `scattered`: physically scattered pages
/// ([`ArenaBackend::scattered`]), so physical requests must grow the heap
/// by a contiguous run. `page_limit`: the backend maps at most that many
/// pages (out of memory before the heap's max).
///
/// # Panics
/// When the heap can't be created (`mem` too small).
pub fn new_heap(mem: &mut [u8], scattered: bool, page_limit: Option<usize>) -> ArenaHeap<'_> {
    let mut backend = if scattered {
        ArenaBackend::scattered(mem)
    } else {
        ArenaBackend::new(mem)
    };
    if let Some(pages) = page_limit {
        backend.set_page_limit(pages);
    }
    let start = backend.start();
    Heap::new(
        backend,
        start,
        start + INIT_PAGES * PAGE,
        start + MAX_PAGES * PAGE,
        HeapFlags::KERNEL,
    )
    .expect("create_heap")
}

/// One live block in the model.
#[derive(Debug)]
pub struct Live {
    /// Its address.
    pub ptr: NonNull<u8>,
    /// The size asked for.
    pub size: usize,
    /// The alignment it must have (at least 8).
    pub align: usize,
    /// The physical address reported for a physical request.
    pub phys: Option<PhysAddr>,
    /// The byte its `size` bytes hold (see [`Live::fill`]).
    pub byte: u8,
}

impl Live {
    /// Writes `byte` into the block's `size` bytes.
    pub fn fill(&self) {
        // SAFETY: a live block of at least `size` bytes, owned by the test.
        unsafe { self.ptr.as_ptr().write_bytes(self.byte, self.size) }
    }

    /// The block's `size` bytes all still hold `byte`.
    pub fn intact(&self) -> bool {
        holds(self.ptr, self.size, self.byte)
    }
}

/// The `len` bytes at `ptr` all hold `byte`.
fn holds(ptr: NonNull<u8>, len: usize, byte: u8) -> bool {
    // SAFETY: the callers pass a live block and at most its size.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) };
    // A fold without early exit vectorizes (this runs after every step).
    bytes.iter().fold(0u8, |acc, &b| acc | (b ^ byte)) == 0
}

/// What a refused request must leave unchanged: bytes, heap size, live
/// blocks (it may merge quick-listed free blocks, which changes block counts).
pub fn memory(s: HeapStats) -> (usize, usize, usize, usize) {
    (
        s.free_bytes,
        s.used_bytes,
        s.heap_bytes,
        s.total_blocks - s.free_blocks,
    )
}

/// An allocation request.
#[derive(Clone, Copy, Debug)]
pub enum Request {
    /// `alloc(size, align)` (`kmalloc` with an alignment).
    Align(usize, usize),
    /// `alloc_page_aligned(size)` (`kmalloc_aligned`).
    Page(usize),
    /// `alloc_physical(size, page_aligned)` (`kmalloc_physical`,
    /// `kmalloc_aligned_physical`).
    Phys(usize, bool),
}

impl Request {
    /// Makes the request: the block's address and physical address, or
    /// the error.
    fn make(self, h: &mut ArenaHeap<'_>) -> Result<(NonNull<u8>, Option<PhysAddr>), MmError> {
        match self {
            Request::Align(size, align) => h.alloc(size, align).map(|p| (p, None)),
            Request::Page(size) => h.alloc_page_aligned(size).map(|p| (p, None)),
            Request::Phys(size, page) => h.alloc_physical(size, page).map(|(p, a)| (p, Some(a))),
        }
    }

    /// The size asked for and the alignment the block must have.
    fn layout(self) -> (usize, usize) {
        match self {
            Request::Align(size, align) => (size, align.max(8)),
            Request::Page(size) | Request::Phys(size, true) => (size, PAGE),
            Request::Phys(size, false) => (size, 8),
        }
    }
}

/// The live blocks of a heap made by [`new_heap`].
#[derive(Debug)]
pub struct Model {
    /// The live blocks. A new block (also one made by [`Model::realloc`])
    /// goes last; [`Model::free`] moves the last block into the freed slot,
    /// so the order is not the order of allocation.
    pub live: Vec<Live>,
    /// The heap's statistics when it was created.
    baseline: HeapStats,
}

impl Model {
    /// The model of `h`, just created: nothing live. Checks the heap has
    /// its initial size and holds the model.
    pub fn new(h: &ArenaHeap<'_>) -> Model {
        let baseline = h.stats();
        assert_eq!(baseline.heap_bytes, INIT_PAGES * PAGE, "initial size");
        let model = Model {
            live: Vec::new(),
            baseline,
        };
        model.check(h, true);
        model
    }

    /// Everything the model knows must hold (see the module's doc). The
    /// contents of every live block are compared when `contents` is set
    /// (every few steps: it is the costly part), else only the last
    /// block's in the list (after an allocation, the newest).
    pub fn check(&self, h: &ArenaHeap<'_>, contents: bool) {
        assert_eq!(h.validate(), Ok(()), "validate");
        let s = h.stats();
        assert_eq!(s.total_blocks - s.free_blocks, self.live.len(), "{s:?}");
        // The 8-byte pad in front of the first block and the end sentinel.
        let mut used = 16;
        for l in &self.live {
            let usable = h.usable_size(l.ptr).expect("live block refused");
            assert!(
                usable >= l.size && usable < l.size.max(24) + 16 + 32,
                "usable {usable} for {} bytes",
                l.size
            );
            used += usable + HEADER;
            if contents {
                assert!(l.intact(), "contents of a live block changed");
            }
            let a = l.ptr.as_ptr().addr();
            assert_eq!(a % l.align, 0, "misaligned block");
            if let Some(p) = l.phys {
                let phys = |off: usize| h.backend().phys(a + off).map(|x| x.as_usize());
                let last = l.size.max(1) - 1;
                let mut off = 0;
                while off <= last {
                    assert_eq!(phys(off), Some(p.as_usize() + off), "not contiguous");
                    off = (off | (PAGE - 1)) + 1;
                }
                assert_eq!(phys(last), Some(p.as_usize() + last), "not contiguous");
            }
        }
        if let Some(l) = self.live.last() {
            assert!(l.intact(), "contents of the last block changed");
        }
        assert_eq!(s.used_bytes, used, "{s:?}");
        assert_eq!(s.free_bytes + s.used_bytes, s.heap_bytes);
        assert_eq!(s.heap_bytes, h.backend().mapped_pages() * PAGE);
        assert!(s.largest_free <= s.free_bytes);
        assert!(s.heap_bytes >= INIT_PAGES * PAGE && s.heap_bytes <= MAX_PAGES * PAGE);
        let mut spans: Vec<(usize, usize)> = self
            .live
            .iter()
            .map(|l| (l.ptr.as_ptr().addr(), l.size.max(1)))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "overlap {w:x?}");
        }
    }

    /// Makes request `r`. On success records the block (filled with
    /// `byte`) and returns it; on failure checks the heap is unchanged
    /// ([`refused`]) and the refusal not spurious ([`spurious`]), and
    /// returns the error.
    pub fn alloc(
        &mut self,
        h: &mut ArenaHeap<'_>,
        r: Request,
        byte: u8,
    ) -> Result<NonNull<u8>, MmError> {
        let before = h.stats();
        match r.make(h) {
            Ok((ptr, phys)) => {
                let (size, align) = r.layout();
                let l = Live {
                    ptr,
                    size,
                    align,
                    phys,
                    byte,
                };
                self.admit(l);
                Ok(ptr)
            }
            Err(e) => {
                refused(h, before, e, r);
                spurious(h, before, e, |h| r.make(h));
                Err(e)
            }
        }
    }

    /// Records a new block and fills it.
    pub fn admit(&mut self, l: Live) {
        l.fill();
        self.live.push(l);
    }

    /// Frees live block `i` (which must still be intact); returns it.
    ///
    /// # Panics
    /// When the free fails or the block's contents changed.
    pub fn free(&mut self, h: &mut ArenaHeap<'_>, i: usize) -> Live {
        let l = self.live.swap_remove(i);
        assert!(l.intact(), "contents changed before free");
        // Half the blocks (by their fill byte) are freed as `GlobalAlloc`
        // frees them, with their size as a hint.
        let freed = if l.byte & 1 == 0 {
            h.free_sized(l.ptr, l.size)
        } else {
            h.free(l.ptr)
        };
        assert_eq!(freed, Ok(()), "free of a live block");
        l
    }

    /// `realloc` of live block `i` to `size` bytes (keeping its
    /// alignment), which must be intact. On success the block keeps the
    /// bytes both sizes share, and is replaced by the new one (last, filled
    /// with `byte`): returns the old and the new address. On failure checks
    /// the heap is unchanged ([`refused`]) and returns the error.
    pub fn realloc(
        &mut self,
        h: &mut ArenaHeap<'_>,
        i: usize,
        size: usize,
        byte: u8,
    ) -> Result<(NonNull<u8>, NonNull<u8>), MmError> {
        let before = h.stats();
        let old = &self.live[i];
        assert!(old.intact(), "contents changed before realloc");
        // As in `free`: half with the old size as a hint.
        let moved = if old.byte & 1 == 0 {
            h.realloc_sized(old.ptr, old.size, size, old.align)
        } else {
            h.realloc(old.ptr, size, old.align)
        };
        match moved {
            Ok(ptr) => {
                assert!(
                    holds(ptr, old.size.min(size), old.byte),
                    "realloc lost the contents"
                );
                let old = self.live.swap_remove(i);
                self.admit(Live {
                    ptr,
                    size,
                    align: old.align,
                    phys: None,
                    byte,
                });
                Ok((old.ptr, ptr))
            }
            Err(e) => {
                refused(h, before, e, "realloc");
                Err(e)
            }
        }
    }

    /// Frees every live block (each intact), then checks the heap is one
    /// free block of its initial size again, the backend maps only those
    /// pages and never unmapped a page it did not map — without `trim`
    /// (freeing the last block shrinks the heap) and after it.
    pub fn finish(mut self, h: &mut ArenaHeap<'_>) {
        while !self.live.is_empty() {
            self.free(h, self.live.len() - 1);
        }
        for trimmed in [false, true] {
            if trimmed {
                h.trim();
            }
            self.check(h, true);
            let end = h.stats();
            assert_eq!(
                end.heap_bytes, self.baseline.heap_bytes,
                "heap did not shrink back (trimmed: {trimmed})"
            );
            assert_eq!((end.total_blocks, end.free_blocks), (1, 1));
            assert_eq!(end.free_bytes, self.baseline.free_bytes);
            assert_eq!(h.backend().mapped_pages(), INIT_PAGES, "frames back");
            assert_eq!(h.backend().bad_unmaps(), 0);
        }
    }
}

/// Checks a refused request (`r`, with the heap's statistics `before` it)
/// changed nothing the caller can see: bytes, heap size, live blocks (it
/// may merge quick-listed free blocks, which changes block counts), and
/// failed with `OutOfMemory` or `InvalidArgument`. (It used to shrink the
/// heap: finding F1.) Callers that know which error it must be check that
/// too.
pub fn refused(h: &ArenaHeap<'_>, before: HeapStats, r: MmError, what: impl Debug) {
    assert!(
        matches!(r, MmError::OutOfMemory | MmError::InvalidArgument),
        "{what:?}: unexpected {r:?}"
    );
    assert_eq!(
        memory(h.stats()),
        memory(before),
        "{what:?} changed the heap"
    );
}

/// A request refused with `e` (`OutOfMemory`) is tried again at once
/// (`again`): the heap is as it was, so it must be refused again. (A merge
/// of the quick lists used to give the room it made back before the
/// lookup, so the retry succeeded: finding F3.) Nothing is done for other
/// errors.
pub fn spurious<T>(
    h: &mut ArenaHeap<'_>,
    before: HeapStats,
    e: MmError,
    again: impl FnOnce(&mut ArenaHeap<'_>) -> Result<T, MmError>,
) {
    if e == MmError::OutOfMemory && again(h).is_ok() {
        panic!("spurious OutOfMemory: the same request succeeded right after ({before:?})");
    }
}

/// A free of `p`, which is not a live block: must be refused with
/// `BadPointer`, `DoubleFree` or `HeapCorrupted` and change nothing.
/// Returns the error (for callers that know which it must be).
pub fn bad_free(h: &mut ArenaHeap<'_>, p: NonNull<u8>, what: &str) -> MmError {
    let before = h.stats();
    let e = match h.free(p) {
        Ok(()) => panic!("{what} of {p:?} accepted"),
        Err(e @ (MmError::BadPointer | MmError::DoubleFree | MmError::HeapCorrupted)) => e,
        Err(e) => panic!("{what}: unexpected {e:?}"),
    };
    assert_eq!(h.stats(), before, "{what} changed the heap");
    e
}
