//! Translation of 4 KiB and 4 MiB pages, Accessed/Dirty bits, accesses that
//! cross pages, linear wrap-around and unbacked physical addresses.

mod common;

use common::*;
use myos_sim::{Access, PageFault, SimMachine};

#[test]
fn translates_a_4k_page() {
    let m = machine();
    map4k(&m, PT0, 0x5000, DATA + 0x3000, P | RW | US, P | RW | US);
    assert_eq!(m.translate(0x5ABC, Access::Read, U), Ok(DATA + 0x3ABC));
    assert_eq!(m.translate(0x5000, Access::Write, S), Ok(DATA + 0x3000));
    assert_eq!(m.translate(0x5FFF, Access::Fetch, U), Ok(DATA + 0x3FFF));
    // Data goes to that frame and nowhere else.
    m.write_u32(0x5010, 0x1122_3344, U).unwrap();
    assert_eq!(
        m.read_phys_u32(u64::from(DATA) + 0x3010).unwrap(),
        0x1122_3344
    );
    m.write_phys(u64::from(DATA) + 0x3020, b"hello").unwrap();
    let mut buf = [0u8; 5];
    m.read_bytes(0x5020, &mut buf, U).unwrap();
    assert_eq!(&buf, b"hello");
    assert_eq!(m.read_u8(0x5013, S), Ok(0x11));
    assert_eq!(m.fetch(0x5012, U), Ok(0x22));
    // The neighbours are not mapped.
    assert_eq!(m.read_u8(0x4FFF, S), Err(PageFault::new(0x4FFF, 0)));
    assert_eq!(m.read_u8(0x6000, S), Err(PageFault::new(0x6000, 0)));
}

#[test]
fn translates_a_4m_page() {
    let m = machine();
    set_pde(&m, PD, 0x0040_0000, 0x0080_0000 | P | RW | US | PS);
    assert_eq!(m.translate(0x0040_0000, Access::Read, U), Ok(0x0080_0000));
    assert_eq!(m.translate(0x0051_2345, Access::Write, U), Ok(0x0091_2345));
    assert_eq!(m.translate(0x007F_FFFF, Access::Read, U), Ok(0x00BF_FFFF));
    m.write_u32(0x0051_2344, 0xCAFE_F00D, U).unwrap();
    assert_eq!(m.read_phys_u32(0x0091_2344).unwrap(), 0xCAFE_F00D);
    let e = m
        .tlb_peek(0x0060_0000)
        .expect("one entry covers the whole 4 MiB page");
    assert!(e.large && e.user && e.writable);
    assert_eq!(e.phys, 0x00A0_0000);
    assert_eq!(m.tlb_len(), 1);
}

#[test]
fn pse_off_walks_a_ps_pde_as_a_page_table() {
    let m = SimMachine::builder(16 << 20).pse(false).build().unwrap();
    m.set_cr3(PD);
    set_pde(&m, PD, 0x0040_0000, 0x0080_0000 | P | RW | US | PS);
    // 0x0080_0000 is now a page table; its entry 3 maps page 0x0040_3000.
    set_pte(&m, 0x0080_0000, 0x0040_3000, DATA | P | RW | US);
    assert_eq!(m.translate(0x0040_3456, Access::Read, U), Ok(DATA + 0x456));
    assert_eq!(
        m.read_u8(0x0040_4000, U),
        Err(PageFault::new(0x0040_4000, 0x4))
    );
    // Turning PSE on changes the meaning (and flushes the TLB).
    m.set_pse(true);
    assert_eq!(m.translate(0x0040_3456, Access::Read, U), Ok(0x0080_3456));
}

