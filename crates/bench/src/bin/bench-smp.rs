//! `cargo xtask bench smp`: the memory manager on several CPUs.
//!
//! - Shootdown requests (IPIs) per munmap and mprotect call of 1 page, 16
//!   pages and 1 MiB, on a space live on 1, 2 and 4 simulated CPUs (every
//!   CPU has read the pages, so each holds their translations): counted by
//!   the simulator, not timed.
//! - Frame allocation + free throughput of the per-CPU pool (`FramePool`)
//!   with 1 and 2 host threads, and of the frame allocator behind one global
//!   lock (`&spin::Mutex<FrameAllocator>`) with 1 and 2 threads: best of 5
//!   rounds each, the configurations interleaved.
//! - Demand-zero fault throughput in the threaded simulator with 1 and 2
//!   host threads (each a CPU with its own address space).
//!
//! Prints a table and writes the SMP section of `BENCHMARKS.md` (between
//! `<!-- smp:begin -->` and `<!-- smp:end -->`, appended if missing);
//! `bench-smp ipis|frames|faults` runs one part and writes nothing.

use std::fmt::Write as _;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use myos_abi::{RawMman, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use myos_mm::frames::{FrameAllocator, FramePool, FrameSource, Zone};
use myos_mm::vm::FdTable;
use myos_mm::VirtAddr;
use myos_sim::smp::world::{SmpVm, SmpWorld};
use myos_sim::smp::SmpMachine;
use myos_sim::Mode;
use spin::Mutex;

const REGION: u32 = 0x0800_0000;
const RW: u32 = PROT_READ | PROT_WRITE;
const ROUNDS: usize = 5;

/// `pages` private anonymous pages at [`REGION`] in `vm`.
fn map_region(vm: &mut SmpVm<'_>, pages: u32) {
    vm.mmap(
        &FdTable::new(),
        VirtAddr::new(REGION),
        pages * 4096,
        RW,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        -1,
        0,
    )
    .expect("mmap");
}

/// Shootdown counts of one call: (IPIs, shootdowns, full flushes).
fn one_call(live: usize, pages: u32, op: &str) -> (u64, u64, u64) {
    let w = SmpWorld::new(64 << 20, 4);
    let mut vm = w.space(0);
    map_region(&mut vm, pages);
    for i in 0..pages {
        w.write_u32(0, &mut vm, REGION + i * 4096, i)
            .expect("touch");
    }
    for n in 1..live {
        w.load(n, &vm);
        for i in 0..pages {
            w.cpu(n)
                .read_u32(REGION + i * 4096, Mode::User)
                .expect("read");
        }
    }
    let before = w.machine.shootdown_stats();
    match op {
        "munmap" => vm.munmap(VirtAddr::new(REGION), pages * 4096),
        _ => vm.mprotect(VirtAddr::new(REGION), pages * 4096, PROT_READ),
    }
    .expect("call");
    let after = w.machine.shootdown_stats();
    assert!(w.check().is_ok(), "incoherent after {op}");
    for n in 1..live {
        w.unload(n, &vm);
    }
    vm.destroy();
    w.finish();
    (
        after.ipis_sent - before.ipis_sent,
        after.shootdowns - before.shootdowns,
        after.full_flushes - before.full_flushes,
    )
}

fn ipi_section(goals: &mut Vec<String>) -> String {
    let mut out = String::from(
        "| call | size | live on 1 CPU | live on 2 CPUs | live on 4 CPUs |\n|---|---|---|---|---|\n",
    );
    let mut worst_per_remote: f64 = 0.0;
    let mut single_cpu_ipis = 0;
    for op in ["munmap", "mprotect"] {
        for (pages, label) in [(1u32, "1 page"), (16, "16 pages"), (256, "1 MiB")] {
            let mut row = format!("| {op} | {label} |");
            for live in [1usize, 2, 4] {
                let (ipis, shootdowns, full) = one_call(live, pages, op);
                let remote = live as u64 - 1;
                if remote == 0 {
                    single_cpu_ipis += ipis;
                } else {
                    worst_per_remote = worst_per_remote.max(ipis as f64 / remote as f64);
                }
                let kind = if ipis == 0 {
                    ""
                } else if full > 0 {
                    " (full flush)"
                } else {
                    " (page list)"
                };
                let _ = write!(row, " {ipis} IPIs, {shootdowns} shootdown{kind} |");
            }
            out.push_str(&row);
            out.push('\n');
        }
    }
    goals.push(format!(
        "at most 1 IPI per remote CPU per call: {} (worst {worst_per_remote:.2})",
        if worst_per_remote <= 1.0 {
            "met"
        } else {
            "missed"
        }
    ));
    goals.push(format!(
        "no IPI when the space is live on one CPU: {} ({single_cpu_ipis} sent)",
        if single_cpu_ipis == 0 {
            "met"
        } else {
            "missed"
        }
    ));
    out
}

/// From the first thread's start to the last one's end: the time the work
/// took, however the host scheduled the threads (the main thread's own
/// clock would miss work done while it was descheduled).
fn span(times: impl Iterator<Item = (Instant, Instant)>) -> std::time::Duration {
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    for (a, b) in times {
        first = Some(first.map_or(a, |f| f.min(a)));
        last = Some(last.map_or(b, |l| l.max(b)));
    }
    match (first, last) {
        (Some(a), Some(b)) => b - a,
        _ => std::time::Duration::ZERO,
    }
}

/// Alloc+free pairs per second over `threads` threads, each allocating
/// `burst` frames and freeing them, `iters` times.
fn frame_rate(
    threads: usize,
    pooled: bool,
    m: &Arc<SmpMachine>,
    burst: usize,
    iters: usize,
) -> f64 {
    let map = m.memory_map().to_vec();
    // SAFETY: the machine's RAM is used by nothing else (one allocator
    // exists at a time: this one is dropped at the end of the function) and
    // outlives the allocator.
    let fa = unsafe { FrameAllocator::new(&m.cpu(0), &map) }.expect("allocator");
    let (pool, global) = if pooled {
        (Some(FramePool::new(fa)), None)
    } else {
        (None, Some(Mutex::new(fa)))
    };
    let start = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|n| {
                let (pool, global, start) = (pool.as_ref(), global.as_ref(), &start);
                let c = m.cpu(n);
                s.spawn(move || {
                    let mut held = Vec::with_capacity(64);
                    start.wait();
                    let t0 = Instant::now();
                    if let Some(pool) = pool {
                        let mut f = pool.frames(&c);
                        for _ in 0..iters {
                            for _ in 0..burst {
                                held.push(f.alloc(Zone::High).expect("frame"));
                            }
                            for x in held.drain(..) {
                                f.release(x).expect("free");
                            }
                        }
                    } else if let Some(global) = global {
                        let mut f = global;
                        for _ in 0..iters {
                            for _ in 0..burst {
                                held.push(f.alloc(Zone::High).expect("frame"));
                            }
                            for x in held.drain(..) {
                                f.release(x).expect("free");
                            }
                        }
                    }
                    (t0, Instant::now())
                })
            })
            .collect();
        start.wait();
        span(handles.into_iter().map(|h| h.join().expect("thread")))
    });
    (threads * iters * burst) as f64 / elapsed.as_secs_f64()
}

