//! Leaving QEMU with a status through the `isa-debug-exit` device.
//!
//! QEMU is started with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`;
//! writing `code` to the port makes QEMU exit with status `(code << 1) | 1`,
//! so every status the kernel chooses is odd and never 0 (QEMU's own status
//! for a normal shutdown or, with `-no-reboot`, a triple fault).

use crate::arch::port::outl;

/// The `isa-debug-exit` port.
const DEBUG_EXIT_PORT: u16 = 0xF4;

/// What the kernel reports to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Everything behaved (QEMU exits with 33).
    Success = 0x10,
    /// A test failed, or the kernel crashed (QEMU exits with 35).
    Failure = 0x11,
}

/// Exits QEMU with `code`. Halts forever if the device is missing.
pub fn exit_qemu(code: ExitCode) -> ! {
    // SAFETY: writing the debug-exit port stops the virtual machine; on real
    // hardware nothing is there and we halt below.
    unsafe { outl(DEBUG_EXIT_PORT, code as u32) };
    halt_forever()
}

/// Stops the CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: with interrupts disabled `hlt` only waits; no memory is touched.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
