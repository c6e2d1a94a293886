//! The demo: ring-3 programs that use the memory manager for real, with a
//! readable report (memory map, memory bars, each step's page faults and
//! outcome, a closing summary) and a verdict through `isa-debug-exit`.

use myos_abi::MemFs;
use myos_mm::frames::Zone;
use myos_mm::smp::Invalidate;
use myos_mm::vm::FaultStats;
use myos_mm::Platform;

use crate::exit::{exit_qemu, ExitCode};
use crate::multiboot::Size;
use crate::platform::Paging;
use crate::process::{self, sig, WaitStatus};
use crate::{mm, println};

/// What a step's process must end with.
#[derive(Clone, Copy)]
enum Expect {
    /// Normal exit with this code.
    Exit(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// Which fault counter a step must drive (beyond the outcome).
#[derive(Clone, Copy)]
enum Needs {
    Nothing,
    DemandZero,
    CopyOnWrite,
    SharedAnon,
    FilePages,
    StackGrowth,
}

/// One demo step.
struct Step {
    title: &'static str,
    program: &'static str,
    expect: Expect,
    needs: Needs,
}

const STEPS: &[Step] = &[
    Step {
        title: "anonymous mmap + touch (demand paging)",
        program: "demand",
        expect: Expect::Exit(0),
        needs: Needs::DemandZero,
    },
    Step {
        title: "fork + writes on both sides (COW)",
        program: "cow",
        expect: Expect::Exit(0),
        needs: Needs::CopyOnWrite,
    },
    Step {
        title: "MAP_SHARED anonymous across fork",
        program: "shared",
        expect: Expect::Exit(0),
        needs: Needs::SharedAnon,
    },
    Step {
        title: "private + shared file mappings",
        program: "files",
        expect: Expect::Exit(0),
        needs: Needs::FilePages,
    },
    Step {
        title: "stack growth past the initial stack region",
        program: "stack",
        expect: Expect::Exit(0),
        needs: Needs::StackGrowth,
    },
    Step {
        title: "mprotect: read-only kills a writer, writable again",
        program: "mprotect",
        expect: Expect::Exit(0),
        needs: Needs::Nothing,
    },
    Step {
        title: "write to a PROT_READ mapping",
        program: "segv_readonly",
        expect: Expect::Signal(sig::SIGSEGV),
        needs: Needs::Nothing,
    },
    Step {
        title: "NULL dereference",
        program: "segv_null",
        expect: Expect::Signal(sig::SIGSEGV),
        needs: Needs::Nothing,
    },
    Step {
        title: "touch after munmap",
        program: "segv_unmapped",
        expect: Expect::Signal(sig::SIGSEGV),
        needs: Needs::Nothing,
    },
    Step {
        title: "write to a kernel address",
        program: "segv_kernel",
        expect: Expect::Signal(sig::SIGSEGV),
        needs: Needs::Nothing,
    },
    Step {
        title: "4 threads write a shared mapping, each on the CPU it gets; a faulting thread dies alone",
        program: "threads",
        expect: Expect::Exit(0),
        needs: Needs::Nothing,
    },
];

/// The step PAE mode adds: code copied into a `PROT_READ|PROT_WRITE`
/// mapping is not executable (NX), and after `mprotect(PROT_READ |
/// PROT_EXEC)` it is.
const NX_STEP: Step = Step {
    title: "jump into code copied to a PROT_READ|PROT_WRITE mapping (NX), then mprotect PROT_EXEC",
    program: "nx",
    expect: Expect::Signal(sig::SIGSEGV),
    needs: Needs::Nothing,
};

/// Kibibytes per frame.
const KIB_PER_FRAME: u32 = (myos_mm::layout::PAGE_SIZE / 1024) as u32;

/// The file the `files` step maps.
const DATA_FILE: &str = "data.txt";
/// Its initial contents.
const DATA_CONTENTS: &[u8] = b"hello from the file system of MyOS\n";

/// Width of the memory bars in characters.
const BAR_WIDTH: u64 = 50;

/// Prints `label [#####.....] used / total`.
fn bar(label: &str, used: u64, total: u64) {
    let filled = if total == 0 {
        0
    } else {
        (used * BAR_WIDTH).div_ceil(total).min(BAR_WIDTH)
    };
    let mut line = crate::text::StackString::<64>::new();
    for i in 0..BAR_WIDTH {
        let _ = core::fmt::Write::write_str(&mut line, if i < filled { "#" } else { "." });
    }
    println!(
        "  {label:<14} [{}] {} of {}",
        line.as_str(),
        Size(used),
        Size(total)
    );
}

/// Prints the physical-memory and heap bars.
fn memory_picture() {
    const PAGE: u64 = myos_mm::layout::PAGE_SIZE as u64;
    let f = mm::frame_stats();
    let h = mm::heap_stats();
    bar(
        "physical RAM",
        u64::from(f.total - f.free) * PAGE,
        u64::from(f.total) * PAGE,
    );
    bar("kernel heap", h.used_bytes as u64, h.heap_bytes as u64);
    println!(
        "  free frames by zone: low (<16 MiB) {}, direct (<768 MiB) {}, high {}",
        f.free_per_zone[Zone::Low as usize],
        f.free_per_zone[Zone::Direct as usize],
        f.free_per_zone[Zone::High as usize]
    );
}

/// The page faults of a step, summarized.
struct Faults(FaultStats);

impl core::fmt::Display for Faults {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = &self.0;
        write!(
            f,
            "demand-zero {:>3}  cow {:>2}  file {:>2}  shared {:>2}  stack {:>2}",
            s.demand_zero,
            s.cow_copy + s.cow_reuse,
            s.file_page + s.write_notify,
            s.shared_anon,
            s.stack_growth
        )
    }
}

/// Runs the demo and exits QEMU: status 0 (through xtask) when every step
/// behaved and memory returned to its baseline.
pub fn run() -> ! {
    init_processes();

    println!();
    println!("== memory before the demo ==");
    memory_picture();
    mm::heap_trim();
    let frames_before = mm::frame_stats();
    let heap_before = mm::heap_stats();

    println!();
    println!("== demo: ring-3 processes using the memory manager ==");
    let mut failures = 0;
    let mut total = FaultStats::default();
    let mut peak_above_4g = 0;
    // PAE mode adds the no-execute step (classic paging has no NX).
    let nx = (mm::get().paging() == Paging::Pae).then_some(&NX_STEP);
    let steps = STEPS.len() + usize::from(nx.is_some());
    for (i, step) in STEPS.iter().chain(nx).enumerate() {
        println!("step {}: {} [{}]", i + 1, step.title, step.program);
        let free_before = mm::frame_stats();
        let above_4g_before = mm::user_frames_above_4g();
        let _ = process::take_low_water();
        let pid = match process::spawn(step.program) {
            Ok(pid) => pid,
            Err(e) => {
                println!("  cannot start {}: {e}", step.program);
                failures += 1;
                continue;
            }
        };
        process::run_until_idle();
        let Some(result) = process::family_result(pid) else {
            println!("  no result for pid {pid}");
            failures += 1;
            continue;
        };
        let ok_status = match step.expect {
            Expect::Exit(code) => result.status == WaitStatus::exited(code),
            Expect::Signal(s) => result.status == WaitStatus::signaled(s),
        };
        let fs_ = &result.faults;
        let ok_faults = match step.needs {
            Needs::Nothing => true,
            Needs::DemandZero => fs_.demand_zero > 0,
            Needs::CopyOnWrite => fs_.cow_copy + fs_.cow_reuse > 0,
            Needs::SharedAnon => fs_.shared_anon > 0,
            Needs::FilePages => fs_.file_page > 0 && file_check(),
            Needs::StackGrowth => fs_.stack_growth > 0,
        };
        let ok = ok_status && ok_faults;
        if let Some(lw) = process::take_low_water() {
            let peak = free_before.free.saturating_sub(lw.free) * KIB_PER_FRAME;
            if mm::ram_end() > myos_mm::layout::PHYS_END && mm::get().paging() == Paging::Pae {
                let high_before = free_before.free_per_zone[Zone::High as usize];
                let high = high_before.saturating_sub(lw.high_free) * KIB_PER_FRAME;
                let above = lw.above_4g.saturating_sub(above_4g_before) * KIB_PER_FRAME;
                peak_above_4g = peak_above_4g.max(above);
                println!(
                    "  peak memory: {peak} KiB of frames in use ({high} KiB above the direct map, {above} KiB above 4 GiB)"
                );
            } else if mm::ram_end() > myos_mm::layout::DIRECT_ZONE_END {
                let high_before = free_before.free_per_zone[Zone::High as usize];
                let high = high_before.saturating_sub(lw.high_free) * KIB_PER_FRAME;
                println!(
                    "  peak memory: {peak} KiB of frames in use ({high} KiB above the direct map)"
                );
            } else {
                println!("  peak memory: {peak} KiB of frames in use");
            }
        }
        if !ok {
            failures += 1;
        }
        crate::process::add_fault_stats(&mut total, fs_);
        println!(
            "  -> {} ({} process{}); faults: {}  => {}",
            result.status,
            result.processes,
            if result.processes == 1 { "" } else { "es" },
            Faults(result.faults),
            if ok { "as expected" } else { "UNEXPECTED" }
        );
    }
    process::clear_results();

    mm::heap_trim();
    let frames_after = mm::frame_stats();
    let heap_after = mm::heap_stats();
    println!();
    println!("== memory after every demo process exited ==");
    memory_picture();
    let frames_back =
        frames_after.free == frames_before.free && frames_after.used == frames_before.used;
    let heap_back = heap_after.used_bytes == heap_before.used_bytes;
    println!(
        "  free frames: {} before, {} after ({})",
        frames_before.free,
        frames_after.free,
        if frames_back {
            "back to baseline"
        } else {
            "LEAK"
        }
    );
    println!(
        "  heap in use: {} before, {} after ({})",
        heap_before.used_bytes,
        heap_after.used_bytes,
        if heap_back {
            "back to baseline"
        } else {
            "LEAK"
        }
    );
    if mm::get().paging() == Paging::Pae && mm::ram_end() > myos_mm::layout::PHYS_END {
        let held = mm::user_frames_above_4g();
        println!(
            "  RAM above 4 GiB: up to {peak_above_4g} KiB held by processes in one step, {held} frames still held ({})",
            if held == 0 { "all returned" } else { "LEAK" }
        );
        if held != 0 || peak_above_4g == 0 {
            failures += 1;
        }
    }
    if mm::heap_validate().is_err() {
        println!("  heap validation FAILED");
        failures += 1;
    }
    if !frames_back || !heap_back {
        failures += 1;
    }

    failures += smp_report();

    println!();
    println!("== summary ==");
    println!(
        "  steps: {steps} run, {} as expected",
        steps - failures.min(steps)
    );
    println!("  page faults: {}", Faults(total));
    println!(
        "  segfaults: {} (each killed only its own process)",
        total.sigsegv
    );
    fault_costs();
    if failures == 0 {
        println!("DEMO OK: every step behaved and memory returned to its baseline");
        exit_qemu(ExitCode::Success)
    } else {
        println!("DEMO FAILED: {failures} problem(s)");
        exit_qemu(ExitCode::Failure)
    }
}

/// A free kernel-space page for the SMP check (no process runs in the
/// kernel space's user half).
const SMP_CHECK_VA: u32 = 0x1000_0000;
/// Shootdowns the demo sends to the other CPUs.
const SMP_ROUNDS: u32 = 100;

/// The SMP part of the report: the CPUs online, an application processor's
/// TLB before and after a shootdown, and the shootdown counters. Returns
/// the number of problems.
fn smp_report() -> usize {
    let cpus = crate::smp::online().len();
    println!();
    println!("== several CPUs ==");
    println!("smp: {cpus} CPUs online");
    let mut line = crate::text::StackString::<160>::new();
    for cpu in crate::smp::online().iter() {
        let n = crate::arch::percpu::of(cpu)
            .switches
            .load(core::sync::atomic::Ordering::Relaxed);
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!(" CPU {}: {n};", cpu.index()));
    }
    println!("  threads scheduled per CPU:{}", line.as_str());
    let mut problems = 0;
    match crate::smpcheck::observe_remote_tlb(mm::get(), SMP_CHECK_VA) {
        Ok(Some(o)) => {
            println!(
                "  CPU {} read a page, the boot CPU remapped it: without a shootdown CPU {} saw {}; after one it read the new frame: {}",
                o.cpu.index(),
                o.cpu.index(),
                crate::smpcheck::describe(&o),
                if o.after_shootdown == o.first { "NO" } else { "yes" }
            );
            if o.after_shootdown == o.first {
                problems += 1;
            }
        }
        Ok(None) => println!("  one CPU: no other TLB to shoot down"),
        Err(e) => {
            println!("  remote TLB check failed: {e}");
            problems += 1;
        }
    }
    let others = crate::smp::online().without(crate::smp::cpu_id());
    if !others.is_empty() {
        for i in 0..SMP_ROUNDS {
            let page = myos_mm::VirtAddr::new(SMP_CHECK_VA + (i % 8) * 4096).page();
            let what = if i % 10 == 9 {
                Invalidate::AllNonGlobal
            } else {
                Invalidate::Pages(&[page])
            };
            mm::PLATFORM.shootdown(others, what);
        }
        println!(
            "  {SMP_ROUNDS} more shootdowns to the {} other CPUs (one page each, every tenth a full flush), each acknowledged",
            others.len()
        );
    }
    let s = crate::smp::stats();
    println!(
        "  shootdowns: {} requests, {} IPIs sent, {} pages invalidated, {} full flushes, {} NMI reminders",
        s.shootdowns, s.ipis, s.pages, s.full_flushes, s.nmi_kicks
    );
    problems
}

