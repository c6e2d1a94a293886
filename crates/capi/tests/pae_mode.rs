//! The C layer over a PAE memory manager (a simulated PAE machine with RAM
//! above 4 GiB, registered with `register_pae`), called from Rust: the
//! set-up's error paths, the `page_t` calls refusing PAE, the `page64_t`
//! calls, and 32-bit results that cannot hold a frame above 4 GiB. One
//! test: the C layer is one global instance per process.

use std::sync::atomic::Ordering;

use myos_abi::errno::{EINVAL, ENODEV, EOPNOTSUPP, EOVERFLOW};
use myos_capi::paging::{
    alloc_frame, alloc_frame64, current_directory, free_frame, free_frame64, get_page, get_page64,
    get_physical_address, get_physical_address64, init_paging, map_page64, myos_frames_free,
    myos_paging_mode, unmap_page, PHYS64_NONE, PHYS_NONE,
};
use myos_capi::state::{register, register_pae, PAGING_PAE};
use myos_capi::{mm_errno, Plat};
use myos_mm::paging::{Entry, PaeEntry, PageTableEntry};
use myos_mm::MmError;
use myos_sim::pae::PaeMachine;

const FOUR_GIB: u64 = 1 << 32;

#[test]
fn the_c_layer_runs_pae_paging() {
    // Before set-up: MM_ENODEV.
    assert_eq!(myos_paging_mode(), 0);
    assert_eq!(mm_errno(), ENODEV);
    let none = current_directory.load(Ordering::Relaxed);
    // SAFETY: the handle is checked (it is NULL before set-up).
    let p = unsafe { get_page64(0x0060_0000, 1, none) };
    assert!(p.is_null());
    assert_eq!(mm_errno(), ENODEV);

    let machine: &'static PaeMachine = Box::leak(Box::new(
        PaeMachine::split_ram(32 << 20, 16 << 20).build().unwrap(),
    ));
    let platform: &'static Plat = machine;
    let map = machine.memory_map();
    // SAFETY: the machine is fresh: its RAM is unused.
    unsafe { register_pae(platform, &map) }.unwrap();
    // SAFETY: as above (refused before anything is built).
    let again = unsafe { register_pae(platform, &map) };
    assert_eq!(again, Err(MmError::AlreadyMapped));
    // SAFETY: as above.
    let classic = unsafe { register(platform, &map) };
    assert_eq!(classic, Err(MmError::AlreadyMapped));
    init_paging();
    assert_eq!(mm_errno(), 0);
    assert_eq!(myos_paging_mode(), PAGING_PAE);
    myos_capi::vm::create_process().unwrap();
    assert_eq!(myos_capi::vm::create_process(), Err(MmError::AlreadyMapped));
    let dir = current_directory.load(Ordering::Relaxed);
    assert!(!dir.is_null());
    let baseline = myos_frames_free();

    // The page_t calls refuse, and change nothing.
    // SAFETY: `dir` is a handle the API handed out.
    assert!(unsafe { get_page(0x0060_0000, 1, dir) }.is_null());
    assert_eq!(mm_errno(), EOPNOTSUPP);
    let mut loose = PageTableEntry::EMPTY;
    // SAFETY: a valid, aligned entry of ours.
    unsafe { alloc_frame(&mut loose, 1, 1) };
    assert_eq!((mm_errno(), loose), (EOPNOTSUPP, PageTableEntry::EMPTY));
    let mut present = PageTableEntry::from_raw(0x1000 | 1);
    // SAFETY: as above.
    unsafe { free_frame(&mut present) };
    assert_eq!(mm_errno(), EOPNOTSUPP);
    assert!(present.is_present());
    assert_eq!(myos_frames_free(), baseline);

    // page64_t: a user page above 4 GiB, no-exec.
    // SAFETY: `dir` is a handle the API handed out.
    let p = unsafe { get_page64(0x0060_0000, 1, dir) };
    assert!(!p.is_null() && mm_errno() == 0);
    // SAFETY: `p` points at a live entry of the process's page table.
    unsafe { alloc_frame64(p, 0, 1, 1) };
    assert_eq!(mm_errno(), 0);
    // SAFETY: as above.
    let e = unsafe { p.read_volatile() };
    assert!(e.is_present() && e.no_exec());
    let phys = e.frame().start().as_u64();
    assert!(phys >= FOUR_GIB, "{phys:#x}");
    assert_eq!(get_physical_address64(0x0060_0123), phys | 0x123);
    assert_eq!(get_physical_address(0x0060_0123), PHYS_NONE);
    assert_eq!(mm_errno(), EOVERFLOW, "a 32-bit result cannot hold it");
    // SAFETY: as above.
    unsafe { alloc_frame64(std::ptr::null_mut(), 0, 1, 0) };
    assert_eq!(mm_errno(), EINVAL);
    // SAFETY: as above.
    unsafe { free_frame64(p) };
    assert_eq!(mm_errno(), 0);
    // SAFETY: as above.
    assert_eq!(unsafe { p.read_volatile() }, PaeEntry::EMPTY);
    assert_eq!(get_physical_address64(0x0060_0000), PHYS64_NONE);
    assert_eq!(mm_errno(), EINVAL);

    // map_page64: above 4 GiB yes, at 64 GiB no.
    map_page64(0x0060_1000, phys, 0, 1);
    assert_eq!(mm_errno(), 0);
    assert_eq!(get_physical_address64(0x0060_1000), phys);
    map_page64(0x0060_2000, 1 << 36, 0, 1);
    assert_eq!(mm_errno(), EINVAL);
    unmap_page(0x0060_1000);
    assert_eq!(mm_errno(), 0);
    assert_eq!(
        myos_frames_free(),
        baseline,
        "every frame back, the table too"
    );
}
