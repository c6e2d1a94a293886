//! The interrupt descriptor table, the assembly entry stubs and the trap frame.
//!
//! Every vector's stub pushes a uniform frame ([`TrapFrame`]), saves the
//! FPU/SSE state (`fxsave`, 512 bytes, 16-aligned) below it — user code and
//! the kernel's own SSE-compiled code may both own those registers — and calls
//! [`crate::trap::trap_dispatch`]. `trap_return` restores everything and
//! `iret`s; a new process starts by "returning" into it (see `process`).
//! Vector 8 (double fault) is a task gate to the double-fault TSS instead.

use spin::Once;

use super::gdt::{self, KERNEL_CODE, KERNEL_DATA};

/// Number of IDT entries.
const IDT_ENTRIES: usize = 256;
/// Vectors reserved for CPU exceptions.
pub const EXCEPTION_COUNT: usize = 32;
/// Vectors with an assembly stub: the exceptions and the 16 PIC lines.
const STUB_COUNT: usize = 48;
/// The system-call vector (`int 0x80`).
pub const SYSCALL_VECTOR: u8 = 0x80;
/// The double-fault vector.
pub const DOUBLE_FAULT_VECTOR: u8 = 8;
/// Size of the `fxsave` area.
pub const FXSAVE_SIZE: usize = 512;

/// Gate attribute: present.
const GATE_PRESENT: u8 = 1 << 7;
/// Gate attribute: callable from ring 3 (`int` from user mode).
const GATE_DPL3: u8 = 3 << 5;
/// Gate type: 32-bit interrupt gate (clears IF on entry).
const GATE_INTERRUPT32: u8 = 0xE;
/// Gate type: task gate.
const GATE_TASK: u8 = 0x5;

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
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,128
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

    .section .rodata
    .balign 4
    .global isr_stub_table
isr_stub_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
    .long isr_stub_\n
    .endr
    .section .text
    "#,
    kdata = const KERNEL_DATA,
    fxsave_size = const FXSAVE_SIZE,
    dispatch = sym crate::trap::trap_dispatch,
);

extern "C" {
    static isr_stub_table: [u32; STUB_COUNT];
    fn isr_stub_128();
    fn trap_return();
}

#[allow(dead_code)] // used by processes
/// Address of `trap_return` (the tail of every interrupt), where a new
/// process's first context switch lands.
pub fn trap_return_addr() -> u32 {
    trap_return as *const () as usize as u32
}

/// Encodes an interrupt or trap gate.
const fn gate(offset: u32, selector: u16, attributes: u8) -> u64 {
    (offset as u64 & 0xFFFF)
        | ((selector as u64) << 16)
        | ((attributes as u64) << 40)
        | (((offset as u64) >> 16) << 48)
}

/// The table (built once).
static IDT: Once<[u64; IDT_ENTRIES]> = Once::new();

/// Builds and loads the IDT.
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = [0u64; IDT_ENTRIES];
        // SAFETY: the table is an immutable array of stub addresses in .rodata.
        let stubs = unsafe { &*core::ptr::addr_of!(isr_stub_table) };
        for (vector, &stub) in stubs.iter().enumerate() {
            idt[vector] = gate(stub, KERNEL_CODE, GATE_PRESENT | GATE_INTERRUPT32);
        }
        idt[usize::from(DOUBLE_FAULT_VECTOR)] =
            gate(0, gdt::DOUBLE_FAULT_TSS, GATE_PRESENT | GATE_TASK);
        idt[usize::from(SYSCALL_VECTOR)] = gate(
            isr_stub_128 as *const () as usize as u32,
            KERNEL_CODE,
            GATE_PRESENT | GATE_DPL3 | GATE_INTERRUPT32,
        );
        idt
    });
    let pointer = gdt::DescriptorTablePointer {
        limit: (core::mem::size_of_val(idt) - 1) as u16,
        base: idt.as_ptr() as u32,
    };
    // SAFETY: the IDT is a static that lives forever; every present gate
    // points at a stub above or at the double-fault TSS.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &pointer, options(nostack, readonly)) }
}

/// Mnemonic and name of a CPU exception.
pub fn exception_name(vector: u32) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range exceeded",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        9 => "coprocessor segment overrun",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating-point error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating-point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        29 => "#VC VMM communication",
        30 => "#SX security",
        _ => "reserved exception",
    }
}

/// Decodes a selector error code (#TS, #NP, #SS, #GP) into text.
pub struct SelectorError(pub u32);

impl core::fmt::Display for SelectorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const EXTERNAL: u32 = 1 << 0;
        const TABLE_SHIFT: u32 = 1;
        const TABLE_MASK: u32 = 0b11;
        const INDEX_SHIFT: u32 = 3;
        let e = self.0;
        if e == 0 {
            return f.write_str("no selector");
        }
        let table = match (e >> TABLE_SHIFT) & TABLE_MASK {
            0 => "GDT",
            2 => "LDT",
            _ => "IDT",
        };
        write!(f, "{table} index {}", e >> INDEX_SHIFT)?;
        if e & EXTERNAL != 0 {
            f.write_str(", external event")?;
        }
        Ok(())
    }
}
