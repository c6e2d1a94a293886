//! `cargo xtask bench pae`: what the PAE paging mode costs, against classic
//! paging, in one run.
//!
//! The same measurements run on two machines: the core in classic mode on
//! a `SimMachine` with 1 GiB of RAM, and in PAE mode on a `PaeMachine` with
//! 256 MiB at 0 and 768 MiB at 4 GiB (NXE on), where zone `High` is the RAM
//! above 4 GiB, so the user frames come from there. Per round, each
//! measurement runs once in each mode, the two in alternating order; after
//! a warm-up round, the best of [`ROUNDS`] rounds is reported:
//!
//! - map, translate and unmap of 1024 4 KiB pages of a user space
//!   ([`PagingBench`], as `bench-frames` times them);
//! - single-frame alloc+free, 1024 of each ([`alloc_free`], as
//!   `bench-frames`);
//! - demand-zero and copy-on-write faults over 16 MiB, each chunk of 256
//!   next to its baseline (zeroing or copying a page) ([`faults`], as
//!   `bench-vm`).
//!
//! Then what PAE costs in memory: the frames of a new user space, the
//! page-table frames of 16 MiB touched and of a fork of it (counted with the
//! allocator's statistics), and the frame metadata for the same RAM in both
//! modes. When `valgrind` is on the `PATH`, each measured operation also
//! runs once per mode under callgrind (the binary runs itself with
//! `--count-one OP MODE`; only [`counted`] is collected) for instructions
//! per operation, which the host's other load does not move.
//!
//! Prints the tables and writes the section of `BENCHMARKS.md` between
//! `<!-- pae:begin -->` and `<!-- pae:end -->`. `bench-pae --count` prints
//! only the instruction counts and writes nothing.

use std::fmt::Write as _;
use std::process::Command;

use myos_bench::faults::{fault_pages, faults, map_region, FaultTimes};
use myos_bench::frames::{alloc_free, permutation};
use myos_bench::paging::{PagingBench, PagingTimes, BATCH};
use myos_bench::world::World;
use myos_bench::{best, median};
use myos_mm::frames::FrameAllocator;
use myos_mm::paging::AddressSpace;
use myos_mm::vm::FdTable;
use myos_mm::OwnedFrame;
use myos_sim::pae::PaeMachine;
use myos_sim::{SimMachine, WorldMachine};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Timed rounds per mode, after a warm-up round; the best is reported.
const ROUNDS: usize = 21;
/// Pages each fault round faults (16 MiB), in chunks of 256.
const FAULT_PAGES: u32 = 4096;
/// Pages each counted fault run faults.
const COUNT_PAGES: u32 = 1024;

/// The classic machine: 1 GiB of RAM (768 MiB direct-mapped, the rest zone
/// `High`).
fn classic_machine() -> SimMachine {
    SimMachine::new(GIB).expect("classic machine")
}

/// The PAE machine: the same 1 GiB, 256 MiB at 0 and 768 MiB at 4 GiB.
fn pae_machine() -> PaeMachine {
    PaeMachine::split_ram(256 * MIB, 768 * MIB)
        .build()
        .expect("PAE machine")
}

/// The state one mode's measurements run on.
struct Side<'w, M: WorldMachine> {
    w: &'w World<M>,
    paging: PagingBench<'w, M>,
    got: Vec<Option<OwnedFrame>>,
    order: Vec<usize>,
}

impl<'w, M: WorldMachine> Side<'w, M> {
    fn new(w: &'w World<M>) -> Self {
        Side {
            w,
            paging: PagingBench::new(w),
            got: (0..BATCH).map(|_| None).collect(),
            order: permutation(BATCH as usize, 7),
        }
    }

    /// ns per alloc or free, 1024 of each.
    fn alloc_free(&mut self) -> f64 {
        let mut fa = self.w.fa.lock();
        myos_bench::time(2 * BATCH, || {
            alloc_free(&mut fa, &mut self.got, &self.order)
        })
    }

    /// One round of both faults.
    fn faults(&self) -> FaultTimes {
        faults(self.w, FAULT_PAGES, 1)
    }
}

/// Runs `a` and `b`, `a` first when `a_first`.
fn both<A, B>(a_first: bool, a: impl FnOnce() -> A, b: impl FnOnce() -> B) -> (A, B) {
    if a_first {
        let x = a();
        (x, b())
    } else {
        let y = b();
        (a(), y)
    }
}

