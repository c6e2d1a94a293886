//! Helpers shared by the integration tests: page tables are written by hand,
//! as raw `u32` entries in simulated RAM, never with the core's paging code.
#![allow(dead_code)]

use myos_sim::{Mode, SimMachine};

// Entry bits, spelled out from the Intel SDM (vol. 3A, table 4-4/4-6), on
// purpose not taken from the sim or the core.
/// Present.
pub const P: u32 = 0x001;
/// Read/write.
pub const RW: u32 = 0x002;
/// User/supervisor.
pub const US: u32 = 0x004;
/// Accessed.
pub const A: u32 = 0x020;
/// Dirty.
pub const D: u32 = 0x040;
/// Page size (4 MiB) in a PDE.
pub const PS: u32 = 0x080;
/// Global.
pub const G: u32 = 0x100;

/// Usual test layout in a 16 MiB machine.
pub const PD: u32 = 0x0010_0000;
/// First page table.
pub const PT0: u32 = 0x0010_1000;
/// Second page table.
pub const PT1: u32 = 0x0010_2000;
/// First data frame; data frames follow.
pub const DATA: u32 = 0x0020_0000;

pub const U: Mode = Mode::User;
pub const S: Mode = Mode::Supervisor;

/// A 16 MiB machine with defaults, CR3 = [`PD`] (a zeroed directory).
pub fn machine() -> SimMachine {
    let m = SimMachine::new(16 << 20).unwrap();
    m.set_cr3(PD);
    m.reset_stats();
    m
}

/// Physical address of the PDE for `va` in directory `pd`.
pub fn pde_addr(pd: u32, va: u32) -> u64 {
    u64::from(pd) + 4 * u64::from(va >> 22)
}

/// Physical address of the PTE for `va` in table `pt`.
pub fn pte_addr(pt: u32, va: u32) -> u64 {
    u64::from(pt) + 4 * u64::from((va >> 12) & 0x3FF)
}

/// Writes the PDE for `va` in directory `pd`.
pub fn set_pde(m: &SimMachine, pd: u32, va: u32, raw: u32) {
    m.write_phys_u32(pde_addr(pd, va), raw).unwrap();
}

/// Writes the PTE for `va` in table `pt`.
pub fn set_pte(m: &SimMachine, pt: u32, va: u32, raw: u32) {
    m.write_phys_u32(pte_addr(pt, va), raw).unwrap();
}

/// Reads the PDE for `va` in directory `pd`.
pub fn pde(m: &SimMachine, pd: u32, va: u32) -> u32 {
    m.read_phys_u32(pde_addr(pd, va)).unwrap()
}

/// Reads the PTE for `va` in table `pt`.
pub fn pte(m: &SimMachine, pt: u32, va: u32) -> u32 {
    m.read_phys_u32(pte_addr(pt, va)).unwrap()
}

/// Maps the 4 KiB page `va` to `pa` through table `pt` in [`PD`]: the PDE
/// gets `pde_flags`, the PTE `pte_flags`.
pub fn map4k(m: &SimMachine, pt: u32, va: u32, pa: u32, pde_flags: u32, pte_flags: u32) {
    set_pde(m, PD, va, pt | pde_flags);
    set_pte(m, pt, va, pa | pte_flags);
}

/// Fills the 4 KiB frame at `pa` with `byte`.
pub fn fill_frame(m: &SimMachine, pa: u32, byte: u8) {
    m.write_phys(u64::from(pa), &[byte; 4096]).unwrap();
}
