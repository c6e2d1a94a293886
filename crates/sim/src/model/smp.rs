//! The N-CPU reference run: operation sequences on an [`SmpWorld`] of
//! [`CPUS`] CPUs, checked against the page model of [`vm`](super::vm) and
//! by the TLB-coherence checker after every operation.
//!
//! Both users (`crates/sim/tests/smp_prop.rs` and the `vm_smp` fuzz target)
//! build a list of [`Op`]s and call [`run`]. What a run covers:
//!
//! - several processes (up to [`Limits::procs`]): `fork` copies the model,
//!   private pages become copy-on-write between parent and child, each
//!   process loaded on whichever CPUs the input says (several CPUs on one
//!   process are threads sharing its space);
//! - private and shared anonymous mappings and private and shared mappings
//!   of three files (read-write, read-only, one with a partial last page),
//!   `munmap` (up to 300 pages: past the 32-page list, a full flush),
//!   `mprotect` (up and down, holes and read-only files refused);
//! - accesses through the fault handler on any CPU, and raw accesses that
//!   bypass it: a raw read that succeeds must give the model's value on a
//!   page the model says is readable, a raw write must be one the model
//!   allows — a translation another CPU kept after a narrowing change
//!   breaks one of these or the checker;
//! - [`Op::Race`]: several CPUs fault on the same page before any handler
//!   runs (optionally the page is unmapped between the faults and the
//!   handlers); the handlers then run one after the other, as they do under
//!   the space lock: the first resolves, every later one must find the page
//!   there (`Spurious`), or no region at all after the unmap;
//! - the kernel half: heap pages mapped and unmapped through the heap's
//!   own backend ([`PagedHeapBackend`], global pages, so a shrink targets
//!   every online CPU), read and written raw from ring 0 on any CPU.
//!
//! At every shootdown nothing any CPU can still reach may be free
//! ([`SmpMachine::set_check_at_shootdown`](crate::smp::SmpMachine::set_check_at_shootdown)).
//! After every operation the checker must find nothing; every few
//! operations each space validates and its regions hold the model's pages.
//! At the end every process still sees its model, every space is
//! destroyed, the heap pages are unmapped, each file holds exactly the
//! writes made through shared mappings, and every frame is back.

use std::collections::BTreeMap;

use myos_abi::{
    MemFs, RawMman, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ,
    PROT_WRITE,
};
use myos_mm::heap::{HeapBackend, HeapFlags};
use myos_mm::layout::HEAP_START;
use myos_mm::paging::PagedHeapBackend;
use myos_mm::vm::{FaultKind, FaultOutcome, FdTable, PageFault as CoreFault, Prot, Signal};
use myos_mm::{MmError, VirtAddr};

use super::vm::{
    expect_access, expect_protect, protect, remove_range, Cell, FileSpec, Model, Pages,
};
use crate::smp::world::{SmpVm, SmpWorld};
use crate::smp::ShootdownStats;
use crate::Mode;

/// CPUs of the machine.
pub const CPUS: usize = 4;
/// Pages of the user window every mapping falls in (it spans two page
/// tables).
pub const PAGES: u32 = 1536;
/// The window's first address (4 MiB-aligned).
pub const BASE: u32 = 0x0800_0000;
/// Kernel heap pages the run may map, from [`HEAP_START`].
pub const HEAP_PAGES: u32 = 96;
const RAM: u64 = 24 << 20;
const PAGE: u32 = 4096;

/// The files: read-write, read-only, and one whose last page is partial.
pub static FILES: [FileSpec; 3] = [
    FileSpec::new("rw", 8, 0, true),
    FileSpec::new("ro", 8, 0, false),
    FileSpec::new("tail", 5, 100, true),
];

/// What a mapping is backed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Backing {
    /// Private anonymous memory.
    Private,
    /// Shared anonymous memory (one new object, shared with children).
    Shared,
    /// File `file % 3` from its page `offset % 10` (possibly past its end).
    File {
        /// Which of [`FILES`].
        file: u8,
        /// First file page.
        offset: u8,
        /// `MAP_SHARED` instead of `MAP_PRIVATE`.
        shared: bool,
    },
}

