//! Paging tests: the core builds page tables, the simulator's independent
//! MMU walks them.

use std::collections::BTreeMap;

use myos_mm::frames::{FrameAllocator, FrameSource, FrameStats, Zone};
use myos_mm::layout::{HEAP_START, KERNEL_BASE, KMAP_START, RESERVED_START, USER_END};
use myos_mm::paging::{AddressSpace, PteFlags};
use myos_mm::{Frame, MmError, OwnedFrame, Page, PhysAddr, Platform, VirtAddr};
use myos_sim::err::{ERR_PRESENT, ERR_RESERVED, ERR_USER, ERR_WRITE};
use myos_sim::{Mode, PageFault, SimMachine};
use proptest::prelude::*;

/// These tests track frame references by number (the paging rule's
/// bookkeeping is what they check): the owned value of a reference the test
/// took, or of an entry's reference it got back by number.
fn owned(f: Frame) -> OwnedFrame {
    // SAFETY: see above.
    unsafe { OwnedFrame::from_raw(f) }
}

const MIB: u64 = 1 << 20;
const RW_USER: PteFlags = PteFlags::WRITABLE.union(PteFlags::USER);

struct World {
    m: SimMachine,
    fa: FrameAllocator,
    kernel: Option<AddressSpace>,
    base: FrameStats,
}

impl World {
    fn new(ram: u64) -> World {
        let m = SimMachine::new(ram).unwrap();
        let map = m.memory_map().to_vec();
        // SAFETY: `fa` lives in the same struct as `m` and is never moved out.
        let mut fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
        let base = fa.stats();
        let kernel =
            AddressSpace::new_kernel(&m, &mut fa, PhysAddr::new((ram.min(3 << 30)) as u32))
                .unwrap();
        kernel.activate(&m);
        World {
            m,
            fa,
            kernel: Some(kernel),
            base,
        }
    }
    fn user(&mut self) -> AddressSpace {
        AddressSpace::new_user(&self.m, &mut self.fa, self.kernel.as_ref().unwrap()).unwrap()
    }
    fn page(va: u32) -> Page {
        Page::from_start(VirtAddr::new(va)).unwrap()
    }
    /// Tears everything down and checks every frame came back.
    fn finish(mut self) {
        let k = self.kernel.take().unwrap();
        // Load some other directory: a loaded space is never destroyed.
        self.m.set_cr3((self.m.ram_bytes() - 4096) as u32);
        // SAFETY: every user space of the test was destroyed before.
        unsafe { k.destroy_kernel(&self.m, &mut self.fa) };
        assert_eq!(self.fa.stats(), self.base);
        self.fa.validate().unwrap();
    }
}

#[test]
fn map_translate_unmap_round_trip_user_low_and_high_frames() {
    let mut w = World::new(1024 * MIB);
    let mut us = w.user();
    us.activate(&w.m);
    let tables_before = w.fa.stats().used;
    for zone in [Zone::Low, Zone::High] {
        let f = w.fa.alloc(zone).map(OwnedFrame::into_raw).unwrap();
        assert_eq!(Zone::of(f), zone);
        let va = 0x0804_8000;
        us.map(&w.m, &mut w.fa, World::page(va), owned(f), RW_USER)
            .map_err(|e| e.error)
            .unwrap()
            .flush(&w.m);
        assert_eq!(
            us.translate(&w.m, VirtAddr::new(va + 0x123)),
            Some(PhysAddr::new(f.start().as_u32() + 0x123))
        );
        w.m.write_u32(va + 8, 0xDEAD_BEEF, Mode::User).unwrap();
        let mut b = [0u8; 4];
        w.m.read_frame(f, 8, &mut b);
        assert_eq!(
            u32::from_le_bytes(b),
            0xDEAD_BEEF,
            "the MMU wrote into the mapped frame"
        );
        let (got, flush) = us
            .unmap(&w.m, &mut w.fa, World::page(va))
            .map(|(f, fl)| (f.into_raw(), fl))
            .unwrap();
        flush.flush(&w.m);
        assert_eq!(got, f);
        assert_eq!(us.translate(&w.m, VirtAddr::new(va)), None);
        let fault = w.m.read_u32(va, Mode::User).unwrap_err();
        assert_eq!(fault, PageFault::new(va, ERR_USER));
        assert_eq!(
            us.user_table_count(&w.m),
            0,
            "the emptied page table was freed"
        );
        w.fa.release(owned(f)).unwrap();
    }
    assert_eq!(w.fa.stats().used, tables_before);
    w.kernel.as_ref().unwrap().activate(&w.m);
    us.destroy(&w.m, &mut w.fa);
    w.finish();
}

