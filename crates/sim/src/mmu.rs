//! The page-table walker: 32-bit (non-PAE) i386 paging, written from the
//! Intel SDM's description (vol. 3A, §4.3 "32-bit paging", §4.6 "Access
//! rights", §4.7 "Page-fault exceptions", §4.8 "Accessed and dirty flags").
//!
//! It shares no code with the core's paging module on purpose: tests that
//! drive the core through the sim then check the core against an
//! independent reading of the hardware rules.
//!
//! A linear address splits into a 10-bit directory index (bits 31..22), a
//! 10-bit table index (bits 21..12) and a 12-bit offset. The walk reads the
//! PDE at `CR3[31:12] + 4 * dir`; a present PDE with PS set (honoured only
//! while CR4.PSE is on) maps a 4 MiB page, otherwise it points to a page
//! table whose PTE at `PDE[31:12] + 4 * table` maps a 4 KiB page.

use crate::fault::{err, Access, Mode};
use crate::ram::Ram;

/// Bits of a 32-bit paging entry (PDE or PTE), named as in the SDM.
pub mod bits {
    /// P: the entry is present.
    pub const P: u32 = 1 << 0;
    /// R/W: writes allowed (for supervisor accesses only enforced under CR0.WP).
    pub const RW: u32 = 1 << 1;
    /// U/S: user-mode accesses allowed.
    pub const US: u32 = 1 << 2;
    /// PWT: write-through (not modelled: caching is invisible to the sim).
    pub const PWT: u32 = 1 << 3;
    /// PCD: cache disable (not modelled).
    pub const PCD: u32 = 1 << 4;
    /// A: accessed, set by the walker whenever the entry is used.
    pub const A: u32 = 1 << 5;
    /// D: dirty, set by the walker on a write through the last-level entry.
    pub const D: u32 = 1 << 6;
    /// PS in a PDE: maps a 4 MiB page (when CR4.PSE is on). In a PTE this
    /// bit is PAT, which the sim ignores.
    pub const PS: u32 = 1 << 7;
    /// G: global translation, kept across CR3 loads (when CR4.PGE is on).
    /// Ignored in a PDE that points to a page table.
    pub const G: u32 = 1 << 8;
    /// Address of the next level (PDE) or of a 4 KiB page (PTE): bits 31..12.
    pub const ADDR_4K: u32 = 0xFFFF_F000;
    /// Address of a 4 MiB page in a PS PDE: bits 31..22.
    pub const ADDR_4M: u32 = 0xFFC0_0000;
    /// Reserved bits of a PS PDE with MAXPHYADDR = 32: bits 13..=20 would be
    /// physical-address bits 39..32 (PSE-36) and must be zero; bit 21 is
    /// always reserved. Any of them set gives a reserved-bit fault.
    pub const PDE_4M_RESERVED: u32 = 0x003F_E000;
    /// Offset within a 4 KiB page.
    pub const OFFSET_4K: u32 = 0x0000_0FFF;
    /// Offset within a 4 MiB page.
    pub const OFFSET_4M: u32 = 0x003F_FFFF;

    const _: () = assert!(PDE_4M_RESERVED == ((1 << 22) - 1) & !((1 << 13) - 1));
    const _: () = assert!(ADDR_4K == !OFFSET_4K && ADDR_4M == !OFFSET_4M);
}

/// The control-register bits that steer a walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Regs {
    /// CR3: the page directory's physical address in bits 31..12.
    pub cr3: u32,
    /// CR0.WP: supervisor writes honour R/W.
    pub wp: bool,
    /// CR4.PSE: PS in a PDE maps a 4 MiB page.
    pub pse: bool,
    /// CR4.PGE: G marks a translation global.
    pub pge: bool,
    /// CR4.SMEP: supervisor fetches from user pages fault, and fetch faults
    /// report [`err::ERR_FETCH`].
    pub smep: bool,
    /// CR4.SMAP: supervisor data accesses to user pages fault unless AC.
    pub smap: bool,
    /// EFLAGS.AC (`stac`/`clac`): lifts SMAP for explicit accesses.
    pub ac: bool,
}

/// Effective access rights of a translation (AND of every level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rights {
    /// Every level has U/S set.
    pub user: bool,
    /// Every level has R/W set.
    pub writable: bool,
}

impl Rights {
    /// Checks an access against these rights under the control bits of
    /// `regs` (SDM 3A §4.6); on a violation, the error-code bits for a
    /// protection fault (`ERR_PRESENT` plus W/U/fetch).
    ///
    /// Supervisor accesses to a user-mode address (U/S set at every level):
    /// a fetch faults under CR4.SMEP; a data access faults under CR4.SMAP
    /// unless EFLAGS.AC is set (explicit accesses; the implicit ones, always
    /// checked, are not modelled).
    pub(crate) fn check(self, access: Access, mode: Mode, regs: &Regs) -> Result<(), u32> {
        let mode_ok = match mode {
            Mode::User => self.user,
            Mode::Supervisor if !self.user => true,
            Mode::Supervisor => match access {
                Access::Fetch => !regs.smep,
                Access::Read | Access::Write => !regs.smap || regs.ac,
            },
        };
        let write_ok = match (access, mode) {
            (Access::Write, Mode::User) => self.writable,
            (Access::Write, Mode::Supervisor) => self.writable || !regs.wp,
            // No NX without PAE: a fetch needs what a read needs.
            (Access::Read | Access::Fetch, _) => true,
        };
        if mode_ok && write_ok {
            Ok(())
        } else {
            Err(err::ERR_PRESENT | access.error_bits(regs.smep) | mode.error_bits())
        }
    }
}

