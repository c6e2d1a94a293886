//! The address-space scenarios of issue 5 on the simulated machine: accesses
//! go through the sim's MMU and TLB, faults through the core's handler.
//! After each test every frame is back at its baseline.

mod vm_support;

use myos_abi::*;
use myos_mm::layout::{USER_END, USER_MMAP_MIN};
use myos_mm::vm::*;
use myos_mm::{MmError, VirtAddr};
use vm_support::*;

const RW: u32 = PROT_READ | PROT_WRITE;
const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const NULL: VirtAddr = VirtAddr::new(0);

fn segv(addr: VirtAddr, cause: SegvCause) -> FaultOutcome {
    FaultOutcome::Signal(Signal::Segv { addr, cause })
}

#[test]
fn mapping_is_lazy_and_demand_zero_on_touch() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let used0 = w.used();
    let a = vm.mmap(&fds, NULL, 64 * PAGE, RW, ANON, -1, 0).unwrap();
    assert!(a.as_u32() >= USER_MMAP_MIN && a.as_u32() < USER_END);
    assert_eq!(w.used(), used0, "mmap allocates no frame");
    assert_eq!(w.read_u32(&mut vm, at(a, 5 * PAGE + 12), U), Ok(0));
    w.write_u32(&mut vm, at(a, 9 * PAGE), 0xABCD, U).unwrap();
    assert_eq!(w.read_u32(&mut vm, at(a, 9 * PAGE), U), Ok(0xABCD));
    assert_eq!(vm.resident_pages(), 2);
    assert_eq!(vm.fault_stats().demand_zero, 2);
    // One page table plus two data pages.
    assert_eq!(w.used(), used0 + 3);
    vm.munmap(a, 64 * PAGE).unwrap();
    assert_eq!(
        w.used(),
        used0,
        "data frames and the empty page table are freed"
    );
    assert_eq!(vm.address_space().user_table_count(&w.m), 0);
    drop(vm);
    w.finish();
}

#[test]
fn supervisor_write_to_fresh_anonymous_mapping_is_serviced() {
    // The spec's example: mmap, then memset from kernel code.
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm.mmap(&fds, NULL, 4096, RW, ANON, -1, 0).unwrap();
    w.write_bytes(&mut vm, a, &[0u8; 4096], S).unwrap();
    assert_eq!(w.read_u32(&mut vm, at(a, 100), U), Ok(0));
    assert_eq!(vm.fault_stats().demand_zero, 1);
    vm.munmap(a, 4096).unwrap();
    drop(vm);
    w.finish();
}

#[test]
fn hint_is_used_when_free_and_map_fixed_replaces() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let hint = VirtAddr::new(0x1000_0000);
    assert_eq!(vm.mmap(&fds, hint, 4 * PAGE, RW, ANON, -1, 0), Ok(hint));
    let b = vm
        .mmap(&fds, at(hint, PAGE), PAGE, PROT_READ, ANON, -1, 0)
        .unwrap();
    assert_ne!(b, at(hint, PAGE), "hint taken: another range is found");
    w.write_u32(&mut vm, at(hint, PAGE), 7, U).unwrap();
    // MAP_FIXED over the middle replaces it: fresh zero page, read-only.
    let f = vm
        .mmap(
            &fds,
            at(hint, PAGE),
            PAGE,
            PROT_READ,
            ANON | MAP_FIXED,
            -1,
            0,
        )
        .unwrap();
    assert_eq!(f, at(hint, PAGE));
    assert_eq!(w.read_u32(&mut vm, f, U), Ok(0));
    assert_eq!(
        w.write_u32(&mut vm, f, 1, U),
        Err(segv(f, SegvCause::Protection))
    );
    assert_eq!(vm.region_count(), 4);
    drop(vm);
    w.finish();
}

