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
//! Files ([`FILES`]: read-write, read-only, and one whose last page is
//! partial) are mapped shared or private at page offsets that may reach
//! past their end: pages past the end raise SIGBUS; shared mappings of one
//! file see each other's writes; a private page sees the file until its
//! first write copies it; a read-only file refuses writable shared mappings
//! (`EACCES`, at `mmap` and `mprotect`).
//!
//! After every operation the regions' protections and sizes equal the
//! model's (and every 16 operations the frame allocator validates); at the
//! end every process still sees its model, and after every space is
//! destroyed every frame is back and each file holds exactly the writes
//! made through shared mappings.

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use myos_mm::layout::{USER_END, USER_MMAP_MIN};
use myos_mm::vm::{
    FaultOutcome, FdTable, MemFs, OpenMode, Prot, SegvCause, Signal, MAP_ANONYMOUS, MAP_FIXED,
    MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE,
};
use myos_mm::{MmError, VirtAddr};
use myos_sim::{Mode, Vm, World};

const PAGE: u32 = 4096;
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
    /// Fetches (executes) the first byte of a page, from user mode.
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
    /// of one of the [`FILES`] (descriptor `file % 3`), possibly reaching
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

/// Where a modelled page's contents live.
#[derive(Clone, Copy, Debug)]
enum Cell {
    /// A private value (copied on fork).
    Private(u32),
    /// Page `idx` of shared object `obj`.
    Shared { obj: usize, idx: u32 },
    /// Page `idx` of file `f`: through a shared mapping, or a private one
    /// not written yet (it sees the file's page cache until its first
    /// write copies it).
    File { f: usize, idx: u32, shared: bool },
}

#[derive(Clone, Copy, Debug)]
struct MPage {
    prot: Prot,
    cell: Cell,
    /// A shared mapping of a file opened read-only: never writable.
    read_only_file: bool,
}

type Pages = BTreeMap<u32, MPage>;

/// Shared objects' page values, and the files' (their page caches, which
/// every mapping of a file shares and which reach the file).
struct Objects {
    objs: Vec<Vec<u32>>,
    files: Vec<Vec<u32>>,
}

/// The files: `(name, pages, extra bytes in a last partial page, read-write)`.
/// Page `i` of file `f` starts with the `u32` `f << 16 | i`.
const FILES: [(&str, u32, u32, bool); 3] = [
    ("rw", 8, 0, true),
    ("ro", 8, 0, false),
    ("tail", 5, 100, true),
];