#[test]
fn kernel_mappings_are_shared_by_every_address_space() {
    let mut w = World::new(64 * MIB);
    let a = w.user();
    let b = w.user();
    let f = w.fa.alloc(Zone::Direct).map(OwnedFrame::into_raw).unwrap();
    let (m, fa) = (&w.m, &mut w.fa);
    let heap = World::page(HEAP_START + 0x5000);
    w.kernel
        .as_mut()
        .unwrap()
        .map(m, fa, heap, owned(f), PteFlags::WRITABLE)
        .map_err(|e| e.error)
        .unwrap()
        .flush(m);
    for s in [&a, &b] {
        assert_eq!(s.translate(m, heap.start()), Some(f.start()));
        s.activate(m);
        m.write_u32(heap.start().as_u32(), 7, Mode::Supervisor)
            .unwrap();
        assert_eq!(
            m.read_u32(heap.start().as_u32(), Mode::User),
            Err(PageFault::new(
                heap.start().as_u32(),
                ERR_PRESENT | ERR_USER
            ))
        );
    }
    w.kernel.as_ref().unwrap().activate(&w.m);
    a.destroy(&w.m, &mut w.fa);
    b.destroy(&w.m, &mut w.fa);
    // A user space's destruction never frees the shared kernel tables.
    let k = w.kernel.as_ref().unwrap();
    assert_eq!(k.translate(&w.m, heap.start()), Some(f.start()));
    let (m, fa) = (&w.m, &mut w.fa);
    let (got, fl) = w
        .kernel
        .as_mut()
        .unwrap()
        .unmap(m, fa, heap)
        .map(|(f, fl)| (f.into_raw(), fl))
        .unwrap();
    fl.flush(m);
    fa.release(owned(got)).unwrap();
    w.finish();
}

#[test]
fn direct_map_translates_with_4mib_pages() {
    let mut w = World::new(64 * MIB);
    let k = w.kernel.as_ref().unwrap();
    assert_eq!(
        k.translate(&w.m, VirtAddr::new(KERNEL_BASE + 0x12_3456)),
        Some(PhysAddr::new(0x12_3456))
    );
    // Beyond RAM the direct map stops.
    assert_eq!(
        k.translate(&w.m, VirtAddr::new(KERNEL_BASE + (64 << 20))),
        None
    );
    w.m.write_u32(KERNEL_BASE + 0x20_0000, 0xABCD, Mode::Supervisor)
        .unwrap();
    let mut b = [0u8; 4];
    w.m.read_frame(Frame::from_number(0x200).unwrap(), 0, &mut b);
    assert_eq!(u32::from_le_bytes(b), 0xABCD);
    let fa = &mut w.fa;
    let page = World::page(KERNEL_BASE + 0x1000);
    let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    let kernel = w.kernel.as_mut().unwrap();
    assert_eq!(
        kernel
            .map(&w.m, fa, page, owned(f), PteFlags::WRITABLE)
            .map_err(|e| e.error)
            .err(),
        Some(MmError::FixedMapping)
    );
    assert_eq!(
        kernel
            .unmap(&w.m, fa, page)
            .map(|(f, fl)| (f.into_raw(), fl))
            .err(),
        Some(MmError::FixedMapping)
    );
    assert_eq!(
        kernel.get_page(&w.m, fa, page.start(), true).err(),
        Some(MmError::FixedMapping)
    );
    fa.release(owned(f)).unwrap();
    w.finish();
}

