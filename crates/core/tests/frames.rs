//! Frame allocator tests on the simulated machine's RAM.

use myos_mm::frames::{FrameAllocator, FrameSource, MemoryRegion, RegionKind, Zone, MAX_REFCOUNT};
use myos_mm::{Frame, MmError, OwnedFrame};
use myos_sim::SimMachine;
use proptest::prelude::*;

const MIB: u64 = 1 << 20;

fn usable(start: u64, end: u64) -> MemoryRegion {
    MemoryRegion {
        start,
        end,
        kind: RegionKind::Usable,
    }
}
fn reserved(start: u64, end: u64) -> MemoryRegion {
    MemoryRegion {
        start,
        end,
        kind: RegionKind::Reserved,
    }
}
fn frame(n: u32) -> Frame {
    Frame::from_number(n).unwrap()
}
/// These tests track references by frame number, as their model does; a
/// reference released here is one the test took (or a forged one the
/// allocator must refuse).
fn owned(f: Frame) -> OwnedFrame {
    // SAFETY: see above; a forged reference only tests the refusal.
    unsafe { OwnedFrame::from_raw(f) }
}

/// A machine with `ram` bytes and the PC-like map the simulator gives it.
fn machine(ram: u64) -> (SimMachine, FrameAllocator) {
    let m = SimMachine::new(ram).unwrap();
    let map = m.memory_map().to_vec();
    // SAFETY: the allocator is dropped before the machine in every test
    // (it is declared after it in the returned tuple's destructuring).
    let fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
    (m, fa)
}

#[test]
fn counts_follow_the_memory_map() {
    let map = [
        usable(0, 0x9F000),
        reserved(0x9F000, 0x100000),
        usable(MIB, 32 * MIB),
        reserved(MIB, 2 * MIB),
    ];
    let m = SimMachine::with_map(32 * MIB, &map).unwrap();
    // SAFETY: `fa` is dropped before `m`.
    let fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
    let s = fa.stats();
    let usable_frames = 0x9F + (32 - 2) * 256;
    assert_eq!(s.total, usable_frames);
    assert_eq!(s.used, 0);
    assert_eq!(s.free + s.metadata, usable_frames);
    assert!(s.metadata >= 1);
    assert_eq!(s.free_per_zone[Zone::High as usize], 0);
    fa.validate().unwrap();
}

#[test]
fn frame_zero_is_an_ordinary_frame() {
    let (_m, mut fa) = machine(16 * MIB);
    let mut got = Vec::new();
    while let Ok(f) = fa.alloc(Zone::Low).map(OwnedFrame::into_raw) {
        got.push(f);
    }
    assert!(got.contains(&frame(0)), "frame 0 was never handed out");
    assert_eq!(fa.release(owned(frame(0))), Ok(true));
    assert_eq!(fa.alloc(Zone::Low).map(OwnedFrame::into_raw), Ok(frame(0)));
}

#[test]
fn bad_frees_are_refused_and_change_nothing() {
    let map = [usable(0, 16 * MIB), reserved(MIB, 2 * MIB)];
    let m = SimMachine::with_map(16 * MIB, &map).unwrap();
    // SAFETY: `fa` is dropped before `m`.
    let mut fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
    let before = fa.stats();
    let free_frame = frame(100);
    assert_eq!(fa.refcount(free_frame), Ok(0));
    assert_eq!(
        fa.release(owned(free_frame)),
        Err(MmError::FrameNotAllocated)
    );
    assert_eq!(
        fa.release(owned(frame(0x100))),
        Err(MmError::FrameReserved),
        "kernel image"
    );
    let (meta, _) = fa.metadata_frames();
    assert_eq!(
        fa.release(owned(meta)),
        Err(MmError::FrameReserved),
        "allocator metadata"
    );
    assert_eq!(fa.release(owned(frame(16 * 256))), Err(MmError::OutOfRange));
    assert_eq!(fa.release(owned(frame(0xFFFFF))), Err(MmError::OutOfRange));
    assert_eq!(
        fa.share(free_frame).map(OwnedFrame::into_raw),
        Err(MmError::FrameNotAllocated)
    );
    assert_eq!(
        fa.share(frame(0x100)).map(OwnedFrame::into_raw),
        Err(MmError::FrameReserved)
    );
    assert_eq!(fa.stats(), before);
    fa.validate().unwrap();
}

