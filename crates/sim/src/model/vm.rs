//! The address space's reference model: every process's pages (contents
//! and permissions), the shared objects and the files' page caches, and
//! what every access, `mprotect` and the end of a run must give.
//!
//! Both users (`crates/core/tests/vm_prop.rs` and the `vm` fuzz target) run
//! their operations on a [`World`], keep a [`Pages`] map per process next to
//! its [`Vm`] (a [`Proc`]) and one [`Model`] for the objects and files, and
//! go through the model for accesses ([`Model::write`], [`Model::read`],
//! [`Model::fetch`]): user accesses fault with the model's SIGSEGV cause or
//! SIGBUS past the end of a file, supervisor accesses (CR0.WP set) succeed
//! where the region allows them (and reads of a resident `PROT_NONE` page,
//! a supervisor-only entry, may succeed too), else are a `KernelBug`; under
//! the machine's SMEP (ring-0 fetches) or SMAP with AC clear (ring-0 data
//! accesses) they are the `ProtectionBug` the hardware makes of them,
//! `copy_to_user` /
//! `copy_from_user` fail with `BadAddress` exactly where a user access
//! would fault, and every value read is the model's. After every operation
//! [`check`] compares the regions with the model; at the end
//! [`Model::finish`] reads every page back, destroys every space and checks
//! each file holds exactly the writes made through shared mappings.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Range;

use myos_abi::{MemFs, RawMman, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_WRITE};
use myos_mm::vm::{FaultOutcome, FdTable, OpenMode, Prot, ProtectionBug, SegvCause, Signal};
use myos_mm::{MmError, VirtAddr};

use crate::{Mode, SimMachine, Vm, World, WorldMachine};

/// Bytes per page.
pub const PAGE: u32 = 4096;

/// A page number's address.
pub fn va(page: u32) -> VirtAddr {
    VirtAddr::new(page * PAGE)
}

/// One file of a run: created in a [`MemFs`] and opened by [`Model::open`]
/// as descriptor `f` (its index in [`Model::new`]'s list). Page `i` of file
/// `f` starts with the `u32` [`file_word`]`(f, i)`; the rest is zero.
#[derive(Clone, Copy, Debug)]
pub struct FileSpec {
    /// Its name.
    pub name: &'static str,
    /// Whole pages.
    pub pages: u32,
    /// Bytes of a last, partial page (0: none).
    pub extra: u32,
    /// Opened read-write (else read-only: no writable shared mapping).
    pub writable: bool,
}

impl FileSpec {
    /// `name`: `pages` whole pages and `extra` bytes more, opened
    /// read-write when `writable`.
    pub const fn new(name: &'static str, pages: u32, extra: u32, writable: bool) -> Self {
        FileSpec {
            name,
            pages,
            extra,
            writable,
        }
    }

    /// Pages holding data (a partial last page counts).
    pub fn data_pages(&self) -> u32 {
        self.pages + u32::from(self.extra > 0)
    }

    /// File `f`'s bytes as created.
    pub fn bytes(&self, f: usize) -> Vec<u8> {
        let mut data = vec![0u8; (self.pages * PAGE + self.extra) as usize];
        for i in 0..self.data_pages() {
            let at = (i * PAGE) as usize;
            data[at..at + 4].copy_from_slice(&file_word(f, i).to_le_bytes());
        }
        data
    }
}

/// The `u32` page `i` of file `f` starts with: never 0, so a zero page
/// mapped in its place shows.
pub fn file_word(f: usize, i: u32) -> u32 {
    0x1000 | (f as u32) << 16 | i
}

/// Where a modelled page's contents live.
#[derive(Clone, Copy, Debug)]
pub enum Cell {
    /// A private value (copied on fork).
    Private(u32),
    /// Page `idx` of shared (anonymous) object `obj`.
    Shared {
        /// The object.
        obj: usize,
        /// Its page.
        idx: u32,
    },
    /// Page `idx` of file `f`: through a shared mapping, or a private one
    /// not written yet (it sees the file's page cache until its first
    /// write copies it).
    File {
        /// The file.
        f: usize,
        /// Its page.
        idx: u32,
        /// Through a shared mapping.
        shared: bool,
    },
}

