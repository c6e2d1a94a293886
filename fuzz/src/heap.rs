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
//! limit (out of memory). The model and its checks are
//! [`myos_sim::model::heap`], shared with the core's property test.
//!
//! [`ArenaBackend`]: myos_mm::heap::ArenaBackend
//! [`ArenaBackend::scattered`]: myos_mm::heap::ArenaBackend::scattered

use std::ptr::NonNull;

use arbitrary::Arbitrary;
use myos_mm::heap::HeapBackend;
use myos_mm::MmError;
use myos_sim::model::heap::{
    bad_free, memory, new_heap, ArenaHeap, Live, Model, Request, INIT_PAGES, MAX_PAGES, PAGE,
};

/// Pages of host memory behind the arena.
const ARENA_PAGES: usize = 80;

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
        /// Where, relative to the heap (see `foreign`).
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

/// The heap's configuration, from the input's first bytes.
#[derive(Arbitrary, Debug)]
struct Setup {
    scatter: bool,
    /// Page limit of the backend: none when 0 or above the heap's maximum.
    page_limit: u8,
}

/// A pointer outside the heap `[start, max)`: below it, past `max`, or
/// something small (NULL-ish).
fn foreign(h: &ArenaHeap<'_>, at: u32) -> Option<NonNull<u8>> {
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
    let limit = (page_limit != 0 && usize::from(page_limit) < MAX_PAGES)
        .then(|| usize::from(page_limit).max(INIT_PAGES));
    let mut h = new_heap(&mut mem, scatter, limit);
    let mut model = Model::new(&h);
    let mut freed: Vec<NonNull<u8>> = Vec::new();
    let mut tag = 0u8;
    for (i, op) in ops.iter().enumerate() {
        tag = tag.wrapping_add(1).max(1);
        if crate::tracing() {
            eprintln!("{i}: {op:?} -> {:?}", h.stats());
        }
        step(&mut h, &mut model, &mut freed, *op, tag);
        model.check(&h, i % 16 == 15);
    }
    model.finish(&mut h);
}

/// `a` is the start of a live block.
fn is_live(live: &[Live], p: NonNull<u8>) -> bool {
    live.iter().any(|l| l.ptr == p)
}

/// [`Model::alloc`], forgetting the freed pointers the block reuses.
fn alloc(
    h: &mut ArenaHeap<'_>,
    model: &mut Model,
    freed: &mut Vec<NonNull<u8>>,
    r: Request,
    byte: u8,
) -> Result<NonNull<u8>, MmError> {
    let got = model.alloc(h, r, byte);
    if let Ok(p) = got {
        freed.retain(|&f| f != p);
    }
    got
}

fn step(h: &mut ArenaHeap<'_>, model: &mut Model, freed: &mut Vec<NonNull<u8>>, op: Op, byte: u8) {
    let before = h.stats();
    match op {
        Op::Alloc { size, align_shift } => {
            let (size, align) = (size.bytes(), 1usize << (align_shift % 15));
            let r = alloc(h, model, freed, Request::Align(size, align), byte);
            if size > u32::MAX as usize - 16 {
                assert_eq!(r, Err(MmError::InvalidArgument));
            }
        }
        Op::AllocOddAlign { size, align } => {
            let (size, align) = (size.bytes(), align as usize);
            match alloc(h, model, freed, Request::Align(size, align), byte) {
                Ok(_) => assert!(align.is_power_of_two(), "alignment {align} accepted"),
                Err(e) if size <= MAX_PAGES * PAGE && !align.is_power_of_two() => {
                    assert_eq!(e, MmError::InvalidArgument, "alignment {align}")
                }
                Err(_) => {}
            }
        }
        Op::AllocPage { size } => {
            let _ = alloc(h, model, freed, Request::Page(size.bytes()), byte);
        }
        Op::AllocPhys { size, page } => {
            let _ = alloc(h, model, freed, Request::Phys(size.bytes(), page), byte);
        }
        Op::Realloc { pick, size } => {
            if model.live.is_empty() {
                return;
            }
            let i = pick as usize % model.live.len();
            // (A refusal is checked by the model.)
            if let Ok((old, new)) = model.realloc(h, i, size.bytes(), byte) {
                if new != old {
                    freed.push(old);
                }
                freed.retain(|&f| f != new);
            }
        }
        Op::Free { pick } => {
            if model.live.is_empty() {
                return;
            }
            let l = model.free(h, pick as usize % model.live.len());
            freed.push(l.ptr);
        }
        Op::DoubleFree { pick } => {
            if freed.is_empty() {
                return;
            }
            let p = freed[pick as usize % freed.len()];
            if is_live(&model.live, p) {
                return;
            }
            bad_free(h, p, "double free");
        }
        Op::FreeInterior { pick, offset } => {
            if model.live.is_empty() {
                return;
            }
            let l = &model.live[pick as usize % model.live.len()];
            let usable = h.usable_size(l.ptr).unwrap();
            let off = 1 + offset as usize % (usable - 1);
            // SAFETY: inside the live block (`off < usable`).
            let p = unsafe { l.ptr.add(off) };
            bad_free(h, p, "interior free");
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
            if is_live(&model.live, p) {
                return;
            }
            bad_free(h, p, "wild free");
        }
        Op::Write { pick, byte } => {
            if model.live.is_empty() {
                return;
            }
            let i = pick as usize % model.live.len();
            model.live[i].byte = byte;
            model.live[i].fill();
        }
        Op::Usable { pick } => {
            if model.live.is_empty() {
                return;
            }
            let l = &model.live[pick as usize % model.live.len()];
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
