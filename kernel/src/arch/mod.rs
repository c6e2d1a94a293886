//! i386 machine support: control-register bits, port I/O, segments and
//! descriptor tables, interrupts, the PIC and the timer.

pub mod gdt;
pub mod idt;
pub mod pic;
pub mod pit;
pub mod port;
pub mod regs;
pub mod tsc;
