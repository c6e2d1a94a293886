//! The TLB instructions that shootdown targets and the fixmap run on their
//! own CPU: one page, every non-global entry, everything. (The core's
//! `Platform` has its own in `platform.rs`, which also loads CR3.)

use super::regs::cr4;

/// Drops this CPU's TLB entry for the page of `va`.
pub fn invlpg(va: u32) {
    // SAFETY: `invlpg` only drops a cached translation.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

/// Drops every non-global TLB entry of this CPU (reloads CR3).
pub fn flush_non_global() {
    // SAFETY: reloading CR3 with its own value only flushes the TLB.
    unsafe {
        core::arch::asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags));
    }
}

/// Drops every TLB entry of this CPU, global ones included (clears and
/// restores CR4.PGE).
pub fn flush_everything() {
    // SAFETY: clearing and restoring PGE only flushes the TLB; the value
    // written back is the one read (an NMI that does the same in between
    // restores it too).
    unsafe {
        core::arch::asm!(
            "mov {0}, cr4", "mov {1}, {0}", "and {1}, {nopge}", "mov cr4, {1}", "mov cr4, {0}",
            out(reg) _, out(reg) _, nopge = const !cr4::PGE, options(nostack, preserves_flags),
        );
    }
}
