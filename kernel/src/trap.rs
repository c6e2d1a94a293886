//! Where every interrupt lands: the assembly entry stubs, which save the
//! registers as a [`TrapFrame`] and the FPU/SSE state (`fxsave`, 512 bytes,
//! 16-aligned) below it — user code and the kernel's own SSE-compiled code
//! may both own those registers — then call [`trap_dispatch`] and leave
//! through `trap_return` (`arch::frame`); the dispatch of exceptions (the
//! page fault included), the timer and system calls; and the kernel oops
//! for faults the kernel cannot explain.

use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

use myos_mm::vm::{PageFault, ProtectionBug};

use crate::arch::exception::{self, PageFaultCode, SelectorError, EXCEPTION_COUNT};
use crate::arch::frame::{TrapFrame, FXSAVE_SIZE};
use crate::arch::gdt::{self, KERNEL_DATA};
use crate::arch::idt::{self, STUB_COUNT, SYSCALL_VECTOR};
use crate::arch::{cpu, lapic, pic, pit};
use crate::exit::{exit_qemu, ExitCode};
use crate::platform;
use crate::serial;

/// Breakpoint (`int3`) vector: resumable, counted by the tests.
pub const BREAKPOINT_VECTOR: u32 = 3;
/// Non-maskable interrupt vector (the SMP stop and reminder).
pub const NMI_VECTOR: u32 = 2;
/// Page-fault vector.
pub const PAGE_FAULT_VECTOR: u32 = 14;

core::arch::global_asm!(
    r#"
    .macro ISR_STUB n
    .global isr_stub_\n
isr_stub_\n:
    .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    push 0
    .endif
    push \n
    jmp isr_common
    .endm

    .section .text
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,128,239,240,241,255
    ISR_STUB \n
    .endr

isr_common:
    pushad
    /* 32-bit pushes of the segment registers (the assembler would pick
       16-bit ones for `push ds`). */
    mov eax, ds
    push eax
    mov eax, es
    push eax
    mov eax, fs
    push eax
    mov eax, gs
    push eax
    mov ax, {kdata}
    mov ds, ax
    mov es, ax
    mov fs, ax
    /* GS: this CPU's per-CPU segment (arch::percpu). */
    mov ax, {percpu}
    mov gs, ax
    cld
    mov ebx, esp
    sub esp, {fxsave_size}
    and esp, -16
    fxsave [esp]
    mov eax, esp
    sub esp, 8
    push eax
    push ebx
    call {dispatch}
    add esp, 16

    /* esp -> the fxsave area, ebx -> the trap frame. */
    jmp trap_return

    .section .rodata
    .balign 4
    .global isr_stub_table
isr_stub_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
    .long isr_stub_\n
    .endr
    .global isr_apic_stub_table
isr_apic_stub_table:
    .irp n, 239,240,241,255
    .long isr_stub_\n
    .endr
    .section .text
    "#,
    kdata = const KERNEL_DATA,
    percpu = const gdt::PERCPU,
    fxsave_size = const FXSAVE_SIZE,
    dispatch = sym trap_dispatch,
);

const _: () = assert!(
    lapic::VECTORS[0] == 239
        && lapic::VECTORS[1] == 240
        && lapic::VECTORS[2] == 241
        && lapic::VECTORS[3] == 255
);

extern "C" {
    static isr_stub_table: [u32; STUB_COUNT];
    static isr_apic_stub_table: [u32; 4];
    fn isr_stub_128();
}

/// The entry stubs, for the IDT.
pub fn entry_stubs() -> idt::Stubs {
    idt::Stubs {
        // SAFETY: the table is an immutable array of stub addresses in .rodata.
        vectors: unsafe { &*core::ptr::addr_of!(isr_stub_table) },
        syscall: isr_stub_128 as *const () as usize as u32,
        // SAFETY: as above, the stubs of `lapic::VECTORS`.
        apic: unsafe { &*core::ptr::addr_of!(isr_apic_stub_table) },
    }
}

/// Breakpoints (`int3`) taken in the kernel: counted, then resumed (the
/// tests check the count).
pub static BREAKPOINTS: AtomicU32 = AtomicU32::new(0);

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
    // EFLAGS.AC survives the trap (ring 3 may set it with popf, a
    // `UserAccess` window may be open): handlers start with SMAP enforced;
    // `iret` gives the interrupted code its own AC back.
    cpu::clac();
    let vector = frame.vector;
    if vector == NMI_VECTOR && crate::smp::nmi() {
        return;
    }
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
    } else {
        crate::smp::interrupt(vector);
        // An application processor's local APIC timer (acknowledged by
        // `smp::interrupt`) preempts ring 3 like the boot CPU's PIT.
        if vector == u32::from(crate::arch::lapic::TIMER_VECTOR) && frame.came_from_user() {
            crate::process::preempt(frame);
        }
    }
}

/// Handles a CPU exception.
fn exception(frame: &mut TrapFrame, fx: *mut u8) {
    let _ = fx;
    if frame.vector == BREAKPOINT_VECTOR && !frame.came_from_user() {
        BREAKPOINTS.fetch_add(1, Ordering::SeqCst);
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
    crate::smp::stop_others();
    let mut w = serial::emergency_writer();
    let _ = writeln!(
        w,
        "\n*** KERNEL OOPS: {} (vector {})",
        exception::exception_name(frame.vector),
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
            if let Some(bug) = protection_bug(frame, addr) {
                let _ = writeln!(w, "    cause   {bug}");
            }
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

/// The SMEP or SMAP violation a supervisor page fault at `addr` (a user
/// address) is, as the core's handler names it; `None` for other faults.
fn protection_bug(frame: &TrapFrame, addr: u32) -> Option<ProtectionBug> {
    if frame.came_from_user() || addr >= myos_mm::layout::USER_END {
        return None;
    }
    PageFault::new(addr, frame.error)
        .with_context(cpu::fault_context(frame.eflags))
        .protection_bug()
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
    crate::smp::stop_others();
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
