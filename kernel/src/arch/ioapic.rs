//! The I/O APIC (memory-mapped at the fixmap's `IOAPIC_VA`). In this step
//! device interrupts still come through the 8259 PICs to the boot CPU, so
//! the I/O APIC is only mapped, identified and kept fully masked.

use super::fixmap::{self, IOAPIC_VA};

/// Register select (index) register offset.
const IOREGSEL: u32 = 0x00;
/// Data window register offset.
const IOWIN: u32 = 0x10;
/// Register: identification.
const REG_ID: u32 = 0x00;
/// Register: version and highest redirection entry.
const REG_VERSION: u32 = 0x01;
/// First redirection-table register (two per entry).
const REG_REDIRECTION: u32 = 0x10;
/// Redirection entry: masked.
const MASKED: u32 = 1 << 16;

fn read(index: u32) -> u32 {
    // SAFETY: the registers are mapped uncached at IOAPIC_VA by `init`;
    // only the boot CPU touches them, during SMP initialisation.
    unsafe {
        ((IOAPIC_VA + IOREGSEL) as *mut u32).write_volatile(index);
        ((IOAPIC_VA + IOWIN) as *const u32).read_volatile()
    }
}

fn write(index: u32, value: u32) {
    // SAFETY: as in `read`.
    unsafe {
        ((IOAPIC_VA + IOREGSEL) as *mut u32).write_volatile(index);
        ((IOAPIC_VA + IOWIN) as *mut u32).write_volatile(value);
    }
}

/// What [`init`] found.
#[derive(Clone, Copy, Debug)]
pub struct IoApicInfo {
    /// Its id.
    pub id: u8,
    /// Number of redirection entries (interrupt inputs).
    pub inputs: u32,
}

/// Maps the I/O APIC at physical `phys`, masks every input and returns its
/// id and size.
pub fn init(phys: u32) -> IoApicInfo {
    fixmap::map(IOAPIC_VA, phys, true);
    let id = ((read(REG_ID) >> 24) & 0xF) as u8;
    let inputs = ((read(REG_VERSION) >> 16) & 0xFF) + 1;
    for i in 0..inputs {
        write(REG_REDIRECTION + 2 * i, MASKED);
    }
    IoApicInfo { id, inputs }
}
