//! Single-frame allocation and free.

use std::hint::black_box;

use myos_mm::frames::{FrameAllocator, FrameSource, Zone};
use myos_mm::OwnedFrame;

use crate::Lcg;

/// A fixed permutation of `0..n` (the order frames are freed in).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Lcg(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.draw() as usize % (i + 1));
    }
    order
}

/// Allocates `got.len()` frames from zone `High` into `got`, then frees
/// them in `order`: `2 * got.len()` operations.
#[inline(never)]
pub fn alloc_free(fa: &mut FrameAllocator, got: &mut [Option<OwnedFrame>], order: &[usize]) {
    for g in got.iter_mut() {
        *g = Some(fa.alloc(Zone::High).unwrap());
    }
    for &i in order {
        black_box(fa.release(got[i].take().unwrap()).unwrap());
    }
}
