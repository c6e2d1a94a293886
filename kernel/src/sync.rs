//! The kernel's spin lock: `spin`'s mutex whose waiting loop services the
//! TLB shootdowns addressed to the waiting CPU.
//!
//! The kernel runs with interrupts off, so a CPU spinning on a lock does not
//! take the shootdown IPI. When the lock's holder (or any third CPU) waits
//! for that CPU's acknowledgement, only the NMI reminder (tens of
//! milliseconds later) would reach it. [`ServiceShootdowns`] makes every
//! spin of the wait loop service the pending requests instead, so the
//! reminder stays a fallback for the core's own locks (frames, heap, kernel
//! space), which spin the plain way.

use spin::relax::RelaxStrategy;

/// Spins once, servicing this CPU's pending shootdown requests.
pub struct ServiceShootdowns;

impl RelaxStrategy for ServiceShootdowns {
    #[inline]
    fn relax() {
        crate::smp::service();
        core::hint::spin_loop();
    }
}

/// A spin lock that services shootdowns while it waits.
pub type Mutex<T> = spin::mutex::Mutex<T, ServiceShootdowns>;
