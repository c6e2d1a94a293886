//! Every page-fault kind, with its exact CR2 and error code.

mod common;

use common::*;
use myos_sim::err::{ERR_FETCH, ERR_PRESENT, ERR_RESERVED, ERR_USER, ERR_WRITE};
use myos_sim::{mmu::bits, Access, Mode, PageFault, SimMachine};

const ALL_ACCESSES: [(Access, Mode); 6] = [
    (Access::Read, Mode::Supervisor),
    (Access::Write, Mode::Supervisor),
    (Access::Fetch, Mode::Supervisor),
    (Access::Read, Mode::User),
    (Access::Write, Mode::User),
    (Access::Fetch, Mode::User),
];

/// The W/U/I-D bits of a fault: the fetch bit only under CR4.SMEP, as the
/// SDM specifies for classic paging (no PAE, so no NXE).
fn code_bits(access: Access, mode: Mode, smep: bool) -> u32 {
    let a = match access {
        Access::Read => 0,
        Access::Write => ERR_WRITE,
        Access::Fetch if smep => ERR_FETCH,
        Access::Fetch => 0,
    };
    a | if mode == Mode::User { ERR_USER } else { 0 }
}

/// Clears the fetch bit of an expected code when SMEP is off.
fn without_fetch(code: u32, smep: bool) -> u32 {
    if smep {
        code
    } else {
        code & !ERR_FETCH
    }
}

fn fault(m: &SimMachine, va: u32, access: Access, mode: Mode) -> PageFault {
    match m.translate(va, access, mode) {
        Ok(pa) => panic!("{access:?}/{mode:?} at {va:#x} translated to {pa:#x}, expected a fault"),
        Err(f) => f,
    }
}

#[test]
fn sim_bits_are_the_sdm_bits() {
    assert_eq!(
        [
            bits::P,
            bits::RW,
            bits::US,
            bits::PWT,
            bits::PCD,
            bits::A,
            bits::D,
            bits::PS,
            bits::G
        ],
        [0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100]
    );
    assert_eq!(bits::PDE_4M_RESERVED, 0x003F_E000);
}

#[test]
fn not_present_pte_every_access_kind() {
    for smep in [false, true] {
        let m = machine();
        m.set_smep(smep);
        set_pde(&m, PD, 0x2000, PT0 | P | RW | US);
        // P clear, every other bit set: still "not present".
        set_pte(&m, PT0, 0x2000, DATA | RW | US | A | D);
        let expected = [0x0, 0x2, 0x10, 0x4, 0x6, 0x14];
        for ((access, mode), code) in ALL_ACCESSES.into_iter().zip(expected) {
            let f = fault(&m, 0x2ABC, access, mode);
            let code = without_fetch(code, smep);
            assert_eq!(f, PageFault::new(0x2ABC, code), "{access:?} {mode:?}");
            assert!(f.is_not_present());
            // Without SMEP a fetch fault looks like a read, as on hardware.
            let seen = if access == Access::Fetch && !smep {
                Access::Read
            } else {
                access
            };
            assert_eq!((f.access(), f.mode()), (seen, mode));
        }
        // The PTE is untouched by faulting walks, and so is the PDE's A bit.
        assert_eq!(pte(&m, PT0, 0x2000), DATA | RW | US | A | D);
        assert_eq!(pde(&m, PD, 0x2000), PT0 | P | RW | US);
        assert_eq!(m.stats().faults, 6);
    }
}

#[test]
fn not_present_pde_every_access_kind() {
    let m = machine();
    // PDE 2 (0x0080_0000..) is zero; PDE 3 has everything but P.
    set_pde(&m, PD, 0x00C0_0000, PT0 | RW | US | PS);
    for smep in [false, true] {
        m.set_smep(smep);
        for va in [0x0080_0000, 0x0080_0FFF, 0x00C1_2345] {
            for (access, mode) in ALL_ACCESSES {
                let f = fault(&m, va, access, mode);
                assert_eq!(
                    f,
                    PageFault::new(va, code_bits(access, mode, smep)),
                    "{va:#x} {access:?} {mode:?} smep {smep}"
                );
            }
        }
    }
    m.set_smep(false);
    assert_eq!(
        m.fetch(0x0080_0001, U),
        Err(PageFault::new(0x0080_0001, ERR_USER)),
        "no SMEP: no I/D bit"
    );
    m.set_smep(true);
    // Through the byte API too.
    assert_eq!(
        m.read_u8(0x0080_0001, U),
        Err(PageFault::new(0x0080_0001, ERR_USER))
    );
    assert_eq!(
        m.write_u8(0x0080_0001, 1, S),
        Err(PageFault::new(0x0080_0001, ERR_WRITE))
    );
    assert_eq!(
        m.fetch(0x0080_0001, U),
        Err(PageFault::new(0x0080_0001, ERR_FETCH | ERR_USER))
    );
}

