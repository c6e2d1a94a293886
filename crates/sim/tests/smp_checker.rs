//! The TLB-coherence checker on two CPUs sharing an address space,
//! deterministic (one host thread steps both CPUs).
//!
//! The `core_*` tests run the scenarios with the real core, which ends each
//! narrowing operation with one shootdown to the space's CPU set before it
//! frees anything: the checker finds nothing. The `checker_catches_*` tests
//! reintroduce the bug class deliberately — the platform drops every
//! shootdown ([`SmpMachine::set_drop_shootdowns`]), so the core flushes only
//! the CPU it runs on — and show that the checker reports another CPU's
//! translations of pages that were unmapped, narrowed or freed. The
//! `correct_shootdown_*` tests play the protocol of `docs/smp.md` by hand
//! (put frames aside, shoot down, then free) and show the checker accepts
//! it.
//!
//! [`SmpMachine::set_drop_shootdowns`]: myos_sim::smp::SmpMachine::set_drop_shootdowns

use myos_abi::{RawMman, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use myos_mm::frames::FrameSource;
use myos_mm::smp::{CpuId, CpuSet, Invalidate};
use myos_mm::vm::FdTable;
use myos_mm::{Page, PhysAddr, Platform, VirtAddr};
use myos_sim::smp::world::{SmpVm, SmpWorld};
use myos_sim::smp::{Cached, Violation, ViolationKind};
use myos_sim::{err, Mode};

const CPU1: CpuId = match CpuId::new(1) {
    Some(c) => c,
    None => unreachable!(),
};

/// A 4 MiB-aligned user address: its page table holds only what a test maps.
const REGION: u32 = 0x0800_0000;

/// `pages` RW private pages at [`REGION`], written by CPU 0 (so mapped),
/// and the space loaded on CPU 1 too (which joins its CPU set).
fn setup(w: &SmpWorld, pages: u32) -> SmpVm<'_> {
    let mut vm = w.space(0);
    let a = vm
        .mmap(
            &FdTable::new(),
            VirtAddr::new(REGION),
            pages * 4096,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            -1,
            0,
        )
        .unwrap();
    assert_eq!(a.as_u32(), REGION);
    for i in 0..pages {
        w.write_u32(0, &mut vm, REGION + i * 4096, 0x1000 + i)
            .unwrap();
    }
    w.load(1, &vm);
    assert_eq!(w.check(), Ok(()));
    vm
}

/// As [`setup`], on a platform that drops every shootdown (the bug the
/// protocol prevents, reintroduced).
fn setup_broken(w: &SmpWorld, pages: u32) -> SmpVm<'_> {
    let vm = setup(w, pages);
    w.machine.set_drop_shootdowns(true);
    vm
}

/// Ends a test: CPU 1 leaves the space and the space goes (then
/// `w.finish()` checks that nothing leaked).
fn teardown(w: &SmpWorld, vm: SmpVm<'_>) {
    w.machine.set_drop_shootdowns(false);
    w.unload(1, &vm);
    vm.destroy();
}

fn page(va: u32) -> Page {
    VirtAddr::new(va).page()
}

fn has(v: &[Violation], cpu: CpuId, va: u32, kind: ViolationKind) -> bool {
    v.iter()
        .any(|x| x.cpu == cpu && x.va == va && x.kind == kind)
}

#[test]
fn checker_catches_stale_entry_left_by_local_only_flush() {
    let w = SmpWorld::new(16 << 20, 2);
    // Two pages, so the page table survives and only the page goes.
    let mut vm = setup_broken(&w, 2);
    let p = REGION + 4096;
    let old = w
        .cpu(1)
        .translate(p, myos_sim::Access::Read, Mode::User)
        .unwrap();
    assert_eq!(w.cpu(1).read_u32(p, Mode::User), Ok(0x1001));

    // CPU 0 unmaps the page; with the shootdown dropped the core flushes
    // CPU 0 only and frees the frame.
    vm.munmap(VirtAddr::new(p), 4096).unwrap();
    assert!(w.is_free(PhysAddr::new(old).frame()));

    let v = w.check().unwrap_err();
    assert!(has(&v, CPU1, p, ViolationKind::Unmapped), "{v:#?}");
    assert!(has(&v, CPU1, p, ViolationKind::FreeFrame), "{v:#?}");
    assert!(
        v.iter().all(|x| x.cpu == CPU1),
        "CPU 0 flushed itself: {v:#?}"
    );
    let stale = v
        .iter()
        .find(|x| x.kind == ViolationKind::FreeFrame)
        .unwrap();
    assert!(matches!(stale.cached, Cached::Tlb { phys, user: true, .. } if phys == old));
    // What the stale entry allows: CPU 1 still reads the freed frame, and
    // CPU 0 faults as it should.
    assert_eq!(w.cpu(1).read_u32(p, Mode::User), Ok(0x1001));
    assert!(w.cpu(0).read_u32(p, Mode::User).is_err());

    // A local flush on CPU 1 (what the missing shootdown would have done)
    // makes the machine coherent again.
    w.cpu(1).flush(page(p));
    assert_eq!(w.check(), Ok(()));
    teardown(&w, vm);
    w.finish();
}

