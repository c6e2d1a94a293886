//! The core in PAE mode on the PAE machine: pages without `PROT_EXEC` are
//! no-execute and a fetch from them is SIGSEGV (the CPU's fault carries
//! ERR_FETCH, the handler never resolves it as a read); `mprotect` with
//! `PROT_EXEC` clears NX; user pages, copy-on-write copies and file pages
//! come from above 4 GiB and every frame comes back; the kernel directory
//! is shared through PDPTE[3]; the error paths of the PAE structures.

use myos_abi::{
    MemFs, RawMman, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE,
};
use myos_mm::addr::FRAME_COUNT_4G;
use myos_mm::frames::{FrameAllocator, FrameSource, Zone};
use myos_mm::layout::{KERNEL_BASE, PAGE_SIZE};
use myos_mm::paging::{AddressSpace, Entry, Pae, PteFlags};
use myos_mm::vm::{FaultOutcome, FdTable, OpenMode, PageFault as CoreFault, SegvCause, Signal};
use myos_mm::{MmError, OwnedFrame, Page, PhysAddr, Platform, VirtAddr};
use myos_sim::err::{ERR_FETCH, ERR_PRESENT, ERR_USER};
use myos_sim::pae::PaeMachine;
use myos_sim::{Mode, Vm, World};

const MIB: u64 = 1 << 20;
const RW: u32 = PROT_READ | PROT_WRITE;
const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;

fn world() -> World<PaeMachine> {
    World::new_pae(16 * MIB, 16 * MIB)
}

fn map(vm: &mut Vm<'_, PaeMachine>, len: u32, prot: u32) -> VirtAddr {
    vm.mmap(&FdTable::new(), VirtAddr::new(0), len, prot, ANON, -1, 0)
        .unwrap()
}

fn entry(
    w: &World<PaeMachine>,
    vm: &Vm<'_, PaeMachine>,
    va: VirtAddr,
) -> myos_mm::paging::PaeEntry {
    vm.address_space()
        .entry(&w.m, va.page())
        .filter(|e| e.is_present())
        .expect("a present entry")
}

fn segv(addr: VirtAddr) -> FaultOutcome {
    FaultOutcome::Signal(Signal::Segv {
        addr,
        cause: SegvCause::Protection,
    })
}

#[test]
fn a_page_without_prot_exec_is_nx_and_a_fetch_is_sigsegv_with_err_fetch() {
    let w = world();
    let mut vm = w.space();
    let a = map(&mut vm, 4096, RW);
    w.write_u32(&mut vm, a, 0xC3, Mode::User).unwrap();
    let e = entry(&w, &vm, a);
    assert!(e.no_exec(), "{e:?}");
    assert!(e.flags().contains(PteFlags::USER | PteFlags::WRITABLE));
    // The CPU refuses the fetch with ERR_FETCH on a present page...
    let f = w.m.fetch(a.as_u32(), Mode::User).unwrap_err();
    assert_eq!(f.error_code, ERR_FETCH | ERR_PRESENT | ERR_USER);
    // ...and the handler signals it, every time (never a spurious retry).
    for _ in 0..2 {
        let o = vm.handle_fault(CoreFault::new(f.cr2, f.error_code));
        assert_eq!(o, segv(a));
    }
    assert_eq!(w.fetch(&mut vm, a, Mode::User), Err(segv(a)));
    // Data accesses still work; the page stays NX.
    assert_eq!(w.read_u32(&mut vm, a, Mode::User), Ok(0xC3));
    assert!(entry(&w, &vm, a).no_exec());
    drop(vm);
    w.finish();
}

#[test]
fn a_fetch_from_a_not_present_page_without_prot_exec_is_sigsegv_and_maps_nothing() {
    let w = world();
    let mut vm = w.space();
    let a = map(&mut vm, 4096, RW);
    let before = w.used();
    let f = w.m.fetch(a.as_u32(), Mode::User);
    // No page table yet: nothing is present.
    assert!(f.is_err());
    w.m.set_cr3(vm.directory().start().as_u32()).unwrap();
    let f = w.m.fetch(a.as_u32(), Mode::User).unwrap_err();
    assert_eq!(f.error_code, ERR_FETCH | ERR_USER);
    let o = vm.handle_fault(CoreFault::new(f.cr2, f.error_code));
    assert_eq!(o, segv(a));
    assert_eq!(w.used(), before, "the refused fetch allocated nothing");
    assert_eq!(vm.resident_pages(), 0);
    drop(vm);
    w.finish();
}

