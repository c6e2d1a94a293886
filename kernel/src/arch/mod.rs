//! i386 machine support: control-register bits, CPU features (SMEP, SMAP
//! and user-access windows), port I/O, segments and
//! descriptor tables, the trap frame, exceptions, interrupts, the PIC and
//! the timer.

pub mod cpu;
pub mod exception;
pub mod frame;
pub mod gdt;
pub mod idt;
pub mod pic;
pub mod pit;
pub mod port;
pub mod regs;
pub mod tsc;
