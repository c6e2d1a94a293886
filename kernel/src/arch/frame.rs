//! The trap frame: the registers every interrupt entry stub saves (the stubs
//! are in `trap`), and `trap_return`, the code that restores them and
//! `iret`s. The frame's layout and its restore path live together: the
//! stubs push exactly what `trap_return` pops. `trap_return` is the tail of
//! every interrupt, and where a new process's first context switch lands
//! (see `process`).

use super::gdt;

/// Size of the `fxsave` area.
pub const FXSAVE_SIZE: usize = 512;

/// The registers saved on entry, lowest address first (the layout pushed by
/// the stubs and the CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    /// Saved GS.
    pub gs: u32,
    /// Saved FS.
    pub fs: u32,
    /// Saved ES.
    pub es: u32,
    /// Saved DS.
    pub ds: u32,
    /// Saved EDI.
    pub edi: u32,
    /// Saved ESI.
    pub esi: u32,
    /// Saved EBP.
    pub ebp: u32,
    /// ESP as `pushad` saw it (ignored by `popad`).
    pub kernel_esp: u32,
    /// Saved EBX.
    pub ebx: u32,
    /// Saved EDX.
    pub edx: u32,
    /// Saved ECX.
    pub ecx: u32,
    /// Saved EAX (the system-call number and result).
    pub eax: u32,
    /// Interrupt vector.
    pub vector: u32,
    /// Error code pushed by the CPU (0 for vectors without one).
    pub error: u32,
    /// Faulting or interrupted instruction.
    pub eip: u32,
    /// Code segment of the interrupted code.
    pub cs: u32,
    /// EFLAGS of the interrupted code.
    pub eflags: u32,
    /// User stack pointer (only present for traps from ring 3).
    pub user_esp: u32,
    /// User stack segment (only present for traps from ring 3).
    pub user_ss: u32,
}

impl TrapFrame {
    /// True when the trap came from ring 3.
    pub fn came_from_user(&self) -> bool {
        self.cs & u32::from(gdt::RPL_USER) == u32::from(gdt::RPL_USER)
    }
}

/// Size of a full (ring-3) trap frame.
pub const TRAP_FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(TRAP_FRAME_SIZE == 19 * 4);

core::arch::global_asm!(
    r#"
    .section .text
    /* Entered by a jump from `isr_common` or by a new process's first
       context switch: esp -> the fxsave area, ebx -> the trap frame. */
    .global trap_return
trap_return:
    fxrstor [esp]
    mov esp, ebx
    pop eax
    mov gs, eax
    pop eax
    mov fs, eax
    pop eax
    mov es, eax
    pop eax
    mov ds, eax
    popad
    add esp, 8
    iretd

    "#
);

extern "C" {
    fn trap_return();
}

/// Address of `trap_return` (the tail of every interrupt), where a new
/// process's first context switch lands.
pub fn trap_return_addr() -> u32 {
    trap_return as *const () as usize as u32
}