#[test]
fn mprotect_read_exec_clears_nx_and_read_only_sets_it_again() {
    let w = world();
    let mut vm = w.space();
    let a = map(&mut vm, 2 * 4096, RW);
    let b = a.checked_add(4096).unwrap();
    w.write_u32(&mut vm, a, 0x90, Mode::User).unwrap();
    w.write_u32(&mut vm, b, 0x91, Mode::User).unwrap();
    vm.mprotect(a, 4096, PROT_READ | PROT_EXEC).unwrap();
    let e = entry(&w, &vm, a);
    assert!(
        !e.no_exec() && !e.flags().contains(PteFlags::WRITABLE),
        "{e:?}"
    );
    assert_eq!(w.fetch(&mut vm, a, Mode::User), Ok(0x90));
    // The neighbour kept its protection.
    assert!(entry(&w, &vm, b).no_exec());
    assert_eq!(w.fetch(&mut vm, b, Mode::User), Err(segv(b)));
    // Taking PROT_EXEC away again sets NX (a narrowing: the TLB entry goes).
    vm.mprotect(a, 4096, PROT_READ).unwrap();
    assert!(entry(&w, &vm, a).no_exec());
    assert_eq!(w.fetch(&mut vm, a, Mode::User), Err(segv(a)));
    assert_eq!(w.read_u32(&mut vm, a, Mode::User), Ok(0x90));
    drop(vm);
    w.finish();
}

#[test]
fn an_exec_page_faulted_in_by_a_fetch_is_executable() {
    let w = world();
    let mut vm = w.space();
    let a = map(&mut vm, 4096, PROT_READ | PROT_EXEC);
    assert_eq!(w.fetch(&mut vm, a, Mode::User), Ok(0));
    assert!(!entry(&w, &vm, a).no_exec());
    assert_eq!(vm.fault_stats().demand_zero, 1);
    drop(vm);
    w.finish();
}

#[test]
fn user_pages_and_copy_on_write_copies_come_from_above_4gib_and_come_back() {
    let w = world();
    let mut parent = w.space();
    let pages = 8u32;
    let a = map(&mut parent, pages * 4096, RW);
    for i in 0..pages {
        let va = VirtAddr::new(a.as_u32() + i * 4096);
        w.write_u32(&mut parent, va, 0x1000 + i, Mode::User)
            .unwrap();
        let f = entry(&w, &parent, va).frame();
        assert!(f.number() >= FRAME_COUNT_4G, "{f:?} is below 4 GiB");
        assert_eq!(
            parent.address_space().translate(&w.m, va),
            Some(f.start()),
            "translate gives the wide address"
        );
    }
    let mut child = parent.fork().unwrap();
    for i in 0..pages {
        let va = VirtAddr::new(a.as_u32() + i * 4096);
        assert_eq!(
            entry(&w, &child, va).frame(),
            entry(&w, &parent, va).frame()
        );
        w.write_u32(&mut child, va, 0x2000 + i, Mode::User).unwrap();
        let (c, p) = (
            entry(&w, &child, va).frame(),
            entry(&w, &parent, va).frame(),
        );
        assert_ne!(c, p, "the write copied the page");
        assert!(c.number() >= FRAME_COUNT_4G, "{c:?} is below 4 GiB");
        assert!(entry(&w, &child, va).no_exec(), "the copy keeps NX");
        assert_eq!(w.read_u32(&mut parent, va, Mode::User), Ok(0x1000 + i));
        assert_eq!(w.read_u32(&mut child, va, Mode::User), Ok(0x2000 + i));
    }
    assert_eq!(child.fault_stats().cow_copy, u64::from(pages));
    // The kernel reads and writes high frames through the data methods.
    let mut buf = [0u8; 4];
    child.copy_from_user(a, &mut buf).unwrap();
    assert_eq!(u32::from_le_bytes(buf), 0x2000);
    child.copy_to_user(a, &7u32.to_le_bytes()).unwrap();
    assert_eq!(w.read_u32(&mut child, a, Mode::User), Ok(7));
    drop(child);
    drop(parent);
    // `finish` checks every frame is back, then that the kernel space
    // gives back all of its own.
    w.finish();
}

