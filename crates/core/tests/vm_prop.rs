//! Property test: random sequences of mmap / munmap / mprotect / fork /
//! access / copy_to_user / exit, run on the simulated machine against a
//! plain model of every process's pages (contents and permissions). After
//! every sequence all spaces are destroyed and every frame is back.

mod vm_support;

use std::collections::BTreeMap;

use myos_mm::vm::*;
use myos_mm::{MmError, VirtAddr};
use proptest::prelude::*;
use vm_support::*;

/// The window the test maps in (MAP_FIXED), spanning a page-table boundary.
const BASE: u32 = 0x1000_0000 - 8 * PAGE;
const WINDOW: u32 = 24;
const MAX_PROCS: usize = 4;
/// Pages of the mapped file.
const FILE_PAGES: u32 = 8;

/// The file's initial contents: `0x1000 + i` at the start of page `i`.
fn file_data() -> Vec<u8> {
    let mut d = vec![0u8; FILE_PAGES as usize * 4096];
    for i in 0..FILE_PAGES {
        let o = i as usize * 4096;
        d[o..o + 4].copy_from_slice(&(0x1000 + i).to_le_bytes());
    }
    d
}

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
        1 => (p.clone(), page.clone(), any::<u32>()).prop_map(|(p, page, value)| Op::CopyIn { p, page, value }),
        1 => (p.clone(), page).prop_map(|(p, page)| Op::CopyOut { p, page }),
        1 => p.prop_map(|p| Op::Exit { p }),
    ]
}

/// Where a modelled page's contents live.
#[derive(Clone, Copy, Debug)]
enum Cell {
    /// A private value (copied on fork).
    Private(u32),
    /// Page `idx` of shared object `obj`.
    Shared { obj: usize, idx: u32 },
    /// A private file page not written yet: it shows the page cache.
    FileView { idx: u32 },
}

#[derive(Clone, Copy, Debug)]
struct MPage {
    prot: Prot,
    cell: Cell,
}

#[derive(Default)]
struct Model {
    /// Shared objects' page values.
    objects: Vec<Vec<u32>>,
    /// The file's page values (its page cache).
    file: Vec<u32>,
}

impl Model {
    fn value(&self, c: Cell) -> u32 {
        match c {
            Cell::Private(v) => v,
            Cell::Shared {
                obj: usize::MAX,
                idx,
            }
            | Cell::FileView { idx } => self.file[idx as usize],
            Cell::Shared { obj, idx } => self.objects[obj][idx as usize],
        }
    }

    /// The shared value `obj`/`idx` (`usize::MAX` is the file).
    fn slot(&mut self, obj: usize, idx: u32) -> &mut u32 {
        if obj == usize::MAX {
            &mut self.file[idx as usize]
        } else {
            &mut self.objects[obj][idx as usize]
        }
    }
}

fn va(page: u32) -> VirtAddr {
    VirtAddr::new(BASE + page * PAGE)
}

/// The outcome an access should have.
fn expect_access(m: &BTreeMap<u32, MPage>, page: u32, write: bool) -> Result<(), SegvCause> {
    match m.get(&page) {
        None => Err(SegvCause::NoRegion),
        Some(p) if p.prot.is_empty() || (write && !p.prot.contains(Prot::WRITE)) => {
            Err(SegvCause::Protection)
        }
        Some(_) => Ok(()),
    }
}

