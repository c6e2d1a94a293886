//! Heap target: `kmalloc` / `kmalloc_aligned` / `kmalloc_physical` /
//! `realloc` / `kfree` sequences, including bad frees (foreign, interior,
//! already freed and random pointers), against a model of the live blocks.
//!
//! After every operation: `validate()` passes; live blocks are aligned as
//! asked, don't overlap and still hold the bytes written into them;
//! physical blocks are physically contiguous at the reported address; the
//! statistics equal the model's (live blocks, used bytes, `free + used ==
//! heap`, heap size == pages the backend maps). A refused request (error)
//! leaves every byte and the heap's size as they were. At the end, freeing
//! every block brings the heap back to one free block of its initial size.
//!
//! The backend is [`ArenaBackend`] (optionally
//! [`ArenaBackend::scattered`]: pages physically scattered, so physical
//! requests must grow the heap by a contiguous run) with an optional page
//! limit (out of memory).

use std::ptr::NonNull;

use arbitrary::Arbitrary;
use myos_mm::heap::{ArenaBackend, Heap, HeapBackend, HeapFlags, HeapStats, HEADER};
use myos_mm::{MmError, PhysAddr};

const PAGE: usize = 4096;
/// Pages of host memory behind the arena.
const ARENA_PAGES: usize = 80;
/// Initial heap size, in pages.
const INIT_PAGES: usize = 2;
/// The heap's `max`, in pages from its start.
const MAX_PAGES: usize = 64;

/// A request size: mostly small, sometimes page-sized or large, rarely
/// absurd (must be refused).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Size {
    /// Below 256 bytes (quick lists, exact bins).
    Small(u8),
    /// Below 4 KiB.
    Medium(u16),
    /// Below 64 KiB.
    Large(u16),
    /// Anything, up to `usize::MAX` (near the top: overflow checks).
    Huge(u32),
}

impl Size {
    fn bytes(self) -> usize {
        match self {
            Size::Small(n) => n as usize,
            Size::Medium(n) => n as usize % 4096,
            Size::Large(n) => n as usize,
            Size::Huge(n) => usize::MAX - n as usize,
        }
    }
}

/// One heap operation. `pick` selects a live (or freed) block modulo the
/// count.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    /// `alloc(size, 1 << (shift % 15))`.
    Alloc {
        /// Requested bytes.
        size: Size,
        /// log2 of the alignment (mod 15).
        align_shift: u8,
    },
    /// `alloc(size, align)` with an arbitrary alignment (refused unless a
    /// power of two).
    AllocOddAlign {
        /// Requested bytes.
        size: Size,
        /// The alignment, as given.
        align: u16,
    },
    /// `kmalloc_aligned`.
    AllocPage {
        /// Requested bytes.
        size: Size,
    },
    /// `kmalloc_physical` / `kmalloc_aligned_physical`.
    AllocPhys {
        /// Requested bytes.
        size: Size,
        /// Page-aligned.
        page: bool,
    },
    /// `realloc` of a live block (keeping its alignment).
    Realloc {
        /// Which block.
        pick: u8,
        /// New size.
        size: Size,
    },
    /// `kfree` of a live block.
    Free {
        /// Which block.
        pick: u8,
    },
    /// `kfree` of a pointer freed before (not reused since).
    DoubleFree {
        /// Which freed pointer.
        pick: u8,
    },
    /// `kfree` of a pointer inside a live block.
    FreeInterior {
        /// Which block.
        pick: u8,
        /// Offset into it (non-zero, below its usable size).
        offset: u16,
    },
    /// `kfree` (or `realloc`) of a pointer outside the heap.
    FreeForeign {
        /// Where, relative to the heap (see [`foreign`]).
        at: u32,
        /// `realloc` instead of `kfree`.
        realloc: bool,
    },
    /// `kfree` of an arbitrary 8-aligned address inside the mapped heap
    /// that is not a live block.
    FreeWild {
        /// Offset into the heap.
        offset: u32,
    },
    /// Rewrites a live block's contents.
    Write {
        /// Which block.
        pick: u8,
        /// Fill byte.
        byte: u8,
    },
    /// `usable_size` of a live block.
    Usable {
        /// Which block.
        pick: u8,
    },
    /// Returns free pages at the top.
    Trim,
}

/// One live block in the model.
struct Live {
    ptr: NonNull<u8>,
    size: usize,
    align: usize,
    phys: Option<PhysAddr>,
    byte: u8,
}

fn fill(l: &Live) {
    // SAFETY: a live block of at least `size` bytes, owned by the test.
    unsafe { l.ptr.as_ptr().write_bytes(l.byte, l.size) }
}