#[test]
fn file_pages_come_from_above_4gib_and_are_written_back() {
    let w = world();
    let fs = MemFs::new();
    fs.create("f", &[0x5Au8; 2 * PAGE_SIZE]);
    let mut fds = FdTable::new();
    let fd = fds.insert(fs.open("f", OpenMode::ReadWrite).unwrap());
    let mut vm = w.space();
    let a = vm
        .mmap(&fds, VirtAddr::new(0), 8192, RW, MAP_SHARED, fd, 0)
        .unwrap();
    assert_eq!(w.read_u32(&mut vm, a, Mode::User), Ok(0x5A5A_5A5A));
    assert!(entry(&w, &vm, a).frame().number() >= FRAME_COUNT_4G);
    assert!(entry(&w, &vm, a).no_exec());
    w.write_u32(&mut vm, a, 0x1234_5678, Mode::User).unwrap();
    vm.munmap(a, 8192).unwrap();
    assert_eq!(&fs.read("f").unwrap()[..4], &0x1234_5678u32.to_le_bytes());
    drop(vm);
    drop(fds);
    w.finish();
}

#[test]
fn every_space_shares_the_kernel_directory_through_pdpte3() {
    let w = world();
    let (a, b) = (w.space(), w.space());
    let kernel = w.kernel.as_ref().unwrap();
    let pdpte =
        |dir: myos_mm::Frame, i: u64| w.m.read_phys_u64(dir.start().as_u64() + 8 * i).unwrap();
    let k3 = pdpte(kernel.directory(), 3);
    assert_eq!(k3 & 1, 1, "present");
    assert_eq!(k3 & 0x1E6, 0, "no bit a PDPTE reserves");
    for s in [&a, &b] {
        assert_eq!(pdpte(s.directory(), 3), k3);
        for i in 0..3 {
            assert_ne!(pdpte(s.directory(), i), pdpte(kernel.directory(), i));
        }
        // The PDPT is below 4 GiB (CR3 holds 32 bits) and loads.
        assert!(s.directory().start().to_u32().is_some());
    }
    // The direct map (2 MiB pages) translates in every space.
    let va = VirtAddr::new(KERNEL_BASE + 0x0012_3456);
    for s in [&a, &b] {
        assert_eq!(
            s.address_space().translate(&w.m, va),
            Some(PhysAddr::new(0x0012_3456))
        );
    }
    a.activate();
    assert_eq!(w.m.read_u32(KERNEL_BASE + 0x40, Mode::Supervisor), Ok(0));
    drop((a, b));
    w.finish();
}

#[test]
fn a_kernel_half_mapping_made_after_a_space_was_created_is_seen_by_it() {
    let m = PaeMachine::split_ram(16 * MIB, 4 * MIB).build().unwrap();
    let map = m.memory_map();
    // SAFETY: the allocator is dropped before the machine.
    let mut fa = unsafe { FrameAllocator::new_below(&m, &map, m.ram_end()) }.unwrap();
    let boot = fa.stats();
    let mut kernel =
        AddressSpace::<Pae>::create_kernel(&m, &mut fa, PhysAddr::new(16 << 20)).unwrap();
    let user = AddressSpace::new_user(&m, &mut fa, &kernel).unwrap();
    let heap = Page::from_start(VirtAddr::new(myos_mm::layout::HEAP_START)).unwrap();
    let f = fa.alloc(Zone::High).unwrap();
    let frame = f.frame();
    assert!(frame.number() >= FRAME_COUNT_4G);
    kernel
        .map(&m, &mut fa, heap, f, PteFlags::WRITABLE | PteFlags::GLOBAL)
        .unwrap()
        .flush(&m);
    // Not copied: the user space reaches the kernel's table through PDPTE[3].
    assert_eq!(user.translate(&m, heap.start()), Some(frame.start()));
    user.activate(&m);
    m.write_u32(heap.start().as_u32(), 0xFEED, Mode::Supervisor)
        .unwrap();
    assert_eq!(m.read_phys_u32(frame.start().as_u64()).unwrap(), 0xFEED);
    assert_eq!(
        m.write_u32(heap.start().as_u32(), 1, Mode::User)
            .map_err(|f| f.error_code),
        Err(ERR_PRESENT | myos_sim::err::ERR_WRITE | ERR_USER),
        "a kernel page"
    );
    kernel.activate(&m);
    user.deactivate(&m);
    user.destroy(&m, &mut fa);
    let (back, flush) = kernel.unmap(&m, &mut fa, heap).unwrap();
    flush.flush(&m);
    fa.release(back).unwrap();
    // Park CR3 on an empty PDPT (four not-present entries).
    let park = fa.alloc(Zone::Direct).unwrap();
    m.zero_frame(park.frame());
    m.set_cr3(park.start().as_u32()).unwrap();
    // SAFETY: the only user space is gone; the kernel space is not loaded.
    unsafe { kernel.destroy_kernel(&m, &mut fa) };
    fa.release(park).unwrap();
    assert_eq!(fa.stats(), boot);
    fa.validate().unwrap();
}

