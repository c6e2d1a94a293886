//! The PAE walker on hand-built tables: 4 KiB and 2 MiB pages, frames above
//! 4 GiB, rights combined over the levels, CR0.WP, XD with and without
//! EFER.NXE, reserved bits (above MAXPHYADDR, in the PDPTEs, in a 2 MiB
//! PDE), not-present entries at each level, A/D bits, the PDPTE registers
//! and the TLB; a property test checks random PDE/PTE bits against a flat
//! reading of the same tables.
//!
//! Entry bits are spelled out here from the SDM (vol. 3A, tables 4-8 to
//! 4-11), not taken from the sim.

use myos_sim::err::{ERR_FETCH, ERR_PRESENT, ERR_RESERVED, ERR_USER, ERR_WRITE};
use myos_sim::pae::{PaeConfig, PaeConfigError, PaeMachine, PdpteError};
use myos_sim::{Access, Mode, PageFault};

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const G: u64 = 1 << 8;
const PAT_2M: u64 = 1 << 12;
const XD: u64 = 1 << 63;

const U: Mode = Mode::User;
const S: Mode = Mode::Supervisor;
const MIB: u64 = 1 << 20;
/// The first byte above 4 GiB.
const HIGH: u64 = 1 << 32;
/// The PDPT (32-byte aligned; placed in its own page here).
const PDPT: u64 = 0x1000;
/// Present RAM-backed P|RW|US, the usual rights.
const URW: u64 = P | RW | US;

/// The page directory of PDPTE `i`.
fn pd(i: u64) -> u64 {
    0x2000 + i * 0x1000
}

/// The page table for the 2 MiB region of `va` (one per region, in low RAM).
fn pt_for(va: u32) -> u64 {
    MIB + u64::from(va >> 21) * 0x1000
}

fn pde_addr(va: u32) -> u64 {
    pd(u64::from(va >> 30)) + u64::from((va >> 21) & 0x1FF) * 8
}

fn pte_addr(va: u32) -> u64 {
    pt_for(va) + u64::from((va >> 12) & 0x1FF) * 8
}

/// 16 MiB at 0 and 16 MiB at 4 GiB, with `cfg`'s other settings.
fn build(cfg: PaeConfig) -> PaeMachine {
    let m = cfg.ram(0, 16 * MIB).ram(HIGH, 16 * MIB).build().unwrap();
    for i in 0..4 {
        m.write_phys_u64(PDPT + 8 * i, pd(i) | P).unwrap();
    }
    m.set_cr3(PDPT as u32).unwrap();
    m
}

fn machine() -> PaeMachine {
    build(PaeMachine::builder())
}

/// Maps the 4 KiB page at `va` to `pa` through a PDE with `pde_flags` and a
/// PTE with `pte_flags`.
fn map4k(m: &PaeMachine, va: u32, pa: u64, pde_flags: u64, pte_flags: u64) {
    m.write_phys_u64(pde_addr(va), pt_for(va) | pde_flags)
        .unwrap();
    m.write_phys_u64(pte_addr(va), pa | pte_flags).unwrap();
}

/// Maps the 2 MiB page at `va` to `pa` with a PS PDE.
fn map2m(m: &PaeMachine, va: u32, pa: u64, flags: u64) {
    m.write_phys_u64(pde_addr(va), pa | PS | flags).unwrap();
}

fn pf(va: u32, code: u32) -> Result<u64, PageFault> {
    Err(PageFault::new(va, code))
}

#[test]
fn translates_a_4k_page_to_a_frame_above_4gib() {
    let m = machine();
    let va = 0x0040_1000;
    map4k(&m, va, HIGH + 0x3000, URW, URW);
    assert_eq!(m.translate(va + 0xABC, Access::Read, U), Ok(HIGH + 0x3ABC));
    // Read: A in both levels, no D.
    assert_eq!(m.read_phys_u64(pde_addr(va)).unwrap() & (A | D), A);
    assert_eq!(m.read_phys_u64(pte_addr(va)).unwrap() & (A | D), A);
    m.write_u32(va + 0x10, 0x1122_3344, U).unwrap();
    assert_eq!(m.read_phys_u32(HIGH + 0x3010).unwrap(), 0x1122_3344);
    assert_eq!(
        m.read_phys_u32(0x3010).unwrap(),
        0,
        "not aliased to 4 GiB below"
    );
    // Write: D in the PTE only (bit 6 of a PDE pointing to a table is ignored).
    assert_eq!(m.read_phys_u64(pde_addr(va)).unwrap() & (A | D), A);
    assert_eq!(m.read_phys_u64(pte_addr(va)).unwrap() & (A | D), A | D);
    assert_eq!(m.read_u32(va + 0x10, S), Ok(0x1122_3344));
    // The TLB holds the 33-bit frame.
    let e = m.tlb_peek(va + 0x10).unwrap();
    assert_eq!(e.phys, HIGH + 0x3010);
    assert!(e.user && e.writable && e.dirty && !e.large && !e.execute_disable);
    // Neighbours are not mapped.
    assert_eq!(m.translate(va - 1, Access::Read, S), pf(va - 1, 0));
    assert_eq!(
        m.translate(va + 0x1000, Access::Read, S),
        pf(va + 0x1000, 0)
    );
}

