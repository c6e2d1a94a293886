//! The 8253/8254 programmable interval timer, channel 0 on IRQ 0.

use core::sync::atomic::{AtomicU32, Ordering};

use super::port::outb;

/// The PIT's input clock in Hz.
const PIT_INPUT_HZ: u32 = 1_193_182;
/// Channel 0 data port.
const CHANNEL0_DATA: u16 = 0x40;
/// Mode/command register.
const COMMAND: u16 = 0x43;
/// Command: channel 0, low then high byte, mode 2 (rate generator), binary.
const CMD_CH0_LOHI_RATE: u8 = 0b0011_0100;

/// Timer frequency in Hz.
pub const HZ: u32 = 100;

/// Ticks since the timer started.
static TICKS: AtomicU32 = AtomicU32::new(0);

/// Programs channel 0 to interrupt `HZ` times a second.
pub fn init() {
    let divisor = PIT_INPUT_HZ / HZ;
    // SAFETY: the PIT is only programmed here, at boot, with interrupts off.
    unsafe {
        outb(COMMAND, CMD_CH0_LOHI_RATE);
        outb(CHANNEL0_DATA, (divisor & 0xFF) as u8);
        outb(CHANNEL0_DATA, (divisor >> 8) as u8);
    }
}

/// Counts one tick (called from the timer interrupt).
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Ticks since boot.
pub fn ticks() -> u32 {
    TICKS.load(Ordering::Relaxed)
}