#[test]
fn pae_map_with_the_huge_flag_or_in_the_direct_map_is_refused_and_hands_the_frame_back() {
    let w = world();
    let mut vm = w.space();
    let before = w.stats();
    let f =
        w.fa.lock()
            .alloc(Zone::High)
            .map(OwnedFrame::into_raw)
            .unwrap();
    let page = Page::from_start(VirtAddr::new(0x4000_0000)).unwrap();
    let direct = Page::from_start(VirtAddr::new(KERNEL_BASE + 0x1000)).unwrap();
    let space = vm.address_space_mut();
    for (p, flags, err) in [
        (
            page,
            PteFlags::USER | PteFlags::HUGE,
            MmError::InvalidArgument,
        ),
        (direct, PteFlags::WRITABLE, MmError::FixedMapping),
    ] {
        // SAFETY: the test holds `f`'s one reference and gets it back.
        let e = space
            .map(
                &w.m,
                &mut *w.fa.lock(),
                p,
                unsafe { OwnedFrame::from_raw(f) },
                flags,
            )
            .unwrap_err();
        assert_eq!(e.error, err);
        assert_eq!(e.frame.into_raw(), f);
    }
    assert_eq!(
        space.protect(&w.m, page, PteFlags::USER).err(),
        Some(MmError::NotMapped)
    );
    assert_eq!(space.user_table_count(&w.m), 0);
    // SAFETY: as above.
    w.fa.lock()
        .release(unsafe { OwnedFrame::from_raw(f) })
        .unwrap();
    assert_eq!(w.stats().used, before.used);
    drop(vm);
    w.finish();
}

#[test]
fn pae_spaces_without_frames_are_out_of_memory_and_leak_nothing() {
    let w = world();
    let kernel = w.kernel.as_ref().unwrap();
    let before = w.stats();
    // A user space needs 5 frames: PDPT, counts, 3 user directories. Fail
    // at each of them in turn.
    for n in 0..5 {
        let mut fa = w.fa.lock();
        fa.fail_after(Some(n));
        let r = AddressSpace::<Pae>::new_user(&w.m, &mut *fa, kernel);
        fa.fail_after(None);
        assert_eq!(r.err(), Some(MmError::OutOfMemory), "failing after {n}");
        assert_eq!(fa.stats(), before, "failing after {n}");
    }
    // The kernel space: PDPT, counts, 4 directories, the window tables.
    for n in [0, 1, 3, 6, 40] {
        let mut fa = w.fa.lock();
        fa.fail_after(Some(n));
        let r = AddressSpace::<Pae>::create_kernel(&w.m, &mut *fa, PhysAddr::new(16 << 20));
        fa.fail_after(None);
        assert_eq!(r.err(), Some(MmError::OutOfMemory), "failing after {n}");
        assert_eq!(fa.stats(), before, "failing after {n}");
    }
    w.finish();
}

#[test]
fn frames_above_4gib_are_allocated_written_read_back_and_freed() {
    let m = PaeMachine::split_ram(16 * MIB, 8 * MIB).build().unwrap();
    let map = m.memory_map();
    // SAFETY: the allocator is dropped before the machine.
    let mut fa = unsafe { FrameAllocator::new_below(&m, &map, 1 << 36) }.unwrap();
    let boot = fa.stats();
    assert_eq!(boot.total, (24 * MIB / 4096) as u32);
    assert_eq!(
        boot.free_per_zone[Zone::High as usize],
        (8 * MIB / 4096) as u32
    );
    let mut got = Vec::new();
    while let Ok(f) = fa.alloc(Zone::High) {
        if f.frame().number() < FRAME_COUNT_4G {
            fa.release(f).unwrap();
            break;
        }
        got.push(f);
    }
    assert_eq!(got.len(), (8 * MIB / 4096) as usize, "the high zone first");
    for (i, f) in got.iter().enumerate() {
        m.write_frame(f.frame(), 8, &(i as u32).to_le_bytes());
    }
    let (a, b) = (got[0].frame(), got[1].frame());
    m.copy_frame(b, a);
    for (i, f) in got.iter().enumerate().skip(2) {
        let mut buf = [0u8; 4];
        m.read_frame(f.frame(), 8, &mut buf);
        assert_eq!(u32::from_le_bytes(buf), i as u32);
        assert_eq!(
            m.read_phys_u32(f.frame().start().as_u64() + 8).unwrap(),
            i as u32,
            "the bytes are at the frame's wide physical address"
        );
    }
    let mut buf = [0u8; 4];
    m.read_frame(b, 8, &mut buf);
    assert_eq!(u32::from_le_bytes(buf), 0);
    m.zero_frame(a);
    assert_eq!(m.read_phys_u32(a.start().as_u64() + 8).unwrap(), 0);
    // A contiguous run above 4 GiB once the zone is free again.
    for f in got {
        fa.release(f).unwrap();
    }
    let run = fa.alloc_contiguous(16, 4, Zone::High).unwrap();
    let (first, n) = run.into_raw();
    assert!(first.number() >= FRAME_COUNT_4G && n == 16);
    // SAFETY: the run's references, given back one by one.
    let run = unsafe { myos_mm::frames::FrameRun::from_raw(first, n) };
    for f in run.into_frames() {
        fa.release(f).unwrap();
    }
    assert_eq!(fa.stats(), boot);
    fa.validate().unwrap();
}