#[test]
fn checker_catches_more_permissive_entry_left_by_local_only_mprotect() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup_broken(&w, 1);
    w.cpu(1).write_u32(REGION, 5, Mode::User).unwrap();
    vm.mprotect(VirtAddr::new(REGION), 4096, PROT_READ).unwrap();

    let v = w.check().unwrap_err();
    assert!(has(&v, CPU1, REGION, ViolationKind::MoreRights), "{v:#?}");
    assert_eq!(v.len(), 1, "{v:#?}");
    // The bug it stands for: CPU 1 still writes the read-only page.
    assert_eq!(w.cpu(1).write_u32(REGION, 6, Mode::User), Ok(()));
    let f = w.cpu(0).write_u32(REGION, 7, Mode::User).unwrap_err();
    assert_eq!(
        f.error_code,
        err::ERR_PRESENT | err::ERR_WRITE | err::ERR_USER
    );

    w.cpu(1).flush(page(REGION));
    assert_eq!(w.check(), Ok(()));
    teardown(&w, vm);
    w.finish();
}

#[test]
fn checker_catches_page_table_freed_under_a_remote_pde_cache() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup_broken(&w, 1);
    assert_eq!(w.cpu(1).read_u32(REGION, Mode::User), Ok(0x1000));
    let pde = w
        .cpu(1)
        .pde_cache_peek(REGION)
        .expect("CPU 1 cached the PDE");
    let table = PhysAddr::new(pde & !0xFFF).frame();

    // The region's last page goes: the core frees its page table at once.
    vm.munmap(VirtAddr::new(REGION), 4096).unwrap();
    assert!(w.is_free(table));

    let v = w.check().unwrap_err();
    assert!(has(&v, CPU1, REGION, ViolationKind::PdeFreeTable), "{v:#?}");
    assert!(has(&v, CPU1, REGION, ViolationKind::StalePde), "{v:#?}");
    assert!(has(&v, CPU1, REGION, ViolationKind::FreeFrame), "{v:#?}");

    // `invlpg` of any address of the region drops the cached PDE (and the
    // TLB entry of that page; the page here is the region's only one).
    w.cpu(1).invlpg(REGION + 0x5000);
    assert!(w.cpu(1).pde_cache_peek(REGION).is_none());
    let v = w.check().unwrap_err();
    assert!(v.iter().all(|x| x.kind != ViolationKind::PdeFreeTable));
    w.cpu(1).invlpg(REGION);
    assert_eq!(w.check(), Ok(()));
    teardown(&w, vm);
    w.finish();
}

#[test]
fn checker_catches_frame_freed_before_the_remote_flush() {
    // A core (or platform) that frees first and shoots down afterwards.
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup_broken(&w, 2);
    let p = REGION + 4096;
    w.cpu(1).read_u32(p, Mode::User).unwrap();
    w.defer_frees(true);
    vm.munmap(VirtAddr::new(p), 4096).unwrap();
    assert_eq!(w.deferred().len(), 1);
    // Mid-protocol: CPU 1's entry is stale but its frame is still owned.
    let v = w.check().unwrap_err();
    assert!(has(&v, CPU1, p, ViolationKind::Unmapped), "{v:#?}");
    assert!(!has(&v, CPU1, p, ViolationKind::FreeFrame), "{v:#?}");

    // The wrong order: free, then flush.
    w.release_deferred();
    let v = w.check().unwrap_err();
    assert!(has(&v, CPU1, p, ViolationKind::FreeFrame), "{v:#?}");
    w.machine.set_drop_shootdowns(false);
    w.cpu(0)
        .shootdown(CpuSet::only(CPU1), Invalidate::Pages(&[page(p)]));
    assert_eq!(w.check(), Ok(()));
    w.defer_frees(false);
    teardown(&w, vm);
    w.finish();
}

