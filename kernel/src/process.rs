//! Processes (placeholder until the address-space work lands).

use crate::arch::idt::TrapFrame;

/// Handles `int 0x80`.
pub fn syscall(frame: &mut TrapFrame, fx: *mut u8) {
    let _ = (frame, fx);
}

/// The timer fired while ring 3 ran.
pub fn preempt(frame: &mut TrapFrame) {
    let _ = frame;
}

/// A page fault; true when it was resolved.
pub fn page_fault(frame: &mut TrapFrame, addr: u32) -> bool {
    let _ = (frame, addr);
    false
}

/// A non-page-fault exception from ring 3.
pub fn user_exception(frame: &mut TrapFrame) {
    crate::trap::oops(frame, None)
}
