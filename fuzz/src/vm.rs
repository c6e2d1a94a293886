//! Address-space target: `mmap` (anonymous and file-backed) / `munmap` /
//! `mprotect` / `msync` / `fork` / accesses (user and supervisor reads,
//! writes and fetches through the simulated MMU, `copy_to_user` /
//! `copy_from_user`) / `exit`, on a simulated machine whose page faults the
//! core's handler services, against a model of every process's pages
//! (contents and permissions) and of three in-memory files.
//!
//! Besides well-formed calls inside a 24-page window (which spans a
//! page-table boundary), the input can make raw calls with arbitrary
//! addresses, lengths, protections, flags, descriptors and offsets: their
//! result is predicted by a reference validation of the arguments, and
//! errors must change nothing.
//!
//! Files (`FILES`: read-write, read-only, and one whose last page is
//! partial) are mapped shared or private at page offsets that may reach
//! past their end: pages past the end raise SIGBUS; shared mappings of one
//! file see each other's writes; a private page sees the file until its
//! first write copies it; a read-only file refuses writable shared mappings
//! (`EACCES`, at `mmap` and `mprotect`).
//!
//! An input may end in a [`CPU_TRAILER`] that turns on SMEP and SMAP (and
//! AC, and ring-0 fetches): ring-0 accesses the protections forbid must be
//! named kernel bugs by the handler, never retried forever. The trailer
//! also picks the paging mode: classic (the default) or PAE on the PAE
//! machine (RAM at 0 and at 4 GiB, NX on), where user and file pages come
//! from above 4 GiB and a fetch from a page without `PROT_EXEC` is SIGSEGV.
//!
//! After every operation the regions' protections and sizes equal the
//! model's (and every 16 operations the frame allocator validates); at the
//! end every process still sees its model, and after every space is
//! destroyed every frame is back and each file holds exactly the writes
//! made through shared mappings. The model and those checks are
//! [`myos_sim::model::vm`], shared with the core's property test.

use arbitrary::Arbitrary;
use myos_abi::{
    MemFs, RawMman, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_NONE,
    PROT_READ, PROT_WRITE,
};
use myos_mm::layout::{USER_END, USER_MMAP_MIN};
use myos_mm::vm::FaultContext;
use myos_mm::vm::{FdTable, Prot};
use myos_mm::{MmError, VirtAddr};
use myos_sim::model::vm::{
    self as model, check, count_range, expect_protect, fork, mprotect, munmap, protect,
    remove_range, va, FileSpec, Model, Pages, Proc, PAGE,
};
use myos_sim::{World, WorldMachine};

const RAM: u64 = 8 << 20;
/// The window of the well-formed calls, spanning a page-table boundary.
const BASE: u32 = 0x1000_0000 - 8 * PAGE;
const WINDOW: u32 = 24;
const MAX_PROCS: usize = 4;
/// Raw mappings larger than this many pages are not made (the model keeps
/// one entry per page); calls expected to fail are made at any size.
const MAX_MODEL_PAGES: u32 = 256;
const MIN_PAGE: u32 = USER_MMAP_MIN / PAGE;
const END_PAGE: u32 = USER_END / PAGE;

/// A protection: one of the five meaningful ones.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum P {
    /// `PROT_NONE`.
    None,
    /// `PROT_READ`.
    Read,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
    /// `PROT_EXEC`.
    Exec,
    /// `PROT_WRITE` (readable too on x86).
    Write,
}

impl P {
    fn raw(self) -> u32 {
        match self {
            P::None => PROT_NONE,
            P::Read => PROT_READ,
            P::ReadWrite => PROT_READ | PROT_WRITE,
            P::Exec => PROT_EXEC,
            P::Write => PROT_WRITE,
        }
    }

    fn prot(self) -> Prot {
        Prot::from_bits(self.raw()).unwrap()
    }
}