impl Objects {
    fn new() -> Self {
        let files = FILES
            .iter()
            .enumerate()
            .map(|(f, &(_, pages, extra, _))| {
                (0..pages + u32::from(extra > 0))
                    .map(|i| (f as u32) << 16 | i)
                    .collect()
            })
            .collect();
        Objects {
            objs: Vec::new(),
            files,
        }
    }
    /// The file's bytes as created.
    fn file_bytes(f: usize) -> Vec<u8> {
        let (_, pages, extra, _) = FILES[f];
        let mut data = vec![0u8; (pages * PAGE + extra) as usize];
        for i in 0..pages + u32::from(extra > 0) {
            let at = (i * PAGE) as usize;
            data[at..at + 4].copy_from_slice(&((f as u32) << 16 | i).to_le_bytes());
        }
        data
    }
    /// `None` past the end of the file (SIGBUS).
    fn get(&self, c: Cell) -> Option<u32> {
        match c {
            Cell::Private(v) => Some(v),
            Cell::Shared { obj, idx } => Some(self.objs[obj][idx as usize]),
            Cell::File { f, idx, .. } => self.files[f].get(idx as usize).copied(),
        }
    }
    fn value(&self, c: Cell) -> u32 {
        self.get(c).expect("page past the end of its file")
    }
    fn set(&mut self, c: &mut Cell, v: u32) {
        match c {
            Cell::Private(x) => *x = v,
            Cell::Shared { obj, idx } => self.objs[*obj][*idx as usize] = v,
            Cell::File {
                f,
                idx,
                shared: true,
            } => self.files[*f][*idx as usize] = v,
            Cell::File { shared: false, .. } => *c = Cell::Private(v),
        }
    }
    /// Cells of a new mapping of `len` pages.
    fn cells(&mut self, shared: bool, len: u32) -> impl Iterator<Item = Cell> {
        let obj = shared.then(|| {
            self.objs.push(vec![0; len as usize]);
            self.objs.len() - 1
        });
        (0..len).map(move |idx| match obj {
            Some(obj) => Cell::Shared { obj, idx },
            None => Cell::Private(0),
        })
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

fn va_of(page: u32) -> VirtAddr {
    VirtAddr::new(page * PAGE)
}

/// Removes `lo..hi` from the model.
fn remove_range(m: &mut Pages, lo: u32, hi: u32) {
    let mut tail = m.split_off(&lo);
    let mut keep = tail.split_off(&hi);
    m.append(&mut keep);
}

/// Pages of the model in `lo..hi`.
fn count_range(m: &Pages, lo: u32, hi: u32) -> u64 {
    m.range(lo..hi).count() as u64
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let ops: Vec<Op> = crate::decode(data);
    run_ops(&ops);
    crate::count_ops(ops.len());
}

fn run_ops(ops: &[Op]) {
    let w = World::new(RAM);
    let fs = MemFs::new();
    let mut fds = FdTable::new();
    for (f, &(name, _, _, rw)) in FILES.iter().enumerate() {
        fs.create(name, &Objects::file_bytes(f));
        let mode = if rw {
            OpenMode::ReadWrite
        } else {
            OpenMode::ReadOnly
        };
        assert_eq!(fds.insert(fs.open(name, mode).unwrap()), f as i32);
    }
    let mut objs = Objects::new();
    let mut procs: Vec<(Vm<'_>, Pages)> = vec![(w.space(), Pages::new())];
    for (i, op) in ops.iter().enumerate() {
        if procs.is_empty() {
            procs.push((w.space(), Pages::new()));
        }
        let n = procs.len();
        if crate::tracing() {
            eprintln!("{i}: {op:?}");
        }
        step(&w, &fds, &mut objs, &mut procs, n, *op);
        for (vm, m) in &procs {
            for page in 0..WINDOW {
                let page = win(page);
                assert_eq!(
                    vm.region_at(va_of(page)).map(|r| r.prot),
                    m.get(&page).map(|p| p.prot),
                    "page {page:#x} after {op:?}"
                );
            }
            let modelled = m.len();
            let mut in_regions = 0u64;
            for r in vm.regions() {
                in_regions += u64::from((r.end.as_u32() - r.start.as_u32()) / PAGE);
            }
            assert_eq!(in_regions, modelled as u64, "region sizes after {op:?}");
        }
        if i % 16 == 15 {
            // The full check of the allocator's bitmaps is the costly part.
            w.fa.lock().validate().expect("frame allocator");
        }
    }
    for (vm, m) in &mut procs {
        for (&page, p) in m.iter() {
            if p.prot.is_empty() {
                continue;
            }
            let got = w.run(vm, |mm| mm.read_u32(page * PAGE, Mode::User));
            match objs.get(p.cell) {
                Some(v) => assert_eq!(got, Ok(v), "final read of {page:#x}"),
                None => assert!(
                    matches!(got, Err(FaultOutcome::Signal(Signal::Bus { .. }))),
                    "final read of {page:#x} past EOF: {got:?}"
                ),
            }
        }
    }
    drop(procs);
    // Every write through a shared mapping reached its file (written back
    // at munmap or exit), and no private write did.
    for (f, &(name, ..)) in FILES.iter().enumerate() {
        let data = fs.read(name).unwrap();
        assert_eq!(
            data.len(),
            Objects::file_bytes(f).len(),
            "file {name} changed size"
        );
        for (i, &v) in objs.files[f].iter().enumerate() {
            let at = i * PAGE as usize;
            let got = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            assert_eq!(got, v, "file {name}, page {i}");
        }
    }
    drop(fds);
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

/// True when an access the protection allows lands on a file page past
/// the end of the file: SIGBUS (`BadAddress` for the copy functions).
fn past_eof(objs: &Objects, m: &Pages, page: u32, allowed: bool) -> bool {
    allowed && m.get(&page).is_some_and(|q| objs.get(q.cell).is_none())
}

/// Checks an access to a page past the end of its file.
fn expect_bus(w: &World, vm: &mut Vm<'_>, va: VirtAddr, how: How, write: bool) {
    let bus = Err(FaultOutcome::Signal(Signal::Bus { addr: va }));
    let a = va.as_u32();
    match (how, write) {
        (How::User, true) => assert_eq!(w.run(vm, |m| m.write_u32(a, 1, Mode::User)), bus),
        (How::User, false) => {
            assert_eq!(w.run(vm, |m| m.read_u32(a, Mode::User)).map(|_| ()), bus)
        }
        (How::Supervisor, true) => {
            assert_eq!(w.run(vm, |m| m.write_u32(a, 1, Mode::Supervisor)), bus)
        }
        (How::Supervisor, false) => assert_eq!(
            w.run(vm, |m| m.read_u32(a, Mode::Supervisor)).map(|_| ()),
            bus
        ),
        (How::Copy, true) => assert_eq!(vm.copy_to_user(va, &[1]), Err(MmError::BadAddress)),
        (How::Copy, false) => {
            assert_eq!(vm.copy_from_user(va, &mut [0]), Err(MmError::BadAddress))
        }
    }
}

/// The outcome a user access should have.
fn expect_user(m: &Pages, page: u32, write: bool) -> Result<(), SegvCause> {
    match m.get(&page) {
        None => Err(SegvCause::NoRegion),
        Some(p) if p.prot.is_empty() || (write && !p.prot.contains(Prot::WRITE)) => {
            Err(SegvCause::Protection)
        }
        Some(_) => Ok(()),
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
        if flags & MAP_SHARED != 0 && prot & PROT_WRITE != 0 && !FILES[f].3 {
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

/// Cells of a mapping of `len` pages of file `f` from page `first`.
fn file_cells(f: usize, first: u32, len: u32, shared: bool) -> impl Iterator<Item = Cell> {
    (0..len).map(move |i| Cell::File {
        f,
        idx: first + i,
        shared,
    })
}

/// The first error `mprotect(lo..hi, prot)` must give: a hole
/// (`NoRegion`) or a shared read-only file page made writable
/// (`AccessDenied`), whichever comes first in address order.
fn expect_protect(m: &Pages, lo: u32, hi: u32, prot: Prot) -> Result<(), MmError> {
    let mut next = lo;
    for (&k, p) in m.range(lo..hi) {
        if k != next {
            return Err(MmError::NoRegion);
        }
        if p.read_only_file && prot.writable() {
            return Err(MmError::AccessDenied);
        }
        next = k + 1;
    }
    if next == hi {
        Ok(())
    } else {
        Err(MmError::NoRegion)
    }
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

fn step(
    w: &World,
    fds: &FdTable,
    objs: &mut Objects,
    procs: &mut Vec<(Vm<'_>, Pages)>,
    n: usize,
    op: Op,
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
            let (vm, m) = &mut procs[pick(p)];
            let (start, len) = span(start, len);
            let flags = MAP_FIXED | MAP_ANONYMOUS | if shared { MAP_SHARED } else { MAP_PRIVATE };
            let at = va_of(win(start));
            assert_eq!(
                vm.mmap(fds, at, len * PAGE, prot.raw(), flags, -1, 0),
                Ok(at)
            );
            let prot = Prot::from_bits(prot.raw()).unwrap();
            for (i, cell) in objs.cells(shared, len).enumerate() {
                m.insert(
                    win(start) + i as u32,
                    MPage {
                        prot,
                        cell,
                        read_only_file: false,
                    },
                );
            }
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
                .mmap(fds, va_of(start), len * PAGE, prot.raw(), flags, -1, 0)
                .expect("mmap with a hint");
            let s = got.as_u32() / PAGE;
            assert_eq!(got.as_u32() % PAGE, 0);
            assert!(s >= MIN_PAGE && s + len <= END_PAGE, "placed at {got:?}");
            assert_eq!(count_range(m, s, s + len), 0, "placed over a mapping");
            if (start..start + len).all(|q| !m.contains_key(&q)) && start + len <= END_PAGE {
                assert_eq!(s, start, "free hint not used");
            }
            let prot = Prot::from_bits(prot.raw()).unwrap();
            for (i, cell) in objs.cells(shared, len).enumerate() {
                m.insert(
                    s + i as u32,
                    MPage {
                        prot,
                        cell,
                        read_only_file: false,
                    },
                );
            }
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
                    let cells: Vec<Cell> = match file {
                        Some(f) => file_cells(f, offset / PAGE, pages, shared).collect(),
                        None => objs.cells(shared, pages).collect(),
                    };
                    let read_only_file = shared && file.is_some_and(|f| !FILES[f].3);
                    for (i, cell) in cells.into_iter().enumerate() {
                        m.insert(
                            s + i as u32,
                            MPage {
                                prot,
                                cell,
                                read_only_file,
                            },
                        );
                    }
                }
                (Ok((None, _)), Err(MmError::OutOfMemory)) => {}
                (Ok(_), Err(e)) => panic!("mmap({addr:#x}, {length:#x}) refused: {e:?}"),
            }
        }
        Op::Munmap { p, start, len } => {
            let (vm, m) = &mut procs[pick(p)];
            let start = win(u32::from(start) % WINDOW);
            let len = 1 + u32::from(len) % 8;
            vm.munmap(va_of(start), len * PAGE).expect("munmap");
            remove_range(m, start, start + len);
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
            let (vm, m) = &mut procs[pick(p)];
            let (start, len) = span(start, len);
            let (lo, hi) = (win(start), win(start) + len);
            let r = vm.mprotect(va_of(lo), len * PAGE, prot.raw());
            let prot = Prot::from_bits(prot.raw()).unwrap();
            match expect_protect(m, lo, hi, prot) {
                Ok(()) => {
                    assert_eq!(r, Ok(()));
                    for q in lo..hi {
                        m.get_mut(&q).unwrap().prot = prot;
                    }
                }
                Err(e) => assert_eq!(r, Err(e), "mprotect {lo:#x}..{hi:#x}"),
            }
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
            let expect = Prot::from_raw(prot)
                .and_then(|pr| expect_range(addr, length).map(|range| (pr, range)))
                .and_then(|(pr, (lo, hi))| expect_protect(m, lo, hi, pr).map(|()| (pr, lo, hi)));
            match expect {
                Ok((pr, lo, hi)) => {
                    assert_eq!(r, Ok(()));
                    for q in lo..hi {
                        m.get_mut(&q).unwrap().prot = pr;
                    }
                }
                Err(e) => assert_eq!(r, Err(e), "mprotect({addr:#x}, {length:#x}, {prot})"),
            }
        }
        Op::Fork { p } => {
            if n < MAX_PROCS {
                let (vm, m) = &mut procs[pick(p)];
                let child = vm.fork().expect("fork");
                let cm = m.clone();
                procs.push((child, cm));
            }
        }
        Op::Write { p, at, how, value } => {
            let (vm, m) = &mut procs[pick(p)];
            let page = page_of(m, at);
            let va = va_of(page);
            let user = expect_user(m, page, true);
            if past_eof(objs, m, page, user.is_ok()) {
                return expect_bus(w, vm, va, how, true);
            }
            let ok = match how {
                How::User => {
                    let r = w.run(vm, |mm| mm.write_u32(va.as_u32(), value, Mode::User));
                    match user {
                        Ok(()) => assert_eq!(r, Ok(()), "user write {va:?}"),
                        Err(cause) => assert_eq!(
                            r,
                            Err(FaultOutcome::Signal(Signal::Segv { addr: va, cause })),
                            "user write {va:?}"
                        ),
                    }
                    user.is_ok()
                }
                How::Supervisor => {
                    // CR0.WP is set: the kernel writes only where the region
                    // allows writing; anything else is a kernel bug.
                    let r = w.run(vm, |mm| mm.write_u32(va.as_u32(), value, Mode::Supervisor));
                    match user {
                        Ok(()) => assert_eq!(r, Ok(()), "supervisor write {va:?}"),
                        Err(_) => {
                            assert_eq!(r, Err(FaultOutcome::KernelBug), "supervisor write {va:?}")
                        }
                    }
                    user.is_ok()
                }
                How::Copy => {
                    let r = vm.copy_to_user(va, &value.to_le_bytes());
                    match user {
                        Ok(()) => assert_eq!(r, Ok(()), "copy_to_user {va:?}"),
                        Err(_) => assert_eq!(r, Err(MmError::BadAddress), "copy_to_user {va:?}"),
                    }
                    user.is_ok()
                }
            };
            if ok {
                let cell = &mut m.get_mut(&page).unwrap().cell;
                objs.set(cell, value);
            }
        }
        Op::Read { p, at, how } => {
            let (vm, m) = &mut procs[pick(p)];
            let page = page_of(m, at);
            let va = va_of(page);
            let user = expect_user(m, page, false);
            if past_eof(objs, m, page, user.is_ok()) {
                return expect_bus(w, vm, va, how, false);
            }
            let want = m.get(&page).and_then(|q| objs.get(q.cell));
            match how {
                How::User => {
                    let r = w.run(vm, |mm| mm.read_u32(va.as_u32(), Mode::User));
                    match user {
                        Ok(()) => assert_eq!(r.ok(), want, "user read {va:?}"),
                        Err(cause) => assert_eq!(
                            r,
                            Err(FaultOutcome::Signal(Signal::Segv { addr: va, cause })),
                            "user read {va:?}"
                        ),
                    }
                }
                How::Supervisor => {
                    let r = w.run(vm, |mm| mm.read_u32(va.as_u32(), Mode::Supervisor));
                    match (user, r) {
                        (Ok(()), r) => assert_eq!(r.ok(), want, "supervisor read {va:?}"),
                        // A resident PROT_NONE page is a supervisor-only
                        // entry: the kernel may read it.
                        (Err(SegvCause::Protection), Ok(v)) => {
                            assert_eq!(Some(v), want, "supervisor read {va:?}")
                        }
                        (Err(_), r) => {
                            assert_eq!(r, Err(FaultOutcome::KernelBug), "supervisor read {va:?}")
                        }
                    }
                }
                How::Copy => {
                    let mut b = [0u8; 4];
                    let r = vm
                        .copy_from_user(va, &mut b)
                        .map(|()| u32::from_le_bytes(b));
                    match user {
                        Ok(()) => assert_eq!(r.ok(), want, "copy_from_user {va:?}"),
                        Err(_) => assert_eq!(r, Err(MmError::BadAddress), "copy_from_user {va:?}"),
                    }
                }
            }
        }
        Op::Fetch { p, at } => {
            let (vm, m) = &mut procs[pick(p)];
            let page = page_of(m, at);
            let va = va_of(page);
            let r = w.run(vm, |mm| mm.fetch(va.as_u32(), Mode::User));
            let user = expect_user(m, page, false);
            if past_eof(objs, m, page, user.is_ok()) {
                assert_eq!(r, Err(FaultOutcome::Signal(Signal::Bus { addr: va })));
                return;
            }
            match user {
                Ok(()) => {
                    let v = objs.value(m[&page].cell);
                    assert_eq!(r, Ok(v as u8), "fetch {va:?}");
                }
                Err(cause) => assert_eq!(
                    r,
                    Err(FaultOutcome::Signal(Signal::Segv { addr: va, cause })),
                    "fetch {va:?}"
                ),
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
            let (vm, m) = &mut procs[pick(p)];
            let f = usize::from(file) % FILES.len();
            let (start, len) = span(start, len);
            let first = u32::from(offset) % 10;
            let flags = MAP_FIXED | if shared { MAP_SHARED } else { MAP_PRIVATE };
            let at = va_of(win(start));
            let r = vm.mmap(
                fds,
                at,
                len * PAGE,
                prot.raw(),
                flags,
                f as i32,
                first * PAGE,
            );
            let read_only_file = shared && !FILES[f].3;
            if read_only_file && prot.raw() & PROT_WRITE != 0 {
                assert_eq!(r, Err(MmError::AccessDenied));
                return;
            }
            assert_eq!(r, Ok(at), "mmap of file {f}");
            let prot = Prot::from_bits(prot.raw()).unwrap();
            for (i, cell) in file_cells(f, first, len, shared).enumerate() {
                m.insert(
                    win(start) + i as u32,
                    MPage {
                        prot,
                        cell,
                        read_only_file,
                    },
                );
            }
        }
        Op::Msync { p, start, len } => {
            let (vm, m) = &mut procs[pick(p)];
            let (start, len) = span(start, len);
            let (lo, hi) = (win(start), win(start) + len);
            let r = vm.msync(va_of(lo), len * PAGE);
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
