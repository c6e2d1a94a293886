//! N-CPU target: `mmap`/`munmap`/`mprotect`/`fork`/exit and accesses by
//! four simulated CPUs on up to two processes, the core doing its own
//! shootdowns, checked after every operation by the TLB-coherence checker
//! and against a model of every page.
//!
//! Deterministic delivery (one thread steps every CPU). Besides accesses
//! through the fault handler, a CPU makes raw accesses that bypass it: a
//! raw read that succeeds must return the model's value on a page the
//! model says is readable, and a raw write must be allowed by the model —
//! a stale translation another CPU kept after a narrowing change would break
//! one of these or the checker.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use myos_abi::{RawMman, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE};
use myos_mm::vm::FdTable;
use myos_mm::VirtAddr;
use myos_sim::smp::world::{SmpVm, SmpWorld};
use myos_sim::Mode;

const CPUS: usize = 4;
/// Pages of the window every mapping falls in (it spans two page tables).
const PAGES: u32 = 1536;
/// The window's first address (4 MiB-aligned).
const BASE: u32 = 0x0800_0000;
const MAX_OPS: usize = 256;

/// One operation: what, on which CPU, for which process, where.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    /// `mmap(MAP_FIXED)` of private anonymous memory.
    Map { page: u16, len: u8, prot: u8 },
    /// `munmap`.
    Unmap { cpu: u8, page: u16, len: u16 },
    /// `mprotect`.
    Protect {
        cpu: u8,
        page: u16,
        len: u16,
        prot: u8,
    },
    /// A write through the fault handler on `cpu`.
    Write { cpu: u8, page: u16, value: u32 },
    /// A read through the fault handler on `cpu`.
    Read { cpu: u8, page: u16 },
    /// A raw read on `cpu` with whatever it has loaded (no fault handling).
    RawRead { cpu: u8, page: u16 },
    /// A raw write on `cpu` (no fault handling).
    RawWrite { cpu: u8, page: u16, value: u32 },
    /// Context switch: `cpu` loads the process.
    Load { cpu: u8 },
    /// `cpu` switches to the kernel space.
    Unload { cpu: u8 },
    /// `fork` of process 0 on `cpu` (when there is no child).
    Fork { cpu: u8 },
    /// The child exits.
    Exit,
}

/// A process: its space and the model of its pages (protection, word 0).
struct Proc<'w> {
    vm: SmpVm<'w>,
    pages: BTreeMap<u32, (u32, u32)>,
}

fn prot_of(b: u8) -> u32 {
    [
        PROT_NONE,
        PROT_READ,
        PROT_READ | PROT_WRITE,
        PROT_READ | PROT_WRITE,
    ][usize::from(b & 3)]
}

fn addr(page: u32) -> u32 {
    BASE + page * 4096
}

/// Runs one input.
pub fn run(data: &[u8]) {
    run_with(data, false);
}

/// Runs one input; returns the shootdowns the core sent.
pub fn run_with_count(data: &[u8]) -> u64 {
    run_with(data, false)
}

/// Runs one input on a platform that drops every shootdown (the bug the
/// protocol prevents, reintroduced): some input must then fail. Returns the
/// shootdowns the core asked for.
pub fn run_broken(data: &[u8]) -> u64 {
    run_with(data, true)
}

fn run_with(data: &[u8], broken: bool) -> u64 {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS {
        match (Op::arbitrary(&mut u), u.is_empty()) {
            (Ok(op), _) => ops.push(op),
            (Err(_), _) => break,
        }
        if u.is_empty() {
            break;
        }
    }
    let w = SmpWorld::new(24 << 20, CPUS);
    w.machine.set_drop_shootdowns(broken);
    let count = ops.len();
    exercise(&w, &ops);
    crate::count_ops(count);
    w.machine.set_drop_shootdowns(false);
    let s = w.machine.shootdown_stats();
    w.finish();
    s.shootdowns + s.dropped
}

fn exercise(w: &SmpWorld, ops: &[Op]) {
    let mut procs: Vec<Proc<'_>> = vec![Proc {
        vm: w.space(0),
        pages: BTreeMap::new(),
    }];
    // Which process each CPU has loaded (None: the kernel space).
    let mut loaded: [Option<usize>; CPUS] = [None; CPUS];
    for (i, op) in ops.iter().enumerate() {
        step(w, &mut procs, &mut loaded, *op, i);
        if let Err(v) = w.check() {
            panic!("op {i} {op:?}: incoherent: {v:#?}");
        }
    }
    for (c, l) in loaded.iter_mut().enumerate() {
        if let Some(p) = l.take() {
            w.unload(c, &procs[p].vm);
        }
    }
    while let Some(p) = procs.pop() {
        p.vm.destroy();
    }
}

fn cpu_of(b: u8) -> usize {
    usize::from(b) % CPUS
}

/// The process `cpu` acts for: the one it has loaded, else process 0.
fn proc_on(loaded: &[Option<usize>; CPUS], cpu: usize) -> usize {
    loaded[cpu].unwrap_or(0)
}

