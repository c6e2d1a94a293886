//! # myos-sim — a simulated i386 machine for testing the MyOS memory manager
//!
//! [`SimMachine`] is RAM (a lazily backed host buffer, up to 4 GiB) with a
//! physical memory map, the paging control bits (CR3, CR0.WP, CR4.PSE,
//! CR4.PGE), an MMU that walks 32-bit two-level page tables exactly as an
//! i386 does ([`mmu`]), and a TLB model that serves stale translations until
//! they are flushed. It implements [`myos_mm::Platform`], so the core runs on
//! it unchanged, and offers user/supervisor accesses that either succeed or
//! raise a [`PageFault`] with CR2 and the spec's error code ([`err`]).
//!
//! The walker is written from the Intel SDM, independently of the core's
//! paging code, so tests check the core against a second reading of the
//! hardware rules.
//!
//! [`smp`] runs N such CPUs on one RAM, each with its own TLB and
//! paging-structure cache, with TLB shootdowns between them and a checker of
//! TLB coherence (see `docs/smp.md`).
//!
//! [`pae`] is a CPU with PAE paging (64-bit entries, 2 MiB pages, XD under
//! EFER.NXE, physical addresses up to MAXPHYADDR, RAM above 4 GiB), walked
//! by its own reading of the SDM; the core has no PAE mode yet.
//!
//! Feature `memfd` (Linux): `SimConfig::shared_ram` puts RAM in a memfd
//! (`SimMachine::ram_fd`), so frames can be mapped again elsewhere in the
//! host process; the C API's host library maps them at the simulated
//! virtual addresses.
//!
//! ```
//! use myos_sim::{mmu::bits, Mode, SimMachine};
//!
//! let m = SimMachine::new(16 << 20).unwrap();
//! let (pd, pt, page) = (0x10_0000u64, 0x10_1000u64, 0x10_2000u32);
//! // PDE 0 -> page table; PTE 5 -> page, user read/write.
//! m.write_phys_u32(pd, pt as u32 | bits::P | bits::RW | bits::US).unwrap();
//! m.write_phys_u32(pt + 5 * 4, page | bits::P | bits::RW | bits::US).unwrap();
//! m.set_cr3(pd as u32);
//! m.write_u32(0x5010, 0xDEAD_BEEF, Mode::User).unwrap();
//! assert_eq!(m.read_phys_u32(u64::from(page) + 0x10).unwrap(), 0xDEAD_BEEF);
//! // Not mapped: a not-present fault from user mode.
//! let f = m.read_u8(0x6000, Mode::User).unwrap_err();
//! assert_eq!((f.cr2, f.error_code), (0x6000, myos_sim::err::ERR_USER));
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod error;
mod fault;
mod machine;
pub mod mmu;
pub mod model;
pub mod pae;
mod ram;
pub mod smp;
mod tlb;
mod world;

pub use error::{FaultError, SimError};
pub use fault::{err, Access, Mode, PageFault};
pub use machine::{
    pc_memory_map, SimConfig, SimMachine, SimStats, TlbEntryInfo, DEFAULT_TLB_ENTRIES, MAX_RAM,
    PC_HOLE_END, PC_LOW_RAM_END,
};
pub use world::{Vm, World, WorldMachine};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn machine_is_send_and_sync() {
        assert_send_sync::<SimMachine>();
    }
}
