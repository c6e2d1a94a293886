//! i386 machine support: control-register bits, CPU features (SMEP, SMAP
//! and user-access windows), port I/O, segments and
//! descriptor tables, the trap frame, exceptions, interrupts, the PIC and
//! the timer; for several CPUs the per-CPU data, the fixmap, the ACPI MADT,
//! the local and I/O APICs and the AP trampoline.

pub mod acpi;
pub mod cpu;
pub mod exception;
pub mod fixmap;
pub mod frame;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod lapic;
pub mod percpu;
pub mod pic;
pub mod pit;
pub mod port;
pub mod regs;
pub mod smpboot;
pub mod tlb;
pub mod tsc;