#[test]
fn mapping_errors_change_nothing() {
    let mut w = World::new(32 * MIB);
    let mut us = w.user();
    let (m, fa) = (&w.m, &mut w.fa);
    let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    let g = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    let p = World::page(0x40_0000);
    us.map(m, fa, p, owned(f), RW_USER)
        .map_err(|e| e.error)
        .unwrap()
        .ignore();
    let before = fa.stats();
    assert_eq!(
        us.map(m, fa, p, owned(g), RW_USER)
            .map_err(|e| e.error)
            .err(),
        Some(MmError::AlreadyMapped)
    );
    assert_eq!(us.translate(m, p.start()), Some(f.start()));
    assert_eq!(
        us.map(m, fa, World::page(0x50_0000), owned(g), PteFlags::HUGE)
            .map_err(|e| e.error)
            .err(),
        Some(MmError::InvalidArgument)
    );
    assert_eq!(
        us.protect(m, p, PteFlags::HUGE).err(),
        Some(MmError::InvalidArgument)
    );
    assert_eq!(
        us.unmap(m, fa, World::page(0x40_1000))
            .map(|(f, fl)| (f.into_raw(), fl))
            .err(),
        Some(MmError::NotMapped)
    );
    assert_eq!(
        us.unmap(m, fa, World::page(0x80_0000))
            .map(|(f, fl)| (f.into_raw(), fl))
            .err(),
        Some(MmError::NotMapped),
        "no table"
    );
    assert_eq!(
        us.protect(m, World::page(0x40_1000), RW_USER).err(),
        Some(MmError::NotMapped)
    );
    assert_eq!(
        us.map(
            m,
            fa,
            World::page(0xFFC0_0000),
            owned(g),
            PteFlags::WRITABLE
        )
        .map_err(|e| e.error)
        .err(),
        Some(MmError::OutOfRange)
    );
    assert_eq!(
        us.get_page(m, fa, VirtAddr::new(0x90_0000), false),
        Ok(None)
    );
    assert_eq!(fa.stats(), before);
    // Replacing is explicit and hands back the old frame.
    let (old, fl) = us
        .remap(m, fa, p, owned(g), RW_USER)
        .map(|(o, fl)| (o.map(OwnedFrame::into_raw), fl))
        .map_err(|e| e.error)
        .unwrap();
    fl.ignore();
    assert_eq!(old, Some(f));
    fa.release(owned(f)).unwrap();
    us.destroy(m, fa);
    w.finish();
}

#[test]
fn misaligned_pages_cannot_be_built() {
    assert_eq!(
        Page::from_start(VirtAddr::new(0x1234)),
        Err(MmError::Misaligned)
    );
    assert_eq!(
        Frame::from_start(PhysAddr::new(0x1001)),
        Err(MmError::Misaligned)
    );
}

#[test]
fn out_of_memory_while_creating_a_table_changes_nothing() {
    let mut w = World::new(32 * MIB);
    let mut us = w.user();
    let f = w.fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    let before = w.fa.stats();
    w.fa.fail_after(Some(0));
    let (m, fa) = (&w.m, &mut w.fa);
    assert_eq!(
        us.map(m, fa, World::page(0x40_0000), owned(f), RW_USER)
            .map_err(|e| e.error)
            .err(),
        Some(MmError::OutOfMemory)
    );
    assert_eq!(
        AddressSpace::new_user(m, fa, w.kernel.as_ref().unwrap()).err(),
        Some(MmError::OutOfMemory)
    );
    assert_eq!(fa.stats(), before);
    assert_eq!(us.user_table_count(m), 0);
    fa.fail_after(Some(1));
    assert_eq!(
        AddressSpace::new_user(m, fa, w.kernel.as_ref().unwrap()).err(),
        Some(MmError::OutOfMemory)
    );
    assert_eq!(
        fa.stats(),
        before,
        "the directory allocated before the failure was given back"
    );
    fa.fail_after(None);
    fa.release(owned(f)).unwrap();
    us.destroy(m, fa);
    w.finish();
}

#[test]
fn kernel_space_creation_failing_midway_leaks_nothing() {
    let m = SimMachine::new(32 * MIB).unwrap();
    let map = m.memory_map().to_vec();
    // SAFETY: `fa` is dropped before `m`.
    let mut fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
    let base = fa.stats();
    // A directory, its counters and 63 preallocated kernel tables.
    for n in 0..65 {
        fa.fail_after(Some(n));
        assert_eq!(
            AddressSpace::new_kernel(&m, &mut fa, PhysAddr::new(32 << 20)).err(),
            Some(MmError::OutOfMemory)
        );
        assert_eq!(fa.stats(), base, "after {n} allocations");
    }
    fa.fail_after(Some(65));
    let k = AddressSpace::new_kernel(&m, &mut fa, PhysAddr::new(32 << 20)).unwrap();
    assert_eq!(fa.stats().used, 65);
    // SAFETY: no other address space exists.
    unsafe { k.destroy_kernel(&m, &mut fa) };
    assert_eq!(fa.stats(), base);
}

