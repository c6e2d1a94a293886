//! Property test: random sequences of mmap / munmap / mprotect / fork /
//! access (user and ring 0, with and without SMEP/SMAP and AC) /
//! copy_to_user / exit, run on the simulated machine against a
//! plain model of every process's pages (contents and permissions):
//! [`myos_sim::model::vm`], shared with the `vm` fuzz target. After every
//! sequence all spaces are destroyed, every frame is back and the file
//! holds exactly the writes made through shared mappings.
//!
//! Every sequence runs twice: on the classic machine with the core in
//! classic paging mode, and on the PAE machine (RAM at 0 and at 4 GiB,
//! NX on) with the core in PAE mode, where user pages come from above
//! 4 GiB and pages without `PROT_EXEC` are no-execute.

mod vm_support;

use myos_abi::*;
use myos_mm::vm::*;
use myos_sim::model::vm::{
    check, count_range, fork, mprotect, munmap, va, FileSpec, How, Model, Pages, Proc,
};
use myos_sim::WorldMachine;
use proptest::prelude::*;
use vm_support::*;

/// The window the test maps in (MAP_FIXED), spanning a page-table boundary.
const BASE: u32 = 0x1000_0000 - 8 * PAGE;
const WINDOW: u32 = 24;
const MAX_PROCS: usize = 4;
/// Pages of the mapped file.
const FILE_PAGES: u32 = 8;
/// The one file, descriptor 0.
static FILES: [FileSpec; 1] = [FileSpec::new("f", FILE_PAGES, 0, true)];

#[derive(Clone, Debug)]
enum Op {
    Mmap {
        p: usize,
        start: u32,
        len: u32,
        prot: u32,
        shared: bool,
    },
    /// Maps file pages `file_page..` (MAP_FIXED).
    MmapFile {
        p: usize,
        start: u32,
        len: u32,
        file_page: u32,
        prot: u32,
        shared: bool,
    },
    Munmap {
        p: usize,
        start: u32,
        len: u32,
    },
    Mprotect {
        p: usize,
        start: u32,
        len: u32,
        prot: u32,
    },
    Fork {
        p: usize,
    },
    Write {
        p: usize,
        page: u32,
        value: u32,
    },
    Read {
        p: usize,
        page: u32,
    },
    CopyIn {
        p: usize,
        page: u32,
        value: u32,
    },
    CopyOut {
        p: usize,
        page: u32,
    },
    /// A user instruction fetch from a window page.
    Fetch {
        p: usize,
        page: u32,
    },
    /// A ring-0 write, read or fetch (`kind` 0, 1, 2) of a window page.
    Kernel {
        p: usize,
        page: u32,
        kind: u8,
        value: u32,
    },
    /// `stac` (true) or `clac` (false): EFLAGS.AC for the ring-0 accesses.
    SetAc {
        on: bool,
    },
    Exit {
        p: usize,
    },
}

fn prot() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(PROT_NONE),
        Just(PROT_READ),
        Just(PROT_READ | PROT_WRITE),
        Just(PROT_EXEC),
        Just(PROT_READ | PROT_EXEC),
        Just(PROT_WRITE)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..MAX_PROCS;
    let page = 0..WINDOW;
    let len = 1..8u32;
    prop_oneof![
        3 => (p.clone(), page.clone(), len.clone(), prot(), any::<bool>())
            .prop_map(|(p, start, len, prot, shared)| Op::Mmap { p, start, len, prot, shared }),
        2 => (p.clone(), page.clone(), len.clone(), 0..FILE_PAGES, prot(), any::<bool>()).prop_map(
            |(p, start, len, file_page, prot, shared)| Op::MmapFile { p, start, len, file_page, prot, shared }
        ),
        1 => (p.clone(), page.clone(), len.clone()).prop_map(|(p, start, len)| Op::Munmap { p, start, len }),
        2 => (p.clone(), page.clone(), len, prot()).prop_map(|(p, start, len, prot)| Op::Mprotect { p, start, len, prot }),
        1 => p.clone().prop_map(|p| Op::Fork { p }),
        4 => (p.clone(), page.clone(), any::<u32>()).prop_map(|(p, page, value)| Op::Write { p, page, value }),
        4 => (p.clone(), page.clone()).prop_map(|(p, page)| Op::Read { p, page }),
        2 => (p.clone(), page.clone()).prop_map(|(p, page)| Op::Fetch { p, page }),
        1 => (p.clone(), page.clone(), any::<u32>()).prop_map(|(p, page, value)| Op::CopyIn { p, page, value }),
        1 => (p.clone(), page.clone()).prop_map(|(p, page)| Op::CopyOut { p, page }),
        2 => (p.clone(), page, 0..3u8, any::<u32>())
            .prop_map(|(p, page, kind, value)| Op::Kernel { p, page, kind, value }),
        1 => any::<bool>().prop_map(|on| Op::SetAc { on }),
        1 => p.prop_map(|p| Op::Exit { p }),
    ]
}

