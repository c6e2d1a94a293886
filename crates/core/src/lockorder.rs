//! The lock order of the memory manager, checked per CPU in debug builds.
//!
//! Locks are taken in increasing [`Level`] order, never the other way
//! round:
//!
//! 1. [`Level::Space`]: a user address space (`VmSpace`; the kernel's lock
//!    around it). The fault handler and every system call on the space hold
//!    it; the TLB shootdown that ends an operation is sent with it held.
//! 2. [`Level::Object`]: a shared memory object's page index (`VmObject`,
//!    a file's page-cache slot): taken under the space lock by the fault
//!    handler, msync and munmap; it allocates frames and heap memory and
//!    reads the file while held.
//! 3. [`Level::Heap`]: the kernel heap (`LockedHeap`); the core allocates
//!    under the locks above (regions, object indexes, deferred-frame
//!    lists).
//! 4. [`Level::KernelSpace`]: the kernel address space (heap growth and
//!    shrink, kernel stacks), taken by the heap's backend under the heap
//!    lock.
//! 5. [`Level::Magazine`]: the calling CPU's frame cache (`FramePool`).
//! 6. [`Level::Frames`]: the global frame allocator.
//!
//! A CPU that waits for a lock, or for the acknowledgements of its own
//! shootdown, serves the shootdown requests sent to it (docs/smp.md), so
//! holding any of these locks while shooting down cannot deadlock.
//!
//! The tracker keeps, per CPU, the levels held (a bit each). It is off
//! until [`enable`] (a kernel turns it on at boot; host tests whose host
//! threads share CPU numbers leave it off) and compiled out of release
//! builds: [`acquire`] asserts that no level at or above the new one is
//! held on this CPU.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::smp::{CpuId, MAX_CPUS};

/// A lock's place in the order (lower first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A user address space.
    Space = 0,
    /// A shared memory object's page index or a file's page-cache slot.
    Object = 1,
    /// The kernel heap.
    Heap = 2,
    /// The kernel address space.
    KernelSpace = 3,
    /// The calling CPU's frame cache.
    Magazine = 4,
    /// The global frame allocator.
    Frames = 5,
}

static ON: AtomicBool = AtomicBool::new(false);
static HELD: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// Turns the checks on or off (debug builds only do anything).
pub fn enable(on: bool) {
    ON.store(on, Ordering::SeqCst);
}

fn checking() -> bool {
    cfg!(debug_assertions) && ON.load(Ordering::Relaxed)
}

/// Notes that `cpu` takes a lock of `level`; panics (debug builds, checks
/// on) when it holds one at the same or a later level.
pub fn acquire(cpu: CpuId, level: Level) {
    if !checking() {
        return;
    }
    let bit = 1u32 << level as u32;
    let held = HELD[cpu.index()].fetch_or(bit, Ordering::Relaxed);
    assert!(
        held & !(bit - 1) == 0,
        "lock order: CPU {} takes {level:?} while holding {held:#b} (a level at or after it)",
        cpu.index()
    );
}

/// Notes that `cpu` released its lock of `level`.
pub fn release(cpu: CpuId, level: Level) {
    if checking() {
        HELD[cpu.index()].fetch_and(!(1u32 << level as u32), Ordering::Relaxed);
    }
}

/// A held level, released when dropped (wrap a lock guard's lifetime).
#[must_use = "the level is released when the token is dropped"]
#[derive(Debug)]
pub struct Held {
    cpu: CpuId,
    level: Level,
}

impl Held {
    /// [`acquire`]s `level` on `cpu` (call it right after taking the lock).
    pub fn new(cpu: CpuId, level: Level) -> Held {
        acquire(cpu, level);
        Held { cpu, level }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        release(self.cpu, self.level);
    }
}
