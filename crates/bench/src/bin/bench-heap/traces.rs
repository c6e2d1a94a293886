//! The workloads: pre-generated traces of allocations, reallocations and
//! frees (no RNG in the timed loops).

use crate::params::{ARENA, EFF_ARENA, GROWTH_MAX, GROWTH_START, PAGE};

#[derive(Clone, Copy)]
pub(crate) enum Op {
    Alloc { slot: u32, size: u32, align: u32 },
    Free { slot: u32 },
    Realloc { slot: u32, size: u32 },
}

pub(crate) struct Trace {
    pub(crate) name: &'static str,
    pub(crate) ops: Vec<Op>,
    pub(crate) slots: usize,
    pub(crate) initial: usize,
    pub(crate) arena: usize,
}

/// wyrand: deterministic, only used while generating traces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u64
    }
    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }
    /// talc's `generate_size`: biased towards small sizes.
    fn talc_size(&mut self, max: usize) -> usize {
        let cap = self.range(16, max);
        self.range(4, cap)
    }
    /// talc's `generate_align`: 75% word, 19% 2 words, 4% 4 words, ...
    fn talc_align(&mut self) -> usize {
        8 << ((self.next() as u16).trailing_zeros() / 2)
    }
}

/// Slot bookkeeping while generating a trace (the model of the live set).
struct Live {
    live: Vec<(u32, usize, usize)>,
    free_slots: Vec<u32>,
    slots: usize,
    bytes: usize,
}

impl Live {
    fn new() -> Self {
        Live {
            live: Vec::new(),
            free_slots: Vec::new(),
            slots: 0,
            bytes: 0,
        }
    }
    fn alloc(&mut self, ops: &mut Vec<Op>, size: usize, align: usize) {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots += 1;
            self.slots as u32 - 1
        });
        self.live.push((slot, size, align));
        self.bytes += size;
        ops.push(Op::Alloc {
            slot,
            size: size as u32,
            align: align as u32,
        });
    }
    fn free(&mut self, ops: &mut Vec<Op>, idx: usize) {
        let (slot, size, _) = self.live.swap_remove(idx);
        self.bytes -= size;
        self.free_slots.push(slot);
        ops.push(Op::Free { slot });
    }
    fn realloc(&mut self, ops: &mut Vec<Op>, idx: usize, size: usize) {
        let e = &mut self.live[idx];
        self.bytes = self.bytes - e.1 + size;
        e.1 = size;
        ops.push(Op::Realloc {
            slot: e.0,
            size: size as u32,
        });
    }
    fn free_all(&mut self, ops: &mut Vec<Op>) {
        while !self.live.is_empty() {
            self.free(ops, self.live.len() - 1);
        }
    }
}

pub(crate) fn random_actions(name: &'static str, max: usize, n: usize, seed: u64) -> Trace {
    let mut rng = Rng(seed);
    let mut ops = Vec::with_capacity(n + 1000);
    let mut live = Live::new();
    while ops.len() < n {
        let action = rng.range(0, 7);
        if action == 6 {
            if !live.live.is_empty() {
                let i = rng.range(0, live.live.len());
                let size = rng.range(1, max * 3);
                live.realloc(&mut ops, i, size);
            }
        } else if action < 3 || live.live.len() < 300 {
            let (size, align) = (rng.talc_size(max), rng.talc_align());
            live.alloc(&mut ops, size, align);
        } else {
            let i = rng.range(0, live.live.len());
            live.free(&mut ops, i);
        }
    }
    live.free_all(&mut ops);
    Trace {
        name,
        ops,
        slots: live.slots,
        initial: ARENA,
        arena: ARENA,
    }
}

fn kernel_size(rng: &mut Rng) -> (usize, usize) {
    let r = rng.range(0, 100);
    let size = if r < 70 {
        rng.range(16, 257)
    } else if r < 95 {
        rng.range(257, 4097)
    } else {
        rng.range(4097, 65537)
    };
    let align = if rng.range(0, 100) < 2 { PAGE } else { 8 };
    (size, align)
}

pub(crate) fn kernel_mix(n: usize, seed: u64) -> Trace {
    let mut rng = Rng(seed);
    let mut ops = Vec::with_capacity(n + 3000);
    let mut live = Live::new();
    while ops.len() < n {
        if live.live.len() < 2000 || rng.range(0, 2) == 0 {
            let (size, align) = kernel_size(&mut rng);
            live.alloc(&mut ops, size, align);
        } else {
            let i = rng.range(0, live.live.len());
            live.free(&mut ops, i);
        }
    }
    live.free_all(&mut ops);
    Trace {
        name: "kernel",
        ops,
        slots: live.slots,
        initial: ARENA,
        arena: ARENA,
    }
}

/// Allocations (1 in 4 steps frees one) until the live bytes reach 3/4 of
/// the maximum, then everything is freed; the heap starts at 64 KiB.
pub(crate) fn growth(seed: u64) -> Trace {
    let mut rng = Rng(seed);
    let mut ops = Vec::new();
    let mut live = Live::new();
    while live.bytes < GROWTH_MAX / 4 * 3 {
        if !live.live.is_empty() && rng.range(0, 4) == 0 {
            let i = rng.range(0, live.live.len());
            live.free(&mut ops, i);
        } else {
            let (size, align) = kernel_size(&mut rng);
            live.alloc(&mut ops, size, align);
        }
    }
    live.free_all(&mut ops);
    Trace {
        name: "growth",
        ops,
        slots: live.slots,
        initial: GROWTH_START,
        arena: GROWTH_MAX,
    }
}

/// talc's heap-efficiency protocol, one round: stops (in the model) once the
/// live bytes exceed the arena, so every allocator has failed before the end.
pub(crate) fn efficiency_round(seed: u64) -> Trace {
    let mut rng = Rng(seed);
    let mut ops = Vec::new();
    let mut live = Live::new();
    while live.bytes <= EFF_ARENA {
        match rng.range(0, 10) {
            0..=4 => {
                let (size, align) = (rng.talc_size(10_000), rng.talc_align());
                live.alloc(&mut ops, size, align);
            }
            5 => {
                if !live.live.is_empty() {
                    let i = rng.range(0, live.live.len());
                    live.free(&mut ops, i);
                }
            }
            _ => {
                if !live.live.is_empty() {
                    let i = rng.range(0, live.live.len());
                    let size = rng.range(1, 100_000);
                    live.realloc(&mut ops, i, size);
                }
            }
        }
    }
    Trace {
        name: "efficiency",
        ops,
        slots: live.slots,
        initial: EFF_ARENA,
        arena: EFF_ARENA,
    }
}