#[test]
fn fault_not_present_user_and_supervisor() {
    let mut w = World::new(32 * MIB);
    let va = 0x1000_0000;
    assert_eq!(
        w.m.read_u32(va, Mode::User),
        Err(PageFault::new(va, ERR_USER))
    );
    assert_eq!(
        w.m.write_u32(va, 1, Mode::User),
        Err(PageFault::new(va, ERR_USER | ERR_WRITE))
    );
    assert_eq!(
        w.m.read_u32(va, Mode::Supervisor),
        Err(PageFault::new(va, 0))
    );
    assert_eq!(
        w.m.write_u32(va, 1, Mode::Supervisor),
        Err(PageFault::new(va, ERR_WRITE))
    );
    // A table exists but the entry is empty: same code.
    let f = w.fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    let (m, fa) = (&w.m, &mut w.fa);
    w.kernel
        .as_mut()
        .unwrap()
        .map(m, fa, World::page(va), owned(f), RW_USER)
        .map_err(|e| e.error)
        .unwrap()
        .flush(m);
    assert_eq!(
        m.read_u32(va + 0x1000, Mode::User),
        Err(PageFault::new(va + 0x1000, ERR_USER))
    );
    w.finish();
}

#[test]
fn fault_write_to_read_only_user_and_supervisor_with_wp() {
    let mut w = World::new(32 * MIB);
    let va = 0x2000_0000;
    let f = w.fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    let (m, fa) = (&w.m, &mut w.fa);
    w.kernel
        .as_mut()
        .unwrap()
        .map(m, fa, World::page(va), owned(f), PteFlags::USER)
        .map_err(|e| e.error)
        .unwrap()
        .flush(m);
    assert_eq!(m.read_u32(va, Mode::User), Ok(0));
    assert_eq!(
        m.write_u32(va, 1, Mode::User),
        Err(PageFault::new(va, ERR_PRESENT | ERR_WRITE | ERR_USER))
    );
    // CR0.WP is set on the simulated machine (as in the kernel): the
    // supervisor can't write a read-only page either — what COW relies on.
    assert_eq!(
        m.write_u32(va, 1, Mode::Supervisor),
        Err(PageFault::new(va, ERR_PRESENT | ERR_WRITE))
    );
    w.finish();
}

#[test]
fn fault_user_access_to_supervisor_page() {
    let mut w = World::new(32 * MIB);
    let va = 0x3000_0000;
    let f = w.fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    let (m, fa) = (&w.m, &mut w.fa);
    w.kernel
        .as_mut()
        .unwrap()
        .map(m, fa, World::page(va), owned(f), PteFlags::WRITABLE)
        .map_err(|e| e.error)
        .unwrap()
        .flush(m);
    assert_eq!(
        m.read_u32(va, Mode::User),
        Err(PageFault::new(va, ERR_PRESENT | ERR_USER))
    );
    assert_eq!(
        m.write_u32(va, 1, Mode::User),
        Err(PageFault::new(va, ERR_PRESENT | ERR_WRITE | ERR_USER))
    );
    assert_eq!(m.write_u32(va, 1, Mode::Supervisor), Ok(()));
    w.finish();
}

#[test]
fn fault_reserved_bit_in_a_directory_entry() {
    let w = World::new(32 * MIB);
    // The core never sets reserved bits; a corrupted directory entry (bits
    // 13..21 of a 4 MiB entry) must still be reported as such by the MMU.
    let dir = w.kernel.as_ref().unwrap().directory();
    let va: u32 = 0x0800_0000;
    let pde: u32 = 0x0040_0000 | (1 << 13) | 0x87; // 4 MiB, user, writable, present
    w.m.write_frame(dir, (va >> 22) as usize * 4, &pde.to_le_bytes());
    assert_eq!(
        w.m.read_u32(va, Mode::User),
        Err(PageFault::new(va, ERR_PRESENT | ERR_USER | ERR_RESERVED))
    );
    w.m.write_frame(dir, (va >> 22) as usize * 4, &0u32.to_le_bytes());
    w.finish();
}

