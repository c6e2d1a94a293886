//! Threaded stress: host threads act as CPUs 1..N, reading and writing
//! shared pages, while CPU 0 (the test's main thread) unmaps, remaps and
//! re-protects them. The checker runs after every access of every CPU
//! (checked mode) and after every step of CPU 0.
//!
//! The other CPUs load the space the way a context switch does (they join
//! its CPU set), so the core's own shootdowns reach them: no violation may
//! appear. With the platform dropping every shootdown (the bug
//! reintroduced), violations must appear.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use myos_abi::{RawMman, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use myos_mm::smp::{CpuSet, Invalidate};
use myos_mm::vm::FdTable;
use myos_mm::{Platform, VirtAddr};
use myos_sim::smp::world::{SmpVm, SmpWorld};
use myos_sim::smp::{Violation, ViolationKind};
use myos_sim::Mode;

const REGION: u32 = 0x0800_0000;
const PAGES: u32 = 8;
const CPUS: usize = 4;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn map(vm: &mut SmpVm<'_>, va: u32, len: u32) {
    let a = vm
        .mmap(
            &FdTable::new(),
            VirtAddr::new(va),
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            -1,
            0,
        )
        .unwrap();
    assert_eq!(a.as_u32(), va);
}

/// Sets the flag when dropped: the CPU threads stop even when the main
/// thread panics inside the scope (which waits for them before unwinding
/// further).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

struct Outcome {
    violations: Vec<Violation>,
    steps: usize,
    accesses: u64,
}

/// Runs until `steps` steps are done, or until the first violation when
/// `stop_at_first`, or until `budget` has passed.
fn stress(correct: bool, steps: usize, budget: Duration, stop_at_first: bool) -> Outcome {
    let w = SmpWorld::threaded(32 << 20, CPUS);
    let mut vm = w.space(0);
    map(&mut vm, REGION, PAGES * 4096);
    for i in 0..PAGES {
        w.write_u32(0, &mut vm, REGION + i * 4096, i).unwrap();
    }
    for n in 1..CPUS {
        w.load(n, &vm);
    }
    w.machine.set_drop_shootdowns(!correct);
    w.machine.set_checked(true);
    let (mut narrowing, mut unmaps) = (0, 0);
    let stop = AtomicBool::new(false);
    let accesses = AtomicU64::new(0);
    let mut violations = Vec::new();
    let mut done = 0;
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for n in 1..CPUS {
            let c = w.cpu(n).clone();
            let (stop, accesses) = (&stop, &accesses);
            s.spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ n as u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = xorshift(&mut rng);
                    let va = REGION + (r % u64::from(PAGES)) as u32 * 4096 + 4 * n as u32;
                    // A fault is a correct answer for a page being changed.
                    let _ = if r & 0x100 == 0 {
                        c.read_u32(va, Mode::User).map(drop)
                    } else {
                        c.write_u32(va, r as u32, Mode::User)
                    };
                    accesses.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let start = Instant::now();
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let c0 = w.cpu(0);
        while done < steps && start.elapsed() < budget {
            // Let the other CPUs make a few accesses (and fill their TLBs)
            // between two changes.
            let seen = accesses.load(Ordering::Relaxed);
            let wait = Instant::now();
            while accesses.load(Ordering::Relaxed) < seen + 2 * (CPUS as u64 - 1)
                && wait.elapsed() < Duration::from_millis(20)
            {
                std::thread::yield_now();
            }
            let r = xorshift(&mut rng);
            let va = REGION + (r % u64::from(PAGES)) as u32 * 4096;
            c0.exclusive(|| {
                if done % 3 < 2 {
                    narrowing += 1;
                }
                if done % 3 == 0 {
                    unmaps += 1;
                }
                match done % 3 {
                    0 => {
                        vm.munmap(VirtAddr::new(va), 4096).unwrap();
                        map(&mut vm, va, 4096);
                        w.write_u32(0, &mut vm, va, done as u32).unwrap();
                    }
                    1 => vm.mprotect(VirtAddr::new(va), 4096, PROT_READ).unwrap(),
                    _ => vm
                        .mprotect(VirtAddr::new(va), 4096, PROT_READ | PROT_WRITE)
                        .unwrap(),
                }
            });
            if let Err(v) = w.check() {
                violations.extend(v);
            }
            violations.extend(w.machine.take_violations());
            done += 1;
            if stop_at_first && !violations.is_empty() {
                break;
            }
        }
    });
    violations.extend(w.machine.take_violations());
    w.machine.set_checked(false);
    w.machine.set_drop_shootdowns(false);
    let s = w.machine.shootdown_stats();
    // The CPU threads are gone: they leave the space before anything can
    // fail (a space dropped while they are in its set would shoot at CPUs
    // that never answer).
    for n in 1..CPUS {
        w.unload(n, &vm);
    }
    vm.destroy();
    w.finish();
    if correct {
        // munmap, and mprotect to read-only of a writable page: one
        // shootdown reaching every other CPU; mprotect of a read-only page
        // to read-only, back to read/write (an upgrade) and the faults:
        // none.
        assert!(
            (unmaps..=narrowing).contains(&(s.shootdowns as usize)),
            "{s:?}"
        );
        assert_eq!(s.ipis_sent, s.shootdowns * (CPUS as u64 - 1));
        assert_eq!(s.requests_per_cpu[0], 0);
        assert!(s.requests_per_cpu[1..].iter().all(|&n| n == s.shootdowns));
    }
    Outcome {
        violations,
        steps: done,
        accesses: accesses.into_inner(),
    }
}

