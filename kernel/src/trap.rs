//! Where every interrupt lands: exceptions (the page fault included), the
//! timer, and system calls; and the kernel oops for faults the kernel
//! cannot explain.

use core::fmt::{self, Write};

use crate::arch::idt::{self, SelectorError, TrapFrame, EXCEPTION_COUNT, SYSCALL_VECTOR};
use crate::arch::{gdt, pic, pit};
use crate::exit::{exit_qemu, ExitCode};
use crate::platform;
use crate::serial;

/// Breakpoint (`int3`) vector: resumable, counted by the tests.
pub const BREAKPOINT_VECTOR: u32 = 3;
/// Page-fault vector.
pub const PAGE_FAULT_VECTOR: u32 = 14;

/// Page-fault error-code bits (the spec's `ERR_*` constants).
pub mod pf {
    /// The page was present (a protection violation), else not present.
    pub const PRESENT: u32 = 0x1;
    /// The access was a write, else a read.
    pub const WRITE: u32 = 0x2;
    /// The access came from ring 3.
    pub const USER: u32 = 0x4;
    /// A reserved bit was set in a paging entry.
    pub const RESERVED: u32 = 0x8;
    /// The access was an instruction fetch.
    pub const FETCH: u32 = 0x10;
}

/// A page-fault error code, decoded for people.
#[derive(Clone, Copy)]
pub struct PageFaultCode(pub u32);

impl fmt::Display for PageFaultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        let who = if e & pf::USER != 0 {
            "user"
        } else {
            "supervisor"
        };
        let what = if e & pf::FETCH != 0 {
            "instruction fetch"
        } else if e & pf::WRITE != 0 {
            "write"
        } else {
            "read"
        };
        let why = if e & pf::PRESENT != 0 {
            "protection violation"
        } else {
            "page not present"
        };
        write!(f, "{who} {what}, {why}")?;
        if e & pf::RESERVED != 0 {
            f.write_str(", reserved bit set")?;
        }
        Ok(())
    }
}

/// The entry point from the assembly stubs.
///
/// # Safety
///
/// Only called by `isr_common` with `frame` pointing at the frame it pushed
/// and `fx` at the 512-byte `fxsave` area below it.
pub unsafe extern "C" fn trap_dispatch(frame: *mut TrapFrame, fx: *mut u8) {
    // SAFETY: the stub passes a pointer to the frame it just pushed on this
    // stack; nothing else refers to it during the call.
    let frame = unsafe { &mut *frame };
    let vector = frame.vector;
    if vector < EXCEPTION_COUNT as u32 {
        exception(frame, fx);
    } else if vector == u32::from(SYSCALL_VECTOR) {
        crate::process::syscall(frame, fx);
    } else if vector >= u32::from(pic::IRQ_BASE)
        && vector < u32::from(pic::IRQ_BASE + pic::IRQ_COUNT)
    {
        let irq = (vector - u32::from(pic::IRQ_BASE)) as u8;
        pic::end_of_interrupt(irq);
        if irq == pic::IRQ_TIMER {
            pit::tick();
            if frame.came_from_user() {
                crate::process::preempt(frame);
            }
        }
    }
}

/// Handles a CPU exception.
fn exception(frame: &mut TrapFrame, fx: *mut u8) {
    let _ = fx;
    if frame.vector == BREAKPOINT_VECTOR && !frame.came_from_user() {
        crate::ktest::BREAKPOINTS.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
        return;
    }
    if frame.vector == PAGE_FAULT_VECTOR {
        let addr = platform::fault_address();
        if crate::process::page_fault(frame, addr) {
            return;
        }
        oops(frame, Some(addr));
    }
    if frame.came_from_user() {
        crate::process::user_exception(frame);
        return;
    }
    oops(frame, None)
}

