//! `cargo xtask bench frames`: the frame allocator and paging, side by side
//! with `bitmap-allocator` (its 4 GiB variant, `BitAlloc1M`), on simulated
//! RAM of 16 MiB, 256 MiB and 4 GiB.
//!
//! Each measurement replays a pre-generated sequence (no RNG in the timed
//! loop), repeats it several times and reports the median ns per operation.

use std::hint::black_box;
use std::time::Instant;

use bitmap_allocator::{BitAlloc, BitAlloc1M};
use myos_bench::frames::{alloc_free, permutation};
use myos_bench::paging::PagingBench;
use myos_bench::world::World;
use myos_bench::{median, Lcg};
use myos_mm::frames::{FrameAllocator, FrameSource, RegionKind, Zone};
use myos_mm::layout::PAGE_SIZE;
use myos_mm::OwnedFrame;
use myos_sim::SimMachine;

const MIB: u64 = 1 << 20;
/// Operations per timed batch.
const BATCH: usize = 1024;
/// Timed repetitions; the median is reported.
const ROUNDS: usize = 21;

/// Median ns per op of `ROUNDS` runs of `f`, which performs `ops` operations.
fn median_ns(ops: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let mut v: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / ops as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[ROUNDS / 2]
}

/// The two allocators over the same machine, brought into the same state.
struct Pair {
    _m: Box<SimMachine>,
    ours: FrameAllocator,
    peer: Box<BitAlloc1M>,
}

impl Pair {
    fn new(ram: u64) -> Pair {
        let m = Box::new(SimMachine::new(ram).expect("machine"));
        let map = m.memory_map().to_vec();
        // SAFETY: the machine is boxed in the same `Pair` as the allocator,
        // so its RAM outlives every use of `ours` (which has no destructor).
        let ours = unsafe { FrameAllocator::new(&*m, &map) }.expect("allocator");
        let mut peer = Box::new(BitAlloc1M::DEFAULT);
        for r in map.iter().filter(|r| r.kind == RegionKind::Usable) {
            let lo = r.start.div_ceil(PAGE_SIZE as u64) as usize;
            let hi = (r.end / PAGE_SIZE as u64) as usize;
            peer.insert(lo..hi);
        }
        // Same free set in both: take the frames holding our metadata out of the peer too.
        let (meta, n) = ours.metadata_frames();
        peer.remove(meta.number() as usize..(meta.number() + n) as usize);
        Pair { _m: m, ours, peer }
    }

    /// Allocates every other frame of a random half of memory in both,
    /// so the free map is fragmented the same way.
    fn fragment(&mut self, seed: u64) {
        let mut rng = Lcg(seed);
        let mut taken = Vec::new();
        while let Ok(f) = self.ours.alloc(Zone::High) {
            taken.push(f);
        }
        for f in taken {
            if rng.draw().is_multiple_of(2) {
                self.ours.release(f).unwrap();
            } else {
                self.peer
                    .remove(f.number() as usize..f.number() as usize + 1);
            }
        }
    }
}

struct Row {
    what: String,
    ram: u64,
    ours: f64,
    peer: Option<f64>,
}

fn single(ram: u64, fragmented: bool) -> Row {
    let mut p = Pair::new(ram);
    if fragmented {
        p.fragment(0x5eed);
    }
    // Pre-generated free order: a fixed permutation of the batch.
    let order = permutation(BATCH, 7);
    let mut got: Vec<Option<OwnedFrame>> = (0..BATCH).map(|_| None).collect();
    let ours = median_ns(2 * BATCH, || alloc_free(&mut p.ours, &mut got, &order));
    let mut keys = vec![0usize; BATCH];
    let peer = median_ns(2 * BATCH, || {
        for k in keys.iter_mut() {
            *k = p.peer.alloc().unwrap();
        }
        for &i in &order {
            black_box(p.peer.dealloc(keys[i]));
        }
    });
    let what = if fragmented {
        "alloc+free, 50% fragmented"
    } else {
        "alloc+free, empty"
    };
    Row {
        what: what.into(),
        ram,
        ours,
        peer: Some(peer),
    }
}

