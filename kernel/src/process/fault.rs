//! Faults of ring-3 code: a page fault goes to the address space's fault
//! handler (timed by kind) under the space's own lock; a fault it cannot
//! resolve, or any other CPU exception, kills the faulting thread with the
//! matching signal.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use myos_mm::vm::{FaultOutcome, PageFault, SegvCause, Signal};

use super::abi::{sig, WaitStatus};
use super::sched::exit_current;
use super::stats::{sample_low_water, FAULT_CYCLES};
use super::table::{current_id, current_space};
use crate::arch::exception::{self, PageFaultCode};
use crate::arch::frame::TrapFrame;
use crate::arch::{cpu, percpu};
use crate::println;

/// The error code of the last page fault taken in ring 3 (the tests check
/// its I/D bit, which the CPU sets only under SMEP).
pub static LAST_USER_FAULT: AtomicU32 = AtomicU32::new(0);

/// Threads other than a main one killed by a signal (the stress tests kill
/// thousands on purpose; only the first [`QUIET_AFTER`] are printed).
pub static THREAD_KILLS: AtomicU32 = AtomicU32::new(0);
/// Thread kills printed before the rest are only counted.
const QUIET_AFTER: u32 = 2;

/// Marks kernel code that reads or writes user memory through its user
/// addresses and holds no address-space lock: a supervisor page fault on
/// this CPU meanwhile is serviced through the current space (a fault
/// anywhere else in the kernel is an oops). Dropping the guard ends it.
#[must_use = "the marker is cleared when the guard is dropped"]
pub struct KernelUserAccess(());

impl KernelUserAccess {
    /// Starts a section that may fault on user memory.
    pub fn begin() -> Self {
        percpu::this().user_access.store(true, Ordering::SeqCst);
        KernelUserAccess(())
    }
}

impl Drop for KernelUserAccess {
    fn drop(&mut self) {
        percpu::this().user_access.store(false, Ordering::SeqCst);
    }
}

/// A page fault. Returns true when it was resolved (or the faulting thread
/// was killed, which does not return); false means a kernel bug.
pub fn page_fault(frame: &mut TrapFrame, addr: u32) -> bool {
    let user = frame.came_from_user();
    if user {
        sample_low_water();
        LAST_USER_FAULT.store(frame.error, Ordering::Relaxed);
    }
    // The error code, plus what only the CPU state says: SMEP, SMAP and
    // the interrupted code's EFLAGS.AC.
    let fault = PageFault::new(addr, frame.error).with_context(cpu::fault_context(frame.eflags));
    let Some(space) = current_space() else {
        // No thread runs here: the C program of `mode=c`, or a kernel bug.
        return crate::cprog::page_fault(addr, frame.error);
    };
    // A supervisor fault outside a marked section is a kernel bug (the
    // system calls copy through frames and never fault): report it. The
    // marker also guarantees the space's lock is not held by this CPU.
    if !user && !percpu::this().user_access.load(Ordering::SeqCst) {
        return false;
    }
    let outcome = {
        let mut vm = space.vm.lock();
        let start = crate::arch::tsc::rdtsc();
        let outcome = vm.handle_fault(fault);
        let cycles = crate::arch::tsc::rdtsc().wrapping_sub(start);
        if let FaultOutcome::Resolved(kind) = outcome {
            FAULT_CYCLES.lock().record(kind, cycles);
        }
        outcome
    };
    match outcome {
        FaultOutcome::Resolved(_) => true,
        FaultOutcome::Signal(signal) if user => {
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
        FaultOutcome::OutOfMemory if user => kill_current(
            frame,
            sig::SIGKILL,
            format_args!("out of memory on a fault at {addr:#010x}"),
        ),
        _ => false,
    }
}

/// A CPU exception other than a page fault, from ring 3: kill the thread.
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

/// Kills the current thread with `signal`, after printing why (a thread
/// other than the main one is named with its process: `pid 7.9`).
fn kill_current(frame: &TrapFrame, signal: i32, why: fmt::Arguments<'_>) -> ! {
    let (pid, tgid, name) = current_id();
    if pid == tgid {
        println!(
            "  [pid {pid} {name}] {why}, eip {:#010x} => {}",
            frame.eip,
            WaitStatus::signaled(signal)
        );
    } else if THREAD_KILLS.fetch_add(1, Ordering::Relaxed) < QUIET_AFTER {
        println!(
            "  [pid {tgid}.{pid} {name}] {why}, eip {:#010x} => {} (this thread; further thread kills are counted, not printed)",
            frame.eip,
            WaitStatus::signaled(signal)
        );
    }
    exit_current(WaitStatus::signaled(signal))
}
