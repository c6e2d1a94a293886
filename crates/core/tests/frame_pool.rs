//! The per-CPU frame caches (magazines) in front of the frame allocator:
//! exact accounting, no `OutOfMemory` while caches hold frames, and two
//! host threads allocating and freeing at once.

use myos_mm::frames::{FrameAllocator, FramePool, FrameSource, Zone, MAGAZINE_FRAMES};
use myos_mm::OwnedFrame;
use myos_sim::smp::SmpMachine;

fn pool(ram: u64, cpus: usize) -> (std::sync::Arc<SmpMachine>, FramePool) {
    let m = SmpMachine::new(ram, cpus).unwrap();
    let map = m.memory_map().to_vec();
    // SAFETY: the machine's RAM is used by nothing else, and the machine
    // (kept by the caller) outlives the pool.
    let fa = unsafe { FrameAllocator::new(&m.cpu(0), &map) }.unwrap();
    (m, FramePool::new(fa))
}

#[test]
fn cached_frames_count_as_free_and_accounting_is_exact() {
    let (m, pool) = pool(8 << 20, 2);
    let (c0, c1) = (m.cpu(0), m.cpu(1));
    let base = pool.stats();
    let mut f0 = pool.frames(&c0);
    let mut f1 = pool.frames(&c1);
    let got: Vec<OwnedFrame> = (0..100).map(|_| f0.alloc(Zone::High).unwrap()).collect();
    assert_eq!(pool.stats().free, base.free - 100);
    assert_eq!(pool.stats().used, base.used + 100);
    assert!(pool.cached() > 0 && pool.cached() <= 3 * MAGAZINE_FRAMES as u32);
    for f in got {
        // Freed on the other CPU: into its magazine, then in batches back.
        assert_eq!(f1.release(f), Ok(true));
    }
    assert_eq!(pool.stats(), base);
    pool.validate().unwrap();
    assert_eq!(pool.cached(), 0);
    assert_eq!(pool.global().stats(), base);
}

#[test]
fn shared_frames_go_back_on_the_last_release_only() {
    let (m, pool) = pool(4 << 20, 2);
    let (c0, c1) = (m.cpu(0), m.cpu(1));
    let (mut f0, mut f1) = (pool.frames(&c0), pool.frames(&c1));
    let a = f0.alloc(Zone::High).unwrap();
    let fr = a.frame();
    let b = f1.share(fr).unwrap();
    assert_eq!(f0.refcount(fr), Ok(2));
    assert_eq!(f1.release(b), Ok(false));
    assert_eq!(f0.release(a), Ok(true));
    assert_eq!(f0.refcount(fr), Ok(0));
    assert!(f1.share(fr).is_err());
    pool.validate().unwrap();
}

#[test]
fn no_out_of_memory_while_caches_hold_frames() {
    let (m, pool) = pool(4 << 20, 4);
    let cpus: Vec<_> = (0..4).map(|n| m.cpu(n)).collect();
    let base = pool.stats();
    // Take every frame on CPU 0, free them spread over CPUs 1..3 (each
    // keeps up to a magazine per zone), then take them all again on CPU 0.
    let mut f0 = pool.frames(&cpus[0]);
    let mut all = Vec::new();
    while let Ok(f) = f0.alloc(Zone::High) {
        all.push(f);
    }
    assert_eq!(all.len() as u32, base.free);
    for (i, f) in all.into_iter().enumerate() {
        let mut fx = pool.frames(&cpus[1 + i % 3]);
        fx.release(f).unwrap();
    }
    assert!(pool.cached() > 0);
    assert_eq!(pool.stats(), base);
    let mut again = Vec::new();
    while let Ok(f) = f0.alloc(Zone::High) {
        again.push(f);
    }
    assert_eq!(
        again.len() as u32,
        base.free,
        "OOM while caches held frames"
    );
    // A contiguous run also drains the caches first.
    for f in again {
        pool.frames(&cpus[2]).release(f).unwrap();
    }
    let run = f0.alloc_contiguous(base.free / 2, 0, Zone::High).unwrap();
    for f in run.into_frames() {
        f0.release(f).unwrap();
    }
    assert_eq!(pool.stats(), base);
    pool.validate().unwrap();
}

#[test]
fn two_threads_allocate_and_free_at_once() {
    let (m, pool) = pool(16 << 20, 2);
    let base = pool.stats();
    std::thread::scope(|s| {
        for n in 0..2 {
            let c = m.cpu(n);
            let pool = &pool;
            s.spawn(move || {
                let mut fr = pool.frames(&c);
                let mut held = Vec::new();
                for i in 0..20_000u32 {
                    if i % 3 == 2 || held.len() > 200 {
                        if let Some(f) = held.pop() {
                            fr.release(f).unwrap();
                        }
                    } else {
                        let f = fr.alloc(Zone::High).unwrap();
                        if i % 7 == 0 {
                            // A shared frame, dropped twice.
                            let g = fr.share(f.frame()).unwrap();
                            held.push(g);
                        }
                        held.push(f);
                    }
                }
                for f in held {
                    fr.release(f).unwrap();
                }
            });
        }
    });
    assert_eq!(pool.stats(), base);
    pool.validate().unwrap();
}