/// One operation. `cpu` is taken modulo [`CPUS`]; the process a CPU acts
/// for is the one it has loaded, else process 0. A `page` below `0x8000`
/// is a window page (modulo [`PAGES`]); from `0x8000` it picks the
/// `(page & 0x7FFF)`-th page the process has mapped (modulo their count),
/// so accesses find mappings. A protection byte picks one of none, read,
/// read-write, read-write.
///
/// The order of the variants and of their fields is the `vm_smp` fuzz
/// target's input format (the derived `Arbitrary`, feature `arbitrary`):
/// add new variants at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Op {
    /// `mmap(MAP_FIXED)` of `len % 64 + 1` pages on `cpu`.
    Map {
        /// The CPU making the call.
        cpu: u8,
        /// First page.
        page: u16,
        /// Pages, minus one (modulo 64).
        len: u8,
        /// Protection.
        prot: u8,
        /// What backs it.
        backing: Backing,
    },
    /// `munmap` of `len % 300 + 1` pages on `cpu`.
    Unmap {
        /// The CPU making the call.
        cpu: u8,
        /// First page.
        page: u16,
        /// Pages, minus one (modulo 300).
        len: u16,
    },
    /// `mprotect` of `len % 300 + 1` pages on `cpu`.
    Protect {
        /// The CPU making the call.
        cpu: u8,
        /// First page.
        page: u16,
        /// Pages, minus one (modulo 300).
        len: u16,
        /// Protection.
        prot: u8,
    },
    /// A user write through the fault handler on `cpu`.
    Write {
        /// The CPU.
        cpu: u8,
        /// The page.
        page: u16,
        /// The value.
        value: u32,
    },
    /// A user read through the fault handler on `cpu`.
    Read {
        /// The CPU.
        cpu: u8,
        /// The page.
        page: u16,
    },
    /// A raw user read on `cpu` with what it has loaded (no fault handling).
    RawRead {
        /// The CPU.
        cpu: u8,
        /// The page.
        page: u16,
    },
    /// A raw user write on `cpu` (no fault handling).
    RawWrite {
        /// The CPU.
        cpu: u8,
        /// The page.
        page: u16,
        /// The value.
        value: u32,
    },
    /// Context switch: `cpu` loads the `p`-th live process.
    Load {
        /// The CPU.
        cpu: u8,
        /// Which live process (modulo their count).
        p: u8,
    },
    /// `cpu` switches to the kernel space.
    Unload {
        /// The CPU.
        cpu: u8,
    },
    /// `fork` of the `p`-th live process, on `cpu` (when there is room).
    Fork {
        /// The CPU.
        cpu: u8,
        /// Which live process.
        p: u8,
    },
    /// The `p`-th live child exits (process 0 never does).
    Exit {
        /// Which child (modulo their count).
        p: u8,
    },
    /// The CPUs of `cpus` (all when fewer than two bits are set) fault on
    /// the same page of the `p`-th live process — writes where `writes`
    /// has the CPU's bit — before any handler runs; with `unmap`, the last
    /// of them unmaps the page first. Then the handlers run one after the
    /// other and the accesses are retried.
    Race {
        /// Which live process.
        p: u8,
        /// The CPUs (bit n: CPU n).
        cpus: u8,
        /// The page.
        page: u16,
        /// Which CPUs write (bit n: CPU n).
        writes: u8,
        /// What they write (plus the CPU number).
        value: u32,
        /// Unmap the page between the faults and the handlers.
        unmap: bool,
    },
    /// Heap growth: `len % 8 + 1` heap pages from slot `slot %`
    /// [`HEAP_PAGES`] mapped on `cpu` (skipped where any is mapped), each
    /// written from ring 0.
    HeapMap {
        /// The CPU.
        cpu: u8,
        /// First slot.
        slot: u8,
        /// Pages, minus one (modulo 8).
        len: u8,
    },
    /// Heap shrink: `len % 40 + 1` heap pages from slot `slot` unmapped on
    /// `cpu` (the backend skips those not mapped).
    HeapUnmap {
        /// The CPU.
        cpu: u8,
        /// First slot.
        slot: u8,
        /// Pages, minus one (modulo 40).
        len: u8,
    },
    /// A raw ring-0 read of a heap slot on `cpu`: the model's value where
    /// it is mapped, a fault elsewhere.
    HeapRead {
        /// The CPU.
        cpu: u8,
        /// The slot.
        slot: u8,
    },
    /// A raw ring-0 write of a heap slot on `cpu`: allowed only where it is
    /// mapped.
    HeapWrite {
        /// The CPU.
        cpu: u8,
        /// The slot.
        slot: u8,
        /// The value.
        value: u32,
    },
    /// User writes of `value + k` to the `k`-th of `len % 64 + 1` pages
    /// from `page`, through the fault handler on `cpu` (what fills a range,
    /// so that narrowing it has many present pages to drop).
    Fill {
        /// The CPU.
        cpu: u8,
        /// First page.
        page: u16,
        /// Pages, minus one (modulo 64).
        len: u8,
        /// The first value.
        value: u32,
    },
}