#[test]
#[should_panic(expected = "above the direct map")]
fn the_pae_machine_refuses_direct_map_access_to_a_high_frame() {
    let m = PaeMachine::builder()
        .ram(0, 16 * MIB)
        .ram(1 << 32, 4 * MIB)
        .build()
        .unwrap();
    let _ = m.frame_ptr(PhysAddr::try_from_u64(1 << 32).unwrap().frame());
}

#[test]
fn metadata_that_does_not_fit_below_the_direct_map_limit_is_out_of_memory() {
    // 4 MiB at 0 and 4 MiB just below 64 GiB: the metadata for 16 M frame
    // numbers (about 34 MiB) has no room in the 4 MiB the direct map reaches.
    let m = PaeMachine::builder()
        .ram(0, 4 * MIB)
        .ram((1 << 36) - 4 * MIB, 4 * MIB)
        .nxe(true)
        .build()
        .unwrap();
    let map = m.memory_map();
    // SAFETY: the call fails before it hands anything out.
    let r = unsafe { FrameAllocator::new_below(&m, &map, m.ram_end()) };
    assert_eq!(r.err(), Some(MmError::OutOfMemory));
    // The same map below 4 GiB only: the high bank is left out, and fits.
    // SAFETY: the allocator is dropped before the machine.
    let fa = unsafe { FrameAllocator::new_below(&m, &map, 1 << 32) }.unwrap();
    assert_eq!(fa.stats().total, (4 * MIB / 4096) as u32);
    assert_eq!(fa.frame_limit(), (4 * MIB / 4096) as u32);
}

#[test]
fn a_pae_system_maps_kernel_heap_pages_from_above_4gib_and_gives_them_back() {
    use myos_mm::heap::{HeapBackend, HeapFlags};
    use myos_mm::system::System;

    let m: &'static PaeMachine = Box::leak(Box::new(
        PaeMachine::split_ram(16 * MIB, 4 * MIB).build().unwrap(),
    ));
    let map = m.memory_map();
    // SAFETY: the simulated RAM is used by nothing else; the system is
    // leaked with the machine.
    let sys: &'static System<PaeMachine, Pae> =
        Box::leak(Box::new(unsafe { System::create(m, &map) }.unwrap()));
    sys.kernel_space().lock().activate(m);
    let base = sys.frames().lock().stats();
    assert_eq!(
        base.free_per_zone[Zone::High as usize],
        (4 * MIB / 4096) as u32
    );
    // SAFETY: the backend is only driven directly; no heap dereferences it.
    let mut b = unsafe { sys.heap_backend() };
    let at = myos_mm::layout::HEAP_START as usize;
    b.map(at, 4, false, HeapFlags::KERNEL).unwrap();
    for k in 0..4 {
        let va = VirtAddr::new((at + k * 4096) as u32);
        let e = sys.kernel_space().lock().entry(m, va.page()).unwrap();
        assert!(e.frame().number() >= FRAME_COUNT_4G, "{e:?}");
        assert!(e.flags().contains(PteFlags::GLOBAL) && !e.flags().contains(PteFlags::USER));
        assert_eq!(
            b.phys(at + k * 4096 + 12),
            e.frame().start().checked_add(12)
        );
    }
    m.write_u32(at as u32, 42, Mode::Supervisor).unwrap();
    let f = sys
        .kernel_space()
        .lock()
        .entry(m, VirtAddr::new(at as u32).page())
        .unwrap()
        .frame();
    assert_eq!(m.read_phys_u32(f.start().as_u64()).unwrap(), 42);
    assert!(
        m.read_u32(at as u32, Mode::User).is_err(),
        "supervisor only"
    );
    b.unmap(at, 4);
    assert_eq!(b.phys(at), None);
    assert_eq!(sys.frames().lock().stats(), base);
}
