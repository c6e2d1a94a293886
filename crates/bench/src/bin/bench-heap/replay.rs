//! Replaying a trace on one allocator: timed (ns/op), per-operation
//! latencies (rdtsc), heap efficiency; one allocator's row of figures.

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::{self, NonNull};
use std::time::Instant;

use crate::contenders::Contender;
use crate::params::{PAGE, TIMED_REPEATS};
use crate::traces::{Op, Trace};

/// A page-aligned arena, reused by every contender in turn.
pub(crate) struct Arena(NonNull<u8>, Layout);

impl Arena {
    /// A zeroed arena whose pages are all faulted in, so that no contender
    /// (the first one measured in particular) pays the host's page faults.
    pub(crate) fn new(bytes: usize) -> Self {
        let l = Layout::from_size_align(bytes, PAGE).expect("layout");
        // SAFETY: non-zero size.
        let p = NonNull::new(unsafe { std::alloc::alloc_zeroed(l) }).expect("arena");
        for off in (0..bytes).step_by(PAGE) {
            // SAFETY: `off < bytes`, inside the allocation; writing the zero
            // it already holds only makes the host map the page.
            unsafe { p.as_ptr().add(off).write_volatile(0) };
        }
        Arena(p, l)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.0.as_ptr(), self.1) }
    }
}

#[derive(Clone, Copy)]
struct Slot {
    p: *mut u8,
    size: usize,
    align: usize,
}

const EMPTY: Slot = Slot {
    p: ptr::null_mut(),
    size: 0,
    align: 0,
};

/// One operation; returns false when an allocation or reallocation failed.
#[inline(always)]
fn step<C: Contender>(c: &mut C, slots: &mut [Slot], op: Op) -> bool {
    match op {
        Op::Alloc { slot, size, align } => {
            let (size, align) = (size as usize, align as usize);
            let mut p = c.alloc(size, align);
            while p.is_null() && c.grow(size + align) {
                p = c.alloc(size, align);
            }
            slots[slot as usize] = Slot { p, size, align };
            !p.is_null()
        }
        Op::Free { slot } => {
            let s = std::mem::replace(&mut slots[slot as usize], EMPTY);
            if !s.p.is_null() {
                // SAFETY: the slot holds a live block with this layout.
                unsafe { c.free(s.p, s.size, s.align) };
            }
            true
        }
        Op::Realloc { slot, size } => {
            let s = &mut slots[slot as usize];
            if s.p.is_null() {
                return true;
            }
            // SAFETY: the slot holds a live block with this layout.
            let q = unsafe { c.realloc(s.p, s.size, s.align, size as usize) };
            if q.is_null() {
                return false;
            }
            s.p = q;
            s.size = size as usize;
            true
        }
    }
}

/// Frees what is still live (after a failure).
fn drain<C: Contender>(c: &mut C, slots: &mut [Slot]) {
    for s in slots.iter_mut() {
        if !s.p.is_null() {
            // SAFETY: live block with this layout.
            unsafe { c.free(s.p, s.size, s.align) };
            *s = EMPTY;
        }
    }
}

/// One replay of a trace, not timed (`--replay`, for callgrind's
/// `--toggle-collect='*replay_once*'`).
#[inline(never)]
pub(crate) fn replay_once<C: Contender>(arena: &Arena, t: &Trace) {
    let (mut c, mut slots) = start::<C>(arena, t);
    for &op in &t.ops {
        black_box(step(&mut c, &mut slots, op));
    }
    drain(&mut c, &mut slots);
}

/// A fresh contender on the arena, and the empty slots of the trace.
fn start<C: Contender>(arena: &Arena, t: &Trace) -> (C, Vec<Slot>) {
    // SAFETY: the arena outlives the contender (every caller drops it first).
    let c = unsafe { C::init(arena.0.as_ptr(), t.arena, t.initial) };
    (c, vec![EMPTY; t.slots])
}

/// Nanoseconds for the whole trace (best of `TIMED_REPEATS` fresh runs).
pub(crate) fn timed<C: Contender>(arena: &Arena, t: &Trace) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..TIMED_REPEATS {
        let (mut c, mut slots) = start::<C>(arena, t);
        let start = Instant::now();
        for &op in &t.ops {
            black_box(step(&mut c, &mut slots, op));
        }
        let ns = start.elapsed().as_nanos() as f64;
        drain(&mut c, &mut slots);
        best = best.min(ns);
    }
    best
}

#[inline(always)]
fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static T0: OnceLock<Instant> = OnceLock::new();
        T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// p50 and p99.9 of per-operation cycles.
pub(crate) fn latencies<C: Contender>(arena: &Arena, t: &Trace) -> (u64, u64) {
    let mut lat = Vec::with_capacity(t.ops.len());
    let (mut c, mut slots) = start::<C>(arena, t);
    for &op in &t.ops {
        let t0 = cycles();
        black_box(step(&mut c, &mut slots, op));
        lat.push(cycles().wrapping_sub(t0));
    }
    drain(&mut c, &mut slots);
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.999))
}

/// talc's heap efficiency: mean over rounds of live bytes / arena at the
/// first failure.
pub(crate) fn efficiency<C: Contender>(arena: &Arena, rounds: &[Trace]) -> f64 {
    let mut sum = 0.0;
    for t in rounds {
        let (mut c, mut slots) = start::<C>(arena, t);
        for &op in &t.ops {
            if !step(&mut c, &mut slots, op) {
                break;
            }
        }
        let live: usize = slots
            .iter()
            .filter(|s| !s.p.is_null())
            .map(|s| s.size)
            .sum();
        sum += live as f64 / t.arena as f64;
        drain(&mut c, &mut slots);
    }
    100.0 * sum / rounds.len() as f64
}

pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) ns: Vec<f64>,
    pub(crate) p50: Vec<u64>,
    pub(crate) p999: Vec<u64>,
    pub(crate) eff: f64,
}

pub(crate) fn measure<C: Contender>(
    arena: &Arena,
    traces: &[Trace],
    eff: &[Trace],
    floor: &[f64],
) -> Row {
    eprintln!("  {}", C::NAME);
    let mut row = Row {
        name: C::NAME,
        ns: vec![],
        p50: vec![],
        p999: vec![],
        eff: 0.0,
    };
    for (t, fl) in traces.iter().zip(floor) {
        let ns = timed::<C>(arena, t);
        row.ns.push(((ns - fl) / t.ops.len() as f64).max(0.01));
        let (p50, p999) = latencies::<C>(arena, t);
        row.p50.push(p50);
        row.p999.push(p999);
    }
    row.eff = efficiency::<C>(arena, eff);
    row
}

/// The median (the upper one of an even count).
pub(crate) fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

pub(crate) fn geomean(v: &[f64]) -> f64 {
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}