fn intact(l: &Live) -> bool {
    // SAFETY: a live block of at least `size` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(l.ptr.as_ptr(), l.size) };
    // A fold without early exit vectorizes (this runs after every step).
    bytes.iter().fold(0u8, |acc, &b| acc | (b ^ l.byte)) == 0
}

/// What a refused request must leave unchanged: bytes, heap size, live
/// blocks (it may merge quick-listed free blocks, which changes block counts).
fn memory(s: HeapStats) -> (usize, usize, usize, usize) {
    (
        s.free_bytes,
        s.used_bytes,
        s.heap_bytes,
        s.total_blocks - s.free_blocks,
    )
}

/// Everything the model knows must hold. The contents of every live block
/// are compared when `contents` is set (every few steps: it is the costly
/// part), else only the newest block's.
fn check(h: &Heap<ArenaBackend<'_>>, live: &[Live], contents: bool) {
    assert_eq!(h.validate(), Ok(()), "validate");
    let s = h.stats();
    assert_eq!(s.total_blocks - s.free_blocks, live.len(), "{s:?}");
    // The 8-byte pad in front of the first block and the end sentinel.
    let mut used = 16;
    for l in live {
        let usable = h.usable_size(l.ptr).expect("live block refused");
        assert!(usable >= l.size, "usable {usable} < {}", l.size);
        used += usable + HEADER;
        if contents {
            assert!(intact(l), "contents of a live block changed");
        }
        let a = l.ptr.as_ptr().addr();
        assert_eq!(a % l.align, 0, "misaligned block");
        if let Some(p) = l.phys {
            let mut off = 0;
            while off < l.size.max(1) {
                assert_eq!(
                    h.backend().phys(a + off).map(|x| x.as_usize()),
                    Some(p.as_usize() + off),
                    "physical block not contiguous"
                );
                off = (off | (PAGE - 1)) + 1;
            }
        }
    }
    assert_eq!(s.used_bytes, used, "{s:?}");
    assert_eq!(s.free_bytes + s.used_bytes, s.heap_bytes);
    assert_eq!(s.heap_bytes, h.backend().mapped_pages() * PAGE);
    assert!(s.largest_free <= s.free_bytes);
    assert!(s.heap_bytes >= INIT_PAGES * PAGE && s.heap_bytes <= MAX_PAGES * PAGE);
    let mut spans: Vec<(usize, usize)> = live
        .iter()
        .map(|l| (l.ptr.as_ptr().addr(), l.size.max(1)))
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "overlap {w:x?}");
    }
}

/// The heap's configuration, from the input's first bytes.
#[derive(Arbitrary, Debug)]
struct Setup {
    scatter: bool,
    /// Page limit of the backend: none when 0 or above the heap's maximum.
    page_limit: u8,
}

/// A pointer outside the heap `[start, max)`: below it, past `max`, or
/// something small (NULL-ish).
fn foreign(h: &Heap<ArenaBackend<'_>>, at: u32) -> Option<NonNull<u8>> {
    let base = h.backend().pointer(h.start());
    let addr = match at % 4 {
        0 => h
            .start()
            .checked_sub(8 + (at as usize >> 2) % (16 * PAGE))?,
        1 => h.max() + (at as usize >> 2) % (16 * PAGE),
        2 => (at as usize >> 2) % 0x1_0000 + 8,
        _ => h.top() + 8 + ((at as usize >> 2) % 4096) * 8,
    };
    if addr >= h.start() && addr < h.top() {
        return None;
    }
    NonNull::new(base.with_addr(addr))
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut u = arbitrary::Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    let rest = u.take_rest();
    let ops: Vec<Op> = crate::decode(rest);
    if crate::tracing() {
        eprintln!("{setup:?}");
    }
    run_ops(setup.scatter, setup.page_limit, &ops);
    crate::count_ops(ops.len());
}