#[test]
fn partial_munmap_splits_and_the_hole_faults_sigsegv() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm.mmap(&fds, NULL, 3 * PAGE, RW, ANON, -1, 0).unwrap();
    for i in 0..3 {
        w.write_u32(&mut vm, at(a, i * PAGE), 100 + i, U).unwrap();
    }
    vm.munmap(at(a, PAGE), PAGE).unwrap();
    assert_eq!(vm.region_count(), 2);
    assert_eq!(vm.region_at(a).unwrap().end, at(a, PAGE));
    assert_eq!(
        vm.region_at(at(a, 2 * PAGE)).unwrap().start,
        at(a, 2 * PAGE)
    );
    let hole = at(a, PAGE + 8);
    assert_eq!(
        w.read_u32(&mut vm, hole, U),
        Err(segv(hole, SegvCause::NoRegion))
    );
    assert_eq!(
        w.write_u32(&mut vm, hole, 1, U),
        Err(segv(hole, SegvCause::NoRegion))
    );
    // A supervisor access to the hole is a kernel bug, not a signal.
    assert_eq!(w.read_u32(&mut vm, hole, S), Err(FaultOutcome::KernelBug));
    assert_eq!(w.read_u32(&mut vm, a, U), Ok(100));
    assert_eq!(w.read_u32(&mut vm, at(a, 2 * PAGE), U), Ok(102));
    assert_eq!(vm.fault_stats().sigsegv, 2);
    assert_eq!(vm.fault_stats().kernel_bug, 1);
    drop(vm);
    w.finish();
}

#[test]
fn prot_none_access_is_sigsegv() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm
        .mmap(&fds, NULL, 2 * PAGE, PROT_NONE, ANON, -1, 0)
        .unwrap();
    for op in 0..3 {
        let r = match op {
            0 => w.read_u32(&mut vm, a, U).map(|_| ()),
            1 => w.write_u32(&mut vm, a, 1, U),
            _ => w.fetch(&mut vm, a, U).map(|_| ()),
        };
        assert_eq!(r, Err(segv(a, SegvCause::Protection)));
    }
    // Resident data made PROT_NONE keeps its frame but user access faults.
    let b = vm.mmap(&fds, NULL, PAGE, RW, ANON, -1, 0).unwrap();
    w.write_u32(&mut vm, b, 42, U).unwrap();
    vm.mprotect(b, PAGE, PROT_NONE).unwrap();
    assert_eq!(
        w.read_u32(&mut vm, b, U),
        Err(segv(b, SegvCause::Protection))
    );
    vm.mprotect(b, PAGE, PROT_READ).unwrap();
    assert_eq!(w.read_u32(&mut vm, b, U), Ok(42));
    drop(vm);
    w.finish();
}

#[test]
fn write_to_prot_read_is_sigsegv_then_ok_after_mprotect_rw() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm
        .mmap(&fds, NULL, 4 * PAGE, PROT_READ, ANON, -1, 0)
        .unwrap();
    assert_eq!(w.read_u32(&mut vm, at(a, PAGE), U), Ok(0)); // resident, read-only
    let x = at(a, PAGE + 4);
    assert_eq!(
        w.write_u32(&mut vm, x, 5, U),
        Err(segv(x, SegvCause::Protection))
    );
    assert_eq!(
        w.write_u32(&mut vm, at(a, 3 * PAGE), 5, U),
        Err(segv(at(a, 3 * PAGE), SegvCause::Protection))
    );
    vm.mprotect(at(a, PAGE), PAGE, RW).unwrap();
    assert_eq!(vm.region_count(), 3, "split into three");
    w.write_u32(&mut vm, x, 5, U).unwrap();
    assert_eq!(w.read_u32(&mut vm, x, U), Ok(5));
    // The neighbours stay read-only.
    assert!(w.write_u32(&mut vm, a, 5, U).is_err());
    // Making everything RW merges back into one region.
    vm.mprotect(a, 4 * PAGE, RW).unwrap();
    assert_eq!(vm.region_count(), 1);
    w.write_u32(&mut vm, at(a, 3 * PAGE), 6, U).unwrap();
    // Back to read-only: the live writable entry is downgraded and the TLB
    // flushed (the sim would otherwise still allow the write).
    vm.mprotect(a, 4 * PAGE, PROT_READ).unwrap();
    assert_eq!(
        w.write_u32(&mut vm, x, 9, U),
        Err(segv(x, SegvCause::Protection))
    );
    assert_eq!(w.read_u32(&mut vm, x, U), Ok(5));
    drop(vm);
    w.finish();
}

