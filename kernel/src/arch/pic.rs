//! The two 8259A interrupt controllers, remapped above the CPU exceptions.

use super::port::{inb, outb};

/// Command port of the master PIC.
const PIC1_COMMAND: u16 = 0x20;
/// Data port of the master PIC.
const PIC1_DATA: u16 = 0x21;
/// Command port of the slave PIC.
const PIC2_COMMAND: u16 = 0xA0;
/// Data port of the slave PIC.
const PIC2_DATA: u16 = 0xA1;
/// ICW1: initialization, ICW4 follows.
const ICW1_INIT_ICW4: u8 = 0x11;
/// ICW4: 8086 mode.
const ICW4_8086: u8 = 0x01;
/// ICW3 (master): the slave sits on IRQ 2.
const ICW3_MASTER_SLAVE_ON_IRQ2: u8 = 1 << 2;
/// ICW3 (slave): its cascade identity.
const ICW3_SLAVE_ID: u8 = 2;
/// OCW2: non-specific end of interrupt.
const EOI: u8 = 0x20;
/// Mask every line.
const MASK_ALL: u8 = 0xFF;

/// Interrupt vector of IRQ 0 (the master PIC's first line).
pub const IRQ_BASE: u8 = 0x20;
/// Number of IRQ lines of the pair.
pub const IRQ_COUNT: u8 = 16;
/// IRQ line of the PIT timer.
pub const IRQ_TIMER: u8 = 0;
/// IRQ lines per PIC.
const LINES_PER_PIC: u8 = 8;

/// Remaps the PICs to vectors `IRQ_BASE..IRQ_BASE + 16` and masks every line.
pub fn init() {
    // SAFETY: the PICs are only programmed here, at boot, with interrupts off.
    unsafe {
        outb(PIC1_COMMAND, ICW1_INIT_ICW4);
        outb(PIC2_COMMAND, ICW1_INIT_ICW4);
        outb(PIC1_DATA, IRQ_BASE);
        outb(PIC2_DATA, IRQ_BASE + LINES_PER_PIC);
        outb(PIC1_DATA, ICW3_MASTER_SLAVE_ON_IRQ2);
        outb(PIC2_DATA, ICW3_SLAVE_ID);
        outb(PIC1_DATA, ICW4_8086);
        outb(PIC2_DATA, ICW4_8086);
        outb(PIC1_DATA, MASK_ALL);
        outb(PIC2_DATA, MASK_ALL);
    }
}

/// Unmasks one IRQ line of the master PIC.
pub fn unmask(irq: u8) {
    if irq >= LINES_PER_PIC {
        return;
    }
    // SAFETY: read-modify-write of the master's mask register, interrupts off.
    unsafe {
        let mask = inb(PIC1_DATA) & !(1 << irq);
        outb(PIC1_DATA, mask);
    }
}

/// Acknowledges an IRQ so the PIC delivers the next one.
pub fn end_of_interrupt(irq: u8) {
    // SAFETY: writing EOI to the PICs has no effect beyond the acknowledgement.
    unsafe {
        if irq >= LINES_PER_PIC {
            outb(PIC2_COMMAND, EOI);
        }
        outb(PIC1_COMMAND, EOI);
    }
}
