//! Interrupts: the timer ticks, a kernel breakpoint is counted and resumed.

use core::sync::atomic::Ordering;

use super::support::{check, TestResult};
use crate::arch::pit;
use crate::mm::Mm;
use crate::trap;

pub(super) fn timer_ticks(_mm: &Mm) -> TestResult {
    const WAIT_TICKS: u32 = 3;
    let start = pit::ticks();
    while pit::ticks().wrapping_sub(start) < WAIT_TICKS {
        // SAFETY: enabling interrupts only to halt until the next one; the
        // handlers are installed and the kernel holds no lock here.
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
    Ok(())
}

pub(super) fn breakpoint_recovers(_mm: &Mm) -> TestResult {
    let before = trap::BREAKPOINTS.load(Ordering::SeqCst);
    // SAFETY: `int3` traps to the breakpoint handler, which counts and returns.
    unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
    check!(
        trap::BREAKPOINTS.load(Ordering::SeqCst) == before + 1,
        "breakpoint handler did not run once"
    );
    Ok(())
}
