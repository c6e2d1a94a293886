//! The C layer over a classic memory manager, called from Rust: the
//! `page64_t` calls refuse classic paging, `map_page64` refuses frames a
//! classic entry cannot hold, and a PAE registration after a classic one
//! fails. One test: the C layer is one global instance per process.

use std::sync::atomic::Ordering;

use myos_abi::errno::{EINVAL, EOPNOTSUPP};
use myos_capi::paging::{
    alloc_frame64, current_directory, free_frame64, get_page64, get_physical_address64,
    init_paging, map_page64, myos_frames_free, myos_paging_mode, PHYS64_NONE,
};
use myos_capi::state::{register, register_pae, PAGING_CLASSIC};
use myos_capi::{mm_errno, Plat};
use myos_mm::paging::{Entry, PaeEntry};
use myos_mm::MmError;
use myos_sim::SimMachine;

#[test]
fn the_page64_calls_refuse_classic_paging() {
    let machine: &'static SimMachine = Box::leak(Box::new(SimMachine::new(32 << 20).unwrap()));
    let platform: &'static Plat = machine;
    let map = machine.memory_map().to_vec();
    // SAFETY: the machine is fresh: its RAM is unused.
    unsafe { register(platform, &map) }.unwrap();
    // SAFETY: refused before anything is built.
    let pae = unsafe { register_pae(platform, &map) };
    assert_eq!(pae, Err(MmError::AlreadyMapped));
    init_paging();
    myos_capi::vm::create_process().unwrap();
    assert_eq!(myos_paging_mode(), PAGING_CLASSIC);
    let baseline = myos_frames_free();

    let dir = current_directory.load(Ordering::Relaxed);
    // SAFETY: `dir` is a handle the API handed out.
    assert!(unsafe { get_page64(0x0060_0000, 1, dir) }.is_null());
    assert_eq!(mm_errno(), EOPNOTSUPP);
    let mut loose = PaeEntry::EMPTY;
    // SAFETY: a valid, aligned entry of ours.
    unsafe { alloc_frame64(&mut loose, 1, 1, 0) };
    assert_eq!((mm_errno(), loose), (EOPNOTSUPP, PaeEntry::EMPTY));
    let mut present = PaeEntry::from_raw(0x1000 | 1);
    // SAFETY: as above.
    unsafe { free_frame64(&mut present) };
    assert_eq!(mm_errno(), EOPNOTSUPP);
    assert!(present.is_present());

    map_page64(0x0060_0000, 1 << 32, 1, 1);
    assert_eq!(
        mm_errno(),
        EINVAL,
        "a classic entry holds no frame above 4 GiB"
    );
    assert_eq!(get_physical_address64(0x0060_0000), PHYS64_NONE);
    assert_eq!(get_physical_address64(0xC000_1234), 0x1234);
    assert_eq!(
        myos_frames_free(),
        baseline,
        "the refused mapping kept nothing"
    );
}