#[test]
fn user_write_to_read_only_pte() {
    let m = machine();
    map4k(&m, PT0, 0x3000, DATA, P | RW | US, P | US);
    assert_eq!(m.write_u8(0x3004, 7, U), Err(PageFault::new(0x3004, 0x7)));
    assert_eq!(
        m.write_u8(0x3004, 7, U).unwrap_err().error_code,
        ERR_PRESENT | ERR_WRITE | ERR_USER
    );
    // Reads and fetches are fine (no NX without PAE: a fetch needs only read).
    assert_eq!(m.read_u8(0x3004, U), Ok(0));
    assert_eq!(m.fetch(0x3004, U), Ok(0));
    assert_eq!(
        m.read_phys_u32(u64::from(DATA)).unwrap(),
        0,
        "nothing was written"
    );
}

#[test]
fn user_write_to_read_only_pde() {
    let m = machine();
    // The PTE allows writes, the PDE does not: the effective right is the AND.
    map4k(&m, PT0, 0x3000, DATA, P | US, P | RW | US);
    assert_eq!(m.write_u32(0x3000, 1, U), Err(PageFault::new(0x3000, 0x7)));
    assert_eq!(m.read_u32(0x3000, U), Ok(0));
}

#[test]
fn supervisor_write_to_read_only_faults_with_wp_and_succeeds_without() {
    let m = machine();
    assert!(m.wp(), "CR0.WP defaults to on");
    map4k(&m, PT0, 0x3000, DATA, P | RW, P);
    map4k(&m, PT0, 0x4000, DATA + 0x1000, P, P | RW);
    for va in [0x3010, 0x4010] {
        assert_eq!(
            m.write_u32(va, 0xAA55, S),
            Err(PageFault::new(va, ERR_PRESENT | ERR_WRITE))
        );
    }
    m.set_wp(false);
    m.write_u32(0x3010, 0xAA55, S).unwrap();
    m.write_u32(0x4010, 0x55AA, S).unwrap();
    assert_eq!(m.read_phys_u32(u64::from(DATA) + 0x10).unwrap(), 0xAA55);
    assert_eq!(m.read_phys_u32(u64::from(DATA) + 0x1010).unwrap(), 0x55AA);
    assert_eq!(pte(&m, PT0, 0x3000), DATA | P | A | D, "D set by the write");
    // WP does not help user mode.
    map4k(&m, PT0, 0x5000, DATA, P | RW | US, P | US);
    assert_eq!(m.write_u8(0x5000, 1, U), Err(PageFault::new(0x5000, 0x7)));
    // WP is checked at access time, also against cached entries.
    m.set_wp(true);
    assert_eq!(m.write_u32(0x3010, 1, S), Err(PageFault::new(0x3010, 0x3)));
}

#[test]
fn supervisor_write_to_read_only_with_wp_off_via_builder() {
    let m = SimMachine::builder(16 << 20).wp(false).build().unwrap();
    m.set_cr3(PD);
    map4k(&m, PT0, 0x3000, DATA, P | US, P | US);
    assert!(!m.wp());
    assert_eq!(m.write_u8(0x3000, 9, S), Ok(()));
    assert_eq!(m.read_u8(0x3000, U), Ok(9));
}