/// The protocol of `docs/smp.md` played by the test around a core whose
/// shootdowns are dropped: change the tables with frees deferred, shoot
/// down, then free.
fn correct_protocol(
    w: &SmpWorld,
    vm: &mut SmpVm<'_>,
    what: Invalidate<'_>,
    op: impl FnOnce(&mut SmpVm<'_>),
) {
    w.defer_frees(true);
    w.machine.set_drop_shootdowns(true);
    op(vm);
    w.machine.set_drop_shootdowns(false);
    w.cpu(0).shootdown(CpuSet::only(CPU1), what);
    w.release_deferred();
    w.defer_frees(false);
}

#[test]
fn correct_shootdown_before_free_passes_the_checker_for_munmap() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup(&w, 2);
    let p = REGION + 4096;
    w.cpu(1).read_u32(p, Mode::User).unwrap();
    correct_protocol(&w, &mut vm, Invalidate::Pages(&[page(p)]), |vm| {
        vm.munmap(VirtAddr::new(p), 4096).unwrap()
    });
    assert_eq!(w.check(), Ok(()));
    let f = w.cpu(1).read_u32(p, Mode::User).unwrap_err();
    assert_eq!(f.error_code, err::ERR_USER);
    let s = w.machine.shootdown_stats();
    assert_eq!((s.shootdowns, s.ipis_sent, s.pages_invalidated), (1, 1, 1));
    assert_eq!(s.requests_per_cpu, vec![0, 1]);
    teardown(&w, vm);
    w.finish();
}

#[test]
fn correct_shootdown_passes_the_checker_for_mprotect() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup(&w, 1);
    w.cpu(1).write_u32(REGION, 5, Mode::User).unwrap();
    correct_protocol(&w, &mut vm, Invalidate::Pages(&[page(REGION)]), |vm| {
        vm.mprotect(VirtAddr::new(REGION), 4096, PROT_READ).unwrap()
    });
    assert_eq!(w.check(), Ok(()));
    let f = w.cpu(1).write_u32(REGION, 6, Mode::User).unwrap_err();
    assert_eq!(
        f.error_code,
        err::ERR_PRESENT | err::ERR_WRITE | err::ERR_USER
    );
    assert_eq!(w.cpu(1).read_u32(REGION, Mode::User), Ok(5));
    teardown(&w, vm);
    w.finish();
}

#[test]
fn correct_shootdown_passes_the_checker_for_a_freed_page_table() {
    for what in [
        Invalidate::Pages(&[]),
        Invalidate::AllNonGlobal,
        Invalidate::Everything,
    ] {
        let w = SmpWorld::new(16 << 20, 2);
        let mut vm = setup(&w, 1);
        w.cpu(1).read_u32(REGION, Mode::User).unwrap();
        let pages = [page(REGION)];
        let what = match what {
            Invalidate::Pages(_) => Invalidate::Pages(&pages),
            other => other,
        };
        correct_protocol(&w, &mut vm, what, |vm| {
            vm.munmap(VirtAddr::new(REGION), 4096).unwrap()
        });
        assert_eq!(w.check(), Ok(()), "{what:?}");
        assert!(w.cpu(1).pde_cache_peek(REGION).is_none());
        assert!(w.cpu(1).read_u32(REGION, Mode::User).is_err());
        teardown(&w, vm);
        w.finish();
    }
}

#[test]
fn checked_mode_reports_after_each_access() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup_broken(&w, 2);
    w.machine.set_checked(true);
    let p = REGION + 4096;
    w.cpu(1).read_u32(p, Mode::User).unwrap();
    assert!(w.machine.take_violations().is_empty());
    vm.munmap(VirtAddr::new(p), 4096).unwrap();
    // Any access of any CPU runs the checker.
    w.cpu(0).read_u32(REGION, Mode::User).unwrap();
    let v = w.machine.take_violations();
    assert!(has(&v, CPU1, p, ViolationKind::FreeFrame), "{v:#?}");
    w.cpu(1).invlpg(p);
    w.cpu(0).read_u32(REGION, Mode::User).unwrap();
    assert!(w.machine.take_violations().is_empty());
    teardown(&w, vm);
    w.finish();
}