/// One modelled page of a process.
#[derive(Clone, Copy, Debug)]
pub struct MPage {
    /// Its region's protection.
    pub prot: Prot,
    /// Its contents.
    pub cell: Cell,
    /// A shared mapping of a file opened read-only: never writable.
    pub read_only_file: bool,
}

/// A process's pages, by page number (address / [`PAGE`]).
pub type Pages = BTreeMap<u32, MPage>;

/// A process: its space and its model.
pub type Proc<'a, M = SimMachine> = (Vm<'a, M>, Pages);

/// How an access is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// A user-mode access through the MMU.
    User,
    /// A supervisor-mode access through the MMU (CR0.WP set).
    Supervisor,
    /// `copy_to_user` / `copy_from_user`.
    Copy,
}

/// The shared objects' and the files' page values (the files' page
/// caches, which every mapping of a file shares and which reach the file).
#[derive(Debug)]
pub struct Model {
    files: &'static [FileSpec],
    objs: Vec<Vec<u32>>,
    file_pages: Vec<Vec<u32>>,
}

impl Model {
    /// The model of a run with `files` (none mapped yet).
    pub fn new(files: &'static [FileSpec]) -> Model {
        let file_pages = files
            .iter()
            .enumerate()
            .map(|(f, s)| (0..s.data_pages()).map(|i| file_word(f, i)).collect())
            .collect();
        Model {
            files,
            objs: Vec::new(),
            file_pages,
        }
    }