/// Sets up processes with the demo's file system.
pub fn init_processes() {
    let fs = MemFs::new();
    fs.create(DATA_FILE, DATA_CONTENTS);
    process::init(fs);
}

/// Average cycles of `f` over `ROUNDS` runs.
fn cycles_of(mut f: impl FnMut()) -> u64 {
    const ROUNDS: u64 = 64;
    let start = crate::arch::tsc::rdtsc();
    for _ in 0..ROUNDS {
        f();
    }
    crate::arch::tsc::rdtsc().wrapping_sub(start) / ROUNDS
}

/// Prints what a fault costs next to the work it must do (zeroing or
/// copying one page), in TSC cycles (QEMU's virtual TSC: ratios matter).
fn fault_costs() {
    use myos_mm::frames::FrameSource;
    use myos_mm::Platform;
    let mm = mm::get();
    let (a, b) = {
        let mut fa = mm.frames().lock();
        match (fa.alloc(Zone::High), fa.alloc(Zone::High)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return,
        }
    };
    let p = mm.platform();
    let zero = cycles_of(|| p.zero_frame(a.frame())).max(1);
    let copy = cycles_of(|| p.copy_frame(b.frame(), a.frame())).max(1);
    {
        let mut fa = mm.frames().lock();
        let _ = fa.release(a);
        let _ = fa.release(b);
    }
    let c = process::fault_cycles();
    let ratio = |x: u64, base: u64| (x / base, x * 100 / base % 100);
    let (dz, cow) = (c.demand_zero.median(), c.cow_copy.median());
    let (dz_r, cow_r) = (ratio(dz, zero), ratio(cow, copy));
    println!(
        "  fault service, median TSC cycles: demand-zero {dz} = {}.{:02}x zeroing a page ({zero}); \
         COW copy {cow} = {}.{:02}x copying a page ({copy}); file page-in {} ({}/{}/{} samples)",
        dz_r.0,
        dz_r.1,
        cow_r.0,
        cow_r.1,
        c.file_page.median(),
        c.demand_zero.len(),
        c.cow_copy.len(),
        c.file_page.len()
    );
}

/// After the `files` step: the shared write reached the file, the private
/// one did not.
fn file_check() -> bool {
    let Some(data) = process::fs().and_then(|fs| fs.read(DATA_FILE)) else {
        return false;
    };
    let ok = data.starts_with(b"Yello") && !data.contains(&b'J');
    println!(
        "  data.txt now begins {:?} ({})",
        core::str::from_utf8(&data[..data.len().min(16)]).unwrap_or("?"),
        if ok {
            "shared write reached the file, private one did not"
        } else {
            "WRONG"
        }
    );
    ok
}