#[test]
fn a_missing_flush_is_caught_by_the_tlb_model() {
    let mut w = World::new(32 * MIB);
    let va = 0x0804_8000;
    let (f, g) = (
        w.fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap(),
        w.fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap(),
    );
    let (m, fa) = (&w.m, &mut w.fa);
    let k = w.kernel.as_mut().unwrap();
    k.map(m, fa, World::page(va), owned(f), RW_USER)
        .map_err(|e| e.error)
        .unwrap()
        .flush(m);
    m.write_u32(va, 1, Mode::User).unwrap(); // now cached in the TLB
    m.write_frame(g, 0, &2u32.to_le_bytes());
    // Write-protect without the flush: the stale entry still allows writes.
    k.protect(m, World::page(va), PteFlags::USER)
        .unwrap()
        .ignore();
    assert_eq!(
        m.write_u32(va, 3, Mode::User),
        Ok(()),
        "stale TLB entry used"
    );
    let fl = k.protect(m, World::page(va), PteFlags::USER).unwrap();
    fl.flush(m);
    assert_eq!(
        m.write_u32(va, 4, Mode::User),
        Err(PageFault::new(va, ERR_PRESENT | ERR_WRITE | ERR_USER))
    );
    assert_eq!(m.read_u32(va, Mode::User), Ok(3)); // cached again, read-only
                                                   // Remap to another frame without the flush: reads see the old frame.
    let (old, fl) = k
        .remap(m, fa, World::page(va), owned(g), RW_USER)
        .map(|(o, fl)| (o.map(OwnedFrame::into_raw), fl))
        .map_err(|e| e.error)
        .unwrap();
    assert_eq!(
        m.read_u32(va, Mode::User),
        Ok(3),
        "stale translation to the old frame"
    );
    fl.flush(m);
    assert_eq!(m.read_u32(va, Mode::User), Ok(2));
    fa.release(owned(old.unwrap())).unwrap();
    w.finish();
}

#[test]
fn switching_address_spaces_changes_translations() {
    let mut w = World::new(32 * MIB);
    let mut a = w.user();
    let mut b = w.user();
    let va = 0x0804_8000;
    let (m, fa) = (&w.m, &mut w.fa);
    let (fa1, fb1) = (
        fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap(),
        fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap(),
    );
    a.map(m, fa, World::page(va), owned(fa1), RW_USER)
        .map_err(|e| e.error)
        .unwrap()
        .flush(m);
    b.map(m, fa, World::page(va), owned(fb1), RW_USER)
        .map_err(|e| e.error)
        .unwrap()
        .flush(m);
    a.activate(m);
    m.write_u32(va, 0xAAAA, Mode::User).unwrap();
    b.activate(m);
    assert_eq!(
        m.read_u32(va, Mode::User),
        Ok(0),
        "CR3 load dropped a's translation"
    );
    m.write_u32(va, 0xBBBB, Mode::User).unwrap();
    a.activate(m);
    assert_eq!(m.read_u32(va, Mode::User), Ok(0xAAAA));
    w.kernel.as_ref().unwrap().activate(m);
    a.destroy(m, fa);
    b.destroy(m, fa);
    w.finish();
}

#[test]
fn get_page_creates_tables_on_request() {
    let mut w = World::new(32 * MIB);
    let mut us = w.user();
    let (m, fa) = (&w.m, &mut w.fa);
    assert_eq!(us.get_page(m, fa, VirtAddr::new(0x1000), false), Ok(None));
    let e = us
        .get_page(m, fa, VirtAddr::new(0x1000), true)
        .unwrap()
        .unwrap();
    // SAFETY: the table stays alive while `us` is not changed.
    assert!(unsafe { e.as_ptr().read() }.is_unused());
    assert_eq!(us.user_table_count(m), 1);
    assert!(us
        .get_page(m, fa, VirtAddr::new(0x2000), false)
        .unwrap()
        .is_some());
    assert!(
        us.get_page(m, fa, VirtAddr::new(KMAP_START), false)
            .unwrap()
            .is_some(),
        "kernel tables exist"
    );
    assert_eq!(
        us.get_page(m, fa, VirtAddr::new(0xFFC0_0000), true).err(),
        Some(MmError::OutOfRange)
    );
    us.destroy(m, fa);
    w.finish();
}