/// Which page an access goes to: a window page, or a page of whatever the
/// process has mapped (its `n`-th modelled page).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Target {
    /// Window page `n % 24`.
    Window(u8),
    /// The `n`-th modelled page of the process (mod their count).
    Mapped(u16),
    /// Any user address (page-aligned).
    Anywhere(u32),
}

/// How an access is made.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum How {
    /// A user-mode access through the MMU.
    User,
    /// A supervisor-mode access through the MMU (CR0.WP set).
    Supervisor,
    /// `copy_to_user` / `copy_from_user`.
    Copy,
}

/// One operation; `p` picks a process modulo the count.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    /// `mmap(window + start, len pages, prot, MAP_FIXED|MAP_ANONYMOUS|shared/private)`.
    Mmap {
        /// Process.
        p: u8,
        /// First window page.
        start: u8,
        /// Pages (1..=8, clipped to the window).
        len: u8,
        /// Protection.
        prot: P,
        /// `MAP_SHARED` instead of `MAP_PRIVATE`.
        shared: bool,
    },
    /// `mmap` without `MAP_FIXED`, hinting at a window page.
    MmapHint {
        /// Process.
        p: u8,
        /// Hinted window page.
        start: u8,
        /// Pages (1..=16).
        len: u8,
        /// Protection.
        prot: P,
        /// `MAP_SHARED` instead of `MAP_PRIVATE`.
        shared: bool,
    },
    /// `mmap` with raw arguments.
    MmapRaw {
        /// Process.
        p: u8,
        /// Address (0 picks a window page instead when `near` is set).
        addr: u32,
        /// Put `addr` in the window (page-aligned unless `addr & 1`).
        near: bool,
        /// Length in bytes.
        length: u32,
        /// Raw `prot`.
        prot: u8,
        /// Raw `flags`.
        flags: u8,
        /// Raw `fd`.
        fd: i32,
        /// Raw `offset`.
        offset: u32,
    },
    /// `munmap(window + start, len pages)`.
    Munmap {
        /// Process.
        p: u8,
        /// First window page.
        start: u8,
        /// Pages (1..=8).
        len: u8,
    },
    /// `munmap` with raw arguments.
    MunmapRaw {
        /// Process.
        p: u8,
        /// Address.
        addr: u32,
        /// Length.
        length: u32,
    },
    /// `mprotect(window + start, len pages, prot)`.
    Mprotect {
        /// Process.
        p: u8,
        /// First window page.
        start: u8,
        /// Pages (1..=8, clipped to the window).
        len: u8,
        /// Protection.
        prot: P,
    },
    /// `mprotect` with raw arguments.
    MprotectRaw {
        /// Process.
        p: u8,
        /// Address.
        addr: u32,
        /// Length.
        length: u32,
        /// Raw `prot`.
        prot: u8,
    },
    /// `fork`.
    Fork {
        /// Process.
        p: u8,
    },
    /// Writes a `u32` at the start of a page.
    Write {
        /// Process.
        p: u8,
        /// Which page.
        at: Target,
        /// How.
        how: How,
        /// Value.
        value: u32,
    },
    /// Reads the `u32` at the start of a page.
    Read {
        /// Process.
        p: u8,
        /// Which page.
        at: Target,
        /// How.
        how: How,
    },
    /// Fetches (executes) the first byte of a page, from user mode (from
    /// ring 0 when the input's [`Cpu`] says so).
    Fetch {
        /// Process.
        p: u8,
        /// Which page.
        at: Target,
    },
    /// `exit`: destroys the space.
    Exit {
        /// Process.
        p: u8,
    },
    /// `mmap(window + start, len pages, prot, MAP_FIXED|shared/private, fd, offset)`
    /// of one of the files (`FILES`, descriptor `file % 3`), possibly reaching
    /// past its end.
    MmapFile {
        /// Process.
        p: u8,
        /// First window page.
        start: u8,
        /// Pages (1..=8, clipped to the window).
        len: u8,
        /// Protection.
        prot: P,
        /// `MAP_SHARED` instead of `MAP_PRIVATE`.
        shared: bool,
        /// Which file.
        file: u8,
        /// First file page (0..=9).
        offset: u8,
    },
    /// `msync(window + start, len pages)`.
    Msync {
        /// Process.
        p: u8,
        /// First window page.
        start: u8,
        /// Pages (1..=8, clipped to the window).
        len: u8,
    },
}