#[test]
fn user_access_to_supervisor_pte() {
    let m = machine();
    map4k(&m, PT0, 0x6000, DATA, P | RW | US, P | RW);
    assert_eq!(
        fault(&m, 0x6123, Access::Read, U),
        PageFault::new(0x6123, 0x5)
    );
    assert_eq!(
        fault(&m, 0x6123, Access::Write, U),
        PageFault::new(0x6123, 0x7)
    );
    assert_eq!(
        fault(&m, 0x6123, Access::Fetch, U),
        PageFault::new(0x6123, 0x5),
        "no SMEP: a fetch fault reports as a read"
    );
    m.set_smep(true);
    assert_eq!(
        fault(&m, 0x6123, Access::Fetch, U),
        PageFault::new(0x6123, 0x15)
    );
    // A supervisor page: SMEP and SMAP do not apply.
    m.set_smap(true);
    assert_eq!(m.translate(0x6123, Access::Write, S), Ok(DATA + 0x123));
    assert_eq!(m.translate(0x6123, Access::Fetch, S), Ok(DATA + 0x123));
}

#[test]
fn user_access_to_supervisor_pde() {
    let m = machine();
    map4k(&m, PT0, 0x6000, DATA, P | RW, P | RW | US);
    assert_eq!(
        fault(&m, 0x6FFF, Access::Read, U),
        PageFault::new(0x6FFF, 0x5)
    );
    assert_eq!(
        fault(&m, 0x6FFF, Access::Write, U),
        PageFault::new(0x6FFF, 0x7)
    );
    assert_eq!(m.translate(0x6FFF, Access::Read, S), Ok(DATA + 0xFFF));
}

#[test]
fn four_mib_page_rights() {
    let m = machine();
    set_pde(&m, PD, 0x0040_0000, 0x0080_0000 | P | PS); // supervisor, read-only
    set_pde(&m, PD, 0x0080_0000, 0x00C0_0000 | P | US | PS); // user, read-only
    assert_eq!(
        fault(&m, 0x0040_0010, Access::Read, U),
        PageFault::new(0x0040_0010, 0x5)
    );
    assert_eq!(
        fault(&m, 0x0040_0010, Access::Write, S),
        PageFault::new(0x0040_0010, 0x3)
    );
    assert_eq!(
        fault(&m, 0x0080_0010, Access::Write, U),
        PageFault::new(0x0080_0010, 0x7)
    );
    assert_eq!(m.translate(0x0080_0010, Access::Fetch, U), Ok(0x00C0_0010));
}

#[test]
fn reserved_bits_in_a_4mib_pde() {
    for bit in 13..=21 {
        let m = machine();
        let va = 0x0040_1234;
        set_pde(&m, PD, va, 0x0080_0000 | (1 << bit) | P | PS); // supervisor, read-only
        let expected = [0x9, 0xB, 0x19, 0xD, 0xF, 0x1D];
        for smep in [false, true] {
            m.set_smep(smep);
            for ((access, mode), code) in ALL_ACCESSES.into_iter().zip(expected) {
                let f = fault(&m, va, access, mode);
                let code = without_fetch(code, smep);
                assert_eq!(f, PageFault::new(va, code), "bit {bit} {access:?} {mode:?}");
                assert!(f.is_reserved() && f.is_protection());
                assert_eq!(
                    f.error_code,
                    ERR_RESERVED | ERR_PRESENT | code_bits(access, mode, smep)
                );
            }
        }
        assert_eq!(pde(&m, PD, va) & A, 0, "no A bit on a reserved-bit fault");
    }
}

#[test]
fn bits_outside_the_reserved_range_do_not_fault() {
    let m = machine();
    // Bit 12 is PAT in a 4 MiB PDE, bits 9..11 are for software.
    set_pde(
        &m,
        PD,
        0x0040_0000,
        0x0080_0000 | 0x1000 | 0xE00 | P | RW | US | PS,
    );
    assert_eq!(m.translate(0x0040_0004, Access::Read, U), Ok(0x0080_0004));
}

#[test]
fn reserved_bits_are_address_bits_without_pse() {
    // With CR4.PSE off, PS is ignored: the PDE points to a page table and
    // bits 13..21 are part of its address.
    let m = SimMachine::builder(16 << 20).pse(false).build().unwrap();
    m.set_cr3(PD);
    let table = 0x0030_2000; // bits 13 and 21 set
    set_pde(&m, PD, 0x0040_0000, table | P | RW | US | PS);
    set_pte(&m, table, 0x0040_0000, DATA | P | RW | US);
    assert_eq!(m.translate(0x0040_0004, Access::Read, U), Ok(DATA + 4));
}