#[test]
fn a_posted_request_waits_for_the_target_s_interrupt() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup_broken(&w, 2);
    let p = REGION + 4096;
    let c1 = w.cpu(1);
    c1.read_u32(p, Mode::User).unwrap();
    c1.set_auto_service(false);
    w.defer_frees(true);
    vm.munmap(VirtAddr::new(p), 4096).unwrap();
    w.machine.set_drop_shootdowns(false);
    let posted = w
        .cpu(0)
        .post_shootdown(CpuSet::only(CPU1), Invalidate::Pages(&[page(p)]));
    assert_eq!(c1.queued_ipis(), 1);
    // Not delivered yet: CPU 1 still uses its entry.
    assert_eq!(c1.read_u32(p, Mode::User), Ok(0x1001));
    assert_eq!(c1.service_ipis(), 1);
    assert!(c1.read_u32(p, Mode::User).is_err());
    w.cpu(0).complete_shootdown(posted);
    w.release_deferred();
    assert_eq!(w.check(), Ok(()));

    // With automatic service, the next access takes the interrupt first.
    c1.set_auto_service(true);
    c1.read_u32(REGION, Mode::User).unwrap();
    let posted = w
        .cpu(0)
        .post_shootdown(CpuSet::only(CPU1), Invalidate::AllNonGlobal);
    assert!(c1.tlb_peek(REGION).is_some());
    c1.read_u8(0x0900_0000, Mode::User).unwrap_err();
    assert!(c1.tlb_peek(REGION).is_none() && c1.queued_ipis() == 0);
    w.cpu(0).complete_shootdown(posted);
    w.defer_frees(false);
    let s = w.machine.shootdown_stats();
    assert_eq!(
        (s.ipis_sent, s.full_flushes, s.pages_invalidated),
        (2, 1, 1)
    );
    teardown(&w, vm);
    w.finish();
}

#[test]
fn two_cpus_shooting_at_each_other_complete_deterministically() {
    let w = SmpWorld::new(16 << 20, 3);
    let c = |n| w.cpu(n);
    let a = c(0).post_shootdown(CpuSet::from_bits(0b110), Invalidate::AllNonGlobal);
    let b = c(1).post_shootdown(CpuSet::from_bits(0b101), Invalidate::AllNonGlobal);
    c(0).complete_shootdown(a);
    c(1).complete_shootdown(b);
    let s = w.machine.shootdown_stats();
    assert_eq!(s.requests_per_cpu, vec![1, 1, 2]);
    assert_eq!((s.shootdowns, s.ipis_sent, s.full_flushes), (2, 4, 4));
    w.finish();
}

#[test]
fn a_stale_pde_cache_walks_into_a_reused_page_table() {
    // Why `PdeFreeTable` matters: once the freed table is reused, CPU 1
    // walks through whatever it now holds.
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup_broken(&w, 1);
    assert_eq!(w.cpu(1).read_u32(REGION, Mode::User), Ok(0x1000));
    let pde = w.cpu(1).pde_cache_peek(REGION).unwrap();
    let table = PhysAddr::new(pde & !0xFFF).frame();
    vm.munmap(VirtAddr::new(REGION), 4096).unwrap();
    let v = w.check().unwrap_err();
    assert!(has(&v, CPU1, REGION, ViolationKind::PdeFreeTable), "{v:#?}");

    // The kernel reuses the frame for data that happens to look like a
    // present user PTE for page 1 of the region, pointing at a secret.
    let owned_table = w.fa.lock().claim(table).unwrap();
    let secret = w.frames().alloc(myos_mm::frames::Zone::High).unwrap();
    let s = secret.start().as_u32();
    w.machine.write_phys_u32(u64::from(s), 0x5EC2E7).unwrap();
    let t = u64::from(table.start().as_u32());
    w.machine.write_phys_u32(t + 4, s | 0x7).unwrap();

    // CPU 1 never had page 1 in its TLB: it walks through the cached PDE.
    assert_eq!(w.cpu(1).read_u32(REGION + 0x1000, Mode::User), Ok(0x5EC2E7));
    assert!(w.cpu(0).read_u32(REGION + 0x1000, Mode::User).is_err());
    // The table is in use again, so it is the directory that disagrees now.
    let v = w.check().unwrap_err();
    assert!(has(&v, CPU1, REGION, ViolationKind::StalePde), "{v:#?}");
    assert!(
        has(&v, CPU1, REGION + 0x1000, ViolationKind::Unmapped),
        "{v:#?}"
    );

    w.cpu(1).flush_all();
    w.cpu(1).invlpg(REGION + 0x1000);
    assert_eq!(w.check(), Ok(()));
    w.machine.write_phys_u32(t + 4, 0).unwrap();
    w.frames().release(owned_table).unwrap();
    w.frames().release(secret).unwrap();
    teardown(&w, vm);
    w.finish();
}