#[test]
fn exec_is_readable_and_fetches_work() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm.mmap(&fds, NULL, PAGE, PROT_EXEC, ANON, -1, 0).unwrap();
    assert_eq!(w.fetch(&mut vm, a, U), Ok(0));
    assert_eq!(w.read_u32(&mut vm, a, U), Ok(0));
    assert!(w.write_u32(&mut vm, a, 1, U).is_err());
    assert_eq!(vm.region_at(a).unwrap().prot, Prot::EXEC);
    drop(vm);
    w.finish();
}

#[test]
fn fork_then_writes_on_both_sides_stay_private() {
    let w = World::new(16 * MIB);
    let mut parent = w.space();
    let fds = FdTable::new();
    let a = vm_fill(&w, &mut parent, &fds, 8);
    let used_before = w.used();
    let mut child = parent.fork().unwrap();
    // Page tables copied (one table + directory + counts), no data page.
    assert_eq!(w.used(), used_before + 3);
    assert_eq!(child.resident_pages(), 8);
    for i in 0..8 {
        assert_eq!(w.read_u32(&mut child, at(a, i * PAGE), U), Ok(i));
    }
    w.write_u32(&mut child, a, 1000, U).unwrap();
    w.write_u32(&mut parent, at(a, PAGE), 2000, U).unwrap();
    w.write_u32(&mut parent, a, 3000, U).unwrap(); // count back to 1: reuse
    assert_eq!(w.read_u32(&mut child, a, U), Ok(1000));
    assert_eq!(w.read_u32(&mut child, at(a, PAGE), U), Ok(1));
    assert_eq!(w.read_u32(&mut parent, a, U), Ok(3000));
    assert_eq!(w.read_u32(&mut parent, at(a, PAGE), U), Ok(2000));
    assert_eq!(child.fault_stats().cow_copy, 1);
    assert_eq!(parent.fault_stats().cow_copy, 1);
    assert_eq!(parent.fault_stats().cow_reuse, 1);
    // Two pages now exist twice.
    assert_eq!(w.used(), used_before + 3 + 2);
    drop(child);
    assert_eq!(w.used(), used_before);
    drop(parent);
    w.finish();
}

/// Maps `pages` private RW pages and writes `i` at the start of page `i`.
fn vm_fill(w: &World, vm: &mut Vm<'_>, fds: &FdTable, pages: u32) -> VirtAddr {
    let a = vm.mmap(fds, NULL, pages * PAGE, RW, ANON, -1, 0).unwrap();
    for i in 0..pages {
        w.write_u32(vm, at(a, i * PAGE), i, U).unwrap();
    }
    a
}

#[test]
fn fork_of_a_fork_then_exits_in_any_order_returns_every_frame() {
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let w = World::new(16 * MIB);
        let fds = FdTable::new();
        let mut p = w.space();
        let a = vm_fill(&w, &mut p, &fds, 4);
        let mut c = p.fork().unwrap();
        w.write_u32(&mut c, a, 10, U).unwrap();
        let mut g = c.fork().unwrap();
        w.write_u32(&mut g, at(a, PAGE), 21, U).unwrap();
        w.write_u32(&mut c, at(a, 2 * PAGE), 12, U).unwrap();
        // Page 3 is shared by all three: count 3.
        let f3 = p
            .address_space()
            .translate(&w.m, at(a, 3 * PAGE))
            .unwrap()
            .frame();
        assert_eq!(myos_mm::frames::FrameSource::refcount(&&w.fa, f3), Ok(3));
        let expect = [[0, 1, 2, 3], [10, 1, 12, 3], [10, 21, 2, 3]];
        let mut spaces = vec![Some(p), Some(c), Some(g)];
        for (k, s) in spaces.iter_mut().enumerate() {
            for i in 0..4 {
                assert_eq!(
                    w.read_u32(s.as_mut().unwrap(), at(a, i * PAGE), U),
                    Ok(expect[k][i as usize])
                );
            }
        }
        for (step, &k) in order.iter().enumerate() {
            spaces[k].take().unwrap().destroy();
            // The survivors still see their data.
            for (j, s) in spaces.iter_mut().enumerate() {
                if let Some(s) = s {
                    for i in 0..4 {
                        assert_eq!(
                            w.read_u32(s, at(a, i * PAGE), U),
                            Ok(expect[j][i as usize]),
                            "order {order:?} step {step}"
                        );
                    }
                }
            }
        }
        assert_eq!(myos_mm::frames::FrameSource::refcount(&&w.fa, f3), Ok(0));
        drop(spaces);
        w.finish();
    }
}