#[test]
fn cr2_is_the_exact_faulting_address() {
    let m = machine();
    for va in [0x0, 0x1, 0xFFF, 0x1234_5678, 0xBFFF_FFFF, 0xFFFF_FFFF] {
        assert_eq!(m.read_u8(va, S).unwrap_err().cr2, va);
    }
}

#[test]
fn faults_are_not_cached() {
    let m = machine();
    set_pde(&m, PD, 0x7000, PT0 | P | RW | US);
    assert_eq!(m.read_u8(0x7000, U), Err(PageFault::new(0x7000, ERR_USER)));
    assert_eq!(m.tlb_len(), 0);
    // Mapping the page needs no flush: the fault left nothing behind.
    set_pte(&m, PT0, 0x7000, DATA | P | RW | US);
    assert_eq!(m.read_u8(0x7000, U), Ok(0));
    let s = m.stats();
    assert_eq!((s.faults, s.tlb_misses, s.walks, s.tlb_hits), (1, 2, 2, 0));
}

#[test]
fn smep_faults_supervisor_fetches_from_user_pages() {
    let m = machine();
    map4k(&m, PT0, 0x6000, DATA, P | RW | US, P | RW | US);
    // Without SMEP ring 0 may run user code (classic i386).
    assert_eq!(m.translate(0x6010, Access::Fetch, S), Ok(DATA + 0x10));
    m.set_smep(true);
    // Cached or walked, the fetch faults: present, supervisor, I/D.
    for _ in 0..2 {
        assert_eq!(
            fault(&m, 0x6010, Access::Fetch, S),
            PageFault::new(0x6010, ERR_PRESENT | ERR_FETCH)
        );
    }
    // Data accesses and user fetches are untouched by SMEP.
    assert_eq!(m.translate(0x6010, Access::Write, S), Ok(DATA + 0x10));
    assert_eq!(m.translate(0x6010, Access::Fetch, U), Ok(DATA + 0x10));
    // A user PTE under a supervisor PDE is not a user-mode address.
    map4k(&m, PT0, 0x7000, DATA, P | RW | US, P | RW | US);
    set_pde(&m, PD, 0x0040_0000, 0x0080_0000 | P | RW | PS);
    assert_eq!(m.translate(0x0040_0010, Access::Fetch, S), Ok(0x0080_0010));
    set_pde(&m, PD, 0x0080_0000, 0x00C0_0000 | P | RW | US | PS);
    assert_eq!(
        fault(&m, 0x0080_0010, Access::Fetch, S),
        PageFault::new(0x0080_0010, ERR_PRESENT | ERR_FETCH)
    );
}

#[test]
fn smap_faults_supervisor_data_accesses_unless_ac() {
    let m = machine();
    map4k(&m, PT0, 0x6000, DATA, P | RW | US, P | RW | US);
    assert_eq!(m.write_u8(0x6001, 5, S), Ok(()), "no SMAP: allowed");
    m.set_smap(true);
    assert!(!m.ac(), "AC starts clear");
    assert_eq!(
        m.read_u8(0x6001, S),
        Err(PageFault::new(0x6001, ERR_PRESENT))
    );
    assert_eq!(
        m.write_u8(0x6001, 6, S),
        Err(PageFault::new(0x6001, ERR_PRESENT | ERR_WRITE))
    );
    // SMAP does not cover fetches (that is SMEP's job) nor user accesses.
    assert_eq!(m.fetch(0x6001, S), Ok(5));
    assert_eq!(m.read_u8(0x6001, U), Ok(5));
    // stac: explicit supervisor accesses are allowed again; clac: not.
    m.set_ac(true);
    assert_eq!(m.write_u8(0x6001, 7, S), Ok(()));
    assert_eq!(m.read_u8(0x6001, S), Ok(7));
    m.set_ac(false);
    assert_eq!(
        m.read_u8(0x6001, S),
        Err(PageFault::new(0x6001, ERR_PRESENT))
    );
    // A not-present user page faults as not present (SMAP needs a translation).
    assert_eq!(
        m.read_u8(0x0080_0000, S),
        Err(PageFault::new(0x0080_0000, 0))
    );
    // AC in user mode changes nothing for SMAP.
    m.set_ac(true);
    assert_eq!(m.read_u8(0x6001, U), Ok(7));
}