#[test]
fn the_four_pdptes_split_the_linear_space() {
    let m = machine();
    for i in 0..4u32 {
        let va = (i << 30) | 0x0020_3000;
        map4k(&m, va, HIGH + u64::from(i) * 0x1000, URW, URW);
        assert_eq!(
            m.translate(va | 0x123, Access::Read, U),
            Ok(HIGH + u64::from(i) * 0x1000 + 0x123)
        );
    }
    assert_eq!(m.stats().walks, 4);
}

#[test]
fn translates_a_2m_page_and_ignores_its_pat_bit() {
    let m = machine();
    let va = 0x4060_0000; // PDPTE 1, PDE 3
    map2m(&m, va, HIGH + 2 * MIB, URW | PAT_2M | G);
    assert_eq!(
        m.translate(va + 0x1_2345, Access::Read, U),
        Ok(HIGH + 2 * MIB + 0x1_2345)
    );
    assert_eq!(m.read_phys_u64(pde_addr(va)).unwrap() & (A | D), A);
    m.write_u8(va + 0x1F_FFFF, 0xAB, U).unwrap();
    assert_eq!(m.read_phys_u64(pde_addr(va)).unwrap() & (A | D), A | D);
    let mut b = [0u8; 1];
    m.read_phys(HIGH + 4 * MIB - 1, &mut b).unwrap();
    assert_eq!(b[0], 0xAB);
    let e = m.tlb_peek(va + 0x10_0000).unwrap();
    assert!(e.large && e.global && e.dirty);
    assert_eq!(e.phys, HIGH + 2 * MIB + 0x10_0000);
    // One entry covers the whole 2 MiB page; invlpg anywhere in it drops it.
    assert_eq!(m.tlb_len(), 1);
    m.invlpg(va + 0x1_5000);
    assert_eq!(m.tlb_len(), 0);
    // The next 2 MiB region is not mapped.
    assert_eq!(
        m.translate(va + 2 * MIB as u32, Access::Read, U),
        pf(va + 2 * MIB as u32, ERR_USER)
    );
}

#[test]
fn reaches_the_top_of_a_36_bit_physical_space() {
    let top = 1u64 << 36;
    let m = PaeMachine::builder()
        .ram(0, 16 * MIB)
        .ram(top - 4 * MIB, 4 * MIB)
        .build()
        .unwrap();
    for i in 0..4 {
        m.write_phys_u64(PDPT + 8 * i, pd(i) | P).unwrap();
    }
    m.set_cr3(PDPT as u32).unwrap();
    map4k(&m, 0x1000, top - 0x1000, URW, URW);
    map2m(&m, 0x0060_0000, top - 2 * MIB, URW);
    m.write_u32(0x1FFC, 0xCAFE_F00D, U).unwrap();
    assert_eq!(m.read_phys_u32(top - 4).unwrap(), 0xCAFE_F00D);
    assert_eq!(m.read_u32(0x007F_FFFC, U), Ok(0xCAFE_F00D));
    assert_eq!(m.translate(0x1000, Access::Read, U), Ok(top - 0x1000));
    // A bank may not reach past MAXPHYADDR.
    assert_eq!(
        PaeMachine::builder()
            .ram(top - 4096, 8192)
            .build()
            .unwrap_err(),
        PaeConfigError::BankAboveMaxPhyAddr {
            base: top - 4096,
            bytes: 8192
        }
    );
}