#[test]
fn double_free_is_detected() {
    let (_m, mut fa) = machine(16 * MIB);
    let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    assert_eq!(fa.release(owned(f)), Ok(true));
    let before = fa.stats();
    assert_eq!(fa.release(owned(f)), Err(MmError::FrameNotAllocated));
    assert_eq!(fa.stats(), before);
}

#[test]
fn reference_counts_keep_shared_frames_alive() {
    let (_m, mut fa) = machine(16 * MIB);
    let base = fa.stats();
    let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    fa.share(f).map(OwnedFrame::into_raw).unwrap();
    fa.share(f).map(OwnedFrame::into_raw).unwrap();
    assert_eq!(fa.refcount(f), Ok(3));
    assert_eq!(fa.release(owned(f)), Ok(false));
    assert_eq!(fa.release(owned(f)), Ok(false));
    assert_eq!(fa.stats().used, 1);
    assert_eq!(fa.release(owned(f)), Ok(true));
    assert_eq!(fa.stats(), base);
}

#[test]
fn reference_count_overflow_is_an_error() {
    let (_m, mut fa) = machine(16 * MIB);
    let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    for _ in 1..MAX_REFCOUNT {
        fa.share(f).map(OwnedFrame::into_raw).unwrap();
    }
    assert_eq!(fa.refcount(f), Ok(MAX_REFCOUNT));
    assert_eq!(
        fa.share(f).map(OwnedFrame::into_raw),
        Err(MmError::RefcountOverflow)
    );
    assert_eq!(fa.refcount(f), Ok(MAX_REFCOUNT));
}

#[test]
fn zones_are_honoured() {
    let (_m, mut fa) = machine(1024 * MIB);
    let high = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    assert_eq!(Zone::of(high), Zone::High);
    let direct = fa.alloc(Zone::Direct).map(OwnedFrame::into_raw).unwrap();
    assert_eq!(Zone::of(direct), Zone::Direct);
    let low = fa.alloc(Zone::Low).map(OwnedFrame::into_raw).unwrap();
    assert_eq!(Zone::of(low), Zone::Low);
    // The metadata avoids the DMA zone when it can.
    assert_eq!(Zone::of(fa.metadata_frames().0), Zone::Direct);
}

#[test]
fn requests_fall_back_to_lower_zones_but_never_up() {
    let (_m, mut fa) = machine(32 * MIB);
    // No high memory on this machine: High falls back to Direct, then Low.
    let mut zones = [0; 3];
    while let Ok(f) = fa.alloc(Zone::High).map(OwnedFrame::into_raw) {
        zones[Zone::of(f) as usize] += 1;
    }
    assert_eq!(zones[Zone::High as usize], 0);
    assert!(zones[Zone::Direct as usize] > 0 && zones[Zone::Low as usize] > 0);
    assert_eq!(fa.stats().free, 0);
    assert_eq!(
        fa.alloc(Zone::Low).map(OwnedFrame::into_raw),
        Err(MmError::OutOfMemory)
    );
    fa.validate().unwrap();
}

#[test]
fn low_zone_exhaustion_does_not_take_higher_frames() {
    let (_m, mut fa) = machine(64 * MIB);
    while fa.alloc(Zone::Low).map(OwnedFrame::into_raw).is_ok() {}
    assert_eq!(fa.stats().free_per_zone[Zone::Low as usize], 0);
    assert!(fa.stats().free_per_zone[Zone::Direct as usize] > 0);
    assert_eq!(
        fa.alloc(Zone::Low).map(OwnedFrame::into_raw),
        Err(MmError::OutOfMemory)
    );
}

#[test]
fn contiguous_runs_are_aligned_and_owned() {
    let (_m, mut fa) = machine(64 * MIB);
    for (count, align) in [(16, 4), (1, 0), (3, 0), (64, 6), (100, 2), (600, 9)] {
        let f = fa
            .alloc_contiguous(count, align, Zone::Direct)
            .map(|r| r.into_raw().0)
            .unwrap();
        assert_eq!(
            f.number() % (1 << align),
            0,
            "{count} frames aligned 2^{align}"
        );
        for k in 0..count {
            assert_eq!(fa.refcount(f.checked_add(k).unwrap()), Ok(1));
        }
    }
    fa.validate().unwrap();
}

