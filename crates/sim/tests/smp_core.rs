//! The core on several CPUs, with its own shootdowns: every narrowing
//! operation ends with one request to the other CPUs of the space's set
//! (none when the space is live only on the caller's CPU), frames and page
//! tables are freed only after it, upgrades send nothing, and concurrent
//! faults on one page of a shared space resolve once. The checker runs after
//! every operation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, MutexGuard, TryLockError};

use myos_abi::{
    MemFs, RawMman, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE,
};
use myos_mm::smp::CpuSet;
use myos_mm::vm::{FaultOutcome, FdTable, OpenMode, PageFault as CoreFault};
use myos_mm::{PhysAddr, Platform, VirtAddr};
use myos_sim::smp::world::{SmpVm, SmpWorld};
use myos_sim::smp::{CpuHandle, ShootdownStats};
use myos_sim::{err, Access, Mode};

const REGION: u32 = 0x0800_0000;
const RW: u32 = PROT_READ | PROT_WRITE;

/// `pages` private read/write pages at [`REGION`], written on CPU 0, the
/// space loaded on CPUs `1..live` too.
fn setup(w: &SmpWorld, pages: u32, live: usize) -> SmpVm<'_> {
    let mut vm = w.space(0);
    let a = vm
        .mmap(
            &FdTable::new(),
            VirtAddr::new(REGION),
            pages * 4096,
            RW,
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
    for n in 1..live {
        w.load(n, &vm);
    }
    assert_eq!(w.check(), Ok(()));
    vm
}

fn teardown(w: &SmpWorld, vm: SmpVm<'_>, live: usize) {
    for n in 1..live {
        w.unload(n, &vm);
    }
    vm.destroy();
}

fn stats(w: &SmpWorld) -> (u64, u64, u64, u64) {
    let s: ShootdownStats = w.machine.shootdown_stats();
    (
        s.shootdowns,
        s.ipis_sent,
        s.pages_invalidated,
        s.full_flushes,
    )
}

#[test]
fn munmap_shoots_the_other_cpu_down_once_before_the_frame_is_freed() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup(&w, 2, 2);
    let p = REGION + 4096;
    let old = w.cpu(1).translate(p, Access::Read, Mode::User).unwrap();
    assert_eq!(w.cpu(1).read_u32(p, Mode::User), Ok(0x1001));
    vm.munmap(VirtAddr::new(p), 4096).unwrap();
    assert_eq!(w.check(), Ok(()));
    assert!(w.is_free(PhysAddr::new(old).frame()));
    assert_eq!(stats(&w), (1, 1, 1, 0));
    let f = w.cpu(1).read_u32(p, Mode::User).unwrap_err();
    assert_eq!(f.error_code, err::ERR_USER);
    teardown(&w, vm, 2);
    w.finish();
}

#[test]
fn mprotect_down_is_one_request_and_up_is_none() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup(&w, 1, 2);
    w.cpu(1).write_u32(REGION, 5, Mode::User).unwrap();
    vm.mprotect(VirtAddr::new(REGION), 4096, PROT_READ).unwrap();
    assert_eq!(w.check(), Ok(()));
    assert_eq!(stats(&w), (1, 1, 1, 0));
    let f = w.cpu(1).write_u32(REGION, 6, Mode::User).unwrap_err();
    assert_eq!(
        f.error_code,
        err::ERR_PRESENT | err::ERR_WRITE | err::ERR_USER
    );
    // CPU 1 caches the read-only entry; the upgrade sends nothing, and
    // CPU 1's write takes a spurious fault that flushes its own entry.
    assert_eq!(w.cpu(1).read_u32(REGION, Mode::User), Ok(5));
    vm.mprotect(VirtAddr::new(REGION), 4096, RW).unwrap();
    assert_eq!(w.check(), Ok(()));
    assert_eq!(stats(&w).1, 1, "an upgrade sent a request");
    let before = vm.fault_stats().spurious;
    w.write_u32(1, &mut vm, REGION, 7).unwrap();
    assert_eq!(vm.fault_stats().spurious, before + 1);
    assert_eq!(stats(&w).1, 1);
    assert_eq!(w.cpu(0).read_u32(REGION, Mode::User), Ok(7));
    teardown(&w, vm, 2);
    w.finish();
}

#[test]
fn an_emptied_page_table_is_freed_after_the_remote_pde_cache_is_dropped() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup(&w, 1, 2);
    assert_eq!(w.cpu(1).read_u32(REGION, Mode::User), Ok(0x1000));
    let pde = w.cpu(1).pde_cache_peek(REGION).expect("cached PDE");
    let table = PhysAddr::new(pde & !0xFFF).frame();
    vm.munmap(VirtAddr::new(REGION), 4096).unwrap();
    assert_eq!(w.check(), Ok(()));
    assert!(w.is_free(table));
    assert!(w.cpu(1).pde_cache_peek(REGION).is_none());
    assert!(w.cpu(1).read_u32(REGION, Mode::User).is_err());
    assert_eq!(stats(&w), (1, 1, 1, 0));
    teardown(&w, vm, 2);
    w.finish();
}