    /// The files.
    pub fn files(&self) -> &'static [FileSpec] {
        self.files
    }

    /// Creates the files in `fs` and opens them into `fds` (which must be
    /// empty): file `f` is descriptor `f`.
    pub fn open(&self, fs: &MemFs, fds: &mut FdTable) {
        for (f, s) in self.files.iter().enumerate() {
            fs.create(s.name, &s.bytes(f));
            let mode = if s.writable {
                OpenMode::ReadWrite
            } else {
                OpenMode::ReadOnly
            };
            assert_eq!(fds.insert(fs.open(s.name, mode).unwrap()), f as i32);
        }
    }

    /// The value of `c`; `None` past the end of its file (SIGBUS).
    pub fn get(&self, c: Cell) -> Option<u32> {
        match c {
            Cell::Private(v) => Some(v),
            Cell::Shared { obj, idx } => Some(self.objs[obj][idx as usize]),
            Cell::File { f, idx, .. } => self.file_pages[f].get(idx as usize).copied(),
        }
    }

    /// The value of `c`, which must hold one.
    pub fn value(&self, c: Cell) -> u32 {
        self.get(c).expect("page past the end of its file")
    }

    /// A write of `v` to `c` (a private file page becomes private).
    pub fn set(&mut self, c: &mut Cell, v: u32) {
        match c {
            Cell::Private(x) => *x = v,
            Cell::Shared { obj, idx } => self.objs[*obj][*idx as usize] = v,
            Cell::File {
                f,
                idx,
                shared: true,
            } => self.file_pages[*f][*idx as usize] = v,
            Cell::File { shared: false, .. } => *c = Cell::Private(v),
        }
    }

    /// Models an anonymous mapping of pages `start..start + len` (zeroed;
    /// one new object when `shared`), replacing what was there.
    pub fn map_anon(&mut self, m: &mut Pages, start: u32, len: u32, prot: Prot, shared: bool) {
        let obj = shared.then(|| {
            self.objs.push(vec![0; len as usize]);
            self.objs.len() - 1
        });
        place(m, start, len, prot, false, |idx| match obj {
            Some(obj) => Cell::Shared { obj, idx },
            None => Cell::Private(0),
        });
    }

    /// Models a mapping of pages `start..start + len` to file `f`'s pages
    /// from `first` (possibly past its end), replacing what was there.
    #[allow(clippy::too_many_arguments)]
    pub fn map_file(
        &self,
        m: &mut Pages,
        start: u32,
        len: u32,
        prot: Prot,
        f: usize,
        first: u32,
        shared: bool,
    ) {
        let read_only_file = shared && !self.files[f].writable;
        place(m, start, len, prot, read_only_file, |i| Cell::File {
            f,
            idx: first + i,
            shared,
        });
    }

    /// `mmap(MAP_FIXED)` of `pages` in `(vm, m)` with raw protection `prot`
    /// (one of the valid ones), anonymous or of `file` `(f, first)`:
    /// descriptor `f` from its page `first` (possibly past its end). A
    /// writable shared mapping of a read-only file is refused with
    /// `AccessDenied`; anything else must succeed at `pages.start` and is
    /// modelled.
    pub fn mmap_fixed<M: WorldMachine>(
        &mut self,
        fds: &FdTable,
        (vm, m): &mut Proc<'_, M>,
        pages: Range<u32>,
        prot: u32,
        shared: bool,
        file: Option<(usize, u32)>,
    ) {
        let kind = if shared { MAP_SHARED } else { MAP_PRIVATE };
        let (flags, fd, offset) = match file {
            None => (MAP_FIXED | MAP_ANONYMOUS | kind, -1, 0),
            Some((f, first)) => (MAP_FIXED | kind, f as i32, first * PAGE),
        };
        let (at, len) = (va(pages.start), pages.len() as u32);
        let r = vm.mmap(fds, at, len * PAGE, prot, flags, fd, offset);
        let read_only = file.is_some_and(|(f, _)| !self.files[f].writable);
        if shared && read_only && prot & PROT_WRITE != 0 {
            return assert_eq!(r, Err(MmError::AccessDenied), "mmap of a read-only file");
        }
        assert_eq!(r, Ok(at), "mmap of {len} pages at {at:?}, file {file:?}");
        let prot = Prot::from_bits(prot).unwrap();
        match file {
            Some((f, first)) => self.map_file(m, pages.start, len, prot, f, first, shared),
            None => self.map_anon(m, pages.start, len, prot, shared),
        }
    }

    /// True when an access the protection allows lands on a file page past
    /// the end of the file: SIGBUS (`BadAddress` for the copy functions).
    fn past_eof(&self, m: &Pages, page: u32, allowed: bool) -> bool {
        allowed && m.get(&page).is_some_and(|q| self.get(q.cell).is_none())
    }

    /// Writes `value` at the start of `page` of process `(vm, m)`, checks
    /// the outcome against the model and records the write.
    pub fn write<M: WorldMachine>(
        &mut self,
        w: &World<M>,
        vm: &mut Vm<'_, M>,
        m: &mut Pages,
        page: u32,
        how: How,
        value: u32,
    ) {
        let va = va(page);
        let user = expect_access(m, page, true);
        if how == How::Supervisor {
            if let Some((bug, _)) = supervisor_bug(w, false) {
                // SMAP with AC clear: every ring-0 write to user space is a
                // kernel bug the handler names (present page or not).
                let r = w.write_u32(vm, va, value, Mode::Supervisor);
                assert_eq!(
                    r,
                    Err(FaultOutcome::ProtectionBug(bug)),
                    "supervisor write {va:?}"
                );
                return;
            }
        }
        if self.past_eof(m, page, user.is_ok()) {
            return expect_bus(w, vm, va, how, true);
        }
        match how {
            How::User => {
                let r = w.write_u32(vm, va, value, Mode::User);
                match user {
                    Ok(()) => assert_eq!(r, Ok(()), "user write {va:?}"),
                    Err(cause) => assert_eq!(r, Err(segv(va, cause)), "user write {va:?}"),
                }
            }
            How::Supervisor => {
                // CR0.WP is set: the kernel writes only where the region
                // allows writing; anything else is a kernel bug.
                let r = w.write_u32(vm, va, value, Mode::Supervisor);
                let want = user.map_err(|_| FaultOutcome::KernelBug);
                assert_eq!(r, want, "supervisor write {va:?}");
            }
            How::Copy => {
                let r = vm.copy_to_user(va, &value.to_le_bytes());
                let want = user.map_err(|_| MmError::BadAddress);
                assert_eq!(r, want, "copy_to_user {va:?}");
            }
        }
        if user.is_ok() {
            let cell = &mut m.get_mut(&page).unwrap().cell;
            self.set(cell, value);
        }
    }

    /// Reads the `u32` at the start of `page` of process `(vm, m)` and
    /// checks the outcome and the value against the model.
    pub fn read<M: WorldMachine>(
        &self,
        w: &World<M>,
        vm: &mut Vm<'_, M>,
        m: &Pages,
        page: u32,
        how: How,
    ) {
        if how == How::Supervisor {
            return self.supervisor_read(w, vm, m, page, false);
        }
        let va = va(page);
        let user = expect_access(m, page, false);
        if self.past_eof(m, page, user.is_ok()) {
            return expect_bus(w, vm, va, how, false);
        }
        let want = m.get(&page).and_then(|q| self.get(q.cell));
        match how {
            How::User => {
                let r = w.read_u32(vm, va, Mode::User);
                match user {
                    Ok(()) => assert_eq!(r.ok(), want, "user read {va:?}"),
                    Err(cause) => assert_eq!(r, Err(segv(va, cause)), "user read {va:?}"),
                }
            }
            How::Supervisor => unreachable!("handled by supervisor_read"),
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

    /// Reads the `u32` at the start of `page` (or, with `fetch`, executes
    /// its first byte) from ring 0 and checks the outcome against the
    /// model and the machine's SMEP, SMAP and AC: where they forbid the
    /// access the handler must name the bug (no retry loop); elsewhere the
    /// kernel reads where the region allows reading (a resident
    /// `PROT_NONE` page is a supervisor-only entry, which it may read too)
    /// and anything else is a `KernelBug`.
    pub fn supervisor_read<M: WorldMachine>(
        &self,
        w: &World<M>,
        vm: &mut Vm<'_, M>,
        m: &Pages,
        page: u32,
        fetch: bool,
    ) {
        let va = va(page);
        let user = expect_access(m, page, false);
        let mut want = m.get(&page).and_then(|q| self.get(q.cell));
        let r = if fetch {
            want = want.map(|v| v & 0xFF);
            w.fetch(vm, va, Mode::Supervisor).map(u32::from)
        } else {
            w.read_u32(vm, va, Mode::Supervisor)
        };
        if let Some((bug, present_passes)) = supervisor_bug(w, fetch) {
            match r {
                Ok(v) => {
                    assert_eq!(Some(v), want, "supervisor access {va:?}");
                    let resident_none = user == Err(SegvCause::Protection);
                    assert!(
                        resident_none || (present_passes && user.is_ok()),
                        "supervisor access {va:?} got through {bug}"
                    );
                }
                Err(e) => assert_eq!(
                    e,
                    FaultOutcome::ProtectionBug(bug),
                    "supervisor access {va:?}"
                ),
            }
            return;
        }
        if self.past_eof(m, page, user.is_ok()) {
            assert_eq!(
                r.map(|_| ()),
                Err(FaultOutcome::Signal(Signal::Bus { addr: va })),
                "supervisor access at {va:?} past EOF"
            );
            return;
        }
        match (user, r) {
            (Ok(()), r) => assert_eq!(r.ok(), want, "supervisor access {va:?}"),
            // A resident PROT_NONE page is a supervisor-only entry: the
            // kernel may read it.
            (Err(SegvCause::Protection), Ok(v)) => {
                assert_eq!(Some(v), want, "supervisor access {va:?}")
            }
            (Err(_), r) => {
                assert_eq!(r, Err(FaultOutcome::KernelBug), "supervisor access {va:?}")
            }
        }
    }

    /// Fetches (executes) the first byte of `page` from user mode and checks
    /// the outcome against the model.
    pub fn fetch<M: WorldMachine>(&self, w: &World<M>, vm: &mut Vm<'_, M>, m: &Pages, page: u32) {
        let va = va(page);
        let r = w.fetch(vm, va, Mode::User);
        let user = expect_fetch(m, page, w.m.nx());
        if self.past_eof(m, page, user.is_ok()) {
            assert_eq!(r, Err(FaultOutcome::Signal(Signal::Bus { addr: va })));
            return;
        }
        match user {
            Ok(()) => assert_eq!(r, Ok(self.value(m[&page].cell) as u8), "fetch {va:?}"),
            Err(cause) => assert_eq!(r, Err(segv(va, cause)), "fetch {va:?}"),
        }
    }

    /// The end of a run: every process still sees its model (a user read of
    /// every accessible page gives its value, or SIGBUS past the end of its
    /// file); then every space is destroyed and every file holds exactly
    /// the writes made through shared mappings (written back at `munmap` or
    /// exit) and has its size. The caller then checks the frames with
    /// [`World::finish`].
    pub fn finish<M: WorldMachine>(
        &self,
        w: &World<M>,
        mut procs: Vec<Proc<'_, M>>,
        fs: &MemFs,
        fds: FdTable,
    ) {
        for (vm, m) in &mut procs {
            for (&page, p) in m.iter() {
                if p.prot.is_empty() {
                    continue;
                }
                let got = w.read_u32(vm, va(page), Mode::User);
                match self.get(p.cell) {
                    Some(v) => assert_eq!(got, Ok(v), "final read of {page:#x}"),
                    None => assert!(
                        matches!(got, Err(FaultOutcome::Signal(Signal::Bus { .. }))),
                        "final read of {page:#x} past EOF: {got:?}"
                    ),
                }
            }
        }
        drop(procs);
        for (f, s) in self.files.iter().enumerate() {
            let data = fs.read(s.name).unwrap();
            assert_eq!(data.len(), s.bytes(f).len(), "file {} changed size", s.name);
            for (i, &v) in self.file_pages[f].iter().enumerate() {
                let at = i * PAGE as usize;
                let got = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                assert_eq!(got, v, "file {}, page {i}", s.name);
            }
        }
        drop(fds);
    }
}

/// What a user fetch from `page` must give: as a read, except that with NX
/// a page without `PROT_EXEC` refuses it (SIGSEGV, never resolved as a read).
pub fn expect_fetch(m: &Pages, page: u32, nx: bool) -> Result<(), SegvCause> {
    match m.get(&page) {
        Some(p) if nx && !p.prot.contains(Prot::EXEC) => Err(SegvCause::Protection),
        _ => expect_access(m, page, false),
    }
}

/// The bug the handler must report for a ring-0 access to user space
/// under the machine's SMEP, SMAP and AC (a fetch when `fetch`), and whether
/// the access still gets through a present user page. A fetch under SMEP
/// always faults; a data access under SMAP with AC clear always faults;
/// without SMEP a fetch fault carries no I/D bit, so under SMAP (AC clear) a
/// not-present fetch looks like a read SMAP forbids, while a present page
/// runs (SMAP does not cover fetches).
fn supervisor_bug<M: WorldMachine>(w: &World<M>, fetch: bool) -> Option<(ProtectionBug, bool)> {
    let cx = w.m.context();
    let smap = cx.smap_enforced();
    match (fetch, cx.smep, smap) {
        (true, true, _) => Some((ProtectionBug::SmepFetch, false)),
        // With NX (EFER.NXE) every fetch fault reports ERR_FETCH: a ring-0
        // fetch that faults (a no-execute page, or not present) is the bug
        // a fetch fault names; from a present executable page it runs.
        (true, false, _) if w.m.nx() => Some((ProtectionBug::SmepFetch, true)),
        (true, false, true) => Some((ProtectionBug::SmapAccess, true)),
        (false, _, true) => Some((ProtectionBug::SmapAccess, false)),
        _ => None,
    }
}

/// A SIGSEGV at `addr`.
fn segv(addr: VirtAddr, cause: SegvCause) -> FaultOutcome {
    FaultOutcome::Signal(Signal::Segv { addr, cause })
}

/// Checks an access to a page past the end of its file: SIGBUS, or
/// `BadAddress` from the copy functions.
fn expect_bus<M: WorldMachine>(
    w: &World<M>,
    vm: &mut Vm<'_, M>,
    va: VirtAddr,
    how: How,
    write: bool,
) {
    let bus = Err(FaultOutcome::Signal(Signal::Bus { addr: va }));
    let mode = match how {
        How::User => Mode::User,
        How::Supervisor => Mode::Supervisor,
        How::Copy => {
            let r = if write {
                vm.copy_to_user(va, &[1])
            } else {
                vm.copy_from_user(va, &mut [0])
            };
            return assert_eq!(r, Err(MmError::BadAddress), "copy at {va:?} past EOF");
        }
    };
    if write {
        assert_eq!(
            w.write_u32(vm, va, 1, mode),
            bus,
            "write at {va:?} past EOF"
        );
    } else {
        let r = w.read_u32(vm, va, mode).map(|_| ());
        assert_eq!(r, bus, "read at {va:?} past EOF");
    }
}

/// The outcome a user access to `page` should have.
pub fn expect_access(m: &Pages, page: u32, write: bool) -> Result<(), SegvCause> {
    match m.get(&page) {
        None => Err(SegvCause::NoRegion),
        Some(p) if p.prot.is_empty() || (write && !p.prot.contains(Prot::WRITE)) => {
            Err(SegvCause::Protection)
        }
        Some(_) => Ok(()),
    }
}

/// The first error `mprotect(lo..hi, prot)` must give: a hole
/// (`NoRegion`) or a shared read-only file page made writable
/// (`AccessDenied`), whichever comes first in address order.
pub fn expect_protect(m: &Pages, lo: u32, hi: u32, prot: Prot) -> Result<(), MmError> {
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

/// Models `mprotect(lo..hi, prot)` having succeeded (every page mapped).
pub fn protect(m: &mut Pages, lo: u32, hi: u32, prot: Prot) {
    for q in lo..hi {
        m.get_mut(&q).expect("mprotect of a hole").prot = prot;
    }
}

/// `mprotect` of pages `lo..hi` with raw protection `prot` (one of the
/// valid ones) in `(vm, m)`: the error [`expect_protect`] gives, else done
/// and modelled.
pub fn mprotect<M: WorldMachine>((vm, m): &mut Proc<'_, M>, lo: u32, hi: u32, prot: u32) {
    let r = vm.mprotect(va(lo), (hi - lo) * PAGE, prot);
    let prot = Prot::from_bits(prot).unwrap();
    let want = expect_protect(m, lo, hi, prot);
    assert_eq!(r, want, "mprotect {lo:#x}..{hi:#x}");
    if want.is_ok() {
        protect(m, lo, hi, prot);
    }
}

/// `munmap` of pages `lo..hi` (inside user space) in `(vm, m)`: must
/// succeed; modelled.
pub fn munmap<M: WorldMachine>((vm, m): &mut Proc<'_, M>, lo: u32, hi: u32) {
    vm.munmap(va(lo), (hi - lo) * PAGE).expect("munmap");
    remove_range(m, lo, hi);
}

/// `fork` of `procs[i]`: the child (last) starts with the parent's model.
pub fn fork<M: WorldMachine>(procs: &mut Vec<Proc<'_, M>>, i: usize) {
    let (vm, m) = &mut procs[i];
    let child = vm.fork().expect("fork");
    let m = m.clone();
    procs.push((child, m));
}

/// Removes pages `lo..hi` from the model.
pub fn remove_range(m: &mut Pages, lo: u32, hi: u32) {
    let mut tail = m.split_off(&lo);
    let mut keep = tail.split_off(&hi);
    m.append(&mut keep);
}

/// Pages of the model in `lo..hi`.
pub fn count_range(m: &Pages, lo: u32, hi: u32) -> u64 {
    m.range(lo..hi).count() as u64
}

/// Checks every process after an operation (`after`, for the messages):
/// its space validates, the region of every page of `window` has the
/// model's protection (or there is none where the model has no page), and
/// its regions hold as many pages as the model. With `frames`, the frame
/// allocator validates too (a full check of its bitmaps: the fuzz target
/// does it every few operations only, for speed).
pub fn check<M: WorldMachine>(
    w: &World<M>,
    procs: &[Proc<'_, M>],
    window: Range<u32>,
    frames: bool,
    after: &dyn Debug,
) {
    for (vm, m) in procs {
        vm.validate().expect("space validates");
        for page in window.clone() {
            assert_eq!(
                vm.region_at(va(page)).map(|r| r.prot),
                m.get(&page).map(|p| p.prot),
                "page {page:#x} after {after:?}"
            );
        }
        let in_regions: u64 = vm
            .regions()
            .map(|r| u64::from((r.end.as_u32() - r.start.as_u32()) / PAGE))
            .sum();
        assert_eq!(in_regions, m.len() as u64, "region sizes after {after:?}");
    }
    if frames {
        w.fa.lock().validate().expect("frame allocator");
    }
}

/// Models pages `start..start + len` as mapped with `prot`, page `i` of
/// them holding `cell(i)`, replacing what was there.
fn place(
    m: &mut Pages,
    start: u32,
    len: u32,
    prot: Prot,
    read_only_file: bool,
    cell: impl Fn(u32) -> Cell,
) {
    for i in 0..len {
        let page = MPage {
            prot,
            cell: cell(i),
            read_only_file,
        };
        m.insert(start + i, page);
    }
}
