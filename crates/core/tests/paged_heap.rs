//! The kernel heap's paging backend and the assembled `System`, on the
//! simulated machine. (The heap itself runs over this backend in the QEMU
//! kernel; on the host its pages are checked through the page tables.)

use myos_mm::frames::{FrameSource, Zone};
use myos_mm::heap::{HeapBackend, HeapFlags};
use myos_mm::layout::{HEAP_START, KERNEL_BASE};
use myos_mm::paging::PteFlags;
use myos_mm::system::System;
use myos_mm::{Frame, MmError, OwnedFrame, Page, VirtAddr};
use myos_sim::{Mode, SimMachine};

/// These tests track frame references by number (the paging rule's
/// bookkeeping is what they check): the owned value of a reference the test
/// took, or of an entry's reference it got back by number.
fn owned(f: Frame) -> OwnedFrame {
    // SAFETY: see above.
    unsafe { OwnedFrame::from_raw(f) }
}

const MIB: u64 = 1 << 20;

fn system(ram: u64) -> &'static System<SimMachine> {
    let m: &'static SimMachine = Box::leak(Box::new(SimMachine::new(ram).unwrap()));
    let map = m.memory_map().to_vec();
    // SAFETY: the simulated RAM is used by nothing else.
    let sys = Box::leak(Box::new(unsafe { System::new(m, &map) }.unwrap()));
    sys.kernel_space().lock().activate(m);
    sys
}

fn page(va: usize) -> Page {
    Page::from_start(VirtAddr::new(va as u32)).unwrap()
}

#[test]
fn heap_pages_are_mapped_supervisor_global_and_given_back() {
    let sys = system(64 * MIB);
    let base = sys.frames().lock().stats();
    // SAFETY: the backend is only driven directly; no heap dereferences it.
    let mut b = unsafe { sys.heap_backend() };
    let at = HEAP_START as usize;
    b.map(at, 4, false, HeapFlags::KERNEL).unwrap();
    assert_eq!(sys.frames().lock().stats().used, base.used + 4);
    for k in 0..4 {
        let e = sys
            .kernel_space()
            .lock()
            .entry(sys.platform(), page(at + k * 4096))
            .unwrap();
        assert!(e
            .flags()
            .contains(PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::GLOBAL));
        assert!(!e.flags().contains(PteFlags::USER));
        assert_eq!(
            b.phys(at + k * 4096 + 12).unwrap().as_u32(),
            e.frame().start().as_u32() + 12
        );
    }
    let m = sys.platform();
    m.write_u32(at as u32, 42, Mode::Supervisor).unwrap();
    assert!(
        m.read_u32(at as u32, Mode::User).is_err(),
        "supervisor only"
    );
    b.unmap(at, 4);
    assert_eq!(b.phys(at), None);
    assert_eq!(sys.frames().lock().stats(), base);
}

#[test]
fn contiguous_pages_are_physically_contiguous() {
    let sys = system(64 * MIB);
    // SAFETY: as above.
    let mut b = unsafe { sys.heap_backend() };
    let at = HEAP_START as usize + 0x10_0000;
    b.map(at, 9, true, HeapFlags::KERNEL).unwrap();
    let first = b.phys(at).unwrap().as_u32();
    for k in 0..9 {
        assert_eq!(
            b.phys(at + k * 4096).unwrap().as_u32(),
            first + (k as u32) * 4096
        );
    }
    b.unmap(at, 9);
}

#[test]
fn flags_follow_create_heap_arguments() {
    let sys = system(32 * MIB);
    // SAFETY: as above.
    let mut b = unsafe { sys.heap_backend() };
    let at = HEAP_START as usize;
    b.map(
        at,
        1,
        false,
        HeapFlags {
            supervisor: false,
            readonly: true,
        },
    )
    .unwrap();
    let e = sys
        .kernel_space()
        .lock()
        .entry(sys.platform(), page(at))
        .unwrap();
    assert!(e.flags().contains(PteFlags::USER));
    assert!(!e.flags().contains(PteFlags::WRITABLE));
    b.unmap(at, 1);
    // A heap in the user half: user page tables are created as needed and
    // freed again, and the pages are not global.
    let low = 0x1000_0000;
    b.map(low, 2, false, HeapFlags::KERNEL).unwrap();
    let e = sys
        .kernel_space()
        .lock()
        .entry(sys.platform(), page(low))
        .unwrap();
    assert!(!e.flags().contains(PteFlags::GLOBAL));
    b.unmap(low, 2);
    assert_eq!(
        sys.kernel_space().lock().user_table_count(sys.platform()),
        0
    );
}

#[test]
fn out_of_memory_midway_leaves_nothing_mapped() {
    let sys = system(32 * MIB);
    let base = sys.frames().lock().stats();
    // SAFETY: as above.
    let mut b = unsafe { sys.heap_backend() };
    let at = HEAP_START as usize;
    for fail in 0..4 {
        sys.frames().lock().fail_after(Some(fail));
        assert_eq!(
            b.map(at, 4, false, HeapFlags::KERNEL),
            Err(MmError::OutOfMemory)
        );
        assert_eq!(sys.frames().lock().stats(), base, "fail after {fail}");
        for k in 0..4 {
            assert_eq!(b.phys(at + k * 4096), None);
        }
    }
    // A contiguous run is one request: all or nothing.
    sys.frames().lock().fail_after(Some(0));
    assert_eq!(
        b.map(at, 4, true, HeapFlags::KERNEL),
        Err(MmError::OutOfMemory)
    );
    sys.frames().lock().fail_after(None);
    assert_eq!(
        b.map(at, 7000, true, HeapFlags::KERNEL),
        Err(MmError::OutOfMemory),
        "no run that long"
    );
    // In the user half a page table must be allocated: failing that undoes the run.
    sys.frames().lock().fail_after(Some(1));
    assert_eq!(
        b.map(0x1000_0000, 4, true, HeapFlags::KERNEL),
        Err(MmError::OutOfMemory)
    );
    sys.frames().lock().fail_after(None);
    assert_eq!(sys.frames().lock().stats(), base);
}

#[test]
fn bad_ranges_are_refused() {
    let sys = system(32 * MIB);
    let base = sys.frames().lock().stats();
    // SAFETY: as above.
    let mut b = unsafe { sys.heap_backend() };
    assert_eq!(
        b.map(HEAP_START as usize + 1, 1, false, HeapFlags::KERNEL),
        Err(MmError::Misaligned)
    );
    assert_eq!(
        b.map(0xFFFF_F000, 2, false, HeapFlags::KERNEL),
        Err(MmError::OutOfRange),
        "wraps past 4 GiB"
    );
    assert_eq!(
        b.map(1 << 40, 1, false, HeapFlags::KERNEL),
        Err(MmError::OutOfRange),
        "not a 32-bit address"
    );
    assert_eq!(
        b.map(KERNEL_BASE as usize, 1, false, HeapFlags::KERNEL),
        Err(MmError::FixedMapping),
        "direct map"
    );
    assert_eq!(b.phys(1 << 40), None);
    assert_eq!(sys.frames().lock().stats(), base);
    let f = sys
        .frames()
        .lock()
        .alloc(Zone::High)
        .map(OwnedFrame::into_raw)
        .unwrap();
    sys.frames().lock().release(owned(f)).unwrap();
}