#[test]
fn shared_anonymous_writes_are_visible_across_fork() {
    let w = World::new(16 * MIB);
    let mut p = w.space();
    let fds = FdTable::new();
    let a = vm_shared(&mut p, &fds);
    w.write_u32(&mut p, a, 1, U).unwrap();
    let mut c = p.fork().unwrap();
    w.write_u32(&mut c, a, 2, U).unwrap();
    assert_eq!(w.read_u32(&mut p, a, U), Ok(2));
    // A page first touched after the fork is shared too.
    w.write_u32(&mut p, at(a, PAGE), 3, U).unwrap();
    assert_eq!(w.read_u32(&mut c, at(a, PAGE), U), Ok(3));
    assert_eq!(c.fault_stats().cow_copy + p.fault_stats().cow_copy, 0);
    // The parent exits; the child still has the memory.
    drop(p);
    assert_eq!(w.read_u32(&mut c, at(a, PAGE), U), Ok(3));
    // Private memory next to it is still copy-on-write.
    drop(c);
    w.finish();
}

fn vm_shared(vm: &mut Vm<'_>, fds: &FdTable) -> VirtAddr {
    vm.mmap(fds, NULL, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
        .unwrap()
}

#[test]
fn remapping_a_page_shows_the_new_data_no_stale_tlb() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fs = MemFs::new();
    fs.create("new", &[0x5A; 4096]);
    let mut fds = FdTable::new();
    let fd = fds.insert(fs.open("new", OpenMode::ReadOnly).unwrap());
    let a = vm.mmap(&fds, NULL, PAGE, RW, ANON, -1, 0).unwrap();
    w.write_u32(&mut vm, a, 0x1111_1111, U).unwrap();
    assert_eq!(w.read_u32(&mut vm, a, U), Ok(0x1111_1111)); // now cached in the TLB
    assert!(w.m.tlb_peek(a.as_u32()).is_some());
    // Replace it with MAP_FIXED: a file page.
    vm.mmap(&fds, a, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0)
        .unwrap();
    assert_eq!(w.read_u32(&mut vm, a, U), Ok(0x5A5A_5A5A));
    // munmap + mmap at the same address: zeroes, not the old data.
    vm.munmap(a, PAGE).unwrap();
    assert_eq!(vm.mmap(&fds, a, PAGE, RW, ANON, -1, 0), Ok(a));
    assert_eq!(w.read_u32(&mut vm, a, U), Ok(0));
    drop(vm);
    w.finish();
}

#[test]
fn copy_to_user_into_a_cow_page_breaks_the_sharing() {
    let w = World::new(16 * MIB);
    let mut p = w.space();
    let fds = FdTable::new();
    let a = vm_fill(&w, &mut p, &fds, 2);
    let mut c = p.fork().unwrap();
    let shared = p.address_space().translate(&w.m, a).unwrap();
    assert_eq!(c.address_space().translate(&w.m, a).unwrap(), shared);
    c.copy_to_user(at(a, 4), b"child!").unwrap();
    assert_ne!(
        c.address_space().translate(&w.m, a).unwrap(),
        shared,
        "the child got its own copy"
    );
    assert_eq!(c.fault_stats().cow_copy, 1);
    assert_eq!(w.read_bytes(&mut c, a, 10, U).unwrap(), b"\0\0\0\0child!");
    assert_eq!(w.read_bytes(&mut p, a, 10, U).unwrap(), [0; 10]);
    let mut buf = [0u8; 6];
    p.copy_from_user(at(a, 4), &mut buf).unwrap();
    assert_eq!(buf, [0; 6]);
    // Across a page boundary, and into untouched memory (demand-zero).
    let b = p.mmap(&fds, NULL, 2 * PAGE, RW, ANON, -1, 0).unwrap();
    p.copy_to_user(at(b, PAGE - 3), b"abcdef").unwrap();
    assert_eq!(
        w.read_bytes(&mut p, at(b, PAGE - 3), 6, U).unwrap(),
        b"abcdef"
    );
    drop(c);
    drop(p);
    w.finish();
}