#[test]
fn a_space_live_only_here_sends_nothing() {
    let w = SmpWorld::new(16 << 20, 4);
    let mut vm = setup(&w, 40, 1);
    vm.mprotect(VirtAddr::new(REGION), 40 * 4096, PROT_READ)
        .unwrap();
    let child = vm.fork().unwrap();
    vm.munmap(VirtAddr::new(REGION), 4096).unwrap();
    vm.munmap(VirtAddr::new(REGION), 40 * 4096).unwrap();
    assert_eq!(w.check(), Ok(()));
    assert_eq!(stats(&w), (0, 0, 0, 0));
    drop(child);
    teardown(&w, vm, 1);
    w.finish();
}

#[test]
fn the_schedulers_handle_moves_cpus_between_spaces_without_their_locks() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut vm = setup(&w, 2, 1);
    // The last user page table: its live-entry count shares the metadata
    // frame with the CPU set.
    let top = 0xBFFF_F000;
    vm.mmap(
        &FdTable::new(),
        VirtAddr::new(top),
        4096,
        RW,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        -1,
        0,
    )
    .unwrap();
    w.write_u32(0, &mut vm, top, 7).unwrap();
    let other = w.space(0);
    let (here, there) = (vm.address_space().cpus(), other.address_space().cpus());
    assert_eq!(here.directory(), vm.directory());
    let (c0, c1) = (w.cpu(0), w.cpu(1));
    // Both spaces live until the end of the test: every handle call is sound.
    // SAFETY: as above.
    c1.exclusive(|| unsafe { here.activate(c1) });
    // SAFETY: as above.
    let set = unsafe { here.load(c0) };
    assert_eq!(set, CpuSet::first(2));
    assert_eq!(vm.address_space().cpu_set(c0), CpuSet::first(2));
    assert_eq!(c1.read_u32(REGION, Mode::User), Ok(0x1000));
    vm.munmap(VirtAddr::new(REGION), 4096).unwrap();
    assert_eq!(w.check(), Ok(()));
    assert_eq!(stats(&w), (1, 1, 1, 0));
    // The context switch to the other space, with handles only.
    // SAFETY: as above; CPU 1 leaves `here` after it loaded `there`.
    c1.exclusive(|| unsafe {
        there.activate(c1);
        here.leave(c1);
    });
    assert!(!vm.address_space().cpu_set(c0).contains(c1.id()));
    // SAFETY: as above.
    let set = unsafe { there.load(c0) };
    assert_eq!(set, CpuSet::only(c1.id()));
    vm.munmap(VirtAddr::new(REGION + 4096), 4096).unwrap();
    assert_eq!(stats(&w), (1, 1, 1, 0), "CPU 1 left: nothing to send");
    assert_eq!(w.read_u32(0, &mut vm, top), Ok(7), "count and set coexist");
    vm.munmap(VirtAddr::new(top), 4096).unwrap();
    assert_eq!(w.check(), Ok(()));
    w.unload(1, &other);
    drop(other);
    teardown(&w, vm, 1);
    w.finish();
}

#[test]
fn one_request_per_other_cpu_per_call_whatever_the_size() {
    for (pages, full) in [
        (1u32, false),
        (16, false),
        (32, false),
        (33, true),
        (256, true),
    ] {
        let w = SmpWorld::new(32 << 20, 4);
        let mut vm = setup(&w, pages, 4);
        for n in 1..4 {
            for i in (0..pages).step_by(7) {
                w.cpu(n).read_u32(REGION + i * 4096, Mode::User).unwrap();
            }
        }
        vm.mprotect(VirtAddr::new(REGION), pages * 4096, PROT_READ)
            .unwrap();
        assert_eq!(w.check(), Ok(()), "{pages} pages");
        vm.munmap(VirtAddr::new(REGION), pages * 4096).unwrap();
        assert_eq!(w.check(), Ok(()), "{pages} pages");
        let (shootdowns, ipis, invalidated, flushes) = stats(&w);
        assert_eq!((shootdowns, ipis), (2, 6), "{pages} pages");
        if full {
            assert_eq!((invalidated, flushes), (0, 6), "{pages} pages");
        } else {
            assert_eq!(
                (invalidated, flushes),
                (6 * u64::from(pages), 0),
                "{pages} pages"
            );
        }
        teardown(&w, vm, 4);
        w.finish();
    }
}

