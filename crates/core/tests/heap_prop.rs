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

use myos_mm::MmError;
use myos_sim::model::heap::{bad_free, new_heap, Model, Request, PAGE};
use proptest::prelude::*;

const ARENA_PAGES: usize = 96;

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
    let mut mem = vec![0u8; (ARENA_PAGES + 1) * PAGE];
    // Physically scattered pages: physical requests need contiguous runs.
    let mut h = new_heap(&mut mem, true, None);
    let mut model = Model::new(&h);
    let mut counter = 0u8;
    for (i, op) in ops.into_iter().enumerate() {
        counter = counter.wrapping_add(1).max(1);
        let refused = match op {
            Op::Alloc { size, align_shift } => {
                let r = Request::Align(size, 1 << align_shift);
                model.alloc(&mut h, r, counter).err()
            }
            Op::AllocPage { size } => model.alloc(&mut h, Request::Page(size), counter).err(),
            Op::AllocPhys { size, page } => {
                let r = Request::Phys(size, page);
                model.alloc(&mut h, r, counter).err()
            }
            Op::Free { pick } if !model.live.is_empty() => {
                let l = model.free(&mut h, pick % model.live.len());
                // Freed again: a double free, or a foreign pointer if
                // the heap shrank below it.
                let again = if l.ptr.as_ptr().addr() < h.top() {
                    MmError::DoubleFree
                } else {
                    MmError::BadPointer
                };
                prop_assert_eq!(bad_free(&mut h, l.ptr, "double free"), again);
                None
            }
            Op::Realloc { pick, size } if !model.live.is_empty() => {
                let i = pick % model.live.len();
                model.realloc(&mut h, i, size, counter).err()
            }
            Op::Free { .. } | Op::Realloc { .. } => None,
        };
        if let Some(e) = refused {
            // Sizes stay far below the limits: only room can lack.
            prop_assert_eq!(e, MmError::OutOfMemory);
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