#[test]
fn stack_grows_down_to_its_limit_but_not_into_the_guard_gap() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let top = VirtAddr::new(USER_END);
    let bottom = vm.map_stack(top, 4 * PAGE, 64 * PAGE).unwrap();
    assert_eq!(bottom.as_u32(), USER_END - 4 * PAGE);
    let below = VirtAddr::new(bottom.as_u32() - 10 * PAGE);
    w.write_u32(&mut vm, below, 77, U).unwrap();
    assert_eq!(vm.fault_stats().stack_growth, 1);
    assert_eq!(vm.region_at(below).unwrap().start, below.align_down(PAGE));
    assert_eq!(w.read_u32(&mut vm, below, U), Ok(77));
    let past = VirtAddr::new(USER_END - 65 * PAGE);
    assert_eq!(
        w.read_u32(&mut vm, past, U),
        Err(segv(past, SegvCause::NoRegion))
    );
    // mmap never places anything in the growth range or the guard gap.
    let m = vm
        .mmap(
            &fds,
            VirtAddr::new(USER_END - 100 * PAGE),
            PAGE,
            RW,
            ANON,
            -1,
            0,
        )
        .unwrap();
    assert!(
        m.as_u32() + PAGE + STACK_GUARD_GAP <= USER_END - 64 * PAGE
            || m.as_u32() < USER_END - 64 * PAGE - STACK_GUARD_GAP
    );
    // A MAP_FIXED mapping right below the stack stops growth within the gap.
    let fixed = VirtAddr::new(USER_END - 40 * PAGE);
    vm.mmap(&fds, fixed, PAGE, RW, ANON | MAP_FIXED, -1, 0)
        .unwrap();
    let near = VirtAddr::new(USER_END - 30 * PAGE);
    assert_eq!(
        w.read_u32(&mut vm, near, U),
        Err(segv(near, SegvCause::NoRegion))
    );
    drop(vm);
    w.finish();
}

#[test]
fn faults_in_kernel_space_or_with_reserved_bits() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let k = VirtAddr::new(0xC000_1000);
    // A user access to the kernel half: the sim raises a protection fault.
    assert_eq!(
        w.read_u32(&mut vm, k, U),
        Err(segv(k, SegvCause::Protection))
    );
    assert_eq!(
        vm.handle_fault(PageFault::new(0xF800_0000, 0)),
        FaultOutcome::KernelBug
    );
    assert_eq!(
        vm.handle_fault(PageFault::new(
            0x1000_0000,
            ERR_RESERVED | ERR_PRESENT | ERR_USER
        )),
        FaultOutcome::KernelBug
    );
    assert_eq!(
        vm.handle_fault(PageFault::new(0x1000_0000, ERR_USER)),
        segv(VirtAddr::new(0x1000_0000), SegvCause::NoRegion)
    );
    drop(vm);
    w.finish();
}

#[test]
fn destroying_the_loaded_space_switches_to_the_kernel() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm_fill(&w, &mut vm, &fds, 3);
    assert!(vm.is_active());
    let _ = a;
    vm.destroy();
    assert_eq!(
        w.m.cr3(),
        w.kernel.as_ref().unwrap().directory().start().as_u32()
    );
    w.finish();
}

#[test]
fn regions_report_and_merge() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm
        .mmap(&fds, VirtAddr::new(0x2000_0000), 2 * PAGE, RW, ANON, -1, 0)
        .unwrap();
    let b = vm
        .mmap(&fds, at(a, 2 * PAGE), 2 * PAGE, RW, ANON, -1, 0)
        .unwrap();
    assert_eq!(b, at(a, 2 * PAGE));
    assert_eq!(
        vm.region_count(),
        1,
        "adjacent equal anonymous regions merge"
    );
    let info = vm.regions().next().unwrap();
    assert_eq!((info.start, info.end), (a, at(a, 4 * PAGE)));
    assert_eq!(info.backing, BackingKind::Anonymous);
    assert!(!info.shared && !info.stack);
    let s = vm
        .mmap(
            &fds,
            at(a, 4 * PAGE),
            PAGE,
            RW,
            MAP_SHARED | MAP_ANONYMOUS,
            -1,
            0,
        )
        .unwrap();
    assert_eq!(s, at(a, 4 * PAGE));
    assert_eq!(vm.region_count(), 2, "shared and private never merge");
    assert_eq!(vm.munmap(a, 0), Err(MmError::InvalidArgument));
    drop(vm);
    w.finish();
}

