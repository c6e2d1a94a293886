//! The local APIC (xAPIC, memory-mapped at the fixmap's `LAPIC_VA`): its
//! enable, EOI, the timer, and inter-processor interrupts (fixed vectors,
//! NMI, INIT and STARTUP).

use core::sync::atomic::{AtomicBool, Ordering};

use super::fixmap::{self, LAPIC_VA};

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 0xEF;
/// Vector of the TLB shootdown IPI.
pub const SHOOTDOWN_VECTOR: u8 = 0xF0;
/// Vector of the "run this function" IPI (`smp::run_on`).
pub const CALL_VECTOR: u8 = 0xF1;
/// Spurious-interrupt vector (low nibble all ones, as older APICs want).
pub const SPURIOUS_VECTOR: u8 = 0xFF;
/// The vectors the local APIC delivers, which need an IDT gate.
pub const VECTORS: [u8; 4] = [TIMER_VECTOR, SHOOTDOWN_VECTOR, CALL_VECTOR, SPURIOUS_VECTOR];

/// Register offsets.
mod reg {
    pub const ID: u32 = 0x20;
    pub const TPR: u32 = 0x80;
    pub const EOI: u32 = 0xB0;
    pub const SVR: u32 = 0xF0;
    pub const ESR: u32 = 0x280;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_LINT0: u32 = 0x350;
    pub const LVT_LINT1: u32 = 0x360;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_INITIAL: u32 = 0x380;
    pub const TIMER_DIVIDE: u32 = 0x3E0;
}

/// SVR: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// LVT: masked.
const LVT_MASKED: u32 = 1 << 16;
/// LVT timer: periodic mode.
const TIMER_PERIODIC: u32 = 1 << 17;
/// Divide configuration: divide by 16.
const DIVIDE_BY_16: u32 = 0b0011;
/// Timer count per tick at divide-by-16: about 100 Hz with QEMU's 1 GHz
/// APIC clock (not calibrated; it only has to tick).
const TIMER_COUNT: u32 = 625_000;
/// ICR: delivery status (send pending).
const ICR_PENDING: u32 = 1 << 12;
/// ICR: level assert.
const ICR_ASSERT: u32 = 1 << 14;
/// ICR delivery mode: fixed.
const ICR_FIXED: u32 = 0 << 8;
/// ICR delivery mode: NMI.
const ICR_NMI: u32 = 4 << 8;
/// ICR delivery mode: INIT.
const ICR_INIT: u32 = 5 << 8;
/// ICR delivery mode: STARTUP.
const ICR_STARTUP: u32 = 6 << 8;
/// ICR shorthand: all CPUs but the sender.
const ICR_ALL_BUT_SELF: u32 = 3 << 18;

/// True once the registers are mapped.
static MAPPED: AtomicBool = AtomicBool::new(false);

fn read(offset: u32) -> u32 {
    // SAFETY: the register page is mapped uncached at LAPIC_VA (checked by
    // the callers through `MAPPED`), offsets are register offsets.
    unsafe { ((LAPIC_VA + offset) as *const u32).read_volatile() }
}

fn write(offset: u32, value: u32) {
    // SAFETY: as in `read`.
    unsafe { ((LAPIC_VA + offset) as *mut u32).write_volatile(value) }
}

/// Maps the registers at physical `phys` (the MADT's address).
pub fn map(phys: u32) {
    fixmap::map(LAPIC_VA, phys, true);
    MAPPED.store(true, Ordering::SeqCst);
}

/// True once [`map`] ran (IPIs can be sent).
pub fn is_mapped() -> bool {
    MAPPED.load(Ordering::SeqCst)
}

/// This CPU's local APIC id.
pub fn id() -> u8 {
    (read(reg::ID) >> 24) as u8
}

/// Enables this CPU's local APIC: spurious vector, every interrupt
/// priority accepted, errors cleared. With `timer`, the periodic timer is
/// started on [`TIMER_VECTOR`] and the LINT pins are masked (an
/// application processor); without, LINT0/LINT1 keep the firmware's
/// setting (the boot CPU's PIC interrupts arrive through LINT0).
pub fn enable(timer: bool) {
    write(reg::SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    write(reg::TPR, 0);
    write(reg::LVT_ERROR, LVT_MASKED);
    write(reg::ESR, 0);
    write(reg::ESR, 0);
    if timer {
        write(reg::LVT_LINT0, LVT_MASKED);
        write(reg::LVT_LINT1, LVT_MASKED);
        write(reg::TIMER_DIVIDE, DIVIDE_BY_16);
        write(reg::LVT_TIMER, TIMER_PERIODIC | u32::from(TIMER_VECTOR));
        write(reg::TIMER_INITIAL, TIMER_COUNT);
    } else {
        write(reg::LVT_TIMER, LVT_MASKED);
    }
    end_of_interrupt();
}

/// Acknowledges the interrupt being serviced.
pub fn end_of_interrupt() {
    write(reg::EOI, 0);
}

/// Runs `f` with interrupts off (the ICR is two registers).
fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let flags: u32;
    // SAFETY: saving EFLAGS and clearing IF only delays interrupts.
    unsafe {
        core::arch::asm!("pushfd", "pop {}", "cli", out(reg) flags, options(preserves_flags))
    };
    let r = f();
    if flags & super::regs::eflags::IF != 0 {
        // SAFETY: interrupts were on before.
        unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    }
    r
}

/// Writes the ICR (destination then command) and waits until the APIC has
/// sent the interrupt.
fn send(dest_apic: u8, command: u32) {
    without_interrupts(|| {
        while read(reg::ICR_LOW) & ICR_PENDING != 0 {
            core::hint::spin_loop();
        }
        write(reg::ICR_HIGH, u32::from(dest_apic) << 24);
        write(reg::ICR_LOW, command);
        while read(reg::ICR_LOW) & ICR_PENDING != 0 {
            core::hint::spin_loop();
        }
    });
}

/// Sends interrupt `vector` to the CPU with APIC id `dest_apic`.
pub fn send_ipi(dest_apic: u8, vector: u8) {
    send(dest_apic, ICR_ASSERT | ICR_FIXED | u32::from(vector));
}

/// Sends an NMI to the CPU with APIC id `dest_apic`.
pub fn send_nmi(dest_apic: u8) {
    send(dest_apic, ICR_ASSERT | ICR_NMI);
}

/// Sends an NMI to every other CPU.
pub fn send_nmi_all_but_self() {
    send(0, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_NMI);
}

/// Sends INIT to `dest_apic` (the AP resets and waits for STARTUP).
pub fn send_init(dest_apic: u8) {
    send(dest_apic, ICR_ASSERT | ICR_INIT);
}

/// Sends STARTUP to `dest_apic`: it starts in real mode at `page << 12`.
pub fn send_startup(dest_apic: u8, page: u8) {
    send(dest_apic, ICR_ASSERT | ICR_STARTUP | u32::from(page));
}
