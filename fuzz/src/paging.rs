//! Page-table target: `map` / `remap` / `unmap` / `protect` / `get_page` /
//! `translate` / address-space switch and destroy, over three user spaces
//! and the shared kernel half, against a model of every mapping.
//!
//! Every mapping is checked both through the core
//! ([`AddressSpace::translate`], [`AddressSpace::entry`]) and through the
//! simulator's independent MMU (user and supervisor reads and writes on the
//! loaded space, with the exact page-fault error code when the access is
//! refused, and the written bytes found in the model's frame). Pages cover
//! low user memory (below the mmap floor), ordinary and top-of-user pages,
//! the kernel heap and kmap windows, the direct map (`FixedMapping`) and the
//! unusable top 4 MiB (`OutOfRange`). User page tables must exist exactly
//! while they hold a mapping (or were made by `get_page`), and after
//! teardown every frame is back.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use myos_mm::frames::{FrameAllocator, FrameSource, FrameStats, Zone};
use myos_mm::layout::{HEAP_START, KERNEL_BASE, KMAP_END, KMAP_START};
use myos_mm::paging::{AddressSpace, PteFlags};
use myos_mm::{Frame, MmError, OwnedFrame, Page, PhysAddr, Platform, VirtAddr};
use myos_sim::err::{ERR_PRESENT, ERR_USER, ERR_WRITE};
use myos_sim::{Mode, PageFault, SimMachine};

const RAM: u64 = 32 << 20;
const SPACES: usize = 3;

/// Which page: a category and an index inside it.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct PageSel(u16);

/// What kind of page a selector names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// User half.
    User,
    /// Kernel heap or kmap window (shared page tables).
    Kernel,
    /// The direct map (4 MiB pages): `FixedMapping`.
    Direct,
    /// The top 4 MiB: no page table, `OutOfRange`.
    Top,
}

impl PageSel {
    fn va(self) -> u32 {
        let k = u32::from(self.0 >> 3) % 32;
        match self.0 % 8 {
            0 => 0x1000 + (k % 16) * 0x1000,
            1 => 0x0040_0000 + k * 0x1000,
            2 => 0x0080_0000 + k * 0x0040_1000,
            3 => 0xBFFF_F000 - k * 0x1000,
            4 => HEAP_START + k * 0x1000,
            5 => KMAP_START + k * 0x1000,
            6 => KERNEL_BASE + k * 0x0010_0000,
            _ => KMAP_END + k * 0x1000,
        }
    }
    fn page(self) -> Page {
        Page::from_start(VirtAddr::new(self.va())).unwrap()
    }
    fn kind(self) -> Kind {
        match self.0 % 8 {
            0..=3 => Kind::User,
            4 | 5 => Kind::Kernel,
            6 => Kind::Direct,
            _ => Kind::Top,
        }
    }
}

/// One operation; `s` picks a user space modulo 3.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    /// Allocates a frame from `zone % 3` and maps it with `flags & 0xFFF`.
    Map {
        /// Space.
        s: u8,
        /// Page.
        at: PageSel,
        /// Zone of the frame.
        zone: u8,
        /// Entry flags (low 12 bits; `HUGE` must be refused).
        flags: u16,
    },
    /// Maps another reference to a frame already mapped somewhere.
    MapShared {
        /// Space.
        s: u8,
        /// Page.
        at: PageSel,
        /// Which existing mapping's frame.
        pick: u8,
        /// Writable.
        writable: bool,
    },
    /// `remap` with a new frame.
    Remap {
        /// Space.
        s: u8,
        /// Page.
        at: PageSel,
        /// Entry flags.
        flags: u16,
    },
    /// `unmap`.
    Unmap {
        /// Space.
        s: u8,
        /// Page.
        at: PageSel,
    },
    /// `protect`.
    Protect {
        /// Space.
        s: u8,
        /// Page.
        at: PageSel,
        /// Entry flags.
        flags: u16,
    },
    /// `get_page(make)`.
    GetPage {
        /// Space.
        s: u8,
        /// Page.
        at: PageSel,
        /// Create a missing table.
        make: bool,
    },
    /// Loads a space (CR3).
    Switch {
        /// Space.
        s: u8,
    },
    /// `translate`, then an access through the MMU if the space is loaded.
    Access {
        /// Space.
        s: u8,
        /// Page.
        at: PageSel,
        /// Offset in the page (`u32`-aligned).
        offset: u16,
        /// Write (else read).
        write: bool,
        /// User mode (else supervisor).
        user: bool,
        /// Value written.
        value: u32,
    },
    /// Destroys a space and makes a fresh one in its place.
    Recreate {
        /// Space.
        s: u8,
    },
}