#[test]
fn raw_mappings_outside_regions_are_shared_by_fork_and_freed_at_exit() {
    use myos_mm::frames::{FrameSource, Zone};
    use myos_mm::paging::PteFlags;
    let w = World::new(16 * MIB);
    let mut p = w.space();
    // The spec's example: a page mapped by hand at 0x1000, below any region.
    let owned = (&w.fa).alloc(Zone::High).unwrap();
    let f = owned.frame();
    let low = VirtAddr::new(0x1000);
    p.address_space_mut()
        .map(
            &w.m,
            &mut &w.fa,
            low.page(),
            owned,
            PteFlags::USER | PteFlags::WRITABLE,
        )
        .unwrap()
        .ignore();
    w.write_u32(&mut p, low, 5, U).unwrap();
    let mut c = p.fork().unwrap();
    w.write_u32(&mut c, low, 6, U).unwrap();
    assert_eq!(w.read_u32(&mut p, low, U), Ok(6), "shared as it was");
    assert_eq!((&w.fa).refcount(f), Ok(2));
    drop(p);
    drop(c);
    w.finish();
}

#[test]
fn a_space_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Vm<'static>>();
}

#[test]
fn thousands_of_regions_stay_consistent() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let base = USER_MMAP_MIN;
    // 3000 one-page regions with one-page holes, alternating protections.
    for i in 0..3000u32 {
        let prot = if i % 2 == 0 { PROT_READ } else { RW };
        let a = VirtAddr::new(base + 2 * i * PAGE);
        vm.mmap(&fds, a, PAGE, prot, ANON | MAP_FIXED, -1, 0)
            .unwrap();
    }
    assert_eq!(vm.region_count(), 3000);
    // Fill every third hole: neighbours with equal protection don't exist
    // (they alternate), so nothing merges.
    for i in (0..2999u32).step_by(3) {
        let a = VirtAddr::new(base + (2 * i + 1) * PAGE);
        vm.mmap(&fds, a, PAGE, PROT_EXEC, ANON | MAP_FIXED, -1, 0)
            .unwrap();
    }
    assert_eq!(vm.region_count(), 4000);
    // Unmap a wide range in the middle, then make a long run all RW so it merges.
    vm.munmap(VirtAddr::new(base + 1000 * PAGE), 2000 * PAGE)
        .unwrap();
    vm.mprotect(VirtAddr::new(base + 4000 * PAGE), 1000 * PAGE, RW)
        .unwrap_err();
    let run = VirtAddr::new(base + 4000 * PAGE);
    vm.mmap(&fds, run, 1000 * PAGE, PROT_NONE, ANON | MAP_FIXED, -1, 0)
        .unwrap();
    assert_eq!(vm.region_at(at(run, 999 * PAGE)).unwrap().start, run);
    vm.validate().unwrap();
    let regions: Vec<RegionInfo> = vm.regions().collect();
    for pair in regions.windows(2) {
        assert!(pair[0].end <= pair[1].start);
    }
    for r in &regions {
        assert_eq!(vm.region_at(r.start), Some(*r));
        assert_eq!(
            vm.region_at(at(r.end, 0)).map(|x| x.start == r.end),
            vm.region_at(r.end).map(|_| true)
        );
    }
    // The big hole is found by a non-fixed mapping of 1000 pages.
    let big = vm.mmap(&fds, NULL, 1500 * PAGE, RW, ANON, -1, 0).unwrap();
    assert!(vm.region_at(big).is_some());
    w.write_u32(&mut vm, at(big, 1499 * PAGE), 3, U).unwrap();
    drop(vm);
    w.finish();
}