/// The files: read-write, read-only, and one whose last page is partial.
static FILES: [FileSpec; 3] = [
    FileSpec::new("rw", 8, 0, true),
    FileSpec::new("ro", 8, 0, false),
    FileSpec::new("tail", 5, 100, true),
];

impl How {
    fn model(self) -> model::How {
        match self {
            How::User => model::How::User,
            How::Supervisor => model::How::Supervisor,
            How::Copy => model::How::Copy,
        }
    }
}

fn win(page: u32) -> u32 {
    BASE / PAGE + page
}

/// A fuzzed range inside the window: its first window page and its length
/// (1 to 8 pages, cut at the window's end).
fn span(start: u8, len: u8) -> (u32, u32) {
    let start = u32::from(start) % WINDOW;
    (start, (1 + u32::from(len) % 8).min(WINDOW - start))
}

/// Marks an input's optional CPU configuration: an input ending in these
/// four bytes and one flag byte ([`Cpu::from_flags`]) runs on a machine with
/// those protections, decoding its operations from the bytes before them.
/// Inputs without it (every corpus made before the protections existed)
/// decode exactly as before and run without SMEP and SMAP.
pub const CPU_TRAILER: &[u8; 4] = b"CPU:";

/// The supervisor-mode protections and the ring of [`Op::Fetch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    /// CR4.SMEP.
    pub smep: bool,
    /// CR4.SMAP.
    pub smap: bool,
    /// EFLAGS.AC during the run (`stac`).
    pub ac: bool,
    /// [`Op::Fetch`] executes from ring 0 instead of ring 3.
    pub kernel_fetch: bool,
    /// The core runs in PAE mode on the PAE machine.
    pub pae: bool,
}

impl Cpu {
    /// Bit 0 SMEP, bit 1 SMAP, bit 2 AC, bit 3 ring-0 fetches, bit 4 PAE.
    pub const fn from_flags(b: u8) -> Cpu {
        Cpu {
            smep: b & 1 != 0,
            smap: b & 2 != 0,
            ac: b & 4 != 0,
            kernel_fetch: b & 8 != 0,
            pae: b & 16 != 0,
        }
    }