/// Runs `ops` on a fresh heap and checks the model after each.
fn run_ops(scatter: bool, page_limit: u8, ops: &[Op]) {
    let mut mem = vec![0u8; (ARENA_PAGES + 1) * PAGE];
    let mut backend = if scatter {
        ArenaBackend::scattered(&mut mem)
    } else {
        ArenaBackend::new(&mut mem)
    };
    if page_limit != 0 && (page_limit as usize) < MAX_PAGES {
        backend.set_page_limit((page_limit as usize).max(INIT_PAGES));
    }
    let start = backend.start();
    let mut h = Heap::new(
        backend,
        start,
        start + INIT_PAGES * PAGE,
        start + MAX_PAGES * PAGE,
        HeapFlags::KERNEL,
    )
    .expect("create_heap");
    let baseline = h.stats();
    let mut live: Vec<Live> = Vec::new();
    let mut freed: Vec<NonNull<u8>> = Vec::new();
    let mut tag = 0u8;
    check(&h, &live, true);
    for (i, op) in ops.iter().enumerate() {
        tag = tag.wrapping_add(1).max(1);
        if crate::tracing() {
            eprintln!("{i}: {op:?} -> {:?}", h.stats());
        }
        step(&mut h, &mut live, &mut freed, *op, tag);
        check(&h, &live, i % 16 == 15);
        if let Some(l) = live.last() {
            assert!(intact(l), "contents of the newest block changed");
        }
    }
    for l in live.drain(..) {
        assert!(intact(&l));
        h.free(l.ptr).expect("free of a live block");
    }
    check(&h, &live, true);
    h.trim();
    let end = h.stats();
    assert_eq!(
        end.heap_bytes, baseline.heap_bytes,
        "heap did not shrink back"
    );
    assert_eq!((end.total_blocks, end.free_blocks), (1, 1));
    assert_eq!(end.free_bytes, baseline.free_bytes);
    assert_eq!(h.backend().bad_unmaps(), 0);
}

/// `a` is the start of a live block.
fn is_live(live: &[Live], p: NonNull<u8>) -> bool {
    live.iter().any(|l| l.ptr == p)
}

/// Records a new block (forgetting freed pointers it reuses) and fills it.
fn admit(live: &mut Vec<Live>, freed: &mut Vec<NonNull<u8>>, l: Live) {
    freed.retain(|&f| f != l.ptr);
    fill(&l);
    live.push(l);
}

/// Checks a refused request changed nothing the caller can see: bytes,
/// heap size, live blocks (it may merge quick-listed free blocks, which
/// changes block counts). (It used to shrink the heap: finding F1.)
fn refused(h: &Heap<ArenaBackend<'_>>, before: HeapStats, r: MmError, what: &str) {
    assert!(
        matches!(r, MmError::OutOfMemory | MmError::InvalidArgument),
        "{what}: unexpected {r:?}"
    );
    assert_eq!(memory(h.stats()), memory(before), "{what} changed the heap");
}

/// A request refused with `OutOfMemory` is tried again at once: the heap
/// is as it was, so it must be refused again. (A merge of the quick lists
/// used to give the room it made back before the lookup, so the retry
/// succeeded: finding F3.)
fn spurious(
    h: &mut Heap<ArenaBackend<'_>>,
    before: HeapStats,
    e: MmError,
    mut again: impl FnMut(
        &mut Heap<ArenaBackend<'_>>,
    ) -> Result<(NonNull<u8>, Option<PhysAddr>), MmError>,
) {
    if e != MmError::OutOfMemory {
        return;
    }
    if again(h).is_ok() {
        panic!("spurious OutOfMemory: the same request succeeded right after ({before:?})");
    }
}

