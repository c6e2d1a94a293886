//! Signal numbers (Linux i386) and the number of a fault's [`Signal`].

use myos_mm::vm::Signal;

/// Illegal instruction.
pub const SIGILL: i32 = 4;
/// Bus error (access past the end of a mapped file).
pub const SIGBUS: i32 = 7;
/// Arithmetic error.
pub const SIGFPE: i32 = 8;
/// Killed (out of memory).
pub const SIGKILL: i32 = 9;
/// Segmentation fault.
pub const SIGSEGV: i32 = 11;

/// The number of the signal a page fault raises.
pub const fn number(signal: Signal) -> i32 {
    match signal {
        Signal::Segv { .. } => SIGSEGV,
        Signal::Bus { .. } => SIGBUS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use myos_mm::vm::SegvCause;
    use myos_mm::VirtAddr;

    #[test]
    fn numbers_of_fault_signals() {
        let addr = VirtAddr::new(0);
        let segv = Signal::Segv {
            addr,
            cause: SegvCause::NoRegion,
        };
        assert_eq!((number(segv), number(Signal::Bus { addr })), (11, 7));
    }
}