/// The measured operations, in table order.
const OPS: [(&str, &str); 6] = [
    ("map", "map a 4 KiB page (with invlpg)"),
    ("translate", "translate"),
    ("unmap", "unmap a 4 KiB page (with invlpg)"),
    ("alloc-free", "frame alloc or free (1024 each)"),
    ("demand-zero", "demand-zero fault"),
    ("cow", "copy-on-write fault"),
];

/// Per mode, per operation: ns of each timed round.
#[derive(Default)]
struct Samples {
    ns: [Vec<f64>; 6],
    /// Fault / baseline ratios: demand-zero, COW.
    ratios: [Vec<f64>; 2],
    /// The faults' baselines: zeroing a page, copying a page.
    baselines: [Vec<f64>; 2],
}

impl Samples {
    fn push(&mut self, p: PagingTimes, af: f64, f: FaultTimes) {
        for (i, v) in [p.map, p.translate, p.unmap, af, f.zero_fault, f.cow_fault]
            .into_iter()
            .enumerate()
        {
            self.ns[i].push(v);
        }
        self.ratios[0].push(f.zero_ratio);
        self.ratios[1].push(f.cow_ratio);
        self.baselines[0].push(f.zero);
        self.baselines[1].push(f.copy);
    }
}

/// The timed rounds, interleaved: (classic, PAE).
fn timed() -> (Samples, Samples) {
    let (wc, wp) = (World::on(classic_machine()), World::on(pae_machine()));
    let (mut c, mut p) = (Side::new(&wc), Side::new(&wp));
    let (mut sc, mut sp) = (Samples::default(), Samples::default());
    for round in 0..=ROUNDS {
        let first = round % 2 == 0;
        let pg = both(first, || c.paging.round(), || p.paging.round());
        let af = both(!first, || c.alloc_free(), || p.alloc_free());
        let f = both(first, || c.faults(), || p.faults());
        if round > 0 {
            sc.push(pg.0, af.0, f.0);
            sp.push(pg.1, af.1, f.1);
        }
    }
    (sc, sp)
}

/// Frames of memory a mode's address spaces take.
struct Footprint {
    /// A new user space, before its first page table.
    space: u32,
    /// Page tables of 16 MiB touched (4096 pages at `0x1000_0000`).
    tables: u32,
    /// A fork of that process: the child's space and page tables.
    fork: u32,
}

/// Counts [`Footprint`] with the allocator's statistics, and checks that
/// every frame comes back.
fn footprint<M: WorldMachine>(w: &World<M>) -> Footprint {
    let before = w.used();
    let s = AddressSpace::new_user(&*w.m, &mut *w.fa.lock(), &w.kernel).expect("space");
    let space = w.used() - before;
    s.destroy(&*w.m, &mut *w.fa.lock());
    assert_eq!(w.used(), before, "a destroyed space left frames behind");
    let fds = FdTable::new();
    let mut vm = w.space();
    assert_eq!(w.used() - before, space, "VmSpace::new took other frames");
    vm.activate();
    map_region(&mut vm, &fds, FAULT_PAGES);
    fault_pages(&mut vm, 0..FAULT_PAGES, false);
    let tables = w.used() - before - space - FAULT_PAGES;
    let parent = w.used();
    let child = vm.fork().expect("fork");
    let fork = w.used() - parent;
    drop(child);
    drop(vm);
    w.kernel.activate(&*w.m);
    assert_eq!(w.used(), before, "a process left frames behind");
    Footprint {
        space,
        tables,
        fork,
    }
}

/// Frame metadata of an allocator over machine `m`'s RAM: (bytes, frame
/// numbers covered, usable frames).
fn metadata<M: WorldMachine>(m: &M) -> (usize, u32, u32) {
    let map = m.world_memory_map();
    // SAFETY: the allocator is dropped before the machine, and nothing else
    // uses the machine's RAM.
    let fa = unsafe { FrameAllocator::new_below(m, &map, m.phys_end()) }.expect("allocator");
    (fa.metadata_bytes(), fa.frame_limit(), fa.stats().total)
}

/// Runs `f`: the only code `--count-one` has callgrind collect.
#[inline(never)]
fn counted(f: impl FnOnce()) {
    f();
}