fn step(
    h: &mut Heap<ArenaBackend<'_>>,
    live: &mut Vec<Live>,
    freed: &mut Vec<NonNull<u8>>,
    op: Op,
    byte: u8,
) {
    let before = h.stats();
    match op {
        Op::Alloc { size, align_shift } => {
            let (size, align) = (size.bytes(), 1usize << (align_shift % 15));
            match h.alloc(size, align) {
                Ok(ptr) => admit(
                    live,
                    freed,
                    Live {
                        ptr,
                        size,
                        align: align.max(8),
                        phys: None,
                        byte,
                    },
                ),
                Err(e) => {
                    if size > u32::MAX as usize - 16 {
                        assert_eq!(e, MmError::InvalidArgument);
                    }
                    {
                        refused(h, before, e, "alloc");
                        spurious(h, before, e, |h| h.alloc(size, align).map(|p| (p, None)));
                    }
                }
            }
        }
        Op::AllocOddAlign { size, align } => {
            let (size, align) = (size.bytes(), align as usize);
            match h.alloc(size, align) {
                Ok(ptr) => {
                    assert!(align.is_power_of_two(), "alignment {align} accepted");
                    admit(
                        live,
                        freed,
                        Live {
                            ptr,
                            size,
                            align: align.max(8),
                            phys: None,
                            byte,
                        },
                    )
                }
                Err(e) => {
                    if !align.is_power_of_two() && size <= MAX_PAGES * PAGE {
                        assert_eq!(e, MmError::InvalidArgument, "alignment {align}");
                    }
                    refused(h, before, e, "alloc (odd alignment)")
                }
            }
        }
        Op::AllocPage { size } => {
            let size = size.bytes();
            match h.alloc_page_aligned(size) {
                Ok(ptr) => admit(
                    live,
                    freed,
                    Live {
                        ptr,
                        size,
                        align: PAGE,
                        phys: None,
                        byte,
                    },
                ),
                Err(e) => {
                    refused(h, before, e, "alloc_page_aligned");
                    spurious(h, before, e, |h| {
                        h.alloc_page_aligned(size).map(|p| (p, None))
                    });
                }
            }
        }
        Op::AllocPhys { size, page } => {
            let size = size.bytes();
            match h.alloc_physical(size, page) {
                Ok((ptr, phys)) => admit(
                    live,
                    freed,
                    Live {
                        ptr,
                        size,
                        align: if page { PAGE } else { 8 },
                        phys: Some(phys),
                        byte,
                    },
                ),
                Err(e) => {
                    refused(h, before, e, "alloc_physical");
                    spurious(h, before, e, |h| {
                        h.alloc_physical(size, page).map(|(p, a)| (p, Some(a)))
                    });
                }
            }
        }
        Op::Realloc { pick, size } => {
            if live.is_empty() {
                return;
            }
            let i = pick as usize % live.len();
            let size = size.bytes();
            let old = &live[i];
            match h.realloc(old.ptr, size, old.align) {
                Ok(ptr) => {
                    let keep = old.size.min(size);
                    // SAFETY: the new block has at least `size >= keep` bytes.
                    let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), keep) };
                    assert!(
                        bytes.iter().all(|&b| b == old.byte),
                        "realloc lost the contents"
                    );
                    let old = live.swap_remove(i);
                    if ptr != old.ptr {
                        freed.push(old.ptr);
                    }
                    admit(
                        live,
                        freed,
                        Live {
                            ptr,
                            size,
                            align: old.align,
                            phys: None,
                            byte,
                        },
                    );
                }
                Err(e) => refused(h, before, e, "realloc"),
            }
        }
        Op::Free { pick } => {
            if live.is_empty() {
                return;
            }
            let l = live.swap_remove(pick as usize % live.len());
            assert!(intact(&l), "contents changed before free");
            assert_eq!(h.free(l.ptr), Ok(()), "free of a live block");
            freed.push(l.ptr);
        }
        Op::DoubleFree { pick } => {
            if freed.is_empty() {
                return;
            }
            let p = freed[pick as usize % freed.len()];
            if is_live(live, p) {
                return;
            }
            bad_free(h, before, p, "double free");
        }
        Op::FreeInterior { pick, offset } => {
            if live.is_empty() {
                return;
            }
            let l = &live[pick as usize % live.len()];
            let usable = h.usable_size(l.ptr).unwrap();
            let off = 1 + offset as usize % (usable - 1);
            // SAFETY: inside the live block (`off < usable`).
            let p = unsafe { l.ptr.add(off) };
            bad_free(h, before, p, "interior free");
        }
        Op::FreeForeign { at, realloc } => {
            let Some(p) = foreign(h, at) else { return };
            if realloc {
                assert_eq!(h.realloc(p, 16, 8), Err(MmError::BadPointer));
            } else {
                assert_eq!(h.free(p), Err(MmError::BadPointer), "foreign {p:?}");
            }
            assert_eq!(h.stats(), before);
        }
        Op::FreeWild { offset } => {
            let len = h.top() - h.start();
            let addr = h.start() + (offset as usize % len) / 8 * 8;
            let p = NonNull::new(h.backend().pointer(h.start()).with_addr(addr)).unwrap();
            if is_live(live, p) {
                return;
            }
            bad_free(h, before, p, "wild free");
        }
        Op::Write { pick, byte } => {
            if live.is_empty() {
                return;
            }
            let i = pick as usize % live.len();
            live[i].byte = byte;
            fill(&live[i]);
        }
        Op::Usable { pick } => {
            if live.is_empty() {
                return;
            }
            let l = &live[pick as usize % live.len()];
            let n = h.usable_size(l.ptr).unwrap();
            assert!(n >= l.size);
        }
        Op::Trim => {
            h.trim();
            let s = h.stats();
            assert_eq!(memory(s).3, memory(before).3);
            assert!(s.heap_bytes <= before.heap_bytes);
        }
    }
}

/// A free of `p`, which is not a live block: must be refused and change
/// nothing.
fn bad_free(h: &mut Heap<ArenaBackend<'_>>, before: HeapStats, p: NonNull<u8>, what: &str) {
    match h.free(p) {
        Ok(()) => panic!("{what} of {p:?} accepted"),
        Err(MmError::BadPointer | MmError::DoubleFree | MmError::HeapCorrupted) => {}
        Err(e) => panic!("{what}: unexpected {e:?}"),
    }
    assert_eq!(h.stats(), before, "{what} changed the heap");
}