/// What a run may do beyond its operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most live processes at once (process 0 included).
    pub procs: usize,
    /// Every platform shootdown is dropped (the bug the protocol prevents,
    /// reintroduced): the run is expected to fail.
    pub drop_shootdowns: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            procs: 3,
            drop_shootdowns: false,
        }
    }
}

/// What a run did (for the tests that it exercised what it claims).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Operations run.
    pub ops: usize,
    /// The machine's shootdown counters at the end.
    pub shootdowns: ShootdownStats,
    /// Forks made.
    pub forks: usize,
    /// `munmap` calls of more than 32 pages on a space other CPUs had loaded.
    pub big_remote_unmaps: usize,
    /// Races run with at least two faulting CPUs.
    pub races: usize,
    /// Handlers of those races that found the page already resolved.
    pub race_spurious: usize,
    /// Copy-on-write copies and reuses the fault handlers made.
    pub cow: u64,
    /// Heap pages unmapped while another CPU held their global entry.
    pub heap_remote_unmaps: usize,
    /// Shared mappings (anonymous or file) made.
    pub shared_maps: usize,
}

struct Proc<'w> {
    vm: SmpVm<'w>,
    pages: Pages,
}

struct Run<'w> {
    w: &'w SmpWorld,
    fds: FdTable,
    model: Model,
    /// Process slots (slot 0 always live).
    procs: Vec<Option<Proc<'w>>>,
    /// Which slot each CPU has loaded (`None`: the kernel space).
    loaded: [Option<usize>; CPUS],
    /// Heap slots mapped, with the value written at their start.
    heap: BTreeMap<u32, u32>,
    stats: RunStats,
}

fn prot_of(b: u8) -> u32 {
    [
        PROT_NONE,
        PROT_READ,
        PROT_READ | PROT_WRITE,
        PROT_READ | PROT_WRITE,
    ][usize::from(b & 3)]
}

fn win(page: u32) -> u32 {
    BASE / PAGE + page
}

fn heap_va(slot: u32) -> u32 {
    HEAP_START + slot * PAGE
}

fn cpu_of(b: u8) -> usize {
    usize::from(b) % CPUS
}

fn segv(addr: u32, cause: myos_mm::vm::SegvCause) -> FaultOutcome {
    FaultOutcome::Signal(Signal::Segv {
        addr: VirtAddr::new(addr),
        cause,
    })
}

/// Runs `ops` on a fresh world (see the [module docs](self)); panics on
/// the first disagreement.
pub fn run(ops: &[Op], limits: Limits) -> RunStats {
    let w = SmpWorld::new(RAM, CPUS);
    let fs = MemFs::new();
    let mut fds = FdTable::new();
    let model = Model::new(&FILES);
    model.open(&fs, &mut fds);
    let mut r = Run {
        w: &w,
        fds,
        model,
        procs: Vec::new(),
        loaded: [None; CPUS],
        heap: BTreeMap::new(),
        stats: RunStats::default(),
    };
    r.procs.push(Some(Proc {
        vm: w.space(0),
        pages: Pages::new(),
    }));
    w.machine.set_drop_shootdowns(limits.drop_shootdowns);
    w.machine.set_check_at_shootdown(true);
    for (i, op) in ops.iter().enumerate() {
        r.step(*op, limits, i);
        let freed = w.machine.take_violations();
        assert!(
            freed.is_empty(),
            "op {i} {op:?}: freed before the remote flush: {freed:#?}"
        );
        if let Err(v) = w.check() {
            panic!("op {i} {op:?}: incoherent: {v:#?}");
        }
        if i % 8 == 7 {
            r.validate(i);
        }
    }
    r.stats.ops = ops.len();
    r.finish(&fs);
    let freed = w.machine.take_violations();
    assert!(
        freed.is_empty(),
        "at the end: freed before the remote flush: {freed:#?}"
    );
    w.machine.set_drop_shootdowns(false);
    let mut stats = std::mem::take(&mut r.stats);
    drop(r);
    stats.shootdowns = w.machine.shootdown_stats();
    w.finish();
    stats
}