/// Runs operation `op` once on `w` inside [`counted`] (after what it
/// needs), returning how many operations that was.
fn count_one<M: WorldMachine>(w: &World<M>, op: &str) -> u32 {
    let mut b = PagingBench::new(w);
    match op {
        "map" => {
            b.round(); // the first round's creations out of the way
            counted(|| b.map_all());
            BATCH
        }
        "translate" => {
            b.map_all();
            counted(|| b.translate_all());
            BATCH
        }
        "unmap" => {
            b.map_all();
            counted(|| b.unmap_all());
            BATCH
        }
        "alloc-free" => {
            let mut s = Side::new(w);
            let mut fa = w.fa.lock();
            counted(|| alloc_free(&mut fa, &mut s.got, &s.order));
            2 * BATCH
        }
        "demand-zero" | "cow" => {
            let fds = FdTable::new();
            let mut vm = w.space();
            vm.activate();
            map_region(&mut vm, &fds, COUNT_PAGES);
            if op == "demand-zero" {
                counted(|| fault_pages(&mut vm, 0..COUNT_PAGES, false));
            } else {
                fault_pages(&mut vm, 0..COUNT_PAGES, false);
                let mut child = vm.fork().expect("fork");
                child.activate();
                counted(|| fault_pages(&mut child, 0..COUNT_PAGES, true));
                vm.activate();
            }
            COUNT_PAGES
        }
        _ => panic!("unknown operation {op}"),
    }
}

/// Instructions per operation: all of them, and the core's (without the
/// calls into the platform and the zeroing or copying of pages).
#[derive(Clone, Copy)]
struct Count {
    all: f64,
    core: f64,
}

/// Instructions in the calls from the core into the platform (the
/// simulator's `Platform` methods: frame access, TLB invalidation, CR3) and
/// into the C library's `mem*` (zeroing or copying a page where a default
/// `Platform` method was inlined into the core), from a callgrind profile
/// written with uncompressed names and positions.
fn platform_instructions(profile: &str) -> f64 {
    let is_platform = |f: &str| f.contains("myos_sim::") || f.contains("platform::Platform");
    let is_memory = |f: &str| f.starts_with("__mem") || f.starts_with("mem");
    let (mut caller, mut callee, mut cost_next, mut sum) = ("", "", false, 0.0);
    for l in profile.lines() {
        if cost_next {
            cost_next = false;
            if !is_platform(caller) && (is_platform(callee) || is_memory(callee)) {
                sum += l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
        } else if let Some(f) = l.strip_prefix("fn=") {
            caller = f;
        } else if let Some(f) = l.strip_prefix("cfn=") {
            callee = f;
        } else if l.starts_with("calls=") {
            cost_next = true; // the next line is the call's inclusive cost
        }
    }
    sum
}

/// Instructions per operation of `op` in `mode` ("classic" or "pae"), from
/// a callgrind run of this binary; `None` (said on stderr) when valgrind
/// fails.
fn instructions(op: &str, mode: &str) -> Option<Count> {
    let exe = std::env::current_exe().ok()?;
    let out =
        std::env::temp_dir().join(format!("bench-pae-{}-{op}-{mode}.out", std::process::id()));
    let run = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg("--toggle-collect=bench_pae::counted*")
        .arg("--compress-strings=no")
        .arg("--compress-pos=no")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .args(["--count-one", op, mode])
        .output();
    let profile = std::fs::read_to_string(&out).ok();
    let _ = std::fs::remove_file(&out);
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            eprintln!("valgrind: {e}");
            return None;
        }
    };
    let ops: Option<f64> = String::from_utf8_lossy(&run.stdout).trim().parse().ok();
    let total = profile.as_deref().and_then(|p| {
        p.lines().find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
    });
    match (run.status.success(), ops, total, profile) {
        (true, Some(ops), Some(total), Some(p)) => Some(Count {
            all: total / ops,
            core: (total - platform_instructions(&p)) / ops,
        }),
        _ => {
            eprintln!(
                "callgrind of {op} ({mode}) failed: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            None
        }
    }
}

/// Instructions per operation, classic and PAE, for each of [`OPS`]; `None`
/// without valgrind.
fn counts() -> Option<Vec<(Count, Count)>> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("valgrind is not installed: no instruction counts");
        return None;
    }
    OPS.iter()
        .map(|(op, _)| Some((instructions(op, "classic")?, instructions(op, "pae")?)))
        .collect()
}

