//! The interrupt descriptor table: one interrupt gate per entry stub (the
//! stubs, which push a [`TrapFrame`](super::frame::TrapFrame) and call the
//! dispatcher, are the trap layer's: `trap`), a ring-3 gate for `int 0x80`.
//! Vector 8 (double fault) is a task gate to the double-fault TSS instead.

use spin::Once;

use super::gdt::{self, KERNEL_CODE};

/// Number of IDT entries.
const IDT_ENTRIES: usize = 256;
/// Vectors with an assembly stub: the exceptions and the 16 PIC lines.
pub const STUB_COUNT: usize = 48;
/// The system-call vector (`int 0x80`).
pub const SYSCALL_VECTOR: u8 = 0x80;
/// The double-fault vector.
pub const DOUBLE_FAULT_VECTOR: u8 = 8;

/// Gate attribute: present.
const GATE_PRESENT: u8 = 1 << 7;
/// Gate attribute: callable from ring 3 (`int` from user mode).
const GATE_DPL3: u8 = 3 << 5;
/// Gate type: 32-bit interrupt gate (clears IF on entry).
const GATE_INTERRUPT32: u8 = 0xE;
/// Gate type: task gate.
const GATE_TASK: u8 = 0x5;

/// The entry stubs' addresses, as the trap layer hands them over.
pub struct Stubs {
    /// Stubs of vectors `0..STUB_COUNT`, by vector.
    pub vectors: &'static [u32; STUB_COUNT],
    /// The stub of [`SYSCALL_VECTOR`].
    pub syscall: u32,
    /// Stubs of the local APIC's vectors (`lapic::VECTORS`), in that order.
    pub apic: &'static [u32; 4],
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

/// Loads the IDT [`init`] built (on an application processor).
pub fn load() {
    let idt = IDT
        .get()
        .unwrap_or_else(|| panic!("idt::load before idt::init"));
    let pointer = gdt::DescriptorTablePointer {
        limit: (core::mem::size_of_val(idt) - 1) as u16,
        base: idt.as_ptr() as u32,
    };
    // SAFETY: as in `init`: the table lives forever and every present gate
    // points at an entry stub or at the double-fault TSS.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &pointer, options(nostack, readonly)) }
}

/// Builds the IDT over `stubs` (once: every CPU shares it) and loads it.
pub fn init(stubs: Stubs) {
    let idt = IDT.call_once(|| {
        let mut idt = [0u64; IDT_ENTRIES];
        for (vector, &stub) in stubs.vectors.iter().enumerate() {
            idt[vector] = gate(stub, KERNEL_CODE, GATE_PRESENT | GATE_INTERRUPT32);
        }
        for (&vector, &stub) in super::lapic::VECTORS.iter().zip(stubs.apic) {
            idt[usize::from(vector)] = gate(stub, KERNEL_CODE, GATE_PRESENT | GATE_INTERRUPT32);
        }
        idt[usize::from(DOUBLE_FAULT_VECTOR)] =
            gate(0, gdt::DOUBLE_FAULT_TSS, GATE_PRESENT | GATE_TASK);
        idt[usize::from(SYSCALL_VECTOR)] = gate(
            stubs.syscall,
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
    // points at an entry stub or at the double-fault TSS.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &pointer, options(nostack, readonly)) }
}
