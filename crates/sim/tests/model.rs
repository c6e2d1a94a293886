//! Property tests: the walker against a plain model of i386 paging, over
//! random hand-built tables; and "a TLB with correct flushing is invisible".

use myos_sim::{Access, Mode, PageFault, SimMachine};
use proptest::prelude::*;

/// Page tables live high in the 32 MiB machine, away from every address a
/// generated entry can point at (all below 20 MiB), so data never aliases a
/// table and translations never write anything but A/D bits.
const RAM: u64 = 32 << 20;
const DIR: u32 = 0x0180_0000;
const SLOTS: usize = 4;
const PTES: usize = 4;

fn table_of(slot: usize) -> u32 {
    DIR + 0x1000 * (slot as u32 + 1)
}

#[derive(Clone, Copy, Debug)]
struct Rights {
    present: bool,
    rw: bool,
    us: bool,
    a: bool,
    d: bool,
    g: bool,
}

#[derive(Clone, Debug)]
enum Pde {
    /// A page table with `ptes` (entries 0..PTES of it).
    Table { r: Rights, ptes: Vec<Pte> },
    /// A 4 MiB page at `frame4m * 4 MiB`, maybe with one reserved bit and PAT.
    Large {
        r: Rights,
        frame4m: u32,
        reserved: Option<u32>,
        pat: bool,
    },
}

#[derive(Clone, Copy, Debug)]
struct Pte {
    r: Rights,
    frame: u32,
}

fn rights() -> impl Strategy<Value = Rights> {
    // Present three times out of four.
    (
        0..4u8,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(p, rw, us, a, d, g)| Rights {
            present: p != 0,
            rw,
            us,
            a,
            d,
            g,
        })
}

fn pte() -> impl Strategy<Value = Pte> {
    (rights(), 0..4096u32).prop_map(|(r, frame)| Pte { r, frame })
}

fn pde() -> impl Strategy<Value = Pde> {
    prop_oneof![
        3 => (rights(), prop::collection::vec(pte(), PTES)).prop_map(|(r, ptes)| Pde::Table { r, ptes }),
        2 => (rights(), 0..4u32, prop::option::weighted(0.25, 13..=21u32), any::<bool>())
            .prop_map(|(r, frame4m, reserved, pat)| Pde::Large { r, frame4m, reserved, pat }),
    ]
}

fn flag_bits(r: Rights) -> u32 {
    // Written from the SDM table, independent of the sim's constants.
    let mut v = 0;
    for (on, bit) in [
        (r.present, 0),
        (r.rw, 1),
        (r.us, 2),
        (r.a, 5),
        (r.d, 6),
        (r.g, 8),
    ] {
        if on {
            v |= 1 << bit;
        }
    }
    v
}

fn encode_pde(slot: usize, p: &Pde) -> u32 {
    match p {
        Pde::Table { r, .. } => {
            table_of(slot)
                | flag_bits(Rights {
                    d: false,
                    g: false,
                    ..*r
                })
        }
        Pde::Large {
            r,
            frame4m,
            reserved,
            pat,
        } => {
            (frame4m << 22)
                | reserved.map_or(0, |b| 1 << b)
                | if *pat { 1 << 12 } else { 0 }
                | (1 << 7)
                | flag_bits(*r)
        }
    }
}

fn encode_pte(p: &Pte) -> u32 {
    (p.frame << 12) | flag_bits(p.r)
}

#[derive(Clone, Copy, Debug)]
struct Cfg {
    wp: bool,
    pse: bool,
    pge: bool,
    /// CR4.SMEP.
    smep: bool,
    /// CR4.SMAP.
    smap: bool,
    /// EFLAGS.AC.
    ac: bool,
}

fn cfg() -> impl Strategy<Value = Cfg> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(wp, pse, pge, smep, smap, ac)| Cfg {
            wp,
            pse,
            pge,
            smep,
            smap,
            ac,
        })
}

#[derive(Clone, Copy, Debug)]
struct Op {
    slot: usize,
    index: usize,
    offset: u32,
    access: Access,
    mode: Mode,
}

impl Op {
    fn va(self) -> u32 {
        ((self.slot as u32) << 22) | ((self.index as u32) << 12) | self.offset
    }
}

fn op() -> impl Strategy<Value = Op> {
    let access = prop_oneof![Just(Access::Read), Just(Access::Write), Just(Access::Fetch)];
    let mode = prop_oneof![Just(Mode::User), Just(Mode::Supervisor)];
    (0..SLOTS, 0..PTES, 0..4096u32, access, mode).prop_map(|(slot, index, offset, access, mode)| {
        Op {
            slot,
            index,
            offset,
            access,
            mode,
        }
    })
}