/// The instruction-count table.
fn count_table(counts: &[(Count, Count)]) -> String {
    let mut out = String::from(
        "| operation | classic | PAE | PAE ÷ classic | core only: classic | core only: PAE | PAE ÷ classic |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for ((_, what), (c, p)) in OPS.iter().zip(counts) {
        let _ = writeln!(
            out,
            "| {what} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} |",
            c.all,
            p.all,
            p.all / c.all,
            c.core,
            p.core,
            p.core / c.core
        );
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--count-one", op, mode] => {
            let n = match mode {
                "classic" => count_one(&World::on(classic_machine()), op),
                "pae" => count_one(&World::on(pae_machine()), op),
                _ => panic!("unknown mode {mode}"),
            };
            return println!("{n}");
        }
        ["--count"] => {
            if let Some(c) = counts() {
                println!("{}", count_table(&c));
            }
            return;
        }
        [] => {}
        _ => {
            eprintln!("usage: bench-pae [--count | --count-one OP classic|pae]");
            std::process::exit(2);
        }
    }

    let (sc, sp) = timed();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Time (ns per operation, best of {ROUNDS} interleaved rounds)\n"
    );
    let _ = writeln!(out, "| operation | classic | PAE | PAE ÷ classic |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (i, (_, what)) in OPS.iter().enumerate() {
        let (c, p) = (best(&sc.ns[i]), best(&sp.ns[i]));
        let _ = writeln!(out, "| {what} | {c:.1} | {p:.1} | {:.2} |", p / c);
    }
    for (i, what) in [
        "zero a page (demand-zero baseline)",
        "copy a page (COW baseline)",
    ]
    .into_iter()
    .enumerate()
    {
        let (c, p) = (best(&sc.baselines[i]), best(&sp.baselines[i]));
        let _ = writeln!(out, "| {what} | {c:.1} | {p:.1} | {:.2} |", p / c);
    }
    let ratio = |s: &Samples, i: usize| median(s.ratios[i].clone());
    let _ = writeln!(
        out,
        "\nFault ÷ its baseline (median over the rounds): demand-zero ÷ zeroing {:.2} \
         classic, {:.2} PAE; copy-on-write ÷ copying {:.2} classic, {:.2} PAE.",
        ratio(&sc, 0),
        ratio(&sp, 0),
        ratio(&sc, 1),
        ratio(&sp, 1)
    );

    let counts = counts();
    if let Some(c) = &counts {
        let _ = write!(
            out,
            "\n### Instructions per operation (callgrind, one run per mode)\n\n\
             \"Core only\" leaves out the calls into the platform (the simulator's frame \
             access, TLB invalidation and CR3) and into the C library's `mem*` (zeroing or \
             copying a page): what a kernel's own platform would replace.\n\n{}",
            count_table(c)
        );
    }

    let (wc, wp) = (World::on(classic_machine()), World::on(pae_machine()));
    let (fc, fp) = (footprint(&wc), footprint(&wp));
    let _ = writeln!(
        out,
        "\n### Memory (frames of 4 KiB, counted by the allocator)\n"
    );
    let _ = writeln!(out, "| | classic | PAE |");
    let _ = writeln!(out, "|---|---:|---:|");
    let _ = writeln!(
        out,
        "| a new user space, before its first page table | {} | {} |",
        fc.space, fp.space
    );
    let _ = writeln!(
        out,
        "| page tables of 16 MiB touched | {} | {} |",
        fc.tables, fp.tables
    );
    let _ = writeln!(
        out,
        "| fork of that process (space and page tables) | {} | {} |",
        fc.fork, fp.fork
    );

    let _ = writeln!(out, "\n### Frame metadata for 1 GiB of RAM\n");
    let _ = writeln!(
        out,
        "| machine | frame numbers covered | usable frames | metadata | per usable frame |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let pae_low = PaeMachine::builder()
        .ram(0, GIB)
        .nxe(true)
        .build()
        .expect("PAE machine");
    for (what, (bytes, limit, usable)) in [
        ("classic, 1 GiB at 0", metadata(&classic_machine())),
        ("PAE, 1 GiB at 0", metadata(&pae_low)),
        (
            "PAE, 256 MiB at 0 + 768 MiB at 4 GiB",
            metadata(&pae_machine()),
        ),
    ] {
        let _ = writeln!(
            out,
            "| {what} | {limit} | {usable} | {} KiB | {:.2} bytes |",
            bytes / 1024,
            bytes as f64 / f64::from(usable)
        );
    }
    println!("{out}");

    let section = format!(
        "<!-- pae:begin -->\n## Paging modes — `cargo xtask bench pae`\n\n\
         Source: `crates/bench/src/bin/bench-pae.rs` (the measurements are shared with \
         `bench-frames` and `bench-vm`: `crates/bench/src/{{paging,frames,faults}}.rs`). \
         Machine: {machine}; release build. Classic: the core in classic mode on the \
         simulated `SimMachine` with 1 GiB of RAM (user frames from zone `High`, 768 MiB to \
         1 GiB). PAE: the core in PAE mode on the simulated `PaeMachine` with the same 1 GiB, \
         256 MiB at 0 and 768 MiB at 4 GiB, NXE on (zone `High` is the RAM above 4 GiB, so \
         every user frame, data or copy, is above 4 GiB; page tables stay below 768 MiB). \
         Each round runs every measurement once in each mode, the two in alternating order; \
         the best of {ROUNDS} rounds after a warm-up round is reported. Map, translate, unmap: \
         1024 consecutive 4 KiB pages of a user space, each map and unmap with its `invlpg` \
         (the last unmap frees the page tables, so each round's maps create them: 1 in \
         classic mode, 2 in PAE mode). Frame alloc+free: 1024 single-frame allocations from \
         zone `High`, then 1024 frees in a fixed random order. Faults: the core's handler \
         over 16 MiB (4096 pages) per round, in chunks of 256 each timed next to its baseline \
         (`zero_frame` or `copy_frame` on as many frames), as in `bench-vm`; the figure is a \
         round's median chunk. Both modes run on simulators, so the platform calls (the TLB \
         invalidation, reaching a frame's bytes: a bank lookup on the PAE machine) are each \
         simulator's and part of the figures.\n\n{out}\n{NOTES}\n<!-- pae:end -->\n",
        machine = myos_bench::machine_with_load(),
    );
    myos_bench::write_benchmarks_section("pae", &section);
}

