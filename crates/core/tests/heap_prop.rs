//! Property test of the kernel heap against a plain model: random
//! kmalloc / kmalloc_aligned / kmalloc_physical / realloc / kfree sequences.
//!
//! After every step: `validate()` passes, live blocks don't overlap, each is
//! aligned as asked, physical blocks are physically contiguous, the
//! statistics equal the model's, and the backend maps exactly the heap. At
//! free time every byte written into a block is still there. At the end,
//! freeing everything brings the heap and the backend back to their baseline.

use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;

use myos_mm::heap::{ArenaBackend, Heap, HeapBackend, HeapFlags, HeapStats, HEADER};
use myos_mm::{MmError, PhysAddr};
use proptest::prelude::*;

const PAGE: usize = 4096;
const ARENA_PAGES: usize = 96;
const INIT_PAGES: usize = 2;
const MAX_PAGES: usize = 64;

/// A page-aligned host buffer.
struct Buf(NonNull<u8>, Layout);

impl Buf {
    fn new(bytes: usize) -> Self {
        let layout = Layout::from_size_align(bytes, PAGE).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe { alloc(layout) };
        Buf(NonNull::new(p).unwrap(), layout)
    }
    fn slice(&mut self) -> &mut [u8] {
        // SAFETY: owned buffer of layout.size() bytes, zeroed first.
        unsafe {
            self.0.as_ptr().write_bytes(0, self.1.size());
            std::slice::from_raw_parts_mut(self.0.as_ptr(), self.1.size())
        }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.0.as_ptr(), self.1) }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Alloc { size: usize, align_shift: u32 },
    AllocPage { size: usize },
    AllocPhys { size: usize, page: bool },
    Free { pick: usize },
    Realloc { pick: usize, size: usize },
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..256,
        3 => 256usize..4096,
        1 => 4096usize..40_000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (size(), 0u32..8).prop_map(|(size, align_shift)| Op::Alloc { size, align_shift }),
        1 => size().prop_map(|size| Op::AllocPage { size }),
        1 => (size(), any::<bool>()).prop_map(|(size, page)| Op::AllocPhys { size, page }),
        6 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        2 => (any::<usize>(), size()).prop_map(|(pick, size)| Op::Realloc { pick, size }),
    ]
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
    // SAFETY: a live block of at least `size` bytes.
    unsafe { l.ptr.as_ptr().write_bytes(l.byte, l.size) }
}

fn intact(l: &Live) -> bool {
    // SAFETY: a live block of at least `size` bytes.
    unsafe { std::slice::from_raw_parts(l.ptr.as_ptr(), l.size) }
        .iter()
        .all(|&b| b == l.byte)
}

fn check<B: HeapBackend>(
    h: &Heap<B>,
    live: &[Live],
    mapped_pages: usize,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(h.validate(), Ok(()));
    let s = h.stats();
    // Stats equal the model's: one block per live allocation (plus free ones),
    // used bytes = pad + sentinel + every live block in full.
    prop_assert_eq!(s.total_blocks - s.free_blocks, live.len());
    let used: usize = 16
        + live
            .iter()
            .map(|l| h.usable_size(l.ptr).unwrap() + HEADER)
            .sum::<usize>();
    prop_assert_eq!(s.used_bytes, used);
    for l in live {
        let usable = h.usable_size(l.ptr).unwrap();
        prop_assert!(usable >= l.size && usable < l.size.max(24) + 16 + 32);
    }
    prop_assert_eq!(s.free_bytes + s.used_bytes, s.heap_bytes);
    prop_assert_eq!(s.heap_bytes, mapped_pages * PAGE);
    prop_assert!(s.largest_free <= s.free_bytes);
    prop_assert!(s.heap_bytes >= INIT_PAGES * PAGE && s.heap_bytes <= MAX_PAGES * PAGE);
    // No overlap, alignment, physical contiguity.
    let mut spans: Vec<(usize, usize)> = live
        .iter()
        .map(|l| (l.ptr.as_ptr().addr(), l.size.max(1)))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        prop_assert!(w[0].0 + w[0].1 <= w[1].0, "overlap {:x?}", w);
    }
    for l in live {
        let a = l.ptr.as_ptr().addr();
        prop_assert_eq!(a % l.align, 0);
        if let Some(p) = l.phys {
            let mut off = 0;
            while off < l.size.max(1) {
                prop_assert_eq!(
                    h.backend().phys(a + off).map(|x| x.as_usize()),
                    Some(p.as_usize() + off)
                );
                off = (off | (PAGE - 1)) + 1;
            }
            let last = l.size.max(1) - 1;
            prop_assert_eq!(
                h.backend().phys(a + last).map(|x| x.as_usize()),
                Some(p.as_usize() + last)
            );
        }
    }
    Ok(())
}

