//! `FrameAllocator::alloc_at_or_above`: the placement preference a PAE
//! kernel uses to give user pages frames above 4 GiB first.

use myos_mm::addr::FRAME_COUNT_4G;
use myos_mm::frames::{FrameAllocator, FrameSource, Zone};
use myos_mm::{Frame, MmError};
use myos_sim::pae::PaeMachine;

const MIB: u64 = 1 << 20;

#[test]
fn frames_at_or_above_the_bound_come_first_lowest_first_then_out_of_memory() {
    // RAM at 0 and above 4 GiB, with a part of the direct zone's range too,
    // so zone High (from 768 MiB) has frames on both sides of 4 GiB.
    let m = PaeMachine::split_ram(16 * MIB, 4 * MIB).build().unwrap();
    let map = m.memory_map();
    // SAFETY: the allocator is dropped before the machine.
    let mut fa = unsafe { FrameAllocator::new_below(&m, &map, 1 << 36) }.unwrap();
    let before = fa.stats();
    let bound = Frame::from_number(FRAME_COUNT_4G).unwrap();
    let mut got = Vec::new();
    loop {
        match fa.alloc_at_or_above(bound) {
            Ok(f) => got.push(f),
            Err(e) => {
                assert_eq!(e, MmError::OutOfMemory, "none left above the bound");
                break;
            }
        }
    }
    assert_eq!(got.len() as u64, 4 * MIB / 4096, "every frame above 4 GiB");
    for (i, f) in got.iter().enumerate() {
        assert_eq!(
            f.frame().number(),
            FRAME_COUNT_4G + i as u32,
            "lowest first"
        );
    }
    // The frames below are untouched and still handed out by `alloc`.
    let low = fa.alloc(Zone::High).unwrap();
    assert!(low.frame().number() < FRAME_COUNT_4G);
    fa.release(low).unwrap();
    // A bound in the middle of the direct zone starts there.
    let mid = Frame::from_number(2048).unwrap();
    let f = fa.alloc_at_or_above(mid).unwrap();
    assert!(f.frame().number() >= 2048 && f.frame().number() < FRAME_COUNT_4G);
    fa.release(f).unwrap();
    for f in got {
        assert_eq!(fa.release(f), Ok(true));
    }
    assert_eq!(fa.stats(), before, "every frame back");
    assert!(fa.validate().is_ok());
}

#[test]
fn a_failing_budget_refuses_and_changes_nothing() {
    let m = PaeMachine::split_ram(16 * MIB, MIB).build().unwrap();
    let map = m.memory_map();
    // SAFETY: the allocator is dropped before the machine.
    let mut fa = unsafe { FrameAllocator::new_below(&m, &map, 1 << 36) }.unwrap();
    let before = fa.stats();
    fa.fail_after(Some(0));
    let bound = Frame::from_number(FRAME_COUNT_4G).unwrap();
    assert_eq!(
        fa.alloc_at_or_above(bound).err(),
        Some(MmError::OutOfMemory)
    );
    fa.fail_after(None);
    assert_eq!(fa.stats(), before);
    assert!(fa.validate().is_ok());
}
