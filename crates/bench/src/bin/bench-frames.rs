//! `cargo xtask bench frames`: the frame allocator and paging, side by side
//! with `bitmap-allocator` (its 4 GiB variant, `BitAlloc1M`), on simulated
//! RAM of 16 MiB, 256 MiB and 4 GiB.
//!
//! Each measurement replays a pre-generated sequence (no RNG in the timed
//! loop), repeats it several times and reports the median ns per operation.

use std::hint::black_box;
use std::time::Instant;

use bitmap_allocator::{BitAlloc, BitAlloc1M};
use myos_mm::frames::{FrameAllocator, FrameSource, RegionKind, Zone};
use myos_mm::layout::PAGE_SIZE;
use myos_mm::paging::{AddressSpace, PteFlags};
use myos_mm::{OwnedFrame, Page, PhysAddr, VirtAddr};
use myos_sim::SimMachine;

const MIB: u64 = 1 << 20;
/// Operations per timed batch.
const BATCH: usize = 1024;
/// Timed repetitions; the median is reported.
const ROUNDS: usize = 21;

/// A small deterministic generator for the pre-generated sequences.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

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
            if rng.next().is_multiple_of(2) {
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
    let mut rng = Lcg(7);
    let mut order: Vec<usize> = (0..BATCH).collect();
    for i in (1..BATCH).rev() {
        order.swap(i, rng.next() as usize % (i + 1));
    }
    let mut got: Vec<Option<OwnedFrame>> = (0..BATCH).map(|_| None).collect();
    let ours = median_ns(2 * BATCH, || {
        for g in got.iter_mut() {
            *g = Some(p.ours.alloc(Zone::High).unwrap());
        }
        for &i in &order {
            black_box(p.ours.release(got[i].take().unwrap()).unwrap());
        }
    });
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

fn paging(ram: u64) -> Vec<Row> {
    let m = SimMachine::new(ram).unwrap();
    let map = m.memory_map().to_vec();
    // SAFETY: `fa` is dropped before `m` (declared later).
    let mut fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
    let k =
        AddressSpace::new_kernel(&m, &mut fa, PhysAddr::new(ram.min(768 * MIB) as u32)).unwrap();
    let mut us = AddressSpace::new_user(&m, &mut fa, &k).unwrap();
    us.activate(&m);
    let mut frames: Vec<OwnedFrame> = (0..BATCH).map(|_| fa.alloc(Zone::High).unwrap()).collect();
    let pages: Vec<Page> = (0..BATCH as u32)
        .map(|i| Page::from_start(VirtAddr::new(0x1000_0000 + i * 0x1000)).unwrap())
        .collect();
    let flags = PteFlags::WRITABLE | PteFlags::USER;
    let mut t_map = Vec::new();
    let mut t_tr = Vec::new();
    let mut t_un = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for (p, f) in pages.iter().zip(frames.drain(..)) {
            us.map(&m, &mut fa, *p, f, flags).unwrap().flush(&m);
        }
        t_map.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
        let t = Instant::now();
        for p in &pages {
            black_box(us.translate(&m, p.start()));
        }
        t_tr.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
        let t = Instant::now();
        for p in &pages {
            let (f, fl) = us.unmap(&m, &mut fa, *p).unwrap();
            fl.flush(&m);
            frames.push(f);
        }
        t_un.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    vec![
        Row {
            what: "map (with invlpg)".into(),
            ram,
            ours: med(t_map),
            peer: None,
        },
        Row {
            what: "translate".into(),
            ram,
            ours: med(t_tr),
            peer: None,
        },
        Row {
            what: "unmap (with invlpg)".into(),
            ram,
            ours: med(t_un),
            peer: None,
        },
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