    /// The input's configuration and the bytes its operations come from.
    pub fn split(data: &[u8]) -> (Cpu, &[u8]) {
        match data.len().checked_sub(CPU_TRAILER.len() + 1) {
            Some(at) if data[at..at + CPU_TRAILER.len()] == *CPU_TRAILER => {
                (Cpu::from_flags(data[data.len() - 1]), &data[..at])
            }
            _ => (Cpu::default(), data),
        }
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let (cpu, data) = Cpu::split(data);
    let ops: Vec<Op> = crate::decode(data);
    run_ops_on(&ops, cpu);
    crate::count_ops(ops.len());
}

#[cfg(test)]
fn run_ops(ops: &[Op]) {
    run_ops_on(ops, Cpu::default());
}

fn run_ops_on(ops: &[Op], cpu: Cpu) {
    if cpu.pae {
        run_on(World::new_pae(RAM, RAM), ops, cpu);
    } else {
        run_on(World::new(RAM), ops, cpu);
    }
}

fn run_on<M: WorldMachine>(w: World<M>, ops: &[Op], cpu: Cpu) {
    w.m.set_context(FaultContext::new(cpu.smep, cpu.smap, cpu.ac));
    let fs = MemFs::new();
    let mut fds = FdTable::new();
    let mut model = Model::new(&FILES);
    model.open(&fs, &mut fds);
    let mut procs: Vec<Proc<'_, M>> = vec![(w.space(), Pages::new())];
    for (i, op) in ops.iter().enumerate() {
        if procs.is_empty() {
            procs.push((w.space(), Pages::new()));
        }
        let n = procs.len();
        if crate::tracing() {
            eprintln!("{i}: {op:?}");
        }
        step(&w, &fds, &mut model, &mut procs, n, *op, cpu);
        // The full check of the allocator's bitmaps is the costly part.
        check(&w, &procs, win(0)..win(WINDOW), i % 16 == 15, op);
    }
    model.finish(&w, procs, &fs, fds);
    w.finish();
}

fn page_of(m: &Pages, at: Target) -> u32 {
    match at {
        Target::Window(i) => win(u32::from(i) % WINDOW),
        Target::Mapped(i) if !m.is_empty() => *m.keys().nth(i as usize % m.len()).unwrap(),
        Target::Mapped(i) => win(u32::from(i) % WINDOW),
        Target::Anywhere(a) => (a % USER_END) / PAGE,
    }
}

/// The reference validation of `mmap`'s raw arguments, in the order the
/// spec's checks apply (descriptors 0..3 name the [`FILES`], in order):
/// `Err` when the call must fail; else whether the mapping is fixed (its
/// page; `None`: it may still fail for lack of room) and the file mapped.
fn expect_mmap(
    addr: u32,
    length: u32,
    prot: u32,
    flags: u32,
    fd: i32,
    offset: u32,
) -> Result<(Option<u32>, Option<usize>), MmError> {
    let bad = Err(MmError::InvalidArgument);
    if length == 0
        || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0
        || flags & !(MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS) != 0
        || (flags & MAP_SHARED != 0) == (flags & MAP_PRIVATE != 0)
    {
        return bad;
    }
    let file = if flags & MAP_ANONYMOUS != 0 {
        if fd != -1 || offset != 0 {
            return bad;
        }
        None
    } else {
        match usize::try_from(fd) {
            Ok(f) if f < FILES.len() => Some(f),
            _ => return Err(MmError::BadFileDescriptor),
        }
    };
    let pages = length.div_ceil(PAGE);
    if pages > END_PAGE - MIN_PAGE {
        return Err(MmError::OutOfMemory);
    }
    if let Some(f) = file {
        if !offset.is_multiple_of(PAGE) {
            return bad;
        }
        if flags & MAP_SHARED != 0 && prot & PROT_WRITE != 0 && !FILES[f].writable {
            return Err(MmError::AccessDenied);
        }
        if u64::from(offset / PAGE) + u64::from(pages) > 1 << 20 {
            return bad;
        }
    }
    if flags & MAP_FIXED == 0 {
        return Ok((None, file));
    }
    if !addr.is_multiple_of(PAGE) {
        return Err(MmError::Misaligned);
    }
    let s = addr / PAGE;
    if s < MIN_PAGE || u64::from(s) + u64::from(pages) > u64::from(END_PAGE) {
        return Err(MmError::OutOfRange);
    }
    Ok((Some(s), file))
}

/// `munmap`/`mprotect` range validation: the page range or the error.
fn expect_range(addr: u32, length: u32) -> Result<(u32, u32), MmError> {
    if !addr.is_multiple_of(PAGE) {
        return Err(MmError::Misaligned);
    }
    if length == 0 {
        return Err(MmError::InvalidArgument);
    }
    let lo = addr / PAGE;
    let hi = u64::from(lo) + u64::from(length.div_ceil(PAGE));
    if hi > u64::from(END_PAGE) {
        return Err(MmError::OutOfRange);
    }
    Ok((lo, hi as u32))
}

fn step<M: WorldMachine>(
    w: &World<M>,
    fds: &FdTable,
    model: &mut Model,
    procs: &mut Vec<Proc<'_, M>>,
    n: usize,
    op: Op,
    cpu: Cpu,
) {
    let pick = |p: u8| p as usize % n;
    match op {
        Op::Mmap {
            p,
            start,
            len,
            prot,
            shared,
        } => {
            let (start, len) = span(start, len);
            let pages = win(start)..win(start) + len;
            model.mmap_fixed(fds, &mut procs[pick(p)], pages, prot.raw(), shared, None);
        }
        Op::MmapHint {
            p,
            start,
            len,
            prot,
            shared,
        } => {
            let (vm, m) = &mut procs[pick(p)];
            let start = win(u32::from(start) % WINDOW);
            let len = 1 + u32::from(len) % 16;
            let flags = MAP_ANONYMOUS | if shared { MAP_SHARED } else { MAP_PRIVATE };
            let got = vm
                .mmap(fds, va(start), len * PAGE, prot.raw(), flags, -1, 0)
                .expect("mmap with a hint");
            let s = got.as_u32() / PAGE;
            assert_eq!(got.as_u32() % PAGE, 0);
            assert!(s >= MIN_PAGE && s + len <= END_PAGE, "placed at {got:?}");
            assert_eq!(count_range(m, s, s + len), 0, "placed over a mapping");
            if (start..start + len).all(|q| !m.contains_key(&q)) && start + len <= END_PAGE {
                assert_eq!(s, start, "free hint not used");
            }
            model.map_anon(m, s, len, prot.prot(), shared);
        }
        Op::MmapRaw {
            p,
            addr,
            near,
            length,
            prot,
            flags,
            fd,
            offset,
        } => {
            let (vm, m) = &mut procs[pick(p)];
            let addr = if near {
                BASE + (addr % (WINDOW * PAGE)) / PAGE * PAGE + (addr & 1)
            } else {
                addr
            };
            let (prot, flags) = (u32::from(prot), u32::from(flags));
            // Some raw calls name an open file at a small page offset.
            let (fd, offset) = if offset & 1 == 0 && fd >= 0 {
                (fd % 4, (offset >> 1) % 12 * PAGE)
            } else {
                (fd, offset)
            };
            let expect = expect_mmap(addr, length, prot, flags, fd, offset);
            let pages = length.div_ceil(PAGE);
            if expect.is_ok() && pages > MAX_MODEL_PAGES {
                return;
            }
            let regions = vm.region_count();
            let r = vm.mmap(fds, VirtAddr::new(addr), length, prot, flags, fd, offset);
            match (expect, r) {
                (Err(e), r) => {
                    assert_eq!(
                        r,
                        Err(e),
                        "mmap({addr:#x}, {length:#x}, {prot}, {flags:#x}, {fd}, {offset:#x})"
                    );
                    assert_eq!(vm.region_count(), regions);
                }
                (Ok((fixed, file)), Ok(got)) => {
                    let s = got.as_u32() / PAGE;
                    assert_eq!(got.as_u32() % PAGE, 0);
                    match fixed {
                        Some(f) => assert_eq!(s, f),
                        None => assert!(
                            count_range(m, s, s + pages) == 0 && s >= MIN_PAGE,
                            "placed over a mapping"
                        ),
                    }
                    remove_range(m, s, s + pages);
                    let shared = flags & MAP_SHARED != 0;
                    let prot = Prot::from_bits(prot).unwrap();
                    match file {
                        Some(f) => model.map_file(m, s, pages, prot, f, offset / PAGE, shared),
                        None => model.map_anon(m, s, pages, prot, shared),
                    }
                }
                (Ok((None, _)), Err(MmError::OutOfMemory)) => {}
                (Ok(_), Err(e)) => panic!("mmap({addr:#x}, {length:#x}) refused: {e:?}"),
            }
        }
        Op::Munmap { p, start, len } => {
            let start = win(u32::from(start) % WINDOW);
            munmap(&mut procs[pick(p)], start, start + 1 + u32::from(len) % 8);
        }
        Op::MunmapRaw { p, addr, length } => {
            let (vm, m) = &mut procs[pick(p)];
            let r = vm.munmap(VirtAddr::new(addr), length);
            match expect_range(addr, length) {
                Ok((lo, hi)) => {
                    assert_eq!(r, Ok(()));
                    remove_range(m, lo, hi);
                }
                Err(e) => assert_eq!(r, Err(e), "munmap({addr:#x}, {length:#x})"),
            }
        }
        Op::Mprotect {
            p,
            start,
            len,
            prot,
        } => {
            let (start, len) = span(start, len);
            mprotect(
                &mut procs[pick(p)],
                win(start),
                win(start) + len,
                prot.raw(),
            );
        }
        Op::MprotectRaw {
            p,
            addr,
            length,
            prot,
        } => {
            let (vm, m) = &mut procs[pick(p)];
            let prot = u32::from(prot);
            let r = vm.mprotect(VirtAddr::new(addr), length, prot);
            let expect = myos_abi::raw::prot(prot)
                .and_then(|pr| expect_range(addr, length).map(|range| (pr, range)))
                .and_then(|(pr, (lo, hi))| expect_protect(m, lo, hi, pr).map(|()| (pr, lo, hi)));
            match expect {
                Ok((pr, lo, hi)) => {
                    assert_eq!(r, Ok(()));
                    protect(m, lo, hi, pr);
                }
                Err(e) => assert_eq!(r, Err(e), "mprotect({addr:#x}, {length:#x}, {prot})"),
            }
        }
        Op::Fork { p } => {
            if n < MAX_PROCS {
                fork(procs, pick(p));
            }
        }
        Op::Write { p, at, how, value } => {
            let (vm, m) = &mut procs[pick(p)];
            let page = page_of(m, at);
            model.write(w, vm, m, page, how.model(), value);
        }
        Op::Read { p, at, how } => {
            let (vm, m) = &mut procs[pick(p)];
            let page = page_of(m, at);
            model.read(w, vm, m, page, how.model());
        }
        Op::Fetch { p, at } => {
            let (vm, m) = &mut procs[pick(p)];
            let page = page_of(m, at);
            if cpu.kernel_fetch {
                model.supervisor_read(w, vm, m, page, true);
            } else {
                model.fetch(w, vm, m, page);
            }
        }
        Op::Exit { p } => {
            let (vm, _) = procs.remove(pick(p));
            vm.destroy();
        }
        Op::MmapFile {
            p,
            start,
            len,
            prot,
            shared,
            file,
            offset,
        } => {
            let f = usize::from(file) % FILES.len();
            let (start, len) = span(start, len);
            let first = u32::from(offset) % 10;
            let pages = win(start)..win(start) + len;
            let file = Some((f, first));
            model.mmap_fixed(fds, &mut procs[pick(p)], pages, prot.raw(), shared, file);
        }
        Op::Msync { p, start, len } => {
            let (vm, m) = &mut procs[pick(p)];
            let (start, len) = span(start, len);
            let (lo, hi) = (win(start), win(start) + len);
            let r = vm.msync(va(lo), len * PAGE);
            if count_range(m, lo, hi) == u64::from(len) {
                assert_eq!(r, Ok(()), "msync {lo:#x}..{hi:#x}");
            } else {
                assert_eq!(r, Err(MmError::NoRegion), "msync {lo:#x}..{hi:#x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU trailer is optional: without it the bytes decode as before.
    #[test]
    fn cpu_trailer_is_optional_config() {
        let ops = [1u8, 2, 3, 4, 5, 6];
        assert_eq!(Cpu::split(&ops), (Cpu::default(), &ops[..]));
        let mut with = ops.to_vec();
        with.extend_from_slice(CPU_TRAILER);
        with.push(0b1011);
        let cpu = Cpu {
            smep: true,
            smap: true,
            ac: false,
            kernel_fetch: true,
            pae: false,
        };
        assert_eq!(Cpu::split(&with), (cpu, &ops[..]));
        *with.last_mut().unwrap() = 0b1_0000;
        let pae = Cpu {
            pae: true,
            ..Cpu::default()
        };
        assert_eq!(Cpu::split(&with), (pae, &ops[..]));
    }

    /// Ring-0 writes, reads and fetches of user pages under SMEP and SMAP
    /// (AC clear, then set): each is a named kernel bug, never a loop; in
    /// both paging modes (with NX, a faulting ring-0 fetch is one too).
    #[test]
    fn kernel_accesses_under_smep_and_smap() {
        let ops = [
            Op::Mmap {
                p: 0,
                start: 0,
                len: 4,
                prot: P::ReadWrite,
                shared: false,
            },
            Op::Write {
                p: 0,
                at: Target::Window(0),
                how: How::User,
                value: 7,
            },
            Op::Write {
                p: 0,
                at: Target::Window(0),
                how: How::Supervisor,
                value: 8,
            },
            Op::Read {
                p: 0,
                at: Target::Window(1),
                how: How::Supervisor,
            },
            Op::Fetch {
                p: 0,
                at: Target::Window(0),
            },
            Op::Fetch {
                p: 0,
                at: Target::Window(2),
            },
        ];
        for flags in 0..32 {
            run_ops_on(&ops, Cpu::from_flags(flags));
        }
    }

    /// User fetches in PAE mode: from a page without `PROT_EXEC` SIGSEGV
    /// (resident or not), from `PROT_EXEC` pages the page's byte; mprotect
    /// adds and removes execute rights; fork keeps them.
    #[test]
    fn pae_fetches_follow_nx() {
        let fetch = |p, page| Op::Fetch {
            p,
            at: Target::Window(page),
        };
        let write = |p, page, value| Op::Write {
            p,
            at: Target::Window(page),
            how: How::User,
            value,
        };
        let mprotect = |p, start, len, prot| Op::Mprotect {
            p,
            start,
            len,
            prot,
        };
        let ops = [
            Op::Mmap {
                p: 0,
                start: 0,
                len: 4,
                prot: P::ReadWrite,
                shared: false,
            },
            fetch(0, 0),
            write(0, 1, 0xC3),
            fetch(0, 1),
            mprotect(0, 1, 2, P::Exec),
            fetch(0, 1),
            fetch(0, 2),
            Op::Fork { p: 0 },
            fetch(1, 1),
            mprotect(0, 1, 1, P::Read),
            fetch(0, 1),
            fetch(1, 1),
            Op::Exit { p: 1 },
        ];
        run_ops_on(&ops, Cpu::from_flags(16));
        run_ops_on(&ops, Cpu::default());
    }

    /// A hand-written sequence over the file paths: shared writes reach the
    /// file at exit, private ones never, past-EOF pages raise SIGBUS, a
    /// read-only file refuses shared writable mappings.
    #[test]
    fn file_mappings_follow_the_model() {
        let map = |p, start, len, prot, shared, file, offset| Op::MmapFile {
            p,
            start,
            len,
            prot,
            shared,
            file,
            offset,
        };
        let write = |p, page, how, value| Op::Write {
            p,
            at: Target::Window(page),
            how,
            value,
        };
        let read = |p, page, how| Op::Read {
            p,
            at: Target::Window(page),
            how,
        };
        run_ops(&[
            map(0, 0, 4, P::ReadWrite, true, 0, 6),
            write(0, 0, How::User, 0xAAAA),
            write(0, 1, How::Supervisor, 0xBBBB),
            write(0, 2, How::Copy, 0xCCCC),
            read(0, 3, How::User),
            Op::Fork { p: 0 },
            map(1, 8, 4, P::ReadWrite, false, 0, 6),
            read(1, 8, How::User),
            write(1, 9, How::User, 0xDDDD),
            read(0, 1, How::Copy),
            map(0, 12, 2, P::ReadWrite, true, 1, 0),
            map(0, 12, 2, P::Read, true, 1, 0),
            Op::Mprotect {
                p: 0,
                start: 12,
                len: 2,
                prot: P::ReadWrite,
            },
            map(0, 16, 4, P::Read, false, 2, 3),
            read(0, 16, How::User),
            read(0, 18, How::User),
            read(0, 19, How::Supervisor),
            Op::Msync {
                p: 0,
                start: 0,
                len: 4,
            },
            Op::Exit { p: 1 },
            write(0, 3, How::User, 0xEEEE),
        ]);
    }
}
