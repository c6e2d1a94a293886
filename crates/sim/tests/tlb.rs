//! The TLB model: stale translations until invlpg / CR3 load, global pages,
//! FIFO eviction, the dirty re-walk and the counters.

mod common;

use common::*;
use myos_mm::{Page, Platform, VirtAddr};
use myos_sim::{Access, PageFault, SimMachine, SimStats, DEFAULT_TLB_ENTRIES};

fn page(va: u32) -> Page {
    VirtAddr::new(va).page()
}

/// Two frames with distinct contents: OLD holds 0x11s, NEW holds 0x22s.
const OLD: u32 = DATA;
const NEW: u32 = DATA + 0x1000;

fn machine_with_two_frames() -> SimMachine {
    let m = machine();
    fill_frame(&m, OLD, 0x11);
    fill_frame(&m, NEW, 0x22);
    m
}

#[test]
fn a_missing_flush_is_observed_as_a_stale_translation() {
    let m = machine_with_two_frames();
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US);
    assert_eq!(m.read_u8(0x5000, U), Ok(0x11));
    // Remap without a flush: the CPU still uses the cached translation.
    set_pte(&m, PT0, 0x5000, NEW | P | RW | US);
    assert_eq!(m.read_u8(0x5000, U), Ok(0x11), "stale");
    assert_eq!(m.translate(0x5000, Access::Read, U), Ok(OLD));
    m.flush(page(0x5000));
    assert_eq!(m.read_u8(0x5000, U), Ok(0x22), "fresh after invlpg");
    assert_eq!(m.stats().invlpgs, 1);
}

#[test]
fn unmap_without_flush_still_reads_and_flush_makes_it_fault() {
    let m = machine_with_two_frames();
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US);
    m.read_u8(0x5000, U).unwrap();
    set_pte(&m, PT0, 0x5000, 0);
    assert_eq!(m.read_u8(0x5000, U), Ok(0x11), "stale");
    m.flush_all();
    assert_eq!(m.read_u8(0x5000, U), Err(PageFault::new(0x5000, 0x4)));
}

#[test]
fn invlpg_only_drops_the_one_page() {
    let m = machine_with_two_frames();
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US);
    set_pte(&m, PT0, 0x6000, OLD | P | RW | US);
    m.read_u8(0x5000, U).unwrap();
    m.read_u8(0x6000, U).unwrap();
    set_pte(&m, PT0, 0x5000, NEW | P | RW | US);
    set_pte(&m, PT0, 0x6000, NEW | P | RW | US);
    m.invlpg(0x5FFF); // any address in the page
    assert_eq!(m.read_u8(0x5000, U), Ok(0x22));
    assert_eq!(m.read_u8(0x6000, U), Ok(0x11), "0x6000 still stale");
}

#[test]
fn downgrade_without_flush_keeps_write_access_through_a_dirty_entry() {
    let m = machine_with_two_frames();
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US);
    m.write_u8(0x5000, 0x33, U).unwrap(); // cached dirty + writable
    set_pte(&m, PT0, 0x5000, OLD | P | US | A | D); // read-only now, no flush
    assert_eq!(
        m.write_u8(0x5001, 0x44, U),
        Ok(()),
        "stale write permission"
    );
    m.invlpg(0x5000);
    assert_eq!(
        m.write_u8(0x5002, 0x55, U),
        Err(PageFault::new(0x5002, 0x7))
    );
    assert_eq!(m.read_phys_u32(u64::from(OLD)).unwrap(), 0x1111_4433);
}

#[test]
fn a_write_through_a_clean_entry_walks_to_set_dirty() {
    let m = machine_with_two_frames();
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US);
    m.read_u8(0x5000, U).unwrap(); // cached, not dirty
    assert!(!m.tlb_peek(0x5000).unwrap().dirty);
    m.write_u8(0x5000, 1, U).unwrap();
    assert_eq!(pte(&m, PT0, 0x5000), OLD | P | RW | US | A | D);
    assert!(m.tlb_peek(0x5000).unwrap().dirty);
    m.write_u8(0x5000, 2, U).unwrap(); // dirty entry: no walk
    let s = m.stats();
    assert_eq!((s.tlb_misses, s.tlb_hits, s.walks), (1, 2, 2));

    // Because that write re-walks, it sees a downgrade made without a flush.
    map4k(&m, PT0, 0x6000, OLD, P | RW | US, P | RW | US);
    m.read_u8(0x6000, U).unwrap();
    set_pte(&m, PT0, 0x6000, OLD | P | US | A);
    assert_eq!(m.write_u8(0x6000, 1, U), Err(PageFault::new(0x6000, 0x7)));
    // The walk also sees a remap: the write lands in the new frame.
    map4k(&m, PT0, 0x7000, OLD, P | RW | US, P | RW | US);
    m.read_u8(0x7000, U).unwrap();
    set_pte(&m, PT0, 0x7000, NEW | P | RW | US);
    m.write_u8(0x7000, 0x99, U).unwrap();
    let mut b = [0u8; 1];
    m.read_phys(u64::from(NEW), &mut b).unwrap();
    assert_eq!(b[0], 0x99);
}