/// The plain model: the answer to one access, and the A/D updates it makes.
fn model(dir: &mut [Pde], cfg: Cfg, op: Op) -> Result<u32, u32> {
    let va = op.va();
    let write = matches!(op.access, Access::Write);
    let user = matches!(op.mode, Mode::User);
    let fetch = matches!(op.access, Access::Fetch);
    // The I/D bit exists only under SMEP (classic paging, no NXE).
    let kind = match op.access {
        Access::Read => 0,
        Access::Write => 2,
        Access::Fetch if cfg.smep => 16,
        Access::Fetch => 0,
    } | if user { 4 } else { 0 };
    // Permission rule over the levels a translation goes through (SDM 3A
    // §4.6): a user-mode address has U/S at every level; ring 0 may not
    // fetch from one under SMEP, nor read or write one under SMAP with AC
    // clear.
    let allowed = |levels: &[Rights]| {
        let all_user = levels.iter().all(|r| r.us);
        let all_rw = levels.iter().all(|r| r.rw);
        let supervisor_ok = !all_user
            || if fetch {
                !cfg.smep
            } else {
                !cfg.smap || cfg.ac
            };
        match (user, write) {
            (true, true) => all_user && all_rw,
            (true, false) => all_user,
            (false, true) => (all_rw || !cfg.wp) && supervisor_ok,
            (false, false) => supervisor_ok,
        }
    };
    match &mut dir[op.slot] {
        Pde::Large { r, .. } | Pde::Table { r, .. } if !r.present => Err(kind),
        Pde::Large {
            r,
            frame4m,
            reserved,
            ..
        } if cfg.pse => {
            if reserved.is_some() {
                return Err(kind | 1 | 8);
            }
            if !allowed(&[*r]) {
                return Err(kind | 1);
            }
            r.a = true;
            r.d |= write;
            Ok((*frame4m << 22) + (va & 0x3F_FFFF))
        }
        // Without PSE, a "large" PDE points at a table inside data memory,
        // which is all zero: every entry there is not present.
        Pde::Large { .. } => Err(kind),
        Pde::Table { r, ptes } => {
            let t = &mut ptes[op.index];
            if !t.r.present {
                return Err(kind);
            }
            if !allowed(&[*r, t.r]) {
                return Err(kind | 1);
            }
            r.a = true;
            t.r.a = true;
            t.r.d |= write;
            Ok((t.frame << 12) + (va & 0xFFF))
        }
    }
}

fn build(dir: &[Pde], cfg: Cfg, tlb: usize) -> SimMachine {
    let m = SimMachine::builder(RAM)
        .wp(cfg.wp)
        .pse(cfg.pse)
        .pge(cfg.pge)
        .smep(cfg.smep)
        .smap(cfg.smap)
        .tlb_entries(tlb)
        .build()
        .unwrap();
    m.set_ac(cfg.ac);
    write_tables(&m, dir);
    m.set_cr3(DIR);
    m
}

fn write_tables(m: &SimMachine, dir: &[Pde]) {
    for (slot, p) in dir.iter().enumerate() {
        m.write_phys_u32(u64::from(DIR) + 4 * slot as u64, encode_pde(slot, p))
            .unwrap();
        if let Pde::Table { ptes, .. } = p {
            for (i, t) in ptes.iter().enumerate() {
                m.write_phys_u32(u64::from(table_of(slot)) + 4 * i as u64, encode_pte(t))
                    .unwrap();
            }
        }
    }
}

/// Every entry in RAM equals the model's encoding (A/D set exactly as modelled).
fn check_tables(m: &SimMachine, dir: &[Pde]) -> Result<(), TestCaseError> {
    for (slot, p) in dir.iter().enumerate() {
        let got = m.read_phys_u32(u64::from(DIR) + 4 * slot as u64).unwrap();
        prop_assert_eq!(got, encode_pde(slot, p), "PDE {}", slot);
        if let Pde::Table { ptes, .. } = p {
            for (i, t) in ptes.iter().enumerate() {
                let got = m
                    .read_phys_u32(u64::from(table_of(slot)) + 4 * i as u64)
                    .unwrap();
                prop_assert_eq!(got, encode_pte(t), "PTE {}/{}", slot, i);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// With no TLB, every access matches the model, and A/D bits in RAM
    /// are exactly the model's.
    #[test]
    fn walker_matches_the_model(
        mut dir in prop::collection::vec(pde(), SLOTS),
        cfg in cfg(),
        ops in prop::collection::vec(op(), 1..24),
    ) {
        let m = build(&dir, cfg, 0);
        for op in ops {
            let expected = model(&mut dir, cfg, op).map_err(|code| PageFault::new(op.va(), code));
            prop_assert_eq!(m.translate(op.va(), op.access, op.mode), expected, "{:?}", op);
            check_tables(&m, &dir)?;
        }
    }

    /// With a TLB, if every PTE change is followed by an invlpg of its page,
    /// the machine behaves exactly as one without a TLB.
    #[test]
    fn a_correctly_flushed_tlb_is_invisible(
        dir in prop::collection::vec(pde(), SLOTS),
        cfg in cfg(),
        steps in prop::collection::vec((op(), prop::option::weighted(0.3, pte())), 1..40),
        tlb in 1..6usize,
    ) {
        let cached = build(&dir, cfg, tlb);
        let plain = build(&dir, cfg, 0);
        for (op, change) in steps {
            if let (Some(new), Pde::Table { .. }) = (change, &dir[op.slot]) {
                let at = u64::from(table_of(op.slot)) + 4 * op.index as u64;
                for m in [&cached, &plain] {
                    m.write_phys_u32(at, encode_pte(&new)).unwrap();
                    m.invlpg(op.va());
                }
            }
            let a = cached.translate(op.va(), op.access, op.mode);
            let b = plain.translate(op.va(), op.access, op.mode);
            prop_assert_eq!(a, b, "{:?}", op);
            let mut ta = vec![0u8; 0x5000];
            let mut tb = vec![0u8; 0x5000];
            cached.read_phys(u64::from(DIR), &mut ta).unwrap();
            plain.read_phys(u64::from(DIR), &mut tb).unwrap();
            prop_assert!(ta == tb, "page tables diverged after {:?}", op);
        }
    }
}

// Highest address an entry can point at: 4 MiB frame 3 with every reserved
// and PAT bit, or 4 KiB frame 4095; both lie below the tables, which fit in RAM.
const _: () = assert!((3u32 << 22) | 0x3F_F000 | 0xFFF < DIR);
const _: () = assert!((4095u32 << 12) | 0xFFF < DIR);
const _: () = assert!(DIR as u64 + 0x1000 * (SLOTS as u64 + 1) <= RAM);
