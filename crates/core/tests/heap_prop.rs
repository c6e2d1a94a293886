//! Property test of the kernel heap against a plain model: random
//! kmalloc / kmalloc_aligned / kmalloc_physical / realloc / kfree sequences.
//!
//! The model and its checks are [`myos_sim::model::heap`] (shared with the
//! `heap` fuzz target): after every step `validate()` passes, live blocks
//! don't overlap, each is aligned as asked and still holds what was written
//! into it, physical blocks are physically contiguous, the statistics equal
//! the model's, and the backend maps exactly the heap; refused requests
//! change nothing. At the end, freeing everything brings the heap and the
//! backend back to their baseline.

use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;

use myos_mm::MmError;
use myos_sim::model::heap::{bad_free, new_heap, refused, spurious, Live, Model, PAGE};
use proptest::prelude::*;

const ARENA_PAGES: usize = 96;

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

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut buf = Buf::new(ARENA_PAGES * PAGE);
    // Physically scattered pages: physical requests need contiguous runs.
    let mut h = new_heap(buf.slice(), true, None);
    let mut model = Model::new(&h);
    let mut counter = 0u8;
    for (i, op) in ops.into_iter().enumerate() {
        counter = counter.wrapping_add(1).max(1);
        let before = h.stats();
        let result = match op {
            Op::Alloc { size, align_shift } => {
                let align = 1usize << align_shift;
                let r = h.alloc(size, align).map(|p| (p, size, align.max(8), None));
                if let Err(e) = r {
                    spurious(&mut h, before, e, |h| h.alloc(size, align));
                }
                Some(r)
            }
            Op::AllocPage { size } => {
                let r = h.alloc_page_aligned(size).map(|p| (p, size, PAGE, None));
                if let Err(e) = r {
                    spurious(&mut h, before, e, |h| h.alloc_page_aligned(size));
                }
                Some(r)
            }
            Op::AllocPhys { size, page } => {
                let r = h
                    .alloc_physical(size, page)
                    .map(|(p, phys)| (p, size, if page { PAGE } else { 8 }, Some(phys)));
                if let Err(e) = r {
                    spurious(&mut h, before, e, |h| h.alloc_physical(size, page));
                }
                Some(r)
            }
            Op::Free { pick } => {
                if !model.live.is_empty() {
                    let l = model.free(&mut h, pick % model.live.len());
                    // Freed again: a double free, or a foreign pointer if
                    // the heap shrank below it.
                    let again = if l.ptr.as_ptr().addr() < h.top() {
                        MmError::DoubleFree
                    } else {
                        MmError::BadPointer
                    };
                    prop_assert_eq!(bad_free(&mut h, l.ptr, "double free"), again);
                }
                None
            }
            Op::Realloc { pick, size } => {
                if !model.live.is_empty() {
                    if let Err(e) = model.realloc(&mut h, pick % model.live.len(), size, counter) {
                        prop_assert_eq!(e, MmError::OutOfMemory);
                    }
                }
                None
            }
        };
        match result {
            None => {}
            Some(Ok((ptr, size, align, phys))) => model.admit(Live {
                ptr,
                size,
                align,
                phys,
                byte: counter,
            }),
            Some(Err(e)) => {
                // Sizes stay far below the limits: only room can lack.
                prop_assert_eq!(e, MmError::OutOfMemory);
                refused(&h, before, e, "alloc");
            }
        }
        model.check(&h, i % 16 == 15);
    }
    model.finish(&mut h);
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