#[test]
fn contiguous_runs_respect_fragmentation() {
    let (_m, mut fa) = machine(16 * MIB);
    let mut all = Vec::new();
    while let Ok(f) = fa.alloc(Zone::High).map(OwnedFrame::into_raw) {
        all.push(f);
    }
    all.sort();
    // Free every other frame: plenty of free memory, no two adjacent frames.
    for f in all.iter().step_by(2) {
        fa.release(owned(*f)).unwrap();
    }
    assert_eq!(
        fa.alloc_contiguous(2, 0, Zone::High)
            .map(|r| r.into_raw().0),
        Err(MmError::OutOfMemory)
    );
    // Free an aligned block of 8 and the allocator finds it.
    let start = all
        .iter()
        .find(|f| f.number() % 8 == 0 && f.number() > 0x200)
        .unwrap()
        .number();
    for n in start..start + 8 {
        if fa.refcount(frame(n)) == Ok(1) {
            fa.release(owned(frame(n))).unwrap();
        }
    }
    assert_eq!(
        fa.alloc_contiguous(8, 3, Zone::High)
            .map(|r| r.into_raw().0),
        Ok(frame(start))
    );
    fa.validate().unwrap();
}

#[test]
fn contiguous_bad_arguments() {
    let (_m, mut fa) = machine(16 * MIB);
    let before = fa.stats();
    assert_eq!(
        fa.alloc_contiguous(0, 0, Zone::High)
            .map(|r| r.into_raw().0),
        Err(MmError::InvalidArgument)
    );
    assert_eq!(
        fa.alloc_contiguous(1, 21, Zone::High)
            .map(|r| r.into_raw().0),
        Err(MmError::InvalidArgument)
    );
    assert_eq!(
        fa.alloc_contiguous(1 << 20, 0, Zone::High)
            .map(|r| r.into_raw().0),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(fa.stats(), before);
}

#[test]
fn claim_takes_a_named_frame() {
    let (_m, mut fa) = machine(16 * MIB);
    fa.claim(frame(0x200)).map(OwnedFrame::into_raw).unwrap();
    assert_eq!(fa.refcount(frame(0x200)), Ok(1));
    assert_eq!(
        fa.claim(frame(0x200)).map(OwnedFrame::into_raw),
        Err(MmError::FrameInUse)
    );
    assert_eq!(
        fa.claim(frame(0xA0)).map(OwnedFrame::into_raw),
        Err(MmError::FrameReserved),
        "BIOS hole"
    );
    assert_eq!(
        fa.claim(frame(0xFFFFF)).map(OwnedFrame::into_raw),
        Err(MmError::OutOfRange)
    );
    fa.validate().unwrap();
}

#[test]
fn injected_failures_change_nothing() {
    let (_m, mut fa) = machine(16 * MIB);
    fa.fail_after(Some(2));
    let a = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    let b = fa
        .alloc_contiguous(4, 2, Zone::High)
        .map(|r| r.into_raw().0)
        .unwrap();
    let before = fa.stats();
    assert_eq!(
        fa.alloc(Zone::High).map(OwnedFrame::into_raw),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(
        fa.alloc_contiguous(4, 2, Zone::High)
            .map(|r| r.into_raw().0),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(
        fa.claim(frame(0x300)).map(OwnedFrame::into_raw),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(fa.stats(), before);
    fa.fail_after(None);
    assert!(fa.alloc(Zone::High).map(OwnedFrame::into_raw).is_ok());
    fa.release(owned(a)).unwrap();
    fa.release(owned(b)).unwrap();
    fa.validate().unwrap();
}

#[test]
fn bad_memory_maps_are_errors() {
    let m = SimMachine::new(16 * MIB).unwrap();
    // SAFETY: each allocator (if any) is dropped at once.
    unsafe {
        assert_eq!(
            FrameAllocator::new(&m, &[]).err(),
            Some(MmError::OutOfMemory)
        );
        assert_eq!(
            FrameAllocator::new(&m, &[usable(0x2000, 0x1000)]).err(),
            Some(MmError::InvalidArgument)
        );
        assert_eq!(
            FrameAllocator::new(&m, &[usable(0, 0x800)]).err(),
            Some(MmError::OutOfMemory)
        );
        // All RAM reserved: nowhere to put the metadata.
        let map = [usable(0, 16 * MIB), reserved(0, 16 * MIB)];
        assert_eq!(
            FrameAllocator::new(&m, &map).err(),
            Some(MmError::OutOfMemory)
        );
    }
}

#[test]
fn partial_frames_at_region_edges_are_not_used() {
    let map = [usable(0x1800, 0x10_0800), usable(MIB + 0x10, 2 * MIB)];
    let m = SimMachine::with_map(2 * MIB, &map).unwrap();
    // SAFETY: `fa` is dropped before `m`.
    let fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
    assert_eq!(fa.refcount(frame(1)), Err(MmError::FrameReserved));
    // The metadata (one frame) goes to the first whole frame above 1 MiB.
    assert_eq!(fa.metadata_frames(), (frame(0x101), 1));
    assert_eq!(fa.refcount(frame(2)), Ok(0));
    assert_eq!(fa.refcount(frame(0x100)), Err(MmError::FrameReserved));
    assert_eq!(fa.stats().total, (0x100 - 2) + (0x200 - 0x101));
    assert_eq!(fa.stats().free, (0x100 - 2) + (0x200 - 0x102));
}

#[test]
fn four_gib_of_ram() {
    let (_m, mut fa) = machine(4096 * MIB);
    let s = fa.stats();
    let bytes_per_frame = fa.metadata_bytes() as f64 / fa.frame_limit() as f64;
    assert!(
        bytes_per_frame <= 4.0,
        "{bytes_per_frame} bytes of metadata per frame"
    );
    assert!(s.total > 1_000_000);
    let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
    assert!(f.start().as_u32() >= 768 << 20);
    let run = fa
        .alloc_contiguous(16, 4, Zone::High)
        .map(|r| r.into_raw().0)
        .unwrap();
    assert!(run.start().as_u32() >= 768 << 20);
    fa.release(owned(f)).unwrap();
    for k in 0..16 {
        fa.release(owned(run.checked_add(k).unwrap())).unwrap();
    }
    assert_eq!(fa.stats(), s);
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(u8),
    Contiguous(u8, u8, u8),
    Share(usize),
    Release(usize),
    ReleaseBogus(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3).prop_map(Op::Alloc),
        1 => (1u8..40, 0u8..6, 0u8..3).prop_map(|(n, a, z)| Op::Contiguous(n, a, z)),
        2 => any::<usize>().prop_map(Op::Share),
        4 => any::<usize>().prop_map(Op::Release),
        1 => (0u32..0x2_0000).prop_map(Op::ReleaseBogus),
    ]
}

fn zone(z: u8) -> Zone {
    Zone::ALL[z as usize]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random alloc/contiguous/share/release against a plain model of
    /// reference counts; everything returns to the baseline at the end.
    #[test]
    fn allocator_matches_model(ops in proptest::collection::vec(op(), 1..300)) {
        let map = [usable(0, 0x9F000), usable(MIB, 24 * MIB), reserved(4 * MIB, 5 * MIB)];
        let m = SimMachine::with_map(24 * MIB, &map).unwrap();
        // SAFETY: `fa` is dropped before `m`.
        let mut fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
        let base = fa.stats();
        let mut model: std::collections::BTreeMap<u32, u16> = Default::default();
        for op in ops {
            match op {
                Op::Alloc(z) => {
                    let f = fa.alloc(zone(z)).map(OwnedFrame::into_raw).unwrap();
                    prop_assert!(Zone::of(f) as u8 <= z);
                    prop_assert!(model.insert(f.number(), 1).is_none(), "handed out twice");
                }
                Op::Contiguous(n, a, z) => {
                    if let Ok(f) = fa.alloc_contiguous(n as u32, a as u32, zone(z)).map(|r| r.into_raw().0) {
                        prop_assert_eq!(f.number() % (1 << a), 0);
                        for k in 0..n as u32 {
                            prop_assert!(model.insert(f.number() + k, 1).is_none());
                        }
                    }
                }
                Op::Share(i) if !model.is_empty() => {
                    let n = model.len();
                    let (&f, c) = model.iter_mut().nth(i % n).unwrap();
                    fa.share(frame(f)).map(OwnedFrame::into_raw).unwrap();
                    *c += 1;
                }
                Op::Release(i) if !model.is_empty() => {
                    let f = *model.keys().nth(i % model.len()).unwrap();
                    let c = model.get_mut(&f).unwrap();
                    *c -= 1;
                    let last = *c == 0;
                    prop_assert_eq!(fa.release(owned(frame(f))), Ok(last));
                    if last { model.remove(&f); }
                }
                Op::ReleaseBogus(n) if !model.contains_key(&n) => {
                    let before = fa.stats();
                    prop_assert!(fa.release(owned(frame(n))).is_err());
                    prop_assert_eq!(fa.stats(), before);
                }
                _ => {}
            }
            prop_assert_eq!(fa.stats().used as usize, model.len());
        }
        fa.validate().unwrap();
        for (f, c) in model {
            for _ in 0..c { fa.release(owned(frame(f))).unwrap(); }
        }
        prop_assert_eq!(fa.stats(), base);
        fa.validate().unwrap();
    }
}
