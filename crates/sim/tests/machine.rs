//! Building machines, the memory map, physical access, the `Platform`
//! implementation, `run_with_faults` and use from several threads.

mod common;

use std::sync::Arc;

use common::*;
use myos_mm::frames::{MemoryRegion, RegionKind};
use myos_mm::layout::PAGE_SIZE;
use myos_mm::{Frame, Page, PhysAddr, Platform};
use myos_sim::{pc_memory_map, FaultError, PageFault, SimError, SimMachine, MAX_RAM};

fn region(start: u64, end: u64, kind: RegionKind) -> MemoryRegion {
    MemoryRegion { start, end, kind }
}

fn frame(pa: u64) -> Frame {
    Frame::from_number(u32::try_from(pa >> 12).unwrap()).unwrap()
}

#[test]
fn pc_map_of_new() {
    let m = SimMachine::new(32 << 20).unwrap();
    assert_eq!(m.ram_bytes(), 32 << 20);
    assert_eq!(
        m.memory_map(),
        &[
            region(0, 0x9_F000, RegionKind::Usable),
            region(0x9_F000, 0x10_0000, RegionKind::Reserved),
            region(0x10_0000, 32 << 20, RegionKind::Usable),
        ]
    );
    // A machine of 1 MiB or less has no extended memory.
    assert_eq!(
        pc_memory_map(512 << 10),
        [
            region(0, 512 << 10, RegionKind::Usable),
            region(0x9_F000, 0x10_0000, RegionKind::Reserved)
        ]
    );
    assert_eq!(SimMachine::new(1 << 20).unwrap().memory_map().len(), 2);
}

#[test]
fn custom_map() {
    let map = [
        region(0, 0x8_0000, RegionKind::Usable),
        region(0x20_0000, 0x40_0000, RegionKind::Usable),
        region(0x30_0000, 0x30_1000, RegionKind::Reserved), // overlaps: allowed
        region(0xFEC0_0000, 0xFEC0_1000, RegionKind::Reserved), // MMIO past RAM
    ];
    let m = SimMachine::with_map(4 << 20, &map).unwrap();
    assert_eq!(m.memory_map(), &map);
    let b = SimMachine::builder(4 << 20)
        .memory_map(&map[..1])
        .tlb_entries(8)
        .build()
        .unwrap();
    assert_eq!(b.memory_map(), &map[..1]);
    assert_eq!(b.tlb_capacity(), 8);
}

#[test]
fn bad_constructor_arguments_are_errors() {
    assert_eq!(SimMachine::new(0).unwrap_err(), SimError::ZeroRam);
    assert_eq!(
        SimMachine::new(MAX_RAM + 4096).unwrap_err(),
        SimError::RamTooLarge(MAX_RAM + 4096)
    );
    assert_eq!(
        SimMachine::new(u64::MAX).unwrap_err(),
        SimError::RamTooLarge(u64::MAX)
    );
    assert_eq!(
        SimMachine::new(4097).unwrap_err(),
        SimError::RamNotPageMultiple(4097)
    );
    assert_eq!(
        SimMachine::new(0xFFF).unwrap_err(),
        SimError::RamNotPageMultiple(0xFFF)
    );
    let beyond = region(0x10_0000, 0x50_1000, RegionKind::Usable);
    assert_eq!(
        SimMachine::with_map(4 << 20, &[beyond]).unwrap_err(),
        SimError::UsableOutsideRam(beyond)
    );
    let empty = region(0x1000, 0x1000, RegionKind::Reserved);
    assert_eq!(
        SimMachine::with_map(4 << 20, &[empty]).unwrap_err(),
        SimError::EmptyRegion(empty)
    );
    let inverted = region(0x2000, 0x1000, RegionKind::Usable);
    assert_eq!(
        SimMachine::builder(4 << 20)
            .memory_map(&[inverted])
            .build()
            .unwrap_err(),
        SimError::EmptyRegion(inverted)
    );
    assert_eq!(
        SimError::RamTooLarge(1 << 33).to_string(),
        "RAM size 0x200000000 is above 4 GiB"
    );
}