impl<'w> Run<'w> {
    fn live(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|&s| self.procs[s].is_some())
            .collect()
    }

    fn pick(&self, p: u8) -> usize {
        let live = self.live();
        live[usize::from(p) % live.len()]
    }

    fn proc_on(&self, cpu: usize) -> usize {
        self.loaded[cpu].unwrap_or(0)
    }

    fn proc(&mut self, slot: usize) -> &mut Proc<'w> {
        self.procs[slot].as_mut().expect("live process")
    }

    /// The page an operation names in process `slot` (see [`Op`]).
    fn page_of(&self, slot: usize, page: u16) -> u32 {
        let m = &self.procs[slot].as_ref().expect("live process").pages;
        if page & 0x8000 != 0 && !m.is_empty() {
            let n = usize::from(page & 0x7FFF) % m.len();
            *m.keys().nth(n).expect("n < len")
        } else {
            win(u32::from(page & 0x7FFF) % PAGES)
        }
    }

    /// Makes CPU `cpu` run process `slot`, switching from what it ran.
    fn switch(&mut self, cpu: usize, slot: usize) {
        let w = self.w;
        let c = w.cpu(cpu);
        match self.loaded[cpu] {
            Some(prev) if prev == slot => {}
            Some(prev) => {
                let next = self.procs[slot].as_ref().expect("live").vm.address_space();
                let prev = self.procs[prev].as_ref().expect("live").vm.address_space();
                c.exclusive(|| next.switch_from(prev, c));
            }
            None => w.load(cpu, &self.procs[slot].as_ref().expect("live").vm),
        }
        self.loaded[cpu] = Some(slot);
    }

    fn unload(&mut self, cpu: usize) {
        if let Some(p) = self.loaded[cpu].take() {
            self.w
                .unload(cpu, &self.procs[p].as_ref().expect("live").vm);
        }
    }

    /// Every space validates and its regions hold the model's pages.
    fn validate(&self, i: usize) {
        for p in self.procs.iter().flatten() {
            p.vm.validate().expect("space validates");
            let in_regions: u64 =
                p.vm.regions()
                    .map(|r| u64::from((r.end.as_u32() - r.start.as_u32()) / PAGE))
                    .sum();
            assert_eq!(
                in_regions,
                p.pages.len() as u64,
                "region sizes after op {i}"
            );
        }
        self.w.fa.lock().validate().expect("frame allocator");
    }

    /// The outcome a user access to `page` of `slot` must have: `Ok`, or
    /// the signal.
    fn expect_user(&self, slot: usize, page: u32, write: bool) -> Result<(), FaultOutcome> {
        let m = &self.procs[slot].as_ref().expect("live").pages;
        let addr = page * PAGE;
        match expect_access(m, page, write) {
            Err(cause) => Err(segv(addr, cause)),
            Ok(()) if write && m[&page].read_only_file => {
                unreachable!("a read-only file page is never writable in the model")
            }
            Ok(()) if self.model.get(m[&page].cell).is_none() => {
                Err(FaultOutcome::Signal(Signal::Bus {
                    addr: VirtAddr::new(addr),
                }))
            }
            Ok(()) => Ok(()),
        }
    }

    /// A user write through the fault handler on `cpu`, checked and
    /// modelled.
    fn write(&mut self, cpu: usize, slot: usize, page: u32, value: u32, i: usize) {
        let want = self.expect_user(slot, page, true);
        self.switch(cpu, slot);
        let w = self.w;
        let p = self.procs[slot].as_mut().expect("live");
        let r = w.write_u32(cpu, &mut p.vm, page * PAGE, value);
        assert_eq!(r, want, "op {i}: write of page {page:#x} on CPU {cpu}");
        if r.is_ok() {
            let cell = &mut p.pages.get_mut(&page).expect("mapped").cell;
            self.model.set(cell, value);
        }
    }

    /// A user read through the fault handler on `cpu`, checked.
    fn read(&mut self, cpu: usize, slot: usize, page: u32, i: usize) {
        let want = self.expect_user(slot, page, false).map(|()| {
            let m = &self.procs[slot].as_ref().expect("live").pages;
            self.model.value(m[&page].cell)
        });
        self.switch(cpu, slot);
        let w = self.w;
        let p = self.procs[slot].as_mut().expect("live");
        let r = w.read_u32(cpu, &mut p.vm, page * PAGE);
        assert_eq!(r, want, "op {i}: read of page {page:#x} on CPU {cpu}");
    }

    /// Checks a raw read that succeeded on `cpu` (running `slot`).
    fn raw_read_ok(&self, cpu: usize, slot: usize, page: u32, v: u32, i: usize) {
        let m = &self.procs[slot].as_ref().expect("live").pages;
        let q = m.get(&page);
        assert!(
            q.is_some_and(|q| q.prot.contains(Prot::READ) && self.model.get(q.cell) == Some(v)),
            "op {i}: CPU {cpu} read {v:#x} at page {page:#x} through a translation the model \
             forbids or with another value: {q:?}"
        );
    }

    /// Checks and models a raw write that succeeded on `cpu`.
    fn raw_write_ok(&mut self, cpu: usize, slot: usize, page: u32, v: u32, i: usize) {
        let allowed = self.expect_user(slot, page, true).is_ok();
        assert!(
            allowed,
            "op {i}: CPU {cpu} wrote page {page:#x} through a translation the model forbids"
        );
        let p = self.procs[slot].as_mut().expect("live");
        let cell = &mut p.pages.get_mut(&page).expect("mapped").cell;
        self.model.set(cell, v);
    }

    fn step(&mut self, op: Op, limits: Limits, i: usize) {
        let w = self.w;
        match op {
            Op::Map {
                cpu,
                page,
                len,
                prot,
                backing,
            } => {
                let c = cpu_of(cpu);
                let slot = self.proc_on(c);
                let page = win(u32::from(page & 0x7FFF) % PAGES);
                let n = (u32::from(len) % 64 + 1).min(win(PAGES) - page);
                self.map(c, slot, page, n, prot_of(prot), backing, i);
            }
            Op::Unmap { cpu, page, len } => {
                let c = cpu_of(cpu);
                let slot = self.proc_on(c);
                let page = self.page_of(slot, page);
                let n = (u32::from(len) % 300 + 1).min(win(PAGES) - page);
                let remote = self
                    .loaded
                    .iter()
                    .enumerate()
                    .any(|(o, l)| o != c && *l == Some(slot));
                if n > 32 && remote {
                    self.stats.big_remote_unmaps += 1;
                }
                let p = self.proc(slot);
                w.on_cpu(c, &mut p.vm, |vm| {
                    vm.munmap(VirtAddr::new(page * PAGE), n * PAGE)
                })
                .expect("munmap");
                remove_range(&mut p.pages, page, page + n);
            }
            Op::Protect {
                cpu,
                page,
                len,
                prot,
            } => {
                let c = cpu_of(cpu);
                let slot = self.proc_on(c);
                let page = self.page_of(slot, page);
                let n = (u32::from(len) % 300 + 1).min(win(PAGES) - page);
                let raw = prot_of(prot);
                let prot = Prot::from_bits(raw).expect("valid protection");
                let p = self.proc(slot);
                let want = expect_protect(&p.pages, page, page + n, prot);
                let r = w.on_cpu(c, &mut p.vm, |vm| {
                    vm.mprotect(VirtAddr::new(page * PAGE), n * PAGE, raw)
                });
                assert_eq!(r, want, "op {i}: mprotect {page:#x}+{n}");
                if want.is_ok() {
                    protect(&mut p.pages, page, page + n, prot);
                }
            }
            Op::Write { cpu, page, value } => {
                let c = cpu_of(cpu);
                let slot = self.proc_on(c);
                let page = self.page_of(slot, page);
                self.write(c, slot, page, value, i);
            }
            Op::Fill {
                cpu,
                page,
                len,
                value,
            } => {
                let c = cpu_of(cpu);
                let slot = self.proc_on(c);
                let page = self.page_of(slot, page);
                let n = (u32::from(len) % 64 + 1).min(win(PAGES) - page);
                for k in 0..n {
                    self.write(c, slot, page + k, value.wrapping_add(k), i);
                }
            }
            Op::Read { cpu, page } => {
                let c = cpu_of(cpu);
                let slot = self.proc_on(c);
                let page = self.page_of(slot, page);
                self.read(c, slot, page, i);
            }
            Op::RawRead { cpu, page } => {
                let c = cpu_of(cpu);
                let Some(slot) = self.loaded[c] else { return };
                let page = self.page_of(slot, page);
                if let Ok(v) = w.cpu(c).read_u32(page * PAGE, Mode::User) {
                    self.raw_read_ok(c, slot, page, v, i);
                }
            }
            Op::RawWrite { cpu, page, value } => {
                let c = cpu_of(cpu);
                let Some(slot) = self.loaded[c] else { return };
                let page = self.page_of(slot, page);
                if w.cpu(c).write_u32(page * PAGE, value, Mode::User).is_ok() {
                    self.raw_write_ok(c, slot, page, value, i);
                }
            }
            Op::Load { cpu, p } => {
                let slot = self.pick(p);
                self.switch(cpu_of(cpu), slot);
            }
            Op::Unload { cpu } => self.unload(cpu_of(cpu)),
            Op::Fork { cpu, p } => {
                if self.live().len() >= limits.procs {
                    return;
                }
                let (c, slot) = (cpu_of(cpu), self.pick(p));
                let parent = self.proc(slot);
                let vm = w.on_cpu(c, &mut parent.vm, |vm| vm.fork()).expect("fork");
                let pages = parent.pages.clone();
                let child = Some(Proc { vm, pages });
                match self.procs.iter().position(Option::is_none) {
                    Some(free) => self.procs[free] = child,
                    None => self.procs.push(child),
                }
                self.stats.forks += 1;
            }
            Op::Exit { p } => {
                let children: Vec<usize> = self.live().into_iter().filter(|&s| s != 0).collect();
                if children.is_empty() {
                    return;
                }
                let slot = children[usize::from(p) % children.len()];
                self.exit(slot);
            }
            Op::Race {
                p,
                cpus,
                page,
                writes,
                value,
                unmap,
            } => {
                let slot = self.pick(p);
                let page = self.page_of(slot, page);
                self.race(slot, cpus, page, writes, value, unmap, i);
            }
            Op::HeapMap { cpu, slot, len } => {
                let c = cpu_of(cpu);
                let first = u32::from(slot) % HEAP_PAGES;
                let n = (u32::from(len) % 8 + 1).min(HEAP_PAGES - first);
                if (first..first + n).any(|s| self.heap.contains_key(&s)) {
                    return;
                }
                let cpu = w.cpu(c);
                cpu.exclusive(|| {
                    // SAFETY: the backend's methods are called directly (no
                    // heap is built over it), as its contract asks on the host.
                    let mut b = unsafe { PagedHeapBackend::new(cpu, w.kernel(), w.frames()) };
                    b.map(
                        heap_va(first) as usize,
                        n as usize,
                        false,
                        HeapFlags::KERNEL,
                    )
                })
                .expect("heap pages");
                for s in first..first + n {
                    let v = 0x4EA0_0000 | (i as u32) << 8 | s;
                    cpu.write_u32(heap_va(s), v, Mode::Supervisor)
                        .expect("ring-0 write of a new heap page");
                    self.heap.insert(s, v);
                }
            }
            Op::HeapUnmap { cpu, slot, len } => {
                let c = cpu_of(cpu);
                let first = u32::from(slot) % HEAP_PAGES;
                let n = (u32::from(len) % 40 + 1).min(HEAP_PAGES - first);
                let held = (first..first + n)
                    .any(|s| (0..CPUS).any(|o| o != c && w.cpu(o).tlb_peek(heap_va(s)).is_some()));
                if held {
                    self.stats.heap_remote_unmaps += 1;
                }
                self.heap_unmap(c, first, n);
            }
            Op::HeapRead { cpu, slot } => {
                let c = cpu_of(cpu);
                let s = u32::from(slot) % HEAP_PAGES;
                let r = w.cpu(c).read_u32(heap_va(s), Mode::Supervisor);
                assert_eq!(
                    r.ok(),
                    self.heap.get(&s).copied(),
                    "op {i}: ring-0 read of heap slot {s} on CPU {c}"
                );
            }
            Op::HeapWrite { cpu, slot, value } => {
                let c = cpu_of(cpu);
                let s = u32::from(slot) % HEAP_PAGES;
                let r = w.cpu(c).write_u32(heap_va(s), value, Mode::Supervisor);
                match self.heap.get_mut(&s) {
                    Some(v) => {
                        assert_eq!(r, Ok(()), "op {i}: ring-0 write of heap slot {s}");
                        *v = value;
                    }
                    None => assert!(
                        r.is_err(),
                        "op {i}: CPU {c} wrote unmapped heap slot {s} through a stale entry"
                    ),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn map(
        &mut self,
        cpu: usize,
        slot: usize,
        page: u32,
        n: u32,
        raw: u32,
        backing: Backing,
        i: usize,
    ) {
        let w = self.w;
        let (flags, fd, offset, file) = match backing {
            Backing::Private => (MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, None),
            Backing::Shared => (MAP_SHARED | MAP_ANONYMOUS, -1, 0, None),
            Backing::File {
                file,
                offset,
                shared,
            } => {
                let f = usize::from(file) % FILES.len();
                let first = u32::from(offset) % 10;
                let kind = if shared { MAP_SHARED } else { MAP_PRIVATE };
                (kind, f as i32, first * PAGE, Some((f, first, shared)))
            }
        };
        let at = VirtAddr::new(page * PAGE);
        let fds = &self.fds;
        let p = self.procs[slot].as_mut().expect("live");
        let r = w.on_cpu(cpu, &mut p.vm, |vm| {
            vm.mmap(fds, at, n * PAGE, raw, flags | MAP_FIXED, fd, offset)
        });
        let prot = Prot::from_bits(raw).expect("valid protection");
        match file {
            Some((f, _, true)) if !FILES[f].writable && raw & PROT_WRITE != 0 => {
                assert_eq!(
                    r,
                    Err(MmError::AccessDenied),
                    "op {i}: shared writable read-only file"
                );
            }
            Some((f, first, shared)) => {
                assert_eq!(r, Ok(at), "op {i}: mmap of file {f}");
                self.model
                    .map_file(&mut p.pages, page, n, prot, f, first, shared);
                self.stats.shared_maps += usize::from(shared);
            }
            None => {
                assert_eq!(r, Ok(at), "op {i}: mmap");
                let shared = backing == Backing::Shared;
                self.model.map_anon(&mut p.pages, page, n, prot, shared);
                self.stats.shared_maps += usize::from(shared);
            }
        }
    }

    /// See [`Op::Race`].
    #[allow(clippy::too_many_arguments)]
    fn race(
        &mut self,
        slot: usize,
        cpus: u8,
        page: u32,
        writes: u8,
        value: u32,
        unmap: bool,
        i: usize,
    ) {
        let w = self.w;
        let mut set: Vec<usize> = (0..CPUS).filter(|c| cpus >> c & 1 == 1).collect();
        if set.len() < 2 {
            set = (0..CPUS).collect();
        }
        for &c in &set {
            self.switch(c, slot);
        }
        let va = page * PAGE;
        let write = |c: usize| writes >> c & 1 == 1;
        let val = |c: usize| value.wrapping_add(c as u32);
        // Every CPU makes its access; those that fault wait for the lock.
        let mut faulted = Vec::new();
        for &c in &set {
            let r = if write(c) {
                w.cpu(c).write_u32(va, val(c), Mode::User).map(|()| None)
            } else {
                w.cpu(c).read_u32(va, Mode::User).map(Some)
            };
            match r {
                Ok(Some(v)) => self.raw_read_ok(c, slot, page, v, i),
                Ok(None) => self.raw_write_ok(c, slot, page, val(c), i),
                Err(f) => faulted.push((c, f)),
            }
        }
        if unmap {
            let c = *set.last().expect("two CPUs or more");
            let p = self.proc(slot);
            w.on_cpu(c, &mut p.vm, |vm| vm.munmap(VirtAddr::new(va), PAGE))
                .expect("munmap");
            remove_range(&mut p.pages, page, page + 1);
        }
        if faulted.len() >= 2 {
            self.stats.races += 1;
        }
        // The handlers, one after the other (the space lock). Once one has
        // resolved a read, a later read must find the page; once one has
        // resolved a write, every later fault must.
        let (mut read_done, mut write_done) = (false, false);
        for &(c, f) in &faulted {
            let want = self.expect_user(slot, page, write(c));
            let p = self.proc(slot);
            let out = w.on_cpu(c, &mut p.vm, |vm| {
                vm.handle_fault(CoreFault::new(f.cr2, f.error_code))
            });
            match (out, want) {
                (FaultOutcome::Resolved(kind), Ok(())) => {
                    let done = write_done || (read_done && !write(c));
                    if done {
                        assert_eq!(
                            kind,
                            FaultKind::Spurious,
                            "op {i}: CPU {c}'s fault on page {page:#x} resolved twice"
                        );
                        self.stats.race_spurious += 1;
                    }
                    read_done = true;
                    write_done |= write(c);
                }
                (out, Err(e)) => assert_eq!(out, e, "op {i}: CPU {c}'s fault on {page:#x}"),
                (out, Ok(())) => panic!("op {i}: CPU {c}'s fault on {page:#x}: {out:?}"),
            }
        }
        // The faulting accesses are retried.
        for (c, _) in faulted {
            if write(c) {
                self.write(c, slot, page, val(c), i);
            } else {
                self.read(c, slot, page, i);
            }
        }
    }

    fn heap_unmap(&mut self, cpu: usize, first: u32, n: u32) {
        let w = self.w;
        let c = w.cpu(cpu);
        c.exclusive(|| {
            // SAFETY: as in `HeapMap`.
            let mut b = unsafe { PagedHeapBackend::new(c, w.kernel(), w.frames()) };
            b.unmap(heap_va(first) as usize, n as usize);
        });
        for s in first..first + n {
            self.heap.remove(&s);
        }
    }

    /// Process `slot` exits: the CPUs running it switch to the kernel space
    /// first, then its space goes.
    fn exit(&mut self, slot: usize) {
        for c in 0..CPUS {
            if self.loaded[c] == Some(slot) {
                self.unload(c);
            }
        }
        let p = self.procs[slot].take().expect("live");
        let f = p.vm.fault_stats();
        self.stats.cow += f.cow_copy + f.cow_reuse;
        p.vm.destroy();
    }

    /// The end of a run (see the [module docs](self)).
    fn finish(&mut self, fs: &MemFs) {
        let w = self.w;
        self.validate(usize::MAX);
        for slot in self.live() {
            let pages: Vec<(u32, Cell, Prot)> = self.procs[slot]
                .as_ref()
                .expect("live")
                .pages
                .iter()
                .map(|(&k, q)| (k, q.cell, q.prot))
                .collect();
            for (page, cell, prot) in pages {
                // Untouched private pages read 0 and would only cost frames.
                let touched = !matches!(cell, Cell::Private(0));
                if prot.contains(Prot::READ) && touched {
                    self.read(0, slot, page, usize::MAX);
                }
            }
        }
        for c in 0..CPUS {
            self.unload(c);
        }
        for slot in self.live().into_iter().rev() {
            self.exit(slot);
        }
        self.heap_unmap(0, 0, HEAP_PAGES);
        for s in 0..HEAP_PAGES {
            let mapped = w
                .kernel()
                .lock()
                .translate(w.cpu(0), VirtAddr::new(heap_va(s)));
            assert_eq!(mapped, None, "heap slot {s} still mapped");
        }
        for (f, s) in FILES.iter().enumerate() {
            let data = fs.read(s.name).expect("file");
            assert_eq!(data.len(), s.bytes(f).len(), "file {} changed size", s.name);
            for idx in 0..s.data_pages() {
                let at = (idx * PAGE) as usize;
                let got = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
                let cell = Cell::File {
                    f,
                    idx,
                    shared: true,
                };
                assert_eq!(
                    Some(got),
                    self.model.get(cell),
                    "file {}, page {idx}",
                    s.name
                );
            }
        }
    }
}