#[test]
fn fork_write_protects_the_parent_on_its_other_cpus_and_cow_shoots_back() {
    let w = SmpWorld::new(16 << 20, 3);
    let mut parent = setup(&w, 2, 2);
    // CPU 1 (a sibling thread of the parent) holds a writable entry.
    w.cpu(1).write_u32(REGION, 0xAA, Mode::User).unwrap();
    let mut child = w.on_cpu(0, &mut parent, |vm| vm.fork().unwrap());
    assert_eq!(w.check(), Ok(()), "fork left a writable entry behind");
    assert_eq!(stats(&w), (1, 1, 2, 0));
    // CPU 1's write now faults: copy-on-write on CPU 1, which shoots CPU 0
    // (still in the parent's set) down before the old frame's reference
    // goes.
    let f = w.cpu(1).write_u32(REGION, 0xBB, Mode::User).unwrap_err();
    assert_eq!(
        f.error_code,
        err::ERR_PRESENT | err::ERR_WRITE | err::ERR_USER
    );
    w.cpu(0).read_u32(REGION, Mode::User).unwrap();
    w.write_u32(1, &mut parent, REGION, 0xBB).unwrap();
    assert_eq!(parent.fault_stats().cow_copy, 1);
    assert_eq!(w.check(), Ok(()));
    assert_eq!(stats(&w).1, 2, "the copy shot CPU 0 down");
    assert_eq!(w.cpu(0).read_u32(REGION, Mode::User), Ok(0xBB));
    // The child, on CPU 2, sees the value at fork time; its write reuses
    // the frame (count 1 now) without any request.
    assert_eq!(w.read_u32(2, &mut child, REGION), Ok(0xAA));
    w.write_u32(2, &mut child, REGION, 0xCC).unwrap();
    assert_eq!(child.fault_stats().cow_reuse, 1);
    assert_eq!(stats(&w).1, 2);
    assert_eq!(w.check(), Ok(()));
    w.unload(2, &child);
    drop(child);
    teardown(&w, parent, 2);
    w.finish();
}

/// Takes the space's lock the way a kernel CPU spins on it: serving its
/// shootdown mailbox while it waits.
fn lock_serving<'m, T>(m: &'m Mutex<T>, cpu: &CpuHandle) -> MutexGuard<'m, T> {
    loop {
        match m.try_lock() {
            Ok(g) => return g,
            Err(TryLockError::WouldBlock) => {
                cpu.service_ipis();
                std::thread::yield_now();
            }
            Err(TryLockError::Poisoned(p)) => return p.into_inner(),
        }
    }
}

/// Keeps a CPU thread answering shootdowns after it panicked, until every
/// other thread is done: a CPU that stops serving its mailbox hangs every
/// shootdown aimed at it, and the test would hang instead of failing.
struct ServeIfPanicking<'a> {
    cpu: &'a CpuHandle,
    running: &'a AtomicUsize,
}

impl Drop for ServeIfPanicking<'_> {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        while std::thread::panicking() && self.running.load(Ordering::SeqCst) > 0 {
            self.cpu.service_ipis();
            std::thread::yield_now();
        }
    }
}

/// Four CPUs (host threads) fault the same page of a shared space at once:
/// each takes the fault on its own, then the space's lock, and the handler
/// brings the page in once; the others find it present (a spurious fault)
/// and retry.
fn first_touch<'w>(
    w: &'w SmpWorld,
    vm: SmpVm<'w>,
    va: u32,
    writers: usize,
) -> (SmpVm<'w>, Vec<u32>) {
    const CPUS: usize = 4;
    for n in 0..CPUS {
        w.load(n, &vm);
    }
    let space = Mutex::new(vm);
    let all_faulted = Barrier::new(CPUS);
    let values = Mutex::new(Vec::new());
    let running = AtomicUsize::new(CPUS);
    std::thread::scope(|s| {
        for n in 0..CPUS {
            let (space, all_faulted, values) = (&space, &all_faulted, &values);
            let running = &running;
            s.spawn(move || {
                let c = w.cpu(n);
                let _serve = ServeIfPanicking { cpu: c, running };
                let write = n < writers;
                let access = |c: &CpuHandle| {
                    if write {
                        c.write_u32(va + 4 * n as u32, n as u32 + 1, Mode::User)
                    } else {
                        c.read_u32(va, Mode::User).map(drop)
                    }
                };
                let f = access(c).expect_err("the page is not there yet");
                all_faulted.wait();
                {
                    let mut vm = lock_serving(space, c);
                    vm.set_platform(c);
                    let out = c.exclusive(|| vm.handle_fault(CoreFault::new(f.cr2, f.error_code)));
                    assert!(matches!(out, FaultOutcome::Resolved(_)), "{out:?}");
                }
                access(c).unwrap();
                let v = c.read_u32(va + 4 * n as u32, Mode::User).unwrap();
                values.lock().unwrap().push(v);
            });
        }
    });
    let mut vm = space.into_inner().unwrap();
    // The test's thread is CPU 0 again.
    vm.set_platform(w.cpu(0));
    for n in 1..CPUS {
        w.unload(n, &vm);
    }
    assert_eq!(w.check(), Ok(()));
    (vm, values.into_inner().unwrap())
}