/// A successful translation, as the TLB caches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Translation {
    /// Physical base of the page: 4 KiB-aligned, or 4 MiB-aligned when `large`.
    pub base: u32,
    /// A 4 MiB page.
    pub large: bool,
    /// Effective rights.
    pub rights: Rights,
    /// The last-level entry's D bit was set once the walk finished.
    pub dirty: bool,
    /// The last-level entry had G set and CR4.PGE was on.
    pub global: bool,
}

impl Translation {
    /// The physical address of `va` under this translation.
    pub(crate) fn phys(&self, va: u32) -> u32 {
        if self.large {
            self.base | (va & bits::OFFSET_4M)
        } else {
            self.base | (va & bits::OFFSET_4K)
        }
    }
}

/// What a walk touched in physical memory that lies outside RAM (reads of
/// unbacked addresses see all ones, writes are dropped, as on an open bus).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WalkOutcome {
    /// Entry reads or A/D updates that hit no RAM.
    pub unbacked: u64,
}

/// Reads a paging entry; all ones (open bus) outside RAM.
fn load(ram: &Ram, addr: u32, out: &mut WalkOutcome) -> u32 {
    ram.read_u32(u64::from(addr)).unwrap_or_else(|| {
        out.unbacked += 1;
        u32::MAX
    })
}

/// Sets `set` bits in the entry at `addr` (a locked read-modify-write on real
/// hardware; the machine lock makes it atomic here). Writes only on change.
fn set_bits(ram: &Ram, addr: u32, set: u32, out: &mut WalkOutcome) {
    match ram.read_u32(u64::from(addr)) {
        Some(old) if old & set != set => {
            ram.write_u32(u64::from(addr), old | set);
        }
        Some(_) => {}
        None => out.unbacked += 1,
    }
}

/// Walks the page tables for `va`.
///
/// On success the Accessed bits of the PDE (and PTE) are set, and the Dirty
/// bit of the last-level entry too for a write. A faulting walk changes
/// nothing (the SDM lets a CPU set A in a PDE before finding the PTE not
/// present; this model does not). On failure, the error code.
///
/// Order of checks, as the SDM prescribes: PDE present, then (4 MiB page)
/// reserved bits, then PTE present, then rights combined over both levels.
pub(crate) fn walk(
    ram: &Ram,
    regs: Regs,
    va: u32,
    access: Access,
    mode: Mode,
    out: &mut WalkOutcome,
) -> Result<Translation, u32> {
    let code = access.error_bits(regs.smep) | mode.error_bits();
    let write = access == Access::Write;

    let pde_addr = (regs.cr3 & bits::ADDR_4K) | ((va >> 22) << 2);
    let pde = load(ram, pde_addr, out);
    if pde & bits::P == 0 {
        return Err(code);
    }

    if regs.pse && pde & bits::PS != 0 {
        if pde & bits::PDE_4M_RESERVED != 0 {
            return Err(code | err::ERR_PRESENT | err::ERR_RESERVED);
        }
        let rights = Rights {
            user: pde & bits::US != 0,
            writable: pde & bits::RW != 0,
        };
        rights.check(access, mode, &regs).map_err(|c| code | c)?;
        let set = bits::A | if write { bits::D } else { 0 };
        set_bits(ram, pde_addr, set, out);
        return Ok(Translation {
            base: pde & bits::ADDR_4M,
            large: true,
            rights,
            dirty: write || pde & bits::D != 0,
            global: regs.pge && pde & bits::G != 0,
        });
    }

    let pte_addr = (pde & bits::ADDR_4K) | (((va >> 12) & 0x3FF) << 2);
    let pte = load(ram, pte_addr, out);
    if pte & bits::P == 0 {
        return Err(code);
    }
    let rights = Rights {
        user: pde & pte & bits::US != 0,
        writable: pde & pte & bits::RW != 0,
    };
    rights.check(access, mode, &regs).map_err(|c| code | c)?;
    set_bits(ram, pde_addr, bits::A, out);
    set_bits(
        ram,
        pte_addr,
        bits::A | if write { bits::D } else { 0 },
        out,
    );
    Ok(Translation {
        base: pte & bits::ADDR_4K,
        large: false,
        rights,
        dirty: write || pte & bits::D != 0,
        global: regs.pge && pte & bits::G != 0,
    })
}