#[test]
fn a_dirty_bit_cleared_without_flush_is_not_set_again() {
    let m = machine();
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US);
    m.write_u8(0x5000, 1, U).unwrap();
    set_pte(&m, PT0, 0x5000, OLD | P | RW | US | A); // clear D, forget the flush
    m.write_u8(0x5000, 2, U).unwrap();
    assert_eq!(
        pte(&m, PT0, 0x5000) & D,
        0,
        "the TLB still believed the page dirty"
    );
    m.invlpg(0x5000);
    m.write_u8(0x5000, 3, U).unwrap();
    assert_eq!(pte(&m, PT0, 0x5000) & D, D);
}

#[test]
fn a_stale_read_only_entry_gives_a_spurious_fault_that_drops_it() {
    let m = machine();
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | US);
    m.read_u8(0x5000, U).unwrap(); // cached read-only
    set_pte(&m, PT0, 0x5000, OLD | P | RW | US | A); // upgrade, no flush
    assert_eq!(
        m.write_u8(0x5000, 7, U),
        Err(PageFault::new(0x5000, 0x7)),
        "spurious"
    );
    assert!(
        m.tlb_peek(0x5000).is_none(),
        "the fault invalidated the entry"
    );
    assert_eq!(
        m.write_u8(0x5000, 7, U),
        Ok(()),
        "the retry walks and succeeds"
    );
}

#[test]
fn cr3_load_drops_non_global_and_keeps_global_entries() {
    let m = machine_with_two_frames();
    assert!(m.pge());
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US | G);
    set_pte(&m, PT0, 0x6000, OLD | P | RW | US);
    m.read_u8(0x5000, S).unwrap();
    m.read_u8(0x6000, S).unwrap();
    assert!(m.tlb_peek(0x5000).unwrap().global);
    assert!(!m.tlb_peek(0x6000).unwrap().global);
    set_pte(&m, PT0, 0x5000, NEW | P | RW | US | G);
    set_pte(&m, PT0, 0x6000, NEW | P | RW | US);
    // SAFETY: the sim has no code to run; any root is acceptable.
    unsafe { m.set_root(m.root()) };
    assert_eq!(
        m.read_u8(0x5000, S),
        Ok(0x11),
        "global entry survives CR3 load"
    );
    assert_eq!(m.read_u8(0x6000, S), Ok(0x22), "non-global entry dropped");
    m.flush_all();
    assert_eq!(m.read_u8(0x5000, S), Ok(0x11), "and survives flush_all");
    m.invlpg(0x5000);
    assert_eq!(
        m.read_u8(0x5000, S),
        Ok(0x22),
        "invlpg drops a global entry"
    );
    let s = m.stats();
    assert_eq!((s.cr3_loads, s.flush_alls, s.invlpgs), (1, 1, 1));
}

#[test]
fn global_bit_is_ignored_without_pge() {
    let m = SimMachine::builder(16 << 20).pge(false).build().unwrap();
    m.set_cr3(PD);
    fill_frame(&m, OLD, 0x11);
    fill_frame(&m, NEW, 0x22);
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US | G);
    m.read_u8(0x5000, S).unwrap();
    assert!(!m.tlb_peek(0x5000).unwrap().global);
    set_pte(&m, PT0, 0x5000, NEW | P | RW | US | G);
    m.set_cr3(PD);
    assert_eq!(m.read_u8(0x5000, S), Ok(0x22));
}

#[test]
fn toggling_pge_flushes_global_entries() {
    let m = machine_with_two_frames();
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US | G);
    m.read_u8(0x5000, S).unwrap();
    set_pte(&m, PT0, 0x5000, NEW | P | RW | US | G);
    m.set_pge(false);
    m.set_pge(true);
    assert_eq!(m.read_u8(0x5000, S), Ok(0x22));
    // flush_tlb_everything does the same.
    set_pte(&m, PT0, 0x5000, OLD | P | RW | US | G);
    m.flush_tlb_everything();
    assert_eq!(m.read_u8(0x5000, S), Ok(0x11));
}

#[test]
fn global_4m_pages_survive_cr3_loads_and_invlpg_anywhere_drops_them() {
    let m = machine();
    m.write_phys(0x0080_0000 + 0x1234, &[0xAB]).unwrap();
    m.write_phys(0x00C0_0000 + 0x1234, &[0xCD]).unwrap();
    set_pde(&m, PD, 0xC000_0000, 0x0080_0000 | P | RW | PS | G);
    assert_eq!(m.read_u8(0xC000_1234, S), Ok(0xAB));
    set_pde(&m, PD, 0xC000_0000, 0x00C0_0000 | P | RW | PS | G);
    m.set_cr3(PD);
    assert_eq!(
        m.read_u8(0xC000_1234, S),
        Ok(0xAB),
        "global 4 MiB entry kept"
    );
    m.invlpg(0xC03F_F000); // last page of the 4 MiB page
    assert_eq!(m.read_u8(0xC000_1234, S), Ok(0xCD));
}