#[test]
fn threaded_cpus_stay_coherent_with_shootdowns() {
    let o = stress(true, 3000, Duration::from_secs(3), false);
    assert!(
        o.violations.is_empty(),
        "{:#?}",
        &o.violations[..o.violations.len().min(8)]
    );
    assert!(o.steps >= 50, "only {} steps", o.steps);
    assert!(o.accesses > 0);
    eprintln!(
        "{} steps, {} accesses by the other CPUs, no violation",
        o.steps, o.accesses
    );
}

#[test]
fn threaded_checker_catches_the_missing_shootdown() {
    let o = stress(false, 5000, Duration::from_secs(4), true);
    assert!(
        !o.violations.is_empty(),
        "no violation in {} steps and {} accesses",
        o.steps,
        o.accesses
    );
    let kinds: Vec<ViolationKind> = o.violations.iter().map(|v| v.kind).collect();
    assert!(
        kinds.iter().any(|k| matches!(
            k,
            ViolationKind::MoreRights | ViolationKind::Unmapped | ViolationKind::OtherFrame
        )),
        "{kinds:?}"
    );
    assert!(o.violations.iter().all(|v| v.cpu.index() != 0));
    eprintln!(
        "first violation after {} steps: {}",
        o.steps, o.violations[0]
    );
}

#[test]
fn threaded_cpus_shooting_at_each_other_never_deadlock() {
    // Every CPU shoots at all the others in a loop: each waits for
    // acknowledgements while the others wait for its own.
    let w = SmpWorld::threaded(16 << 20, CPUS);
    let all = CpuSet::first(CPUS);
    const ROUNDS: usize = 300;
    let finished = AtomicU64::new(0);
    std::thread::scope(|s| {
        for n in 0..CPUS {
            let c = w.cpu(n).clone();
            let finished = &finished;
            s.spawn(move || {
                let pages = [VirtAddr::new(REGION + n as u32 * 4096).page()];
                for _ in 0..ROUNDS {
                    c.shootdown(all.without(c.id()), Invalidate::Pages(&pages));
                }
                // Keep taking interrupts until every CPU is done shooting.
                finished.fetch_add(1, Ordering::SeqCst);
                while finished.load(Ordering::SeqCst) < CPUS as u64 {
                    c.service_ipis();
                    std::thread::yield_now();
                }
                c.service_ipis();
            });
        }
    });
    let s = w.machine.shootdown_stats();
    let per_cpu = (ROUNDS * (CPUS - 1)) as u64;
    assert_eq!(s.ipis_sent, per_cpu * CPUS as u64);
    assert!(s.requests_per_cpu.iter().all(|&n| n == per_cpu), "{s:?}");
    assert_eq!(s.pages_invalidated, per_cpu * CPUS as u64);
    w.finish();
}

#[test]
fn a_cpu_that_never_takes_the_interrupt_fails_the_shootdown_instead_of_hanging() {
    // CPU 1 spins with interrupts off: nothing ever serves its mailbox
    // (threaded delivery, and no thread acts as CPU 1).
    let w = SmpWorld::threaded(16 << 20, 2);
    w.machine.set_ack_limit(Duration::from_millis(100));
    let c1 = myos_mm::smp::CpuId::new(1).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        w.cpu(0)
            .shootdown(CpuSet::only(c1), Invalidate::AllNonGlobal)
    }));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("still queued at CPUs [1]"), "{msg}");
    // CPU 1 takes the interrupt at last: the request is served.
    assert_eq!(w.cpu(1).service_ipis(), 1);
    assert_eq!(w.machine.shootdown_stats().requests_per_cpu, vec![0, 1]);
    w.finish();
}