fn contiguous(ram: u64) -> Row {
    let mut p = Pair::new(ram);
    const RUNS: usize = 64;
    let mut got = Vec::with_capacity(RUNS);
    let ours = median_ns(2 * RUNS, || {
        for _ in 0..RUNS {
            got.push(p.ours.alloc_contiguous(16, 4, Zone::High).unwrap());
        }
        for run in got.drain(..) {
            for f in run.into_frames() {
                p.ours.release(f).unwrap();
            }
        }
    });
    let mut keys = Vec::with_capacity(RUNS);
    let peer = median_ns(2 * RUNS, || {
        for _ in 0..RUNS {
            keys.push(p.peer.alloc_contiguous(None, 16, 4).unwrap());
        }
        for k in keys.drain(..) {
            p.peer.dealloc_contiguous(k, 16);
        }
    });
    Row {
        what: "16-frame run aligned 16, alloc+free".into(),
        ram,
        ours,
        peer: Some(peer),
    }
}

/// Map, translate and unmap on a user space of a classic machine with
/// `ram` bytes ([`PagingBench`], shared with `bench-pae`).
fn paging(ram: u64) -> Vec<Row> {
    let w = World::new(ram);
    let mut b = PagingBench::new(&w);
    let times: Vec<_> = (0..ROUNDS).map(|_| b.round()).collect();
    let row = |what: &str, ours: f64| Row {
        what: what.into(),
        ram,
        ours,
        peer: None,
    };
    vec![
        row(
            "map (with invlpg)",
            median(times.iter().map(|t| t.map).collect()),
        ),
        row(
            "translate",
            median(times.iter().map(|t| t.translate).collect()),
        ),
        row(
            "unmap (with invlpg)",
            median(times.iter().map(|t| t.unmap).collect()),
        ),
    ]
}

fn main() {
    let sizes = [16 * MIB, 256 * MIB, 4096 * MIB];
    let mut rows = Vec::new();
    for &ram in &sizes {
        rows.push(single(ram, false));
        rows.push(single(ram, true));
        rows.push(contiguous(ram));
        rows.extend(paging(ram));
    }
    println!("## Frames and paging (ns/op, median of {ROUNDS} rounds)\n");
    println!("| operation | RAM | myos-mm | bitmap-allocator (BitAlloc1M) | ours / peer |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        let (peer, ratio) = match r.peer {
            Some(p) => (format!("{p:.1}"), format!("{:.2}", r.ours / p)),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {} | {} MiB | {:.1} | {} | {} |",
            r.what,
            r.ram / MIB,
            r.ours,
            peer,
            ratio
        );
    }
    println!("\n### Cost as RAM grows (4 GiB / 16 MiB, goal ≤ 1.3)\n");
    println!("| operation | myos-mm | bitmap-allocator |");
    println!("|---|---:|---:|");
    let n = rows.len() / sizes.len();
    for i in 0..n {
        let (small, big) = (&rows[i], &rows[i + 2 * n]);
        let peer = match (small.peer, big.peer) {
            (Some(a), Some(b)) => format!("{:.2}", b / a),
            _ => "—".into(),
        };
        println!(
            "| {} | {:.2} | {} |",
            small.what,
            big.ours / small.ours,
            peer
        );
    }
    println!("\n### Metadata per frame\n");
    for &ram in &sizes {
        let p = Pair::new(ram);
        let ours = p.ours.metadata_bytes() as f64 / p.ours.frame_limit() as f64;
        println!(
            "- {} MiB: myos-mm {:.3} bytes/frame (16-bit reference count + free bitmaps); \
             bitmap-allocator {:.3} bytes/frame (free bits only, fixed 4 GiB size)",
            ram / MIB,
            ours,
            std::mem::size_of::<BitAlloc1M>() as f64 / p.ours.frame_limit() as f64
        );
    }
}