#[test]
fn switching_cr3_switches_address_spaces() {
    let m = machine_with_two_frames();
    let pd2 = 0x0010_8000;
    let pt2 = 0x0010_9000;
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US);
    set_pde(&m, pd2, 0x5000, pt2 | P | RW | US);
    set_pte(&m, pt2, 0x5000, NEW | P | RW | US);
    assert_eq!(m.read_u8(0x5000, U), Ok(0x11));
    // SAFETY: the sim runs no code; any directory will do.
    unsafe { m.set_root(frame(pd2)) };
    assert_eq!(m.cr3(), pd2);
    assert_eq!(m.root(), frame(pd2));
    assert_eq!(m.read_u8(0x5000, U), Ok(0x22));
    m.set_cr3(PD);
    assert_eq!(m.read_u8(0x5000, U), Ok(0x11));
}

fn frame(pa: u32) -> myos_mm::Frame {
    myos_mm::PhysAddr::new(pa).frame()
}

#[test]
fn fifo_eviction_at_capacity() {
    let m = SimMachine::builder(16 << 20)
        .tlb_entries(4)
        .build()
        .unwrap();
    assert_eq!(m.tlb_capacity(), 4);
    assert_eq!(machine().tlb_capacity(), DEFAULT_TLB_ENTRIES);
    m.set_cr3(PD);
    fill_frame(&m, OLD, 0x11);
    fill_frame(&m, NEW, 0x22);
    set_pde(&m, PD, 0, PT0 | P | RW | US);
    let pages = [0x1000u32, 0x2000, 0x3000, 0x4000, 0x5000];
    for va in pages {
        set_pte(&m, PT0, va, OLD | P | RW | US);
    }
    for va in &pages[..4] {
        m.read_u8(*va, U).unwrap();
    }
    assert_eq!(m.tlb_len(), 4);
    assert_eq!(m.stats().tlb_evictions, 0);
    m.read_u8(0x5000, U).unwrap(); // evicts the oldest, 0x1000
    assert_eq!(m.tlb_len(), 4);
    assert_eq!(m.stats().tlb_evictions, 1);
    assert!(m.tlb_peek(0x1000).is_none());
    assert!(pages[1..].iter().all(|&va| m.tlb_peek(va).is_some()));
    // Remap everything without a flush: only the evicted page is fresh.
    for va in pages {
        set_pte(&m, PT0, va, NEW | P | RW | US);
    }
    assert_eq!(m.read_u8(0x2000, U), Ok(0x11));
    assert_eq!(m.read_u8(0x1000, U), Ok(0x22)); // refills, evicting 0x2000
    assert_eq!(m.read_u8(0x3000, U), Ok(0x11));
    assert!(m.tlb_peek(0x2000).is_none());
    assert_eq!(m.read_u8(0x2000, U), Ok(0x22));
}

#[test]
fn a_zero_entry_tlb_walks_every_time() {
    let m = SimMachine::builder(16 << 20)
        .tlb_entries(0)
        .build()
        .unwrap();
    m.set_cr3(PD);
    fill_frame(&m, NEW, 0x22);
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US);
    m.read_u8(0x5000, U).unwrap();
    set_pte(&m, PT0, 0x5000, NEW | P | RW | US);
    assert_eq!(m.read_u8(0x5000, U), Ok(0x22));
    assert_eq!(m.tlb_len(), 0);
    let s = m.stats();
    assert_eq!((s.tlb_hits, s.tlb_misses, s.walks), (0, 2, 2));
}

#[test]
fn counters_are_exact() {
    let m = machine();
    map4k(&m, PT0, 0x5000, OLD, P | RW | US, P | RW | US);
    set_pte(&m, PT0, 0x6000, NEW | P | RW | US);
    m.read_u32(0x5000, U).unwrap(); // miss + walk
    m.read_u32(0x5004, U).unwrap(); // hit
    m.read_u32(0x5FFE, U).unwrap(); // hit on 0x5000 + miss on 0x6000
    m.write_u8(0x6000, 1, U).unwrap(); // hit, clean -> walk
    m.read_u8(0x7000, U).unwrap_err(); // miss, walk, fault
    m.invlpg(0x5000);
    m.flush_tlb();
    m.set_cr3(PD);
    assert_eq!(
        m.stats(),
        SimStats {
            tlb_hits: 3,
            tlb_misses: 3,
            walks: 4,
            faults: 1,
            tlb_evictions: 0,
            invlpgs: 1,
            flush_alls: 1,
            cr3_loads: 1,
            unbacked_accesses: 0,
        }
    );
    m.reset_stats();
    assert_eq!(m.stats(), SimStats::default());
}