#[test]
fn accessed_and_dirty_bits_4k() {
    let m = machine();
    map4k(&m, PT0, 0x5000, DATA, P | RW | US, P | RW | US);
    m.read_u8(0x5000, U).unwrap();
    assert_eq!(pde(&m, PD, 0x5000), PT0 | P | RW | US | A);
    assert_eq!(pte(&m, PT0, 0x5000), DATA | P | RW | US | A);
    m.write_u8(0x5000, 1, U).unwrap();
    assert_eq!(
        pde(&m, PD, 0x5000),
        PT0 | P | RW | US | A,
        "D is never set in a PDE of a table"
    );
    assert_eq!(pte(&m, PT0, 0x5000), DATA | P | RW | US | A | D);
    // A write as the first access sets both at once; fetches set A only.
    map4k(&m, PT0, 0x6000, DATA, P | RW | US, P | RW | US);
    map4k(&m, PT0, 0x7000, DATA, P | RW | US, P | RW | US);
    m.write_u8(0x6000, 1, S).unwrap();
    m.fetch(0x7000, U).unwrap();
    assert_eq!(pte(&m, PT0, 0x6000), DATA | P | RW | US | A | D);
    assert_eq!(pte(&m, PT0, 0x7000), DATA | P | RW | US | A);
    // A faulting access sets nothing.
    map4k(&m, PT0, 0x8000, DATA, P | RW | US, P | US);
    set_pde(&m, PD, 0x8000, PT0 | P | RW | US); // clear the PDE's A bit
    assert!(m.write_u8(0x8000, 1, U).is_err());
    assert_eq!(pte(&m, PT0, 0x8000), DATA | P | US);
    assert_eq!(pde(&m, PD, 0x8000), PT0 | P | RW | US);
}

#[test]
fn accessed_and_dirty_bits_4m() {
    let m = machine();
    let pde0 = 0x0080_0000 | P | RW | US | PS;
    set_pde(&m, PD, 0x0040_0000, pde0);
    m.read_u32(0x0040_0000, U).unwrap();
    assert_eq!(pde(&m, PD, 0x0040_0000), pde0 | A);
    m.write_u32(0x0040_0000, 5, U).unwrap();
    assert_eq!(pde(&m, PD, 0x0040_0000), pde0 | A | D);
}

#[test]
fn a_and_d_already_set_are_left_alone() {
    let m = machine();
    map4k(
        &m,
        PT0,
        0x5000,
        DATA,
        P | RW | US | A,
        P | RW | US | A | D | G,
    );
    m.write_u8(0x5000, 1, U).unwrap();
    assert_eq!(pte(&m, PT0, 0x5000), DATA | P | RW | US | A | D | G);
    assert_eq!(pde(&m, PD, 0x5000), PT0 | P | RW | US | A);
}

#[test]
fn u32_access_across_a_page_boundary() {
    let m = machine();
    // Pages 5 and 6 map to frames that are not adjacent, in reverse order.
    map4k(&m, PT0, 0x5000, DATA + 0x7000, P | RW | US, P | RW | US);
    set_pte(&m, PT0, 0x6000, (DATA + 0x2000) | P | RW | US);
    m.write_u32(0x5FFE, 0xA1B2_C3D4, U).unwrap();
    let mut lo = [0u8; 2];
    let mut hi = [0u8; 2];
    m.read_phys(u64::from(DATA) + 0x7FFE, &mut lo).unwrap();
    m.read_phys(u64::from(DATA) + 0x2000, &mut hi).unwrap();
    assert_eq!((lo, hi), ([0xD4, 0xC3], [0xB2, 0xA1]));
    assert_eq!(m.read_u32(0x5FFE, S), Ok(0xA1B2_C3D4));
    assert_eq!(m.read_u32(0x5FFD, S), Ok(0xB2C3_D400));
}

#[test]
fn u32_access_faulting_on_the_second_page_is_all_or_nothing() {
    let m = machine();
    map4k(&m, PT0, 0x5000, DATA, P | RW | US, P | RW | US);
    set_pte(&m, PT0, 0x6000, (DATA + 0x1000) | P | US); // read-only
                                                        // Second page not present: CR2 is its first byte.
    assert_eq!(m.read_u32(0x6FFD, U), Err(PageFault::new(0x7000, 0x4)));
    // Second page read-only: nothing is written on the first page.
    assert_eq!(
        m.write_u32(0x5FFE, 0xFFFF_FFFF, U),
        Err(PageFault::new(0x6000, 0x7))
    );
    assert_eq!(m.read_phys_u32(u64::from(DATA) + 0xFFC).unwrap(), 0);
    // First page faulting is reported at the access address.
    set_pte(&m, PT0, 0x5000, 0);
    m.invlpg(0x5000);
    assert_eq!(m.read_u32(0x5FFE, U), Err(PageFault::new(0x5FFE, 0x4)));
}