#[test]
fn the_platforms_top_4_mib_is_refused_even_with_a_table_there() {
    let mut w = World::new(32 * MIB);
    // A kernel's fixmap: a page table of its own in the last directory
    // entry of the kernel space, which user spaces made afterwards copy.
    let fixmap = w.fa.alloc(Zone::Direct).map(OwnedFrame::into_raw).unwrap();
    w.m.zero_frame(fixmap);
    let dir = w.kernel.as_ref().unwrap().directory().start().as_u64();
    let pde = fixmap.start().as_u64() as u32 | (PteFlags::PRESENT | PteFlags::WRITABLE).bits();
    w.m.write_phys_u32(dir + 4 * 1023, pde).unwrap();
    let mut us = w.user();
    let (m, fa) = (&w.m, &mut w.fa);
    for va in [RESERVED_START, RESERVED_START + 0x1000, 0xFFFF_F000] {
        assert_eq!(
            us.get_page(m, fa, VirtAddr::new(va), true).err(),
            Some(MmError::OutOfRange),
            "get_page({va:#x})"
        );
        let f = fa.alloc(Zone::High).unwrap();
        let e = us
            .map(m, fa, VirtAddr::new(va).page(), f, PteFlags::WRITABLE)
            .unwrap_err();
        assert_eq!(e.error, MmError::OutOfRange, "map({va:#x})");
        fa.release(e.frame).unwrap();
    }
    let mut raw = [0u8; 4096];
    m.read_frame(fixmap, 0, &mut raw);
    assert!(
        raw.iter().all(|&b| b == 0),
        "the platform's table untouched"
    );
    us.destroy(m, fa);
    w.m.write_phys_u32(dir + 4 * 1023, 0).unwrap();
    fa.release(owned(fixmap)).unwrap();
    w.finish();
}

#[test]
fn destroy_releases_mapped_frames() {
    let mut w = World::new(32 * MIB);
    let mut us = w.user();
    let (m, fa) = (&w.m, &mut w.fa);
    let shared = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    for i in 0..3000u32 {
        let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
        us.map(
            m,
            fa,
            World::page(0x40_0000 + i * 0x1000),
            owned(f),
            RW_USER,
        )
        .map_err(|e| e.error)
        .unwrap()
        .ignore();
    }
    fa.share(shared).map(OwnedFrame::into_raw).unwrap();
    us.map(
        m,
        fa,
        World::page(USER_END - 0x1000),
        owned(shared),
        RW_USER,
    )
    .map_err(|e| e.error)
    .unwrap()
    .ignore();
    us.destroy(m, fa);
    assert_eq!(fa.refcount(shared), Ok(1));
    fa.release(owned(shared)).unwrap();
    w.finish();
}

#[derive(Debug, Clone)]
enum Op {
    Map(usize, u16),
    Unmap(usize, u16),
    Protect(usize, u16, bool),
    Switch(usize),
    Translate(usize, u16),
}