/// Independent work (a register-only loop) per second on `threads`
/// threads: what the host lets two threads do at once.
fn spin_rate(threads: usize) -> f64 {
    let n = 200_000_000u64;
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..threads {
            s.spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ k as u64;
                for _ in 0..n {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                }
                std::hint::black_box(x);
            });
        }
    });
    (threads as u64 * n) as f64 / t.elapsed().as_secs_f64()
}

fn frame_section(goals: &mut Vec<String>) -> String {
    let m = SmpMachine::new(64 << 20, 2).expect("machine");
    let (mut one, mut two) = (0f64, 0f64);
    for _ in 0..3 {
        one = one.max(spin_rate(1));
        two = two.max(spin_rate(2));
    }
    goals.push(format!(
        "host calibration: independent work on 2 threads over 1: {:.2}× (the ceiling for any 2-thread figure in this run)",
        two / one
    ));
    let mut out = String::from(
        "| frame allocator | burst | 1 thread | 2 threads | 2 threads / 1 thread |\n|---|---|---|---|---|\n",
    );
    for burst in [16usize, 64] {
        let iters = 1_280_000 / burst;
        let configs = [(1, true), (2, true), (1, false), (2, false)];
        let mut best = [0f64; 4];
        for _ in 0..ROUNDS {
            for (i, &(t, pooled)) in configs.iter().enumerate() {
                best[i] = best[i].max(frame_rate(t, pooled, &m, burst, iters));
            }
        }
        let m_ops = |x: f64| x / 1e6;
        let _ = writeln!(
            out,
            "| per-CPU pool (`FramePool`) | {burst} | {:.1} M pairs/s | {:.1} M pairs/s | {:.2}× |",
            m_ops(best[0]),
            m_ops(best[1]),
            best[1] / best[0]
        );
        let _ = writeln!(
            out,
            "| one global lock (`&spin::Mutex<FrameAllocator>`) | {burst} | {:.1} M pairs/s | {:.1} M pairs/s | {:.2}× |",
            m_ops(best[2]),
            m_ops(best[3]),
            best[3] / best[2]
        );
        let scale = best[1] / best[0];
        goals.push(format!(
            "pool, bursts of {burst}, 2 threads over 1: at least 1.8×: {} ({scale:.2}×; the host has {} CPUs, shared)",
            if scale >= 1.8 { "met" } else { "missed" },
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ));
        goals.push(format!(
            "pool over the global lock, bursts of {burst}, 2 threads: {:.2}×",
            best[1] / best[3]
        ));
    }
    out
}