/// A modelled entry.
#[derive(Debug, Clone, Copy)]
struct Ent {
    frame: Frame,
    flags: PteFlags,
}

/// Flags as the caller gives them (without `PRESENT`, which is implied).
fn flags_of(raw: u16, kind: Kind) -> PteFlags {
    let mut f = PteFlags::from_bits_truncate(u32::from(raw) & 0xFFF);
    if kind != Kind::Kernel {
        // Global user pages would survive CR3 loads (a caller's bug).
        f.remove(PteFlags::GLOBAL);
    }
    f
}

/// The flags the MMU may have changed.
const AD: PteFlags = PteFlags::ACCESSED.union(PteFlags::DIRTY);

struct State {
    m: SimMachine,
    fa: FrameAllocator,
    kernel: Option<AddressSpace>,
    boot: FrameStats,
    spaces: Vec<AddressSpace>,
    model: Vec<BTreeMap<u32, Ent>>,
    /// Page-directory indices of the user tables each space has.
    tables: Vec<BTreeSet<usize>>,
    kmodel: BTreeMap<u32, Ent>,
    active: Option<usize>,
}

impl State {
    fn new() -> State {
        let m = SimMachine::new(RAM).expect("machine");
        let map = m.memory_map().to_vec();
        // SAFETY: `fa` lives beside `m` in `State` and is dropped with it.
        let mut fa = unsafe { FrameAllocator::new(&m, &map) }.expect("frames");
        let boot = fa.stats();
        let kernel =
            AddressSpace::new_kernel(&m, &mut fa, PhysAddr::new(RAM as u32)).expect("kernel");
        kernel.activate(&m);
        let spaces = (0..SPACES)
            .map(|_| AddressSpace::new_user(&m, &mut fa, &kernel).expect("space"))
            .collect();
        State {
            m,
            fa,
            kernel: Some(kernel),
            boot,
            spaces,
            model: vec![BTreeMap::new(); SPACES],
            tables: vec![BTreeSet::new(); SPACES],
            kmodel: BTreeMap::new(),
            active: None,
        }
    }

    fn model_mut(&mut self, s: usize, kind: Kind) -> &mut BTreeMap<u32, Ent> {
        if kind == Kind::Kernel {
            &mut self.kmodel
        } else {
            &mut self.model[s]
        }
    }

    fn model(&self, s: usize, kind: Kind) -> &BTreeMap<u32, Ent> {
        if kind == Kind::Kernel {
            &self.kmodel
        } else {
            &self.model[s]
        }
    }

    /// The error a map-like call must give for a page of this kind.
    fn kind_error(kind: Kind) -> Option<MmError> {
        match kind {
            Kind::Direct => Some(MmError::FixedMapping),
            Kind::Top => Some(MmError::OutOfRange),
            _ => None,
        }
    }

    /// Notes that user page `page` of space `s` was unmapped: its table goes
    /// when nothing else in it is mapped.
    fn forget_table(&mut self, s: usize, page: u32) {
        let pdi = (page >> 10) as usize;
        let lo = (pdi as u32) << 10;
        if self.model[s].range(lo..lo + 1024).next().is_none() {
            self.tables[s].remove(&pdi);
        }
    }