/// One contiguous 6 GiB bank: lazily backed, so only touched pages cost
/// host memory. Hosts that refuse to reserve 6 GiB of address space
/// (strict overcommit) skip the test.
#[test]
fn a_single_6gib_bank_is_lazily_backed() {
    let m = match PaeMachine::builder().ram(0, 6 << 30).build() {
        Ok(m) => m,
        Err(PaeConfigError::Host(e)) => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    for i in 0..4 {
        m.write_phys_u64(PDPT + 8 * i, pd(i) | P).unwrap();
    }
    m.set_cr3(PDPT as u32).unwrap();
    let frame = 5u64 << 30;
    map4k(&m, 0xC000_0000, frame, P | RW, P | RW);
    m.write_u32(0xC000_0FF0, 0x600D_F00D, S).unwrap();
    assert_eq!(m.read_phys_u32(frame + 0xFF0).unwrap(), 0x600D_F00D);
    assert_eq!(m.read_phys_u32((6 << 30) - 4).unwrap(), 0);
    assert!(m.read_phys_u32(6 << 30).is_err());
}

/// Every combination of R/W and U/S in the PDE and the PTE, for every
/// access, with CR0.WP on and off: the effective right is the AND of both
/// levels, as in classic paging.
#[test]
fn rights_combine_over_pde_and_pte() {
    for wp in [true, false] {
        let m = build(PaeMachine::builder().tlb_entries(0).wp(wp));
        let va = 0x0080_0000;
        for pde_bits in 0..4u64 {
            for pte_bits in 0..4u64 {
                let (pde, pte) = (P | pde_bits << 1, P | pte_bits << 1);
                map4k(&m, va, HIGH, pde, pte);
                let user = pde & pte & US != 0;
                let writable = pde & pte & RW != 0;
                for (access, mode) in [
                    (Access::Read, U),
                    (Access::Write, U),
                    (Access::Fetch, U),
                    (Access::Read, S),
                    (Access::Write, S),
                    (Access::Fetch, S),
                ] {
                    let ok = match (access, mode) {
                        (Access::Write, Mode::User) => user && writable,
                        (_, Mode::User) => user,
                        (Access::Write, Mode::Supervisor) => writable || !wp,
                        (_, Mode::Supervisor) => true,
                    };
                    let got = m.translate(va, access, mode);
                    let w = if access == Access::Write {
                        ERR_WRITE
                    } else {
                        0
                    };
                    let u = if mode == U { ERR_USER } else { 0 };
                    let want = if ok {
                        Ok(HIGH)
                    } else {
                        pf(va, ERR_PRESENT | w | u)
                    };
                    assert_eq!(
                        got, want,
                        "wp {wp} pde {pde:#x} pte {pte:#x} {access:?} {mode:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn wp_governs_supervisor_writes_to_read_only_pages() {
    let m = machine();
    map4k(&m, 0x3000, HIGH + 0x3000, P | RW, P);
    map2m(&m, 0x0040_0000, HIGH + 2 * MIB, P);
    for va in [0x3000, 0x0040_0000] {
        assert_eq!(
            m.write_u8(va, 1, S),
            Err(PageFault::new(va, ERR_PRESENT | ERR_WRITE))
        );
    }
    m.set_wp(false);
    m.write_u8(0x3000, 1, S).unwrap();
    m.write_u8(0x0040_0000, 2, S).unwrap();
    assert_eq!(
        m.write_u8(0x3000, 1, U),
        Err(PageFault::new(0x3000, ERR_PRESENT | ERR_WRITE | ERR_USER))
    );
}

#[test]
fn xd_is_a_reserved_bit_without_nxe() {
    let m = machine();
    assert!(!m.nxe());
    map4k(&m, 0x3000, HIGH, URW, URW | XD);
    map4k(&m, 0x0040_0000, HIGH, URW | XD, URW);
    map2m(&m, 0x0080_0000, HIGH, URW | XD);
    for va in [0x3000, 0x0040_0000, 0x0080_0000] {
        // Every access, and a fetch reports no I/D bit (neither NXE nor SMEP).
        assert_eq!(
            m.translate(va, Access::Read, S),
            pf(va, ERR_PRESENT | ERR_RESERVED)
        );
        assert_eq!(
            m.translate(va, Access::Fetch, U),
            pf(va, ERR_PRESENT | ERR_RESERVED | ERR_USER)
        );
        assert_eq!(
            m.translate(va, Access::Write, U),
            pf(va, ERR_PRESENT | ERR_RESERVED | ERR_WRITE | ERR_USER)
        );
    }
    // Faulting walks set no A bit.
    assert_eq!(m.read_phys_u64(pte_addr(0x3000)).unwrap() & A, 0);
    assert_eq!(m.tlb_len(), 0);
}

#[test]
fn xd_forbids_fetches_under_nxe_and_the_fault_says_fetch() {
    let m = build(PaeMachine::builder().nxe(true));
    map4k(&m, 0x3000, HIGH, URW, URW | XD); // XD in the PTE
    map4k(&m, 0x0040_0000, HIGH, URW | XD, URW); // XD in the PDE
    map2m(&m, 0x0080_0000, HIGH, URW | XD); // XD in a 2 MiB PDE
    map4k(&m, 0x00C0_0000, HIGH, URW, URW); // executable
    for va in [0x3000, 0x0040_0000, 0x0080_0000] {
        assert_eq!(m.translate(va, Access::Read, U), Ok(HIGH));
        assert_eq!(m.translate(va, Access::Write, S), Ok(HIGH));
        assert!(m.tlb_peek(va).unwrap().execute_disable);
        // The cached entry refuses the fetch, and the fault drops it.
        assert_eq!(
            m.translate(va, Access::Fetch, U),
            pf(va, ERR_PRESENT | ERR_FETCH | ERR_USER)
        );
        assert_eq!(m.tlb_peek(va), None);
        // A walk refuses it too, supervisor as well.
        assert_eq!(
            m.translate(va, Access::Fetch, S),
            pf(va, ERR_PRESENT | ERR_FETCH)
        );
    }
    assert_eq!(m.fetch(0x00C0_0000, U), Ok(0));
    assert!(!m.tlb_peek(0x00C0_0000).unwrap().execute_disable);
    // With NXE, I/D shows on every fetch fault, not-present ones too.
    assert_eq!(
        m.translate(0x00E0_0000, Access::Fetch, U),
        pf(0x00E0_0000, ERR_FETCH | ERR_USER)
    );
    // A user-rights violation on a fetch also carries it.
    map4k(&m, 0x0100_0000, HIGH, P | RW, P | RW);
    assert_eq!(
        m.translate(0x0100_0000, Access::Fetch, U),
        pf(0x0100_0000, ERR_PRESENT | ERR_FETCH | ERR_USER)
    );
    // Turning NXE off makes bit 63 reserved again.
    m.set_nxe(false);
    assert_eq!(
        m.translate(0x3000, Access::Read, U),
        pf(0x3000, ERR_PRESENT | ERR_RESERVED | ERR_USER)
    );
    assert_eq!(
        m.translate(0x00E0_0000, Access::Fetch, U),
        pf(0x00E0_0000, ERR_USER)
    );
}

#[test]
fn bits_above_maxphyaddr_are_reserved_at_every_level() {
    let m = build(PaeMachine::builder().nxe(true));
    assert_eq!(m.maxphyaddr(), 36);
    let rsvd = ERR_PRESENT | ERR_RESERVED;
    for bit in [36, 40, 51, 62] {
        let b = 1u64 << bit;
        // PDE pointing to a table.
        map4k(&m, 0x3000, HIGH, URW | b, URW);
        assert_eq!(
            m.translate(0x3000, Access::Read, S),
            pf(0x3000, rsvd),
            "PDE bit {bit}"
        );
        // PTE.
        map4k(&m, 0x3000, HIGH, URW, URW | b);
        assert_eq!(
            m.translate(0x3000, Access::Write, U),
            pf(0x3000, rsvd | ERR_WRITE | ERR_USER),
            "PTE bit {bit}"
        );
        // 2 MiB PDE.
        map2m(&m, 0x0040_0000, HIGH, URW | b);
        assert_eq!(
            m.translate(0x0040_0000, Access::Fetch, S),
            pf(0x0040_0000, rsvd | ERR_FETCH),
            "2 MiB PDE bit {bit}"
        );
        // Not present: the reserved bits do not matter.
        map4k(&m, 0x3000, HIGH, URW, (URW | b) & !P);
        assert_eq!(m.translate(0x3000, Access::Read, S), pf(0x3000, 0));
    }
    // Bit 35 is an address bit: no reserved fault (the frame is unbacked).
    map4k(&m, 0x3000, 1 << 35, URW, URW);
    assert_eq!(m.translate(0x3000, Access::Read, S), Ok(1 << 35));
    // Bits 20..13 of a 2 MiB PDE are reserved; bit 12 is PAT.
    for bit in 13..=20 {
        map2m(&m, 0x0040_0000, HIGH | 1 << bit, URW);
        assert_eq!(
            m.translate(0x0040_0000, Access::Read, S),
            pf(0x0040_0000, rsvd),
            "2 MiB PDE bit {bit}"
        );
    }
    map2m(&m, 0x0040_0000, HIGH | PAT_2M, URW);
    assert_eq!(m.translate(0x0040_0000, Access::Read, S), Ok(HIGH));
    // Nothing faulting was cached, and the reserved-bit walks set no A.
    assert_eq!(m.read_phys_u64(pte_addr(0x3000)).unwrap() & A, A); // from the bit-35 read
    assert_eq!(m.tlb_len(), 2);
}

#[test]
fn a_wider_maxphyaddr_frees_those_bits() {
    let m = build(PaeMachine::builder().maxphyaddr(40));
    map4k(&m, 0x3000, 1 << 39, URW, URW);
    assert_eq!(m.translate(0x3000, Access::Read, U), Ok(1 << 39));
    map4k(&m, 0x4000, 1 << 40, URW, URW);
    assert_eq!(
        m.translate(0x4000, Access::Read, U),
        pf(0x4000, ERR_PRESENT | ERR_RESERVED | ERR_USER)
    );
    // An unbacked frame reads as all ones and counts as unbacked.
    m.reset_stats();
    assert_eq!(m.read_u32(0x3000, U), Ok(u32::MAX));
    assert_eq!(m.stats().unbacked_accesses, 1);
    // MAXPHYADDR must lie in 32..=52.
    for bad in [31, 53] {
        assert_eq!(
            PaeMachine::builder()
                .maxphyaddr(bad)
                .ram(0, 4096)
                .build()
                .unwrap_err(),
            PaeConfigError::BadMaxPhyAddr(bad)
        );
    }
}

#[test]
fn a_present_pdpte_with_reserved_bits_fails_the_cr3_load() {
    let m = machine();
    map4k(&m, 0x3000, HIGH, URW, URW);
    let good = m.pdptes();
    let other = 0x9000u64; // a second PDPT
    for bit in [1, 2, 5, 6, 7, 8, 36, 52, 62, 63] {
        assert_eq!(m.translate(0x3000, Access::Read, U), Ok(HIGH));
        for i in 0..4 {
            m.write_phys_u64(other + 8 * i, pd(i) | P).unwrap();
        }
        let entry = pd(2) | P | 1 << bit;
        m.write_phys_u64(other + 16, entry).unwrap();
        assert_eq!(
            m.set_cr3(other as u32),
            Err(PdpteError { index: 2, entry }),
            "bit {bit}"
        );
        // #GP: nothing changed, the TLB kept its entry.
        assert_eq!((m.cr3(), m.pdptes()), (PDPT as u32, good));
        assert!(m.tlb_peek(0x3000).is_some());
        // The same bits in a not-present PDPTE do not matter.
        m.write_phys_u64(other + 16, (pd(2) | 1 << bit) & !P)
            .unwrap();
        m.set_cr3(other as u32).unwrap();
        assert_eq!(m.pdptes()[2] & P, 0);
        assert_eq!(
            m.translate(0x8000_0000, Access::Write, U),
            pf(0x8000_0000, ERR_WRITE | ERR_USER)
        );
        m.set_cr3(PDPT as u32).unwrap();
    }
    // PWT, PCD and the ignored bits 11..9 are allowed; CR3 bits 4..0 are
    // ignored (the PDPT is 32-byte aligned).
    m.write_phys_u64(other, pd(0) | P | 0x18 | 0xE00).unwrap();
    m.set_cr3(other as u32 | 0x1F).unwrap();
    assert_eq!(m.pdptes()[0], pd(0) | P | 0x18 | 0xE00);
    assert_eq!(m.translate(0x3000, Access::Read, U), Ok(HIGH));
    // A 32-byte aligned PDPT inside a page.
    for i in 0..4 {
        m.write_phys_u64(other + 0x20 + 8 * i, pd(i) | P).unwrap();
    }
    m.set_cr3(other as u32 + 0x20).unwrap();
    assert_eq!(m.pdptes(), good);
    // A PDPT outside RAM reads as all ones: #GP on PDPTE 0.
    assert_eq!(
        m.set_cr3(0xF000_0000),
        Err(PdpteError {
            index: 0,
            entry: u64::MAX
        })
    );
}

#[test]
fn not_present_at_each_level() {
    let m = machine();
    // PDPTE 3 not present.
    m.write_phys_u64(PDPT + 24, 0).unwrap();
    m.set_cr3(PDPT as u32).unwrap();
    let va = 0xC000_0000;
    map4k(&m, va, HIGH, URW, URW);
    assert_eq!(
        m.translate(va, Access::Write, U),
        pf(va, ERR_WRITE | ERR_USER)
    );
    // PDE not present.
    assert_eq!(
        m.translate(0x0020_0000, Access::Read, S),
        pf(0x0020_0000, 0)
    );
    // PTE not present (PDE present).
    map4k(&m, 0x3000, HIGH, URW, 0);
    assert_eq!(m.translate(0x3000, Access::Read, U), pf(0x3000, ERR_USER));
    assert_eq!(m.translate(0x4000, Access::Write, S), pf(0x4000, ERR_WRITE));
    // The PDE of the faulting walk got no A bit.
    assert_eq!(m.read_phys_u64(pde_addr(0x3000)).unwrap() & A, 0);
    assert_eq!(m.stats().faults, 4);
}

#[test]
fn walks_use_the_pdpte_registers_not_memory() {
    let m = machine();
    map4k(&m, 0x3000, HIGH, URW, URW);
    // Clearing PDPTE 0 in memory changes nothing until it is reloaded.
    m.write_phys_u64(PDPT, 0).unwrap();
    m.flush_tlb();
    assert_eq!(m.translate(0x3000, Access::Read, U), Ok(HIGH));
    m.load_pdptes().unwrap();
    assert_eq!(m.tlb_len(), 1, "load_pdptes alone does not flush");
    m.flush_tlb();
    assert_eq!(m.translate(0x3000, Access::Read, U), pf(0x3000, ERR_USER));
    // A CR3 load reloads them.
    m.write_phys_u64(PDPT, pd(0) | P).unwrap();
    m.set_cr3(PDPT as u32).unwrap();
    assert_eq!(m.translate(0x3000, Access::Read, U), Ok(HIGH));
    // Nor does the walk set anything in a PDPTE (no A bit there).
    assert_eq!(m.read_phys_u64(PDPT).unwrap(), pd(0) | P);
}

#[test]
fn the_tlb_serves_stale_frames_until_flushed_and_keeps_globals() {
    let m = machine();
    map4k(&m, 0x3000, HIGH + 0x1000, URW, URW | G);
    map4k(&m, 0x4000, HIGH + 0x2000, URW, URW);
    assert_eq!(m.translate(0x3000, Access::Read, U), Ok(HIGH + 0x1000));
    assert_eq!(m.translate(0x4000, Access::Read, U), Ok(HIGH + 0x2000));
    // Remap both: the TLB still gives the old frames.
    map4k(&m, 0x3000, HIGH + 0x5000, URW, URW | G);
    map4k(&m, 0x4000, HIGH + 0x6000, URW, URW);
    assert_eq!(m.translate(0x3000, Access::Read, U), Ok(HIGH + 0x1000));
    assert_eq!(m.translate(0x4000, Access::Read, U), Ok(HIGH + 0x2000));
    // A CR3 load drops the non-global one only.
    m.set_cr3(PDPT as u32).unwrap();
    assert_eq!(m.translate(0x3000, Access::Read, U), Ok(HIGH + 0x1000));
    assert_eq!(m.translate(0x4000, Access::Read, U), Ok(HIGH + 0x6000));
    m.invlpg(0x3000);
    assert_eq!(m.translate(0x3000, Access::Read, U), Ok(HIGH + 0x5000));
    // Toggling PGE drops globals too.
    map4k(&m, 0x3000, HIGH + 0x7000, URW, URW | G);
    m.set_pge(false);
    assert_eq!(m.translate(0x3000, Access::Read, U), Ok(HIGH + 0x7000));
    assert!(!m.tlb_peek(0x3000).unwrap().global);
    // A write through a clean cached entry walks to set D.
    m.reset_stats();
    m.write_u8(0x3000, 1, U).unwrap();
    assert_eq!(m.stats().walks, 1);
    assert_eq!(m.read_phys_u64(pte_addr(0x3000)).unwrap() & D, D);
    m.write_u8(0x3001, 1, U).unwrap();
    assert_eq!(m.stats().walks, 1);
}

#[test]
fn smep_and_smap_apply_as_in_classic_paging() {
    let m = build(PaeMachine::builder().smep(true).smap(true));
    map4k(&m, 0x3000, HIGH, URW, URW);
    map2m(&m, 0x0040_0000, HIGH, P | RW);
    assert_eq!(
        m.translate(0x3000, Access::Fetch, S),
        pf(0x3000, ERR_PRESENT | ERR_FETCH)
    );
    assert_eq!(
        m.translate(0x3000, Access::Read, S),
        pf(0x3000, ERR_PRESENT)
    );
    m.set_ac(true);
    assert_eq!(m.translate(0x3000, Access::Write, S), Ok(HIGH));
    assert_eq!(m.translate(0x3000, Access::Fetch, U), Ok(HIGH));
    assert_eq!(m.translate(0x0040_0000, Access::Fetch, S), Ok(HIGH));
    // Under SMEP alone (no NXE), fetch faults still say fetch.
    assert_eq!(
        m.translate(0x0080_0000, Access::Fetch, S),
        pf(0x0080_0000, ERR_FETCH)
    );
}

#[test]
fn accesses_crossing_pages_are_all_or_nothing() {
    let m = machine();
    map4k(&m, 0x3000, HIGH + 0x8000, URW, URW);
    map4k(&m, 0x4000, 0x9000, URW, P | US); // read-only, low RAM
    assert_eq!(
        m.write_u32(0x3FFE, 0xAABB_CCDD, U),
        Err(PageFault::new(0x4000, ERR_PRESENT | ERR_WRITE | ERR_USER))
    );
    assert_eq!(m.read_phys_u32(HIGH + 0x8FFC).unwrap(), 0);
    m.write_phys(HIGH + 0x8FFE, &[1, 2]).unwrap();
    m.write_phys(0x9000, &[3, 4]).unwrap();
    assert_eq!(m.read_u32(0x3FFE, U), Ok(0x0403_0201));
}

#[test]
fn bad_configurations_are_refused() {
    let b = PaeMachine::builder;
    assert_eq!(b().build().unwrap_err(), PaeConfigError::NoRam);
    assert_eq!(
        b().ram(0, 100).build().unwrap_err(),
        PaeConfigError::BadBank {
            base: 0,
            bytes: 100
        }
    );
    assert_eq!(
        b().ram(0x800, 4096).build().unwrap_err(),
        PaeConfigError::BadBank {
            base: 0x800,
            bytes: 4096
        }
    );
    assert_eq!(
        b().ram(0, 8192).ram(4096, 4096).build().unwrap_err(),
        PaeConfigError::BankOverlap {
            base: 4096,
            bytes: 4096
        }
    );
    // A 32-bit MAXPHYADDR has no room above 4 GiB.
    assert!(matches!(
        b().maxphyaddr(32).ram(HIGH, 4096).build(),
        Err(PaeConfigError::BankAboveMaxPhyAddr { .. })
    ));
    assert!(b().maxphyaddr(32).ram(HIGH - 4096, 4096).build().is_ok());
}

#[test]
fn a_reserved_bit_in_the_pde_wins_over_a_missing_pte() {
    let m = machine();
    map4k(&m, 0x3000, HIGH, URW | 1 << 40, 0);
    assert_eq!(
        m.translate(0x3000, Access::Read, U),
        pf(0x3000, ERR_PRESENT | ERR_RESERVED | ERR_USER)
    );
    // And over a rights violation in the PTE.
    map4k(&m, 0x3000, HIGH, URW, P | 1 << 50);
    assert_eq!(
        m.translate(0x3000, Access::Write, U),
        pf(0x3000, ERR_PRESENT | ERR_RESERVED | ERR_WRITE | ERR_USER)
    );
}

mod random_entries {
    //! Random PDE/PTE bits against a third, flat reading of the rules.
    use super::*;
    use proptest::prelude::*;

    /// Extra bits a PDE may carry without moving its page table: ignored
    /// bits and high reserved bits (and, for a 2 MiB PDE, PAT and the
    /// reserved bits 20..13). XD and P are drawn on their own.
    fn extra(ps: bool) -> impl Strategy<Value = u64> {
        let mut choices: Vec<u64> = vec![0, 9, 10, 11, 36, 50, 62];
        if ps {
            choices.extend(12..=20);
        }
        proptest::sample::subsequence(choices, 0..=2).prop_map(|v| {
            v.into_iter()
                .filter(|&b| b != 0)
                .fold(0u64, |acc, b| acc | 1 << b)
        })
    }

    fn access() -> impl Strategy<Value = (Access, Mode)> {
        (
            prop_oneof![Just(Access::Read), Just(Access::Write), Just(Access::Fetch)],
            prop_oneof![Just(U), Just(S)],
        )
    }

    /// The expected result, from the SDM's tables read flatly.
    #[allow(clippy::too_many_arguments)]
    fn oracle(
        pde: u64,
        pte: u64,
        nxe: bool,
        wp: bool,
        va: u32,
        access: Access,
        mode: Mode,
    ) -> Result<u64, u32> {
        let fetch = access == Access::Fetch;
        let mut code = 0;
        if access == Access::Write {
            code |= ERR_WRITE;
        }
        if mode == U {
            code |= ERR_USER;
        }
        if fetch && nxe {
            code |= ERR_FETCH;
        }
        let high_rsvd = (0x7FFF_FFF0u64 << 32) | if nxe { 0 } else { XD };
        if pde & P == 0 {
            return Err(code);
        }
        if pde & high_rsvd != 0 {
            return Err(code | ERR_PRESENT | ERR_RESERVED);
        }
        let (leaf_rights, xd, base, off) = if pde & PS != 0 {
            if pde & 0x1F_E000 != 0 {
                return Err(code | ERR_PRESENT | ERR_RESERVED);
            }
            (
                pde,
                pde & XD != 0,
                pde & 0xF_FFE0_0000,
                u64::from(va) & 0x1F_FFFF,
            )
        } else {
            if pte & P == 0 {
                return Err(code);
            }
            if pte & high_rsvd != 0 {
                return Err(code | ERR_PRESENT | ERR_RESERVED);
            }
            (
                pde & pte,
                (pde | pte) & XD != 0,
                pte & 0xF_FFFF_F000,
                u64::from(va) & 0xFFF,
            )
        };
        let user = leaf_rights & US != 0;
        let writable = leaf_rights & RW != 0;
        let ok = match (access, mode) {
            (_, Mode::User) if !user => false,
            (Access::Write, Mode::User) => writable,
            (Access::Write, Mode::Supervisor) => writable || !wp,
            _ => true,
        } && !(fetch && nxe && xd);
        if ok {
            Ok(base | off)
        } else {
            Err(code | ERR_PRESENT)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn walker_agrees_with_the_flat_reading(
            ps in any::<bool>(),
            pde_low in 0u64..0x80,
            pte_low in 0u64..0x200,
            pde_extra in extra(true),
            pte_extra in extra(false),
            pde_p in prop::bool::weighted(0.9),
            pte_p in prop::bool::weighted(0.9),
            pde_xd in any::<bool>(),
            pte_xd in any::<bool>(),
            nxe in any::<bool>(),
            wp in any::<bool>(),
            off in 0u32..0x20_0000,
            (access, mode) in access(),
        ) {
            let m = build(PaeMachine::builder().tlb_entries(0).nxe(nxe).wp(wp));
            let va = 0x4060_0000 | off;
            let bit = |on: bool, b: u64| if on { b } else { 0 };
            let pde_low = (pde_low & !P) | bit(pde_p, P) | bit(pde_xd, XD);
            let pde = if ps {
                (HIGH + 2 * MIB) | PS | pde_low | pde_extra
            } else {
                // Bits 20..12 are the table's address here: keep them out.
                pt_for(va) | (pde_low & !PS) | (pde_extra & !0x1F_F000)
            };
            let pte_low = (pte_low & !P) | bit(pte_p, P) | bit(pte_xd, XD);
            let pte = (HIGH + 0x5000) | pte_low | pte_extra;
            m.write_phys_u64(pde_addr(va), pde).unwrap();
            m.write_phys_u64(pte_addr(va), pte).unwrap();
            let want = oracle(pde, pte, nxe, wp, va, access, mode);
            let got = match m.translate(va, access, mode) {
                Ok(pa) => Ok(pa),
                Err(f) => {
                    prop_assert_eq!(f.cr2, va);
                    Err(f.error_code)
                }
            };
            prop_assert_eq!(got, want, "pde {:#x} pte {:#x}", pde, pte);
        }
    }
}