/// Demand-zero faults per second with `threads` simulated CPUs, each
/// faulting 1024 pages of its own space, `rounds` times.
fn fault_rate(threads: usize) -> f64 {
    let w = SmpWorld::threaded(128 << 20, threads);
    let pages = 1024u32;
    let start = Barrier::new(threads + 1);
    let (w, start) = (&w, &start);
    let elapsed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|n| {
                s.spawn(move || {
                    let mut vm = w.space(n);
                    map_region(&mut vm, pages);
                    start.wait();
                    let t0 = Instant::now();
                    for round in 0..4u32 {
                        for i in 0..pages {
                            w.write_u32(n, &mut vm, REGION + i * 4096, round)
                                .expect("fault");
                        }
                        w.on_cpu(n, &mut vm, |vm| {
                            vm.munmap(VirtAddr::new(REGION), pages * 4096)
                        })
                        .expect("munmap");
                        map_region(&mut vm, pages);
                    }
                    let t1 = Instant::now();
                    w.unload(n, &vm);
                    vm.destroy();
                    (t0, t1)
                })
            })
            .collect();
        start.wait();
        span(handles.into_iter().map(|h| h.join().expect("thread")))
    });
    (threads as f64 * 4.0 * f64::from(pages)) / elapsed.as_secs_f64()
}

fn fault_section(goals: &mut Vec<String>) -> String {
    let mut best = [0f64; 2];
    for _ in 0..ROUNDS {
        best[0] = best[0].max(fault_rate(1));
        best[1] = best[1].max(fault_rate(2));
    }
    goals.push(format!(
        "faults, 2 simulated CPUs over 1: {:.2}× (the simulator serialises every access and core operation under its machine lock, so this measures overhead, not scaling)",
        best[1] / best[0]
    ));
    format!(
        "| demand-zero faults (simulator) | 1 thread | 2 threads |\n|---|---|---|\n| faults/s | {:.0} k | {:.0} k |\n",
        best[0] / 1e3,
        best[1] / 1e3
    )
}

fn main() {
    let only = std::env::args().nth(1);
    let mut goals = Vec::new();
    match only.as_deref() {
        Some("ipis") => return println!("{}", ipi_section(&mut goals)),
        Some("frames") => return println!("{}\n{goals:#?}", frame_section(&mut goals)),
        Some("faults") => return println!("{}\n{goals:#?}", fault_section(&mut goals)),
        _ => {}
    }
    let out = format!(
        "### Shootdowns per call\n\n{}\n### Frame allocation\n\n{}\n### Faults\n\n{}",
        ipi_section(&mut goals),
        frame_section(&mut goals),
        fault_section(&mut goals)
    );
    let goals: String = goals.iter().map(|g| format!("- {g}\n")).collect();
    println!("{out}\nTargets:\n{goals}");
    let section = format!(
        "<!-- smp:begin -->\n## Several CPUs — `cargo xtask bench smp`\n\n\
         Source: `crates/bench/src/bin/bench-smp.rs`. Machine: {machine}; release build. \
         Shootdowns: the simulated 4-CPU machine counts the requests the core sends for one \
         munmap or mprotect (to read-only) call of a region every live CPU has read (so each \
         caches its translations); an IPI is one request to one CPU. Frame allocation: \
         bursts of 16 (within a magazine) or 64 (beyond it) allocations then as many frees, 1.28 million pairs per thread, best of \
         {ROUNDS} interleaved rounds; a pair is one allocation and one free. Faults: each \
         simulated CPU (a host thread) faults 1024 demand-zero pages of its own address space \
         and unmaps them, 4 times; best of {ROUNDS}.\n\n{out}\nTargets:\n\n{goals}\n<!-- smp:end -->\n",
        machine = myos_bench::machine_with_load(),
    );
    myos_bench::write_benchmarks_section("smp", &section);
}