#[test]
fn physical_access_outside_ram_is_an_error() {
    let m = SimMachine::new(1 << 20).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        m.read_phys((1 << 20) - 4, &mut buf),
        Err(SimError::PhysOutOfRange {
            addr: (1 << 20) - 4,
            len: 8
        })
    );
    assert!(m.write_phys(u64::MAX, &[1]).is_err());
    assert!(m.read_phys_u32(1 << 20).is_err());
    assert!(m.write_phys_u32((1 << 20) - 3, 0).is_err());
    m.write_phys_u32((1 << 20) - 4, 0xABCD).unwrap();
    assert_eq!(m.read_phys_u32((1 << 20) - 4), Ok(0xABCD));
    m.read_phys(1 << 20, &mut []).unwrap(); // empty access at the end is fine
}

#[test]
fn ram_starts_zeroed() {
    let m = SimMachine::new(64 << 20).unwrap();
    let mut buf = vec![0xFFu8; 1 << 20];
    m.read_phys(63 << 20, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn a_4_gib_machine_is_cheap_and_reaches_its_last_frame() {
    let m = SimMachine::new(MAX_RAM).unwrap();
    assert_eq!(
        m.memory_map().last(),
        Some(&region(0x10_0000, MAX_RAM, RegionKind::Usable))
    );
    let top = MAX_RAM - PAGE_SIZE as u64;
    m.write_phys_u32(top + 0xFFC, 0x600D_F00D).unwrap();
    assert_eq!(m.read_phys_u32(top + 0xFFC), Ok(0x600D_F00D));
    // frame_ptr reaches frames far above the 768 MiB direct map.
    let last = frame(top);
    assert_eq!(last.number(), 0xF_FFFF);
    let p = m.frame_ptr(last);
    // SAFETY: frame_ptr is valid for PAGE_SIZE bytes of RAM.
    assert_eq!(unsafe { (*p.as_ptr())[0xFFC] }, 0x0D);
    // The MMU reaches it too: a 4 MiB page mapping the top of RAM.
    let pd = 0x10_0000u64;
    m.write_phys_u32(pd + 4 * 1023, 0xFFC0_0000 | P | RW | PS)
        .unwrap();
    m.set_cr3(pd as u32);
    assert_eq!(m.read_u32(0xFFFF_FFFC, S), Ok(0x600D_F00D));
    m.write_u8(0xFFFF_F000, 0x5A, S).unwrap();
    m.zero_frame(last);
    assert_eq!(m.read_u32(0xFFFF_FFFC, S), Ok(0));
    assert_eq!(m.read_u8(0xFFFF_F000, S), Ok(0));
}

#[test]
fn frame_ptr_is_consecutive_and_aliases_physical_memory() {
    let m = SimMachine::new(16 << 20).unwrap();
    let f = frame(0x20_0000);
    let g = f.checked_add(1).unwrap();
    let (pf, pg) = (m.frame_ptr(f), m.frame_ptr(g));
    assert_eq!(pg.as_ptr() as usize - pf.as_ptr() as usize, PAGE_SIZE);
    // SAFETY: pf is valid for PAGE_SIZE bytes; nothing else touches it now.
    unsafe { (*pf.as_ptr())[10] = 0x77 };
    let mut b = [0u8; 1];
    m.read_phys(0x20_000A, &mut b).unwrap();
    assert_eq!(b[0], 0x77);
    // The data methods work through it.
    m.write_frame(g, 100, b"frame");
    let mut back = [0u8; 5];
    m.read_frame(g, 100, &mut back);
    assert_eq!(&back, b"frame");
    m.copy_frame(f, g);
    m.read_phys(0x20_0064, &mut back).unwrap();
    assert_eq!(&back, b"frame");
    m.zero_frame(f);
    m.read_phys(0x20_0064, &mut back).unwrap();
    assert_eq!(back, [0; 5]);
}

#[test]
#[should_panic(expected = "outside the simulated RAM")]
fn frame_ptr_outside_ram_is_a_core_bug() {
    let m = SimMachine::new(16 << 20).unwrap();
    let _ = m.frame_ptr(frame(16 << 20));
}

#[test]
fn platform_registers_and_flush_counters() {
    let m = SimMachine::new(16 << 20).unwrap();
    assert_eq!(m.root(), frame(0));
    // SAFETY: the sim runs no code, so any directory is acceptable.
    unsafe { m.set_root(frame(0x30_0000)) };
    assert_eq!((m.cr3(), m.root()), (0x30_0000, frame(0x30_0000)));
    m.flush(Page::from_number(5).unwrap());
    m.flush_all();
    m.flush_all();
    let s = m.stats();
    assert_eq!((s.cr3_loads, s.invlpgs, s.flush_alls), (1, 1, 2));
    assert_eq!(PhysAddr::new(m.cr3()).frame(), m.root());
}

#[test]
fn run_with_faults_drives_a_demand_paging_handler() {
    let m = machine();
    set_pde(&m, PD, 0x0040_0000, PT0 | P | RW | US);
    let mut next_frame = DATA;
    let mut seen = Vec::new();
    let data: Vec<u8> = (0..3 * 4096 + 100).map(|i| i as u8).collect();
    let r = m.run_with_faults(
        8,
        |m| m.write_bytes(0x0040_0F9C, &data, U),
        |f| {
            seen.push(f);
            // Demand-zero: map a fresh frame at the faulting page.
            set_pte(&m, PT0, f.cr2, next_frame | P | RW | US);
            next_frame += 0x1000;
            true
        },
    );
    assert_eq!(r, Ok(()));
    let cr2s: Vec<u32> = seen.iter().map(|f| f.cr2).collect();
    // 0x400F9C + 0x3064 bytes ends exactly at 0x404000: four pages.
    assert_eq!(cr2s, [0x0040_0F9C, 0x0040_1000, 0x0040_2000, 0x0040_3000]);
    assert!(seen.iter().all(|f| f.error_code == 0x6));
    let mut back = vec![0u8; data.len()];
    m.read_bytes(0x0040_0F9C, &mut back, U).unwrap();
    assert_eq!(back, data);
}

#[test]
fn run_with_faults_reports_unhandled_and_too_many_faults() {
    let m = machine();
    let mut calls = 0;
    let r = m.run_with_faults(
        5,
        |m| m.read_u8(0x1234, U),
        |_| {
            calls += 1;
            false
        },
    );
    assert_eq!(r, Err(FaultError::Unhandled(PageFault::new(0x1234, 0x4))));
    assert_eq!(calls, 1);
    let mut calls = 0;
    let r = m.run_with_faults(
        2,
        |m| m.read_u8(0x1234, U),
        |_| {
            calls += 1;
            true
        },
    );
    assert_eq!(
        r,
        Err(FaultError::TooManyFaults(PageFault::new(0x1234, 0x4)))
    );
    assert_eq!(r.unwrap_err().fault().cr2, 0x1234);
    assert_eq!(calls, 2);
    assert_eq!(m.run_with_faults(0, |_| Ok(7), |_| unreachable!()), Ok(7));
}

#[test]
fn machines_are_used_from_several_threads() {
    let m = Arc::new(machine());
    set_pde(&m, PD, 0, PT0 | P | RW | US);
    for i in 0..4u32 {
        set_pte(&m, PT0, 0x1000 * (i + 1), (DATA + 0x1000 * i) | P | RW | US);
    }
    let handles: Vec<_> = (0..4u32)
        .map(|i| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let va = 0x1000 * (i + 1);
                for k in 0..1000u32 {
                    m.write_u32(va + 4 * (k % 1024), k ^ i, U).unwrap();
                    m.invlpg(va);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for i in 0..4u32 {
        assert_eq!(m.read_u32(0x1000 * (i + 1) + 4 * 999, U), Ok(999 ^ i));
    }
    // And each test owning its machine moves it freely.
    let owned = std::thread::spawn(|| SimMachine::new(1 << 20).unwrap())
        .join()
        .unwrap();
    assert_eq!(owned.ram_bytes(), 1 << 20);
}