/// A few page numbers spread over several page tables, user and kernel.
fn page_of(n: u16) -> Page {
    let n = n as u32 % 64;
    let va = match n % 4 {
        0 => 0x0040_0000 + (n / 4) * 0x1000,
        1 => 0x0080_0000 + (n / 4) * 0x40_1000,
        2 => 0xBFFF_F000 - (n / 4) * 0x1000,
        _ => HEAP_START + (n / 4) * 0x1000,
    };
    World::page(va)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Random map/unmap/protect/switch/translate over three address spaces
    /// against a plain model, checked both by the core's `translate` and by
    /// the simulator's independent MMU; frames back to baseline at the end.
    #[test]
    fn paging_matches_model(ops in proptest::collection::vec(
        prop_oneof![
            4 => (0usize..3, any::<u16>()).prop_map(|(s, p)| Op::Map(s, p)),
            3 => (0usize..3, any::<u16>()).prop_map(|(s, p)| Op::Unmap(s, p)),
            1 => (0usize..3, any::<u16>(), any::<bool>()).prop_map(|(s, p, w)| Op::Protect(s, p, w)),
            1 => (0usize..3).prop_map(Op::Switch),
            3 => (0usize..3, any::<u16>()).prop_map(|(s, p)| Op::Translate(s, p)),
        ], 1..200)) {
        let mut w = World::new(32 * MIB);
        let mut spaces: Vec<AddressSpace> = (0..3).map(|_| w.user()).collect();
        // Model: per space, page -> (frame, writable); kernel pages shared.
        let mut model: Vec<BTreeMap<u32, (Frame, bool)>> = vec![BTreeMap::new(); 3];
        let mut kmodel: BTreeMap<u32, (Frame, bool)> = BTreeMap::new();
        let mut active = None;
        for op in ops {
            let (m, fa) = (&w.m, &mut w.fa);
            match op {
                Op::Map(s, p) => {
                    let page = page_of(p);
                    let kernel = page.start().as_u32() >= KERNEL_BASE;
                    let mm = if kernel { &mut kmodel } else { &mut model[s] };
                    let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
                    let r = spaces[s].map(m, fa, page, owned(f), RW_USER).map_err(|e| e.error);
                    match mm.entry(page.number()) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            prop_assert_eq!(r.err(), Some(MmError::AlreadyMapped));
                            fa.release(owned(f)).unwrap();
                        }
                        std::collections::btree_map::Entry::Vacant(v) => {
                            r.unwrap().flush(m);
                            v.insert((f, true));
                        }
                    }
                }
                Op::Unmap(s, p) => {
                    let page = page_of(p);
                    let kernel = page.start().as_u32() >= KERNEL_BASE;
                    let mm = if kernel { &mut kmodel } else { &mut model[s] };
                    match mm.remove(&page.number()) {
                        Some((f, _)) => {
                            let (got, fl) = spaces[s].unmap(m, fa, page).map(|(f, fl)| (f.into_raw(), fl)).unwrap();
                            fl.flush(m);
                            prop_assert_eq!(got, f);
                            fa.release(owned(f)).unwrap();
                        }
                        None => prop_assert_eq!(spaces[s].unmap(m, fa, page).map(|(f, fl)| (f.into_raw(), fl)).err(), Some(MmError::NotMapped)),
                    }
                }
                Op::Protect(s, p, writable) => {
                    let page = page_of(p);
                    let kernel = page.start().as_u32() >= KERNEL_BASE;
                    let mm = if kernel { &mut kmodel } else { &mut model[s] };
                    let flags = if writable { RW_USER } else { PteFlags::USER };
                    match mm.get_mut(&page.number()) {
                        Some(e) => {
                            spaces[s].protect(m, page, flags).unwrap().flush(m);
                            e.1 = writable;
                        }
                        None => prop_assert_eq!(spaces[s].protect(m, page, flags).err(), Some(MmError::NotMapped)),
                    }
                }
                Op::Switch(s) => {
                    spaces[s].activate(m);
                    active = Some(s);
                }
                Op::Translate(s, p) => {
                    let page = page_of(p);
                    let kernel = page.start().as_u32() >= KERNEL_BASE;
                    let want = if kernel { kmodel.get(&page.number()) } else { model[s].get(&page.number()) };
                    let va = page.start().as_u32() + 0x10;
                    prop_assert_eq!(spaces[s].translate(m, VirtAddr::new(va)), want.map(|e| PhysAddr::new(e.0.start().as_u32() + 0x10)));
                    if active == Some(s) && !kernel {
                        // The independent MMU agrees, permissions included.
                        let wrote = m.write_u32(va, 0x5A5A_0000 | p as u32, Mode::User);
                        match want {
                            None => prop_assert_eq!(wrote, Err(PageFault::new(va, ERR_USER | ERR_WRITE))),
                            Some((_, false)) => prop_assert_eq!(wrote, Err(PageFault::new(va, ERR_USER | ERR_WRITE | ERR_PRESENT))),
                            Some((f, true)) => {
                                prop_assert_eq!(wrote, Ok(()));
                                let mut b = [0u8; 4];
                                m.read_frame(*f, 0x10, &mut b);
                                prop_assert_eq!(u32::from_le_bytes(b), 0x5A5A_0000 | p as u32);
                            }
                        }
                    }
                }
            }
        }
        w.kernel.as_ref().unwrap().activate(&w.m);
        for s in spaces { s.destroy(&w.m, &mut w.fa); }
        // Kernel mappings outlive user spaces; `finish` (the kernel space's
        // teardown) releases the frames still in `kmodel`.
        w.finish();
    }
}