    /// Checks every modelled entry in every space; with `tables`, also the
    /// user page-table counts (a scan of 768 directory entries per space,
    /// the costly part, so done every few steps).
    fn check(&self, tables: bool) {
        for s in 0..SPACES {
            let sp = &self.spaces[s];
            for (pages, kernel) in [(&self.model[s], false), (&self.kmodel, true)] {
                for (&page, e) in pages {
                    let va = VirtAddr::new((page << 12) | 0x24);
                    assert_eq!(
                        sp.translate(&self.m, va),
                        Some(PhysAddr::new(e.frame.start().as_u32() | 0x24)),
                        "translate {va:?} in space {s} (kernel {kernel})"
                    );
                    let got = sp
                        .entry(&self.m, Page::from_number(page).unwrap())
                        .expect("table");
                    assert_eq!(got.frame(), e.frame);
                    assert_eq!(
                        got.flags() - AD,
                        (e.flags | PteFlags::PRESENT) - AD,
                        "flags of {va:?}"
                    );
                }
            }
            if tables {
                assert_eq!(
                    sp.user_table_count(&self.m),
                    self.tables[s].len(),
                    "user page tables of space {s}"
                );
            }
        }
    }

    fn step(&mut self, op: Op) {
        let sp = |s: u8| s as usize % SPACES;
        match op {
            Op::Map { s, at, zone, flags } => {
                let s = sp(s);
                let kind = at.kind();
                let flags = flags_of(flags, kind);
                let zone = Zone::ALL[zone as usize % 3];
                let owned = self.fa.alloc(zone).expect("a frame");
                let f = owned.frame();
                let already = self.model(s, kind).contains_key(&at.page().number());
                let r = self.spaces[s].map(&self.m, &mut self.fa, at.page(), owned, flags);
                let expect = if flags.contains(PteFlags::HUGE) {
                    // Direct-map and top pages are refused for their range
                    // first; the flag check comes before either.
                    Some(MmError::InvalidArgument)
                } else if let Some(e) = Self::kind_error(kind) {
                    Some(e)
                } else if already {
                    Some(MmError::AlreadyMapped)
                } else {
                    None
                };
                match (expect, r) {
                    (None, Ok(flush)) => {
                        flush.flush(&self.m);
                        let page = at.page().number();
                        self.model_mut(s, kind)
                            .insert(page, Ent { frame: f, flags });
                        if kind == Kind::User {
                            self.tables[s].insert((page >> 10) as usize);
                        }
                    }
                    (Some(e), Err(got)) => {
                        assert_eq!(got.error, e, "map {at:?} with {flags:?}");
                        self.fa.release(got.frame).unwrap();
                    }
                    (e, r) => panic!("map {:#x} {flags:?}: expected {e:?}, got {r:?}", at.va()),
                }
            }
            Op::MapShared {
                s,
                at,
                pick,
                writable,
            } => {
                let s = sp(s);
                let kind = at.kind();
                let all: Vec<Frame> = self
                    .model
                    .iter()
                    .flat_map(|m| m.values())
                    .chain(self.kmodel.values())
                    .map(|e| e.frame)
                    .collect();
                if all.is_empty() || kind == Kind::Direct || kind == Kind::Top {
                    return;
                }
                let f = all[pick as usize % all.len()];
                let page = at.page().number();
                if self.model(s, kind).contains_key(&page) {
                    return;
                }
                let flags = if writable {
                    PteFlags::WRITABLE | PteFlags::USER
                } else {
                    PteFlags::USER
                };
                let shared = self.fa.share(f).unwrap();
                self.spaces[s]
                    .map(&self.m, &mut self.fa, at.page(), shared, flags)
                    .expect("map shared")
                    .flush(&self.m);
                self.model_mut(s, kind)
                    .insert(page, Ent { frame: f, flags });
                if kind == Kind::User {
                    self.tables[s].insert((page >> 10) as usize);
                }
            }
            Op::Remap { s, at, flags } => {
                let s = sp(s);
                let kind = at.kind();
                let flags = flags_of(flags, kind);
                let owned = self.fa.alloc(Zone::High).expect("a frame");
                let f = owned.frame();
                let r = self.spaces[s].remap(&self.m, &mut self.fa, at.page(), owned, flags);
                let expect = if flags.contains(PteFlags::HUGE) {
                    Some(MmError::InvalidArgument)
                } else {
                    Self::kind_error(kind)
                };
                match (expect, r) {
                    (None, Ok((old, flush))) => {
                        flush.flush(&self.m);
                        let page = at.page().number();
                        let prev = self
                            .model_mut(s, kind)
                            .insert(page, Ent { frame: f, flags });
                        assert_eq!(
                            old.as_ref().map(OwnedFrame::frame),
                            prev.map(|e| e.frame),
                            "remap returned"
                        );
                        if let Some(old) = old {
                            self.fa.release(old).unwrap();
                        }
                        if kind == Kind::User {
                            self.tables[s].insert((page >> 10) as usize);
                        }
                    }
                    (Some(e), Err(got)) => {
                        assert_eq!(got.error, e);
                        self.fa.release(got.frame).unwrap();
                    }
                    (e, r) => panic!("remap {:#x}: expected {e:?}, got {r:?}", at.va()),
                }
            }
            Op::Unmap { s, at } => {
                let s = sp(s);
                let kind = at.kind();
                let page = at.page().number();
                let r = self.spaces[s].unmap(&self.m, &mut self.fa, at.page());
                if kind == Kind::Direct {
                    assert_eq!(r.map(|_| ()), Err(MmError::FixedMapping));
                    return;
                }
                match self.model_mut(s, kind).remove(&page) {
                    Some(e) => {
                        let (frame, flush) = r.expect("unmap");
                        flush.flush(&self.m);
                        assert_eq!(frame, e.frame);
                        self.fa.release(frame).unwrap();
                        if kind == Kind::User {
                            self.forget_table(s, page);
                        }
                    }
                    None => assert_eq!(r.map(|_| ()), Err(MmError::NotMapped), "unmap"),
                }
            }
            Op::Protect { s, at, flags } => {
                let s = sp(s);
                let kind = at.kind();
                let flags = flags_of(flags, kind);
                let page = at.page().number();
                let r = self.spaces[s].protect(&self.m, at.page(), flags);
                if flags.contains(PteFlags::HUGE) {
                    assert_eq!(r.map(|_| ()), Err(MmError::InvalidArgument));
                    return;
                }
                if kind == Kind::Direct {
                    assert_eq!(r.map(|_| ()), Err(MmError::FixedMapping));
                    return;
                }
                let m = &self.m;
                let model = if kind == Kind::Kernel {
                    &mut self.kmodel
                } else {
                    &mut self.model[s]
                };
                match model.get_mut(&page) {
                    Some(e) => {
                        r.expect("protect").flush(m);
                        e.flags = flags;
                    }
                    None => assert_eq!(r.map(|_| ()), Err(MmError::NotMapped), "protect"),
                }
            }
            Op::GetPage { s, at, make } => {
                let s = sp(s);
                let kind = at.kind();
                let r =
                    self.spaces[s].get_page(&self.m, &mut self.fa, VirtAddr::new(at.va()), make);
                match kind {
                    Kind::Direct => assert_eq!(r, Err(MmError::FixedMapping)),
                    Kind::Top => assert_eq!(r, Err(MmError::OutOfRange)),
                    Kind::Kernel => assert!(matches!(r, Ok(Some(_)))),
                    Kind::User => {
                        let pdi = at.va() as usize >> 22;
                        let had = self.tables[s].contains(&pdi);
                        match r {
                            Ok(Some(_)) => {
                                assert!(had || make, "table appeared");
                                self.tables[s].insert(pdi);
                            }
                            Ok(None) => assert!(!had && !make, "table missing"),
                            Err(e) => panic!("get_page: {e:?}"),
                        }
                    }
                }
                if let Ok(Some(ptr)) = r {
                    // SAFETY: the entry pointer is valid until the table is
                    // freed, and nothing has changed since `get_page`.
                    let e = unsafe { ptr.as_ptr().read_volatile() };
                    match self.model(s, kind).get(&at.page().number()) {
                        Some(m) => assert_eq!(e.frame(), m.frame),
                        None => assert!(!e.is_present()),
                    }
                }
            }
            Op::Switch { s } => {
                let s = sp(s);
                self.spaces[s].activate(&self.m);
                self.active = Some(s);
            }
            Op::Access {
                s,
                at,
                offset,
                write,
                user,
                value,
            } => self.access(
                sp(s),
                at,
                (u32::from(offset) % 4096) & !3,
                write,
                user,
                value,
            ),
            Op::Recreate { s } => {
                let s = sp(s);
                if self.active == Some(s) {
                    self.kernel.as_ref().unwrap().activate(&self.m);
                    self.active = None;
                }
                let fresh =
                    AddressSpace::new_user(&self.m, &mut self.fa, self.kernel.as_ref().unwrap())
                        .expect("space");
                let old = std::mem::replace(&mut self.spaces[s], fresh);
                old.destroy(&self.m, &mut self.fa);
                self.model[s].clear();
                self.tables[s].clear();
            }
        }
    }

