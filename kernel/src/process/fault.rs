//! Faults of ring-3 code: a page fault goes to the address space's fault
//! handler (timed by kind); a fault it cannot resolve, or any other CPU
//! exception, kills the process with the matching signal.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use myos_mm::vm::{FaultOutcome, PageFault, SegvCause, Signal};

use super::abi::{sig, WaitStatus};
use super::sched::exit_current;
use super::stats::{sample_low_water, FAULT_CYCLES};
use super::table::{current_id, find, TABLE};
use crate::arch::cpu;
use crate::arch::exception::{self, PageFaultCode};
use crate::arch::frame::TrapFrame;
use crate::println;

/// The error code of the last page fault taken in ring 3 (the tests check
/// its I/D bit, which the CPU sets only under SMEP).
pub static LAST_USER_FAULT: AtomicU32 = AtomicU32::new(0);

/// A page fault. Returns true when it was resolved (or the faulting process
/// was killed, which does not return); false means a kernel bug.
pub fn page_fault(frame: &mut TrapFrame, addr: u32) -> bool {
    let user = frame.came_from_user();
    if user {
        sample_low_water();
    }
    if user {
        LAST_USER_FAULT.store(frame.error, Ordering::Relaxed);
    }
    // The error code, plus what only the CPU state says: SMEP, SMAP and
    // the interrupted code's EFLAGS.AC.
    let fault = PageFault::new(addr, frame.error).with_context(cpu::fault_context(frame.eflags));
    let outcome = {
        // A supervisor fault while the table is locked is a bug in the
        // kernel's own process code: report it rather than deadlock.
        let table = if user {
            Some(TABLE.lock())
        } else {
            TABLE.try_lock()
        };
        let Some(mut t) = table else { return false };
        let Some(pid) = t.current else {
            drop(t);
            return crate::cprog::page_fault(addr, frame.error);
        };
        match find(&mut t, pid).vm.as_mut() {
            Some(vm) => {
                let start = crate::arch::tsc::rdtsc();
                let outcome = vm.handle_fault(fault);
                let cycles = crate::arch::tsc::rdtsc().wrapping_sub(start);
                if let FaultOutcome::Resolved(kind) = outcome {
                    FAULT_CYCLES.lock().record(kind, cycles);
                }
                outcome
            }
            None => return false,
        }
    };
    match outcome {
        FaultOutcome::Resolved(_) => true,
        FaultOutcome::Signal(signal) if frame.came_from_user() => {
            let (number, cause) = match signal {
                Signal::Segv {
                    cause: SegvCause::NoRegion,
                    ..
                } => (sig::SIGSEGV, "no mapping there"),
                Signal::Segv {
                    cause: SegvCause::Protection,
                    ..
                } => (sig::SIGSEGV, "not allowed by the mapping"),
                Signal::Bus { .. } => (sig::SIGBUS, "past the end of the file"),
            };
            kill_current(
                frame,
                number,
                format_args!(
                    "page fault: {} at {addr:#010x}, {cause}",
                    PageFaultCode(frame.error)
                ),
            )
        }
        FaultOutcome::OutOfMemory if frame.came_from_user() => kill_current(
            frame,
            sig::SIGKILL,
            format_args!("out of memory on a fault at {addr:#010x}"),
        ),
        _ => false,
    }
}

/// A CPU exception other than a page fault, from ring 3: kill the process.
pub fn user_exception(frame: &mut TrapFrame) {
    const DIVIDE: u32 = 0;
    const INVALID_OPCODE: u32 = 6;
    const SIMD: u32 = 19;
    const X87: u32 = 16;
    let signal = match frame.vector {
        DIVIDE | X87 | SIMD => sig::SIGFPE,
        INVALID_OPCODE => sig::SIGILL,
        _ => sig::SIGSEGV,
    };
    kill_current(
        frame,
        signal,
        format_args!("{}", exception::exception_name(frame.vector)),
    )
}

/// Kills the current process with `signal`, after printing why.
fn kill_current(frame: &TrapFrame, signal: i32, why: fmt::Arguments<'_>) -> ! {
    let (pid, name) = current_id();
    println!(
        "  [pid {pid} {name}] {why}, eip {:#010x} => {}",
        frame.eip,
        WaitStatus::signaled(signal)
    );
    exit_current(WaitStatus::signaled(signal))
}