#[test]
fn mprotect_across_a_boundary_merges_every_equal_piece() {
    // Found by the property test: [X X X][N N N] -> mprotect the middle two
    // pages to NONE must leave [X X][N N N N], not [X X][N N][N N].
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = VirtAddr::new(0x1000_0000);
    vm.mmap(&fds, a, 3 * PAGE, PROT_EXEC, ANON | MAP_FIXED, -1, 0)
        .unwrap();
    vm.mmap(
        &fds,
        at(a, 3 * PAGE),
        3 * PAGE,
        PROT_NONE,
        ANON | MAP_FIXED,
        -1,
        0,
    )
    .unwrap();
    assert_eq!(vm.region_count(), 2);
    vm.mprotect(at(a, 2 * PAGE), 2 * PAGE, PROT_NONE).unwrap();
    assert_eq!(vm.region_count(), 2);
    let none = vm.region_at(at(a, 5 * PAGE)).unwrap();
    assert_eq!(
        (none.start, none.end, none.prot),
        (at(a, 2 * PAGE), at(a, 6 * PAGE), Prot::empty())
    );
    vm.validate().unwrap();
    drop(vm);
    w.finish();
}

/// Ring 0 touching a present user page where SMEP or SMAP forbid it: the
/// handler names the bug instead of taking the fault for a stale TLB entry
/// (which would retry the access forever; `World::run` panics on a loop).
#[test]
fn smep_and_smap_faults_are_kernel_bugs_not_loops() {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let fds = FdTable::new();
    let a = vm.mmap(&fds, NULL, 2 * PAGE, RW, ANON, -1, 0).unwrap();
    w.write_u32(&mut vm, a, 0x90, U).unwrap();
    let fresh = at(a, PAGE);
    // No protections: ring 0 may read and run user pages (classic i386).
    assert_eq!(w.read_u32(&mut vm, a, S), Ok(0x90));
    assert_eq!(w.fetch(&mut vm, a, S), Ok(0x90));

    w.m.set_smep(true);
    let smep = Err(FaultOutcome::ProtectionBug(ProtectionBug::SmepFetch));
    assert_eq!(w.fetch(&mut vm, a, S), smep, "present page (0x11)");
    assert_eq!(w.fetch(&mut vm, fresh, S), smep, "not present (0x10)");
    assert_eq!(w.fetch(&mut vm, a, U), Ok(0x90), "ring 3 runs its pages");
    assert_eq!(
        w.read_u32(&mut vm, a, S),
        Ok(0x90),
        "SMEP leaves data alone"
    );

    w.m.set_smap(true);
    let smap = Err(FaultOutcome::ProtectionBug(ProtectionBug::SmapAccess));
    assert_eq!(w.read_u32(&mut vm, a, S), smap, "present read (0x1)");
    assert_eq!(w.write_u32(&mut vm, a, 1, S), smap.map(|_| ()), "0x3");
    assert_eq!(w.read_u32(&mut vm, fresh, S), smap, "not present (0x0)");
    assert_eq!(w.read_u32(&mut vm, a, U), Ok(0x90), "ring 3 unaffected");
    // stac: the kernel may touch user memory (and fault pages in) again.
    w.m.set_ac(true);
    w.write_u32(&mut vm, fresh, 5, S).unwrap();
    assert_eq!(w.read_u32(&mut vm, fresh, S), Ok(5));
    assert_eq!(w.fetch(&mut vm, a, S), smep, "AC does not lift SMEP");
    w.m.set_ac(false);
    assert_eq!(vm.fault_stats().kernel_bug, 6);
    assert_eq!(vm.fault_stats().spurious, 0, "never taken for stale TLB");

    // Raw codes without the context (as the C API passes them): a
    // supervisor fetch fault or a present read fault is still named.
    let fetch = vm.handle_fault(PageFault::new(a.as_u32(), ERR_PRESENT | ERR_FETCH));
    assert_eq!(fetch, FaultOutcome::ProtectionBug(ProtectionBug::SmepFetch));
    let read = vm.handle_fault(PageFault::new(a.as_u32(), ERR_PRESENT));
    assert_eq!(read, FaultOutcome::ProtectionBug(ProtectionBug::SmapAccess));
    drop(vm);
    w.finish();
}