/// What the figures mean (written under the tables).
const NOTES: &str = "What PAE costs, read from the tables:\n\n\
- Memory, per process: a PAE user space takes a PDPT, the counts frame and its three user \
page directories before its first page table (classic: a directory and the counts frame), \
and a PAE page table maps 2 MiB instead of 4 MiB, so touched memory needs twice the page \
tables, and a fork copies twice as many. The memory table counts these with the allocator's \
statistics, on a process that faulted in 16 MiB.\n\
- Memory, frame metadata: the allocator is the same in both modes (a 16-bit reference count \
and the free bitmaps per frame number), so the same RAM at the same addresses costs the same \
metadata. RAM above 4 GiB is what costs: the metadata covers every frame number up to the \
highest RAM, the hole below 4 GiB included, and must fit, contiguous, in RAM below the \
direct-map limit.\n\
- Instructions: the core's own work (the \"core only\" columns) is what a kernel pays, since \
on x86 the platform calls are a direct-map addition, an `invlpg` and a CR3 load. A PAE walk \
reads one more entry (the PDPTE naming the page directory) and writes 64-bit entries; a \
fault adds that to a handler whose region lookup, allocation and bookkeeping are the same. \
Frame alloc+free runs the same code in both modes: the difference is the zone layout (zone \
`High` spans 768 MiB to 4.75 GiB on the PAE machine, the hole included). With the platform \
calls included, PAE's paging figures are higher still, because the PAE simulator looks up the \
RAM bank on every frame access (three per PAE walk against two) and does the per-table \
live-entry counts with out-of-line copies; that part is the simulator's, not PAE's.\n\
- Time: the timed figures include the simulators' platform code (the difference the \
instruction counts show), so the paging rows' PAE ÷ classic is higher than a kernel would \
see. A fault's time is mostly zeroing or copying the page, the same work in both modes, but \
the two machines' RAM is separate host memory: the baselines (the same zeroing and copying, \
timed next to the faults) differ between the machines, in either direction from run to \
run, so compare a fault row's PAE ÷ classic with its baseline's. The host has 2 shared CPUs: the \
instruction counts are the figures to compare across runs.";