/// What a failed request must leave unchanged: bytes, heap size, live
/// blocks (it may merge quick-listed free blocks, which changes block counts).
fn memory(s: HeapStats) -> (usize, usize, usize, usize) {
    (
        s.free_bytes,
        s.used_bytes,
        s.heap_bytes,
        s.total_blocks - s.free_blocks,
    )
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut buf = Buf::new(ARENA_PAGES * PAGE);
    // Physically scattered pages: physical requests need contiguous runs.
    let backend = ArenaBackend::scattered(buf.slice());
    let start = backend.start();
    let mut h = Heap::new(
        backend,
        start,
        start + INIT_PAGES * PAGE,
        start + MAX_PAGES * PAGE,
        HeapFlags::KERNEL,
    )
    .unwrap();
    let mut live: Vec<Live> = Vec::new();
    let mut counter = 0u8;
    for op in ops {
        counter = counter.wrapping_add(1).max(1);
        let before = h.stats();
        let result = match op {
            Op::Alloc { size, align_shift } => {
                let align = 1usize << align_shift;
                h.alloc(size, align).map(|p| (p, size, align.max(8), None))
            }
            Op::AllocPage { size } => h.alloc_page_aligned(size).map(|p| (p, size, PAGE, None)),
            Op::AllocPhys { size, page } => h
                .alloc_physical(size, page)
                .map(|(p, phys)| (p, size, if page { PAGE } else { 8 }, Some(phys))),
            Op::Free { pick } => {
                if !live.is_empty() {
                    let l = live.swap_remove(pick % live.len());
                    prop_assert!(intact(&l), "block contents changed");
                    prop_assert_eq!(h.free(l.ptr), Ok(()));
                    // Freed again: a double free, or a foreign pointer if
                    // the heap shrank below it.
                    let again = if l.ptr.as_ptr().addr() < h.top() {
                        MmError::DoubleFree
                    } else {
                        MmError::BadPointer
                    };
                    prop_assert_eq!(h.free(l.ptr), Err(again));
                }
                Err(MmError::InvalidArgument)
            }
            Op::Realloc { pick, size } => {
                if !live.is_empty() {
                    let i = pick % live.len();
                    prop_assert!(intact(&live[i]));
                    match h.realloc(live[i].ptr, size, live[i].align) {
                        Ok(p) => {
                            let l = &mut live[i];
                            l.ptr = p;
                            l.size = l.size.min(size);
                            l.phys = None;
                            prop_assert!(intact(l), "realloc lost contents");
                            l.size = size;
                            l.byte = counter;
                            fill(l);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, MmError::OutOfMemory);
                            prop_assert_eq!(
                                memory(h.stats()),
                                memory(before),
                                "failed realloc changed the heap"
                            );
                        }
                    }
                }
                Err(MmError::InvalidArgument)
            }
        };
        match result {
            Ok((ptr, size, align, phys)) => {
                let l = Live {
                    ptr,
                    size,
                    align,
                    phys,
                    byte: counter,
                };
                fill(&l);
                live.push(l);
            }
            Err(MmError::InvalidArgument) => {}
            Err(e) => {
                prop_assert_eq!(e, MmError::OutOfMemory);
                prop_assert_eq!(
                    memory(h.stats()),
                    memory(before),
                    "failed alloc changed the heap"
                );
            }
        }
        let mapped = h.backend().mapped_pages();
        check(&h, &live, mapped)?;
    }
    for l in live.drain(..) {
        prop_assert!(intact(&l));
        prop_assert_eq!(h.free(l.ptr), Ok(()));
    }
    h.validate().unwrap();
    let s = h.stats();
    prop_assert_eq!((s.total_blocks, s.free_blocks), (1, 1));
    prop_assert_eq!(
        s.heap_bytes,
        INIT_PAGES * PAGE,
        "heap back to its initial size"
    );
    prop_assert_eq!(
        h.backend().mapped_pages(),
        INIT_PAGES,
        "frames back to baseline"
    );
    prop_assert_eq!(h.backend().bad_unmaps(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn heap_matches_model(ops in proptest::collection::vec(op(), 1..300)) {
        run(ops)?;
    }
}

#[test]
fn heap_matches_model_long_run() {
    // One long deterministic sequence that fills the heap to its max.
    let mut ops = Vec::new();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let r = x as usize;
        ops.push(match r % 16 {
            0..=6 => Op::Alloc {
                size: (r >> 8) % 3000,
                align_shift: ((r >> 40) % 8) as u32,
            },
            7 => Op::AllocPage {
                size: (r >> 8) % 9000,
            },
            8 => Op::AllocPhys {
                size: (r >> 8) % 12000,
                page: r & 1 << 50 != 0,
            },
            9 | 10 => Op::Realloc {
                pick: r >> 8,
                size: (r >> 20) % 5000,
            },
            _ => Op::Free { pick: r >> 8 },
        });
    }
    run(ops).unwrap();
}