fn run(ops: &[Op]) {
    let w = World::new(16 * MIB);
    let fs = MemFs::new();
    fs.create("f", &file_data());
    let mut fds = FdTable::new();
    let fd = fds.insert(fs.open("f", OpenMode::ReadWrite).unwrap());
    let mut model = Model {
        objects: Vec::new(),
        file: (0..FILE_PAGES).map(|i| 0x1000 + i).collect(),
    };
    let mut procs: Vec<(Vm<'_>, BTreeMap<u32, MPage>)> = vec![(w.space(), BTreeMap::new())];
    for op in ops {
        if procs.is_empty() {
            procs.push((w.space(), BTreeMap::new()));
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
                let (vm, m) = &mut procs[p % n];
                let len = len.min(WINDOW - start);
                let flags =
                    MAP_FIXED | MAP_ANONYMOUS | if shared { MAP_SHARED } else { MAP_PRIVATE };
                assert_eq!(
                    vm.mmap(&fds, va(start), len * PAGE, prot, flags, -1, 0),
                    Ok(va(start))
                );
                let obj = shared.then(|| {
                    model.objects.push(vec![0; len as usize]);
                    model.objects.len() - 1
                });
                for i in 0..len {
                    let cell = match obj {
                        Some(obj) => Cell::Shared { obj, idx: i },
                        None => Cell::Private(0),
                    };
                    m.insert(
                        start + i,
                        MPage {
                            prot: Prot::from_bits(prot).unwrap(),
                            cell,
                        },
                    );
                }
            }
            Op::MmapFile {
                p,
                start,
                len,
                file_page,
                prot,
                shared,
            } => {
                let (vm, m) = &mut procs[p % n];
                let len = len.min(WINDOW - start).min(FILE_PAGES - file_page);
                let flags = MAP_FIXED | if shared { MAP_SHARED } else { MAP_PRIVATE };
                let r = vm.mmap(
                    &fds,
                    va(start),
                    len * PAGE,
                    prot,
                    flags,
                    fd,
                    file_page * PAGE,
                );
                assert_eq!(r, Ok(va(start)));
                for i in 0..len {
                    let idx = file_page + i;
                    let cell = if shared {
                        Cell::Shared {
                            obj: usize::MAX,
                            idx,
                        }
                    } else {
                        Cell::FileView { idx }
                    };
                    m.insert(
                        start + i,
                        MPage {
                            prot: Prot::from_bits(prot).unwrap(),
                            cell,
                        },
                    );
                }
            }
            Op::Munmap { p, start, len } => {
                let (vm, m) = &mut procs[p % n];
                vm.munmap(va(start), len * PAGE).unwrap();
                for i in start..start + len {
                    m.remove(&i);
                }
            }
            Op::Mprotect {
                p,
                start,
                len,
                prot,
            } => {
                let (vm, m) = &mut procs[p % n];
                let len = len.min(WINDOW - start);
                let all = (start..start + len).all(|i| m.contains_key(&i));
                let r = vm.mprotect(va(start), len * PAGE, prot);
                if all {
                    assert_eq!(r, Ok(()));
                    for i in start..start + len {
                        m.get_mut(&i).unwrap().prot = Prot::from_bits(prot).unwrap();
                    }
                } else {
                    assert_eq!(r, Err(MmError::NoRegion));
                }
            }
            Op::Fork { p } => {
                if n < MAX_PROCS {
                    let (vm, m) = &mut procs[p % n];
                    let child = vm.fork().unwrap();
                    let cm = m.clone();
                    procs.push((child, cm));
                }
            }
            Op::Write { p, page, value } | Op::CopyIn { p, page, value } => {
                let kernel = matches!(op, Op::CopyIn { .. });
                let (vm, m) = &mut procs[p % n];
                let addr = va(page);
                let expect = expect_access(m, page, true);
                if kernel {
                    let r = vm.copy_to_user(addr, &value.to_le_bytes());
                    assert_eq!(r.is_ok(), expect.is_ok(), "{op:?}");
                } else {
                    let r = w.write_u32(vm, addr, value, U);
                    match expect {
                        Ok(()) => assert_eq!(r, Ok(())),
                        Err(cause) => {
                            assert_eq!(
                                r,
                                Err(FaultOutcome::Signal(Signal::Segv { addr, cause })),
                                "{op:?}"
                            )
                        }
                    }
                }
                if expect.is_ok() {
                    let cell = &mut m.get_mut(&page).unwrap().cell;
                    match *cell {
                        Cell::Private(ref mut v) => *v = value,
                        Cell::Shared { obj, idx } => *model.slot(obj, idx) = value,
                        Cell::FileView { .. } => *cell = Cell::Private(value),
                    }
                }
            }
            Op::Read { p, page } | Op::CopyOut { p, page } => {
                let kernel = matches!(op, Op::CopyOut { .. });
                let (vm, m) = &mut procs[p % n];
                let addr = va(page);
                let expect = expect_access(m, page, false).map(|()| model.value(m[&page].cell));
                if kernel {
                    let mut b = [0u8; 4];
                    let r = vm
                        .copy_from_user(addr, &mut b)
                        .map(|()| u32::from_le_bytes(b));
                    assert_eq!(r.ok(), expect.ok(), "{op:?}");
                } else {
                    let r = w.read_u32(vm, addr, U);
                    match expect {
                        Ok(v) => assert_eq!(r, Ok(v), "{op:?}"),
                        Err(cause) => {
                            assert_eq!(
                                r,
                                Err(FaultOutcome::Signal(Signal::Segv { addr, cause })),
                                "{op:?}"
                            )
                        }
                    }
                }
            }
            Op::Exit { p } => {
                let (vm, _) = procs.remove(p % n);
                vm.destroy();
            }
        }
        // Region protections agree with the model, page by page.
        for (vm, m) in &procs {
            vm.validate().unwrap();
            for page in 0..WINDOW {
                assert_eq!(
                    vm.region_at(va(page)).map(|r| r.prot),
                    m.get(&page).map(|p| p.prot),
                    "page {page}"
                );
            }
        }
        w.fa.lock().validate().unwrap();
    }
    // Every process still sees exactly its model, then exits.
    for (vm, m) in &mut procs {
        for (&page, p) in m.iter() {
            if p.prot.is_empty() {
                continue;
            }
            assert_eq!(w.read_u32(vm, va(page), U), Ok(model.value(p.cell)));
        }
    }
    drop(procs);
    // Shared writes reached the file (written back at exit); private ones didn't.
    let data = fs.read("f").unwrap();
    for i in 0..FILE_PAGES as usize {
        let v = u32::from_le_bytes(data[i * 4096..i * 4096 + 4].try_into().unwrap());
        assert_eq!(v, model.file[i], "file page {i}");
    }
    assert_eq!(data.len(), FILE_PAGES as usize * 4096);
    w.finish();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_sequences_match_the_model_and_return_every_frame(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops);
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
/// non-fixed mmap, munmap and mprotect against a page -> protection model.
fn run_regions(ops: &[(u8, u32, u32, u32)]) {
    const PAGES: u32 = 600;
    let w = World::new(16 * MIB);
    let fds = FdTable::new();
    let mut vm = w.space();
    let mut model: BTreeMap<u32, Prot> = BTreeMap::new();
    let prots = [PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_EXEC];
    for &(kind, start, len, prot) in ops {
        let (start, len) = (start % PAGES, 1 + len % 6);
        let len = len.min(PAGES - start);
        let raw = prots[prot as usize % prots.len()];
        let p = Prot::from_bits(raw).unwrap();
        match kind % 4 {
            0 => {
                vm.mmap(
                    &fds,
                    va(start),
                    len * PAGE,
                    raw,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                    -1,
                    0,
                )
                .unwrap();
                for i in start..start + len {
                    model.insert(i, p);
                }
            }
            1 => {
                // Non-fixed, hinted inside the window: must land on free pages.
                let a = vm
                    .mmap(
                        &fds,
                        va(start),
                        len * PAGE,
                        raw,
                        MAP_PRIVATE | MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                    .unwrap();
                let first = a.as_u32().checked_sub(BASE).map(|d| d / PAGE);
                // Placed wholly inside the window: modelled; else undone.
                if let Some(first) = first.filter(|&f| f + len <= PAGES) {
                    for i in first..first + len {
                        assert!(model.insert(i, p).is_none(), "placed over a mapping");
                    }
                } else {
                    vm.munmap(a, len * PAGE).unwrap();
                }
            }
            2 => {
                vm.munmap(va(start), len * PAGE).unwrap();
                for i in start..start + len {
                    model.remove(&i);
                }
            }
            _ => {
                let all = (start..start + len).all(|i| model.contains_key(&i));
                let r = vm.mprotect(va(start), len * PAGE, raw);
                assert_eq!(r.is_ok(), all);
                if all {
                    for i in start..start + len {
                        model.insert(i, p);
                    }
                }
            }
        }
        vm.validate().unwrap();
    }
    for page in 0..PAGES {
        assert_eq!(
            vm.region_at(va(page)).map(|r| r.prot),
            model.get(&page).copied(),
            "page {page}"
        );
    }
    // Adjacent equal regions were merged: no two neighbours are mergeable.
    let regions: Vec<RegionInfo> = vm.regions().collect();
    for pair in regions.windows(2) {
        assert!(
            pair[0].end != pair[1].start || pair[0].prot != pair[1].prot,
            "{pair:?}"
        );
    }
    drop(vm);
    w.finish();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn many_regions_match_the_model(ops in proptest::collection::vec((any::<u8>(), any::<u32>(), any::<u32>(), any::<u32>()), 1..400)) {
        run_regions(&ops);
    }
}