/// The window's `i`-th page number.
fn win(i: u32) -> u32 {
    BASE / PAGE + i
}

/// The supervisor-mode protections of a run's machine: CR4.SMEP, CR4.SMAP.
#[derive(Clone, Copy, Debug, Default)]
struct Protections {
    smep: bool,
    smap: bool,
}

fn protections() -> impl Strategy<Value = Protections> {
    (any::<bool>(), any::<bool>()).prop_map(|(smep, smap)| Protections { smep, smap })
}

fn run(ops: &[Op]) {
    run_with(ops, Protections::default());
    run_pae(ops, Protections::default());
}

fn run_with(ops: &[Op], prot: Protections) {
    run_on(World::new(16 * MIB), ops, prot, 1);
}

/// The PAE machine: 16 MiB at 0 and 16 MiB at 4 GiB. The allocator's
/// metadata spans the hole up to 4 GiB (a million frames), so its full
/// check runs every 16th operation (and at the end) in this mode.
fn run_pae(ops: &[Op], prot: Protections) {
    run_on(World::new_pae(16 * MIB, 16 * MIB), ops, prot, 16);
}

/// Runs `ops` on `w`, checking the frame allocator after every
/// `validate_every`-th operation.
fn run_on<M: WorldMachine>(w: World<M>, ops: &[Op], prot: Protections, validate_every: usize) {
    w.m.set_context(FaultContext::new(prot.smep, prot.smap, false));
    let fs = MemFs::new();
    let mut fds = FdTable::new();
    let mut model = Model::new(&FILES);
    model.open(&fs, &mut fds);
    let mut procs: Vec<Proc<'_, M>> = vec![(w.space(), Pages::new())];
    for (k, op) in ops.iter().enumerate() {
        if procs.is_empty() {
            procs.push((w.space(), Pages::new()));
        }
        let n = procs.len();
        match *op {
            Op::Mmap {
                p,
                start,
                len,
                prot,
                shared,
            } => {
                let len = len.min(WINDOW - start);
                let pages = win(start)..win(start) + len;
                model.mmap_fixed(&fds, &mut procs[p % n], pages, prot, shared, None);
            }
            Op::MmapFile {
                p,
                start,
                len,
                file_page,
                prot,
                shared,
            } => {
                let len = len.min(WINDOW - start).min(FILE_PAGES - file_page);
                let pages = win(start)..win(start) + len;
                let file = Some((0, file_page));
                model.mmap_fixed(&fds, &mut procs[p % n], pages, prot, shared, file);
            }
            Op::Munmap { p, start, len } => munmap(&mut procs[p % n], win(start), win(start) + len),
            Op::Mprotect {
                p,
                start,
                len,
                prot,
            } => {
                let len = len.min(WINDOW - start);
                mprotect(&mut procs[p % n], win(start), win(start) + len, prot);
            }
            Op::Fork { p } => {
                if n < MAX_PROCS {
                    fork(&mut procs, p % n);
                }
            }
            Op::Write { p, page, value } | Op::CopyIn { p, page, value } => {
                let how = if matches!(op, Op::CopyIn { .. }) {
                    How::Copy
                } else {
                    How::User
                };
                let (vm, m) = &mut procs[p % n];
                model.write(&w, vm, m, win(page), how, value);
            }
            Op::Read { p, page } | Op::CopyOut { p, page } => {
                let how = if matches!(op, Op::CopyOut { .. }) {
                    How::Copy
                } else {
                    How::User
                };
                let (vm, m) = &mut procs[p % n];
                model.read(&w, vm, m, win(page), how);
            }
            Op::Kernel {
                p,
                page,
                kind,
                value,
            } => {
                let (vm, m) = &mut procs[p % n];
                match kind {
                    0 => model.write(&w, vm, m, win(page), How::Supervisor, value),
                    k => model.supervisor_read(&w, vm, m, win(page), k == 2),
                }
            }
            Op::SetAc { on } => {
                let cx = w.m.context();
                w.m.set_context(FaultContext::new(cx.smep, cx.smap, on));
            }
            Op::Fetch { p, page } => {
                let (vm, m) = &mut procs[p % n];
                model.fetch(&w, vm, m, win(page));
            }
            Op::Exit { p } => {
                let (vm, _) = procs.remove(p % n);
                vm.destroy();
            }
        }
        let frames = k % validate_every == 0;
        check(&w, &procs, win(0)..win(WINDOW), frames, op);
    }
    model.finish(&w, procs, &fs, fds);
    w.finish();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_sequences_match_the_model_and_return_every_frame(
        ops in proptest::collection::vec(op(), 1..60),
        prot in protections(),
    ) {
        run_with(&ops, prot);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pae_random_sequences_match_the_model_and_return_every_frame(
        ops in proptest::collection::vec(op(), 1..60),
        prot in protections(),
    ) {
        run_pae(&ops, prot);
    }
}

#[test]
fn regression_fork_then_mprotect_then_write() {
    run(&[
        Op::Mmap {
            p: 0,
            start: 6,
            len: 4,
            prot: PROT_READ | PROT_WRITE,
            shared: false,
        },
        Op::Write {
            p: 0,
            page: 7,
            value: 1,
        },
        Op::Fork { p: 0 },
        Op::Mprotect {
            p: 0,
            start: 7,
            len: 1,
            prot: PROT_READ,
        },
        Op::Mprotect {
            p: 0,
            start: 6,
            len: 4,
            prot: PROT_READ | PROT_WRITE,
        },
        Op::Write {
            p: 0,
            page: 7,
            value: 2,
        },
        Op::Read { p: 1, page: 7 },
        Op::Exit { p: 1 },
        Op::Write {
            p: 0,
            page: 8,
            value: 3,
        },
    ]);
}

/// Region bookkeeping only, over a window wide enough for hundreds of
/// regions (the index splits and merges its blocks): random fixed and
/// non-fixed mmap, munmap and mprotect against the model's pages.
fn run_regions(ops: &[(u8, u32, u32, u32)]) {
    const PAGES: u32 = 600;
    let w = World::new(16 * MIB);
    let fds = FdTable::new();
    let mut model = Model::new(&[]);
    let mut procs: Vec<Proc<'_>> = vec![(w.space(), Pages::new())];
    let prots = [PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_EXEC];
    for op @ &(kind, start, len, prot) in ops {
        let (start, len) = (start % PAGES, 1 + len % 6);
        let (lo, len) = (win(start), len.min(PAGES - start));
        let raw = prots[prot as usize % prots.len()];
        let proc = &mut procs[0];
        match kind % 4 {
            0 => model.mmap_fixed(&fds, proc, lo..lo + len, raw, false, None),
            1 => {
                // Non-fixed, hinted inside the window: must land on free pages.
                let (vm, m) = proc;
                let flags = MAP_PRIVATE | MAP_ANONYMOUS;
                let a = vm
                    .mmap(&fds, va(lo), len * PAGE, raw, flags, -1, 0)
                    .unwrap();
                let s = a.as_u32() / PAGE;
                assert_eq!(count_range(m, s, s + len), 0, "placed over a mapping");
                // Placed wholly inside the window: modelled; else undone.
                if s >= win(0) && s + len <= win(PAGES) {
                    model.map_anon(m, s, len, Prot::from_bits(raw).unwrap(), false);
                } else {
                    vm.munmap(a, len * PAGE).unwrap();
                }
            }
            2 => munmap(proc, lo, lo + len),
            _ => mprotect(proc, lo, lo + len, raw),
        }
        // Every page's protection is compared at the end only.
        check(&w, &procs, 0..0, false, op);
    }
    check(&w, &procs, win(0)..win(PAGES), true, &"the end");
    // Adjacent equal regions were merged: no two neighbours are mergeable.
    let regions: Vec<RegionInfo> = procs[0].0.regions().collect();
    for pair in regions.windows(2) {
        assert!(
            pair[0].end != pair[1].start || pair[0].prot != pair[1].prot,
            "{pair:?}"
        );
    }
    drop(procs);
    w.finish();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn many_regions_match_the_model(ops in proptest::collection::vec((any::<u8>(), any::<u32>(), any::<u32>(), any::<u32>()), 1..400)) {
        run_regions(&ops);
    }
}