#[test]
fn concurrent_first_touch_of_a_demand_zero_page_resolves_once() {
    for writers in [0, 2, 4] {
        let w = SmpWorld::threaded(16 << 20, 4);
        let mut vm = w.space(0);
        let a = vm
            .mmap(
                &FdTable::new(),
                VirtAddr::new(0),
                4096,
                RW,
                MAP_PRIVATE | MAP_ANONYMOUS,
                -1,
                0,
            )
            .unwrap();
        let free = w.fa.lock().stats().free;
        let (vm, mut values) = first_touch(&w, vm, a.as_u32(), writers);
        let s = vm.fault_stats();
        assert_eq!(s.demand_zero, 1, "{s:?}");
        assert_eq!(s.demand_zero + s.spurious, 4, "{s:?}");
        assert_eq!(vm.resident_pages(), 1);
        // One frame for the page (and one page table), no more.
        assert_eq!(w.fa.lock().stats().free, free - 2);
        values.sort_unstable();
        let expect: Vec<u32> = (0..4)
            .map(|n| if n < writers { n as u32 + 1 } else { 0 })
            .collect();
        let mut expect = expect;
        expect.sort_unstable();
        assert_eq!(values, expect);
        vm.destroy();
        w.finish();
    }
}

#[test]
fn concurrent_first_touch_of_a_shared_file_page_resolves_once() {
    for writers in [0, 1, 4] {
        let w = SmpWorld::threaded(16 << 20, 4);
        let fs = MemFs::new();
        fs.create("f", &[0x11; 8192]);
        let mut fds = FdTable::new();
        let fd = fds.insert(fs.open("f", OpenMode::ReadWrite).unwrap());
        let mut vm = w.space(0);
        let a = vm
            .mmap(&fds, VirtAddr::new(0), 8192, RW, MAP_SHARED, fd, 0)
            .unwrap();
        let (vm, _) = first_touch(&w, vm, a.as_u32() + 4096, writers);
        let s = vm.fault_stats();
        assert_eq!(s.file_page, 1, "{s:?}");
        assert_eq!(s.file_page + s.spurious + s.write_notify, 4, "{s:?}");
        assert!(s.write_notify <= 1, "{s:?}");
        assert_eq!(vm.resident_pages(), 1);
        assert_eq!(s.demand_zero + s.cow_copy, 0);
        vm.destroy();
        drop(fds);
        w.finish();
    }
}

#[test]
fn checker_catches_a_cow_copy_whose_shootdown_is_dropped() {
    // The copy-on-write remap, with the platform dropping shootdowns: CPU 0
    // keeps reading the old frame while CPU 1 writes the new one.
    let w = SmpWorld::new(16 << 20, 2);
    let mut parent = setup(&w, 1, 2);
    let child = parent.fork().unwrap();
    w.cpu(0).read_u32(REGION, Mode::User).unwrap();
    w.machine.set_drop_shootdowns(true);
    w.write_u32(1, &mut parent, REGION, 0xBB).unwrap();
    let v = w.check().unwrap_err();
    assert!(
        v.iter()
            .any(|x| x.cpu.index() == 0 && x.kind == myos_sim::smp::ViolationKind::OtherFrame),
        "{v:#?}"
    );
    assert_eq!(w.cpu(0).read_u32(REGION, Mode::User), Ok(0x1000));
    w.machine.set_drop_shootdowns(false);
    w.cpu(0).flush_all();
    drop(child);
    teardown(&w, parent, 2);
    w.finish();
}

#[test]
fn fork_with_the_shootdown_dropped_leaves_a_writable_entry() {
    let w = SmpWorld::new(16 << 20, 2);
    let mut parent = setup(&w, 1, 2);
    w.cpu(1).write_u32(REGION, 0xAA, Mode::User).unwrap();
    w.machine.set_drop_shootdowns(true);
    let child = w.on_cpu(0, &mut parent, |vm| vm.fork().unwrap());
    let v = w.check().unwrap_err();
    assert!(
        v.iter()
            .any(|x| x.cpu.index() == 1 && x.kind == myos_sim::smp::ViolationKind::MoreRights),
        "{v:#?}"
    );
    // The bug it stands for: CPU 1 writes the frame the child shares.
    w.cpu(1).write_u32(REGION, 0xBB, Mode::User).unwrap();
    w.machine.set_drop_shootdowns(false);
    drop(child);
    teardown(&w, parent, 2);
    w.finish();
}