    fn access(&mut self, s: usize, at: PageSel, off: u32, write: bool, user: bool, value: u32) {
        let kind = at.kind();
        let va = at.va() + off;
        let want = self.model(s, kind).get(&at.page().number()).copied();
        let direct = (kind == Kind::Direct).then(|| va - KERNEL_BASE);
        let translated = self.spaces[s].translate(&self.m, VirtAddr::new(va));
        match (want, direct) {
            (Some(e), _) => assert_eq!(
                translated,
                Some(PhysAddr::new(e.frame.start().as_u32() + off))
            ),
            (None, Some(phys)) => assert_eq!(translated, Some(PhysAddr::new(phys))),
            (None, None) => assert_eq!(translated, None, "translate {va:#x}"),
        }
        if self.active != Some(s) || (kind == Kind::Direct && write) {
            // Only the loaded space can be walked; writing into the direct
            // map would overwrite the kernel's own structures.
            return;
        }
        let mode = if user { Mode::User } else { Mode::Supervisor };
        // What the MMU must do: the entry's effective rights (kernel-half
        // directory entries are supervisor-only).
        let present = want.is_some() || direct.is_some();
        let (u, w) = match (want, direct) {
            (Some(e), _) => (
                e.flags.contains(PteFlags::USER) && kind == Kind::User,
                e.flags.contains(PteFlags::WRITABLE),
            ),
            (None, Some(_)) => (false, true),
            (None, None) => (false, false),
        };
        let code = |extra: u32| {
            let mut c = extra;
            if user {
                c |= ERR_USER;
            }
            if write {
                c |= ERR_WRITE;
            }
            if present {
                c |= ERR_PRESENT;
            }
            Err(PageFault::new(va, c))
        };
        let allowed = present && (!user || u) && (!write || w);
        if write {
            let r = self.m.write_u32(va, value, mode);
            if allowed {
                assert_eq!(r, Ok(()), "write {va:#x} {mode:?}");
                let e = want.unwrap();
                let mut b = [0u8; 4];
                self.m.read_frame(e.frame, off as usize, &mut b);
                assert_eq!(u32::from_le_bytes(b), value, "written bytes");
            } else {
                assert_eq!(r, code(0), "write {va:#x} {mode:?}");
            }
        } else {
            let r = self.m.read_u32(va, mode);
            if allowed {
                let frame = match (want, direct) {
                    (Some(e), _) => e.frame,
                    (None, Some(phys)) => PhysAddr::new(phys).frame(),
                    _ => unreachable!(),
                };
                let mut b = [0u8; 4];
                self.m.read_frame(frame, off as usize, &mut b);
                assert_eq!(r, Ok(u32::from_le_bytes(b)), "read {va:#x} {mode:?}");
            } else {
                assert_eq!(r.map(|_| ()), code(0), "read {va:#x} {mode:?}");
            }
        }
    }

    fn finish(mut self) {
        self.kernel.as_ref().unwrap().activate(&self.m);
        for s in std::mem::take(&mut self.spaces) {
            s.destroy(&self.m, &mut self.fa);
        }
        let k = self.kernel.take().unwrap();
        self.m.set_cr3((RAM - 4096) as u32);
        // SAFETY: every user space is gone.
        unsafe { k.destroy_kernel(&self.m, &mut self.fa) };
        assert_eq!(self.fa.stats(), self.boot, "frames leaked");
        self.fa.validate().expect("frame allocator");
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let ops: Vec<Op> = crate::decode(data);
    let mut st = State::new();
    for (i, op) in ops.iter().enumerate() {
        if crate::tracing() {
            eprintln!("{i}: {op:?}");
        }
        st.step(*op);
        st.check(i % 8 == 7 || i + 1 == ops.len());
    }
    st.finish();
    crate::count_ops(ops.len());
}
