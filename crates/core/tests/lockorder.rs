//! The debug-build lock-order tracker (`myos_mm::lockorder`): in order is
//! silent, out of order panics (debug builds; release builds compile the
//! checks out). Its own test binary: the tracker is global per CPU number.

use myos_mm::frames::{FrameAllocator, FramePool, FrameSource, Zone};
use myos_mm::lockorder::{self, Held, Level};
use myos_mm::smp::CpuId;
use myos_sim::smp::SmpMachine;

#[test]
fn the_order_is_checked_per_cpu() {
    lockorder::enable(true);
    let cpu = CpuId::new(3).unwrap();
    {
        let _s = Held::new(cpu, Level::Space);
        let _k = Held::new(cpu, Level::KernelSpace);
        // Another CPU is tracked on its own.
        let _f = Held::new(CpuId::BOOT, Level::Frames);
        let _m = Held::new(CpuId::new(1).unwrap(), Level::Magazine);
        // The pool takes the magazine, then the global lock, under them.
        let m = SmpMachine::new(4 << 20, 4).unwrap();
        let map = m.memory_map().to_vec();
        let c3 = m.cpu(3);
        // SAFETY: the machine's RAM is used by nothing else and outlives
        // the pool.
        let pool = FramePool::new(unsafe { FrameAllocator::new(&c3, &map) }.unwrap());
        let f = pool.frames(&c3).alloc(Zone::High).unwrap();
        pool.frames(&c3).release(f).unwrap();
    }
    let inverted = std::panic::catch_unwind(|| {
        let _f = Held::new(cpu, Level::Frames);
        let _s = Held::new(cpu, Level::Space);
    });
    assert_eq!(inverted.is_err(), cfg!(debug_assertions));
    // The panic released nothing it should not have: a fresh order works.
    lockorder::release(cpu, Level::Space);
    lockorder::release(cpu, Level::Frames);
    let _s = Held::new(cpu, Level::Space);
    lockorder::enable(false);
}