fn step<'w>(
    w: &'w SmpWorld,
    procs: &mut Vec<Proc<'w>>,
    loaded: &mut [Option<usize>; CPUS],
    op: Op,
    i: usize,
) {
    match op {
        Op::Map { page, len, prot } => {
            let page = u32::from(page) % PAGES;
            let n = (u32::from(len) % 64 + 1).min(PAGES - page);
            let prot = prot_of(prot);
            let p = &mut procs[0];
            let a =
                p.vm.mmap(
                    &FdTable::new(),
                    VirtAddr::new(addr(page)),
                    n * 4096,
                    prot,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                    -1,
                    0,
                )
                .expect("mmap");
            assert_eq!(a.as_u32(), addr(page));
            for k in page..page + n {
                p.pages.insert(k, (prot, 0));
            }
        }
        Op::Unmap { cpu, page, len } => {
            let (c, page) = (cpu_of(cpu), u32::from(page) % PAGES);
            let n = (u32::from(len) % 300 + 1).min(PAGES - page);
            let p = &mut procs[proc_on(loaded, c)];
            w.on_cpu(c, &mut p.vm, |vm| {
                vm.munmap(VirtAddr::new(addr(page)), n * 4096)
            })
            .expect("munmap");
            for k in page..page + n {
                p.pages.remove(&k);
            }
        }
        Op::Protect {
            cpu,
            page,
            len,
            prot,
        } => {
            let (c, page) = (cpu_of(cpu), u32::from(page) % PAGES);
            let n = (u32::from(len) % 300 + 1).min(PAGES - page);
            let prot = prot_of(prot);
            let p = &mut procs[proc_on(loaded, c)];
            let all = (page..page + n).all(|k| p.pages.contains_key(&k));
            let r = w.on_cpu(c, &mut p.vm, |vm| {
                vm.mprotect(VirtAddr::new(addr(page)), n * 4096, prot)
            });
            assert_eq!(r.is_ok(), all, "op {i}: mprotect {r:?}");
            if all {
                for k in page..page + n {
                    p.pages.get_mut(&k).expect("mapped").0 = prot;
                }
            }
        }
        Op::Write { cpu, page, value } => {
            let (c, page) = (cpu_of(cpu), u32::from(page) % PAGES);
            let pi = proc_on(loaded, c);
            let p = &mut procs[pi];
            let ok = p
                .pages
                .get(&page)
                .is_some_and(|&(prot, _)| prot & PROT_WRITE != 0);
            let r = w.write_u32(c, &mut p.vm, addr(page), value);
            assert_eq!(r.is_ok(), ok, "op {i}: write on CPU {c}: {r:?}");
            if ok {
                p.pages.get_mut(&page).expect("mapped").1 = value;
            }
            loaded[c] = Some(pi);
        }
        Op::Read { cpu, page } => {
            let (c, page) = (cpu_of(cpu), u32::from(page) % PAGES);
            let pi = proc_on(loaded, c);
            let p = &mut procs[pi];
            let want = p
                .pages
                .get(&page)
                .filter(|&&(prot, _)| prot & PROT_READ != 0)
                .map(|&(_, v)| v);
            let r = w.read_u32(c, &mut p.vm, addr(page));
            assert_eq!(r.ok(), want, "op {i}: read on CPU {c}");
            loaded[c] = Some(pi);
        }
        Op::RawRead { cpu, page } => {
            let (c, page) = (cpu_of(cpu), u32::from(page) % PAGES);
            let Some(pi) = loaded[c] else { return };
            if let Ok(v) = w.cpu(c).read_u32(addr(page), Mode::User) {
                let model = procs[pi].pages.get(&page);
                // A page never touched may be absent (0 in the model).
                assert!(
                    model.is_some_and(|&(prot, m)| prot & PROT_READ != 0 && m == v),
                    "op {i}: CPU {c} read {v:#x} at page {page} through a translation the model forbids: {model:?}"
                );
            }
        }
        Op::RawWrite { cpu, page, value } => {
            let (c, page) = (cpu_of(cpu), u32::from(page) % PAGES);
            let Some(pi) = loaded[c] else { return };
            if w.cpu(c).write_u32(addr(page), value, Mode::User).is_ok() {
                let p = &mut procs[pi];
                let e = p.pages.get_mut(&page);
                assert!(
                    e.as_ref().is_some_and(|(prot, _)| prot & PROT_WRITE != 0),
                    "op {i}: CPU {c} wrote page {page} through a translation the model forbids"
                );
                if let Some(e) = e {
                    e.1 = value;
                }
            }
        }
        Op::Load { cpu } => {
            let c = cpu_of(cpu);
            let pi = usize::from(cpu / CPUS as u8) % procs.len();
            if let Some(prev) = loaded[c] {
                if prev != pi {
                    w.cpu(c).exclusive(|| {
                        procs[pi]
                            .vm
                            .address_space()
                            .switch_from(procs[prev].vm.address_space(), w.cpu(c))
                    });
                }
            } else {
                w.load(c, &procs[pi].vm);
            }
            loaded[c] = Some(pi);
        }
        Op::Unload { cpu } => {
            let c = cpu_of(cpu);
            if let Some(p) = loaded[c].take() {
                w.unload(c, &procs[p].vm);
            }
        }
        Op::Fork { cpu } => {
            if procs.len() > 1 {
                return;
            }
            let c = cpu_of(cpu);
            let child = w.on_cpu(c, &mut procs[0].vm, |vm| vm.fork()).expect("fork");
            let pages = procs[0].pages.clone();
            procs.push(Proc { vm: child, pages });
        }
        Op::Exit => {
            if procs.len() < 2 {
                return;
            }
            for (c, l) in loaded.iter_mut().enumerate() {
                if *l == Some(1) {
                    w.unload(c, &procs[1].vm);
                    *l = None;
                }
            }
            let child = procs.pop().expect("child");
            // The exiting process's own CPU: the one the test drives it on.
            child.vm.destroy();
        }
    }
}