/// Reports a fatal kernel fault and stops QEMU with a failure status.
pub fn oops(frame: &TrapFrame, fault_addr: Option<u32>) -> ! {
    let mut w = serial::emergency_writer();
    let _ = writeln!(
        w,
        "\n*** KERNEL OOPS: {} (vector {})",
        idt::exception_name(frame.vector),
        frame.vector
    );
    match fault_addr {
        Some(addr) => {
            let _ = writeln!(w, "    address {addr:#010x}");
            let _ = writeln!(
                w,
                "    error   {:#x} ({})",
                frame.error,
                PageFaultCode(frame.error)
            );
        }
        None if has_selector_error(frame.vector) => {
            let _ = writeln!(
                w,
                "    error   {:#x} ({})",
                frame.error,
                SelectorError(frame.error)
            );
        }
        None => {}
    }
    let _ = writeln!(
        w,
        "    eip     {:#010x}  cs {:#06x}  eflags {:#010x}",
        frame.eip, frame.cs, frame.eflags
    );
    let _ = writeln!(
        w,
        "    eax {:#010x} ebx {:#010x} ecx {:#010x} edx {:#010x}",
        frame.eax, frame.ebx, frame.ecx, frame.edx
    );
    let _ = writeln!(
        w,
        "    esi {:#010x} edi {:#010x} ebp {:#010x} esp {:#010x}",
        frame.esi, frame.edi, frame.ebp, frame.kernel_esp
    );
    backtrace(&mut w, frame.ebp);
    if let Some((pid, name)) = crate::process::current_for_oops() {
        let _ = writeln!(w, "    while working for pid {pid} ({name})");
    }
    let _ = writeln!(w, "*** end of oops; stopping");
    exit_qemu(ExitCode::Failure)
}

/// Prints the return addresses along the frame-pointer chain (the kernel is
/// built with frame pointers), stopping at anything outside the kernel half
/// or not mapped.
fn backtrace(w: &mut serial::Serial, mut ebp: u32) {
    const MAX_FRAMES: usize = 16;
    let _ = write!(w, "    backtrace:");
    for _ in 0..MAX_FRAMES {
        let kernel_half = (myos_mm::layout::KERNEL_BASE..=u32::MAX - 8).contains(&ebp);
        let mapped = kernel_half && platform::is_mapped(ebp) && platform::is_mapped(ebp + 7);
        if !mapped || !ebp.is_multiple_of(4) {
            break;
        }
        // SAFETY: both words lie in mapped kernel memory (checked by a
        // software walk of the loaded tables) and are aligned.
        let (next, ret) = unsafe { (*(ebp as *const u32), *((ebp + 4) as *const u32)) };
        let _ = write!(w, " {ret:#010x}");
        if next <= ebp {
            break;
        }
        ebp = next;
    }
    let _ = writeln!(w);
}

/// True for the exceptions whose error code is a selector.
fn has_selector_error(vector: u32) -> bool {
    matches!(vector, 10..=13)
}

core::arch::global_asm!(
    r#"
    .section .text
    .global double_fault_entry
double_fault_entry:
    /* Entered by a task switch: the error code is on the fresh stack. */
    and esp, -16
    call {handler}
2:
    hlt
    jmp 2b
    "#,
    handler = sym double_fault,
);

extern "C" {
    fn double_fault_entry();
}

/// Address of the double-fault task's entry point.
pub fn double_fault_entry_addr() -> u32 {
    double_fault_entry as *const () as usize as u32
}

/// The double-fault task: reports the state of the task that faulted (saved
/// in the main TSS by the task switch) and stops QEMU with a failure status.
extern "C" fn double_fault() -> ! {
    let (eip, esp, ebp) = gdt::faulting_task_state();
    let cr2 = platform::fault_address();
    let mut w = serial::emergency_writer();
    let _ = writeln!(w, "\n*** KERNEL OOPS: #DF double fault");
    let _ = writeln!(
        w,
        "    eip {eip:#010x}  esp {esp:#010x}  last page fault at {cr2:#010x}"
    );
    if stack_overflow(esp, cr2) {
        let _ = writeln!(
            w,
            "    kernel stack overflow (stack pointer in a guard page)"
        );
    }
    backtrace(&mut w, ebp);
    let _ = writeln!(w, "*** end of oops; stopping");
    exit_qemu(ExitCode::Failure)
}

/// True when the last page fault hit just below the faulting stack pointer:
/// the CPU could not push onto the stack.
fn stack_overflow(esp: u32, cr2: u32) -> bool {
    const NEAR: u32 = 2 * myos_mm::layout::PAGE_SIZE as u32;
    (cr2 < esp && esp - cr2 <= NEAR) || crate::kstack::is_guard(cr2)
}