#[test]
fn bytes_across_several_pages() {
    let m = machine();
    for (i, va) in [0x5000u32, 0x6000, 0x7000].into_iter().enumerate() {
        // Frames in scrambled order.
        let frame = DATA + 0x1000 * [4u32, 1, 9][i];
        map4k(&m, PT0, va, frame, P | RW | US, P | RW | US);
    }
    let data: Vec<u8> = (0..8000u32).map(|i| (i % 251) as u8).collect();
    m.write_bytes(0x5100, &data, U).unwrap();
    let mut back = vec![0u8; data.len()];
    m.read_bytes(0x5100, &mut back, U).unwrap();
    assert_eq!(back, data);
    // Spot-check where the pieces landed physically.
    let mut b = [0u8; 1];
    m.read_phys(u64::from(DATA) + 0x4100, &mut b).unwrap();
    assert_eq!(b[0], data[0]);
    m.read_phys(u64::from(DATA) + 0x1000, &mut b).unwrap();
    assert_eq!(b[0], data[0xF00]);
    m.read_phys(u64::from(DATA) + 0x9000, &mut b).unwrap();
    assert_eq!(b[0], data[0x1F00]);
    // Nothing past the end was written (the data ends at 0x7040).
    m.read_phys(u64::from(DATA) + 0x9040, &mut b).unwrap();
    assert_eq!(b[0], 0);
    // An empty access touches nothing, even unmapped.
    m.read_bytes(0x9999_0000, &mut [], U).unwrap();
    m.write_bytes(0x9999_0000, &[], U).unwrap();
}

#[test]
fn write_bytes_fault_midway_reports_the_page_and_keeps_earlier_bytes() {
    let m = machine();
    map4k(&m, PT0, 0x5000, DATA, P | RW | US, P | RW | US);
    map4k(&m, PT0, 0x6000, DATA + 0x1000, P | RW | US, P | RW | US);
    // 0x7000 is not mapped.
    let data = [0xEEu8; 0x2100];
    assert_eq!(
        m.write_bytes(0x5F00, &data, U),
        Err(PageFault::new(0x7000, ERR_USER_WRITE))
    );
    let mut first = [0u8; 0x100];
    m.read_phys(u64::from(DATA) + 0xF00, &mut first).unwrap();
    assert_eq!(first, [0xEE; 0x100], "the first page's bytes were written");
    let mut second = [0u8; 0x1000];
    m.read_phys(u64::from(DATA) + 0x1000, &mut second).unwrap();
    assert_eq!(
        second, [0xEE; 0x1000],
        "the second page's bytes were written"
    );
    // read_bytes: the buffer holds the bytes before the fault, the rest untouched.
    let mut buf = [0x11u8; 0x1200];
    assert_eq!(
        m.read_bytes(0x6F00, &mut buf, U),
        Err(PageFault::new(0x7000, 0x4))
    );
    assert_eq!(&buf[..0x100], &[0xEE; 0x100][..]);
    assert!(buf[0x100..].iter().all(|&b| b == 0x11));
}

const ERR_USER_WRITE: u32 = myos_sim::err::ERR_USER | myos_sim::err::ERR_WRITE;

#[test]
fn linear_addresses_wrap_at_4_gib() {
    let m = machine();
    set_pde(&m, PD, 0xFFC0_0000, 0x00C0_0000 | P | RW | PS);
    set_pde(&m, PD, 0, 0x0080_0000 | P | RW | PS);
    m.write_u32(0xFFFF_FFFE, 0x0403_0201, S).unwrap();
    assert_eq!(m.read_phys_u32(0x00FF_FFFC).unwrap() >> 16, 0x0201);
    assert_eq!(m.read_phys_u32(0x0080_0000).unwrap() & 0xFFFF, 0x0403);
    assert_eq!(m.read_u32(0xFFFF_FFFE, S), Ok(0x0403_0201));
}

#[test]
fn unbacked_physical_addresses_read_as_ones_and_drop_writes() {
    let m = machine(); // 16 MiB of RAM
    map4k(&m, PT0, 0x5000, 0x4000_0000, P | RW | US, P | RW | US);
    assert_eq!(m.read_u32(0x5000, U), Ok(0xFFFF_FFFF));
    m.write_u32(0x5000, 0, U).unwrap();
    assert_eq!(m.read_u32(0x5000, U), Ok(0xFFFF_FFFF));
    assert_eq!(m.stats().unbacked_accesses, 3);
    // A directory outside RAM reads as all ones: present, PS, reserved bits set.
    m.set_cr3(0x8000_0000);
    let f = m.read_u8(0x5000, S).unwrap_err();
    assert_eq!(f, PageFault::new(0x5000, 0x9));
}
