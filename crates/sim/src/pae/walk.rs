//! The PAE walker, written from the Intel SDM (vol. 3A, §4.4 "PAE paging",
//! §4.6 "Access rights", §4.7 "Page-fault exceptions", §4.8 "Accessed and
//! dirty flags"), independently of the core and of the classic walker's
//! entry decoding (only the rights check, [`Rights::check`], is shared).
//!
//! A 32-bit linear address splits into a 2-bit PDPT index (bits 31..30), a
//! 9-bit directory index (29..21), a 9-bit table index (20..12) and a 12-bit
//! offset. The four PDPTEs are not read by the walk: they sit in registers
//! loaded when CR3 is ([`load_pdptes`]). Entries are 64 bits wide; physical
//! addresses reach MAXPHYADDR bits.

use crate::fault::{err, Access, Mode};
use crate::mmu::{Regs, Rights};

use super::PhysMem;

/// Bits of PAE paging entries, named as in the SDM (tables 4-8 to 4-11).
pub mod bits {
    /// P: the entry is present.
    pub const P: u64 = 1 << 0;
    /// R/W: writes allowed (PDE, PTE; reserved in a PDPTE).
    pub const RW: u64 = 1 << 1;
    /// U/S: user-mode accesses allowed (PDE, PTE; reserved in a PDPTE).
    pub const US: u64 = 1 << 2;
    /// PWT: write-through (not modelled).
    pub const PWT: u64 = 1 << 3;
    /// PCD: cache disable (not modelled).
    pub const PCD: u64 = 1 << 4;
    /// A: accessed (PDE, PTE; reserved in a PDPTE).
    pub const A: u64 = 1 << 5;
    /// D: dirty, in a last-level entry (PTE or 2 MiB PDE).
    pub const D: u64 = 1 << 6;
    /// PS in a PDE: maps a 2 MiB page (whatever CR4.PSE says). In a PTE
    /// this bit is PAT, which the sim ignores.
    pub const PS: u64 = 1 << 7;
    /// G: global translation (PTE or 2 MiB PDE, with CR4.PGE).
    pub const G: u64 = 1 << 8;
    /// PAT of a 2 MiB PDE (ignored by the sim; not an address bit).
    pub const PAT_2M: u64 = 1 << 12;
    /// XD (execute-disable, NX): with EFER.NXE, fetches fault; without it,
    /// a reserved bit. Always reserved in a PDPTE.
    pub const XD: u64 = 1 << 63;
    /// Reserved low bits of a PDPTE: 2..1 and 8..5.
    pub const PDPTE_RESERVED_LOW: u64 = 0x1E6;
    /// Reserved low bits of a 2 MiB PDE: 20..13.
    pub const PDE_2M_RESERVED_LOW: u64 = 0x001F_E000;
    /// Offset within a 4 KiB page.
    pub const OFFSET_4K: u64 = 0xFFF;
    /// Offset within a 2 MiB page.
    pub const OFFSET_2M: u64 = 0x1F_FFFF;

    const _: () = assert!(PDPTE_RESERVED_LOW == (RW | US | A | D | PS | G));
    const _: () = assert!(PDE_2M_RESERVED_LOW == ((1 << 21) - 1) & !((1 << 13) - 1));

    /// Bits `maxphyaddr-1 .. 0`.
    pub const fn phys_mask(maxphyaddr: u8) -> u64 {
        (1u64 << maxphyaddr) - 1
    }
    /// Address bits of a 4 KiB-aligned entry: `maxphyaddr-1 .. 12`.
    pub const fn addr_4k(maxphyaddr: u8) -> u64 {
        phys_mask(maxphyaddr) & !OFFSET_4K
    }
    /// Address bits of a 2 MiB page in a PS PDE: `maxphyaddr-1 .. 21`.
    pub const fn addr_2m(maxphyaddr: u8) -> u64 {
        phys_mask(maxphyaddr) & !OFFSET_2M
    }
    /// Reserved high bits of a PDE or PTE: `62 .. maxphyaddr`, and XD when
    /// EFER.NXE is off.
    pub const fn reserved_high(maxphyaddr: u8, nxe: bool) -> u64 {
        let above = !phys_mask(maxphyaddr) & !XD;
        if nxe {
            above
        } else {
            above | XD
        }
    }
    /// Every reserved bit of a present PDPTE: `63 .. maxphyaddr` (XD
    /// included) and [`PDPTE_RESERVED_LOW`].
    pub const fn pdpte_reserved(maxphyaddr: u8) -> u64 {
        !phys_mask(maxphyaddr) | PDPTE_RESERVED_LOW
    }
}

/// The control bits that steer a PAE walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PaeRegs {
    /// CR3: the PDPT's physical address in bits 31..5.
    pub cr3: u32,
    /// CR0.WP.
    pub wp: bool,
    /// CR4.PGE.
    pub pge: bool,
    /// CR4.SMEP.
    pub smep: bool,
    /// CR4.SMAP.
    pub smap: bool,
    /// EFLAGS.AC.
    pub ac: bool,
    /// IA32_EFER.NXE: XD is honoured (else reserved).
    pub nxe: bool,
    /// The machine's MAXPHYADDR (32..=52).
    pub maxphyaddr: u8,
}

impl PaeRegs {
    /// The classic register view the shared rights check reads (WP, SMEP,
    /// SMAP, AC; the other fields do not matter to it).
    fn rights_regs(&self) -> Regs {
        Regs {
            cr3: 0,
            wp: self.wp,
            pse: false,
            pge: self.pge,
            smep: self.smep,
            smap: self.smap,
            ac: self.ac,
        }
    }

    /// The error-code bits of the access itself: W, U/S, and I/D for a
    /// fetch under SMEP or under EFER.NXE (SDM 3A §4.7).
    pub(crate) fn access_bits(&self, access: Access, mode: Mode) -> u32 {
        access.error_bits(self.smep || self.nxe) | mode.error_bits()
    }

    /// Checks `access` against `rights` and the XD of the translation: on a
    /// violation, the whole protection-fault error code.
    pub(crate) fn check(
        &self,
        rights: Rights,
        xd: bool,
        access: Access,
        mode: Mode,
    ) -> Result<(), u32> {
        let code = self.access_bits(access, mode);
        rights
            .check(access, mode, &self.rights_regs())
            .map_err(|c| c | code)?;
        if access == Access::Fetch && self.nxe && xd {
            return Err(err::ERR_PRESENT | code);
        }
        Ok(())
    }
}

/// The PDPTE registers: the four entries as loaded with CR3.
pub(crate) type Pdptes = [u64; 4];

/// A present PDPTE with a reserved bit set: loading CR3 (or enabling PAE)
/// raises #GP and changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PdpteError {
    /// Which PDPTE (0..=3).
    pub index: usize,
    /// The entry as read from memory.
    pub entry: u64,
}

impl core::fmt::Display for PdpteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "#GP: PDPTE {} = {:#018x} is present with reserved bits set",
            self.index, self.entry
        )
    }
}

impl std::error::Error for PdpteError {}

/// Reads the four PDPTEs at `CR3[31:5]` as `mov cr3` does under PAE; a
/// present entry with a reserved bit set is an error (#GP). Unbacked
/// addresses read as all ones (so a PDPT outside RAM gives #GP).
pub(crate) fn load_pdptes(
    mem: &PhysMem,
    cr3: u32,
    maxphyaddr: u8,
    out: &mut WalkOutcome,
) -> Result<Pdptes, PdpteError> {
    let base = u64::from(cr3 & !0x1F);
    let mut regs = [0u64; 4];
    for (index, r) in regs.iter_mut().enumerate() {
        let entry = load(mem, base + 8 * index as u64, out);
        if entry & bits::P != 0 && entry & bits::pdpte_reserved(maxphyaddr) != 0 {
            return Err(PdpteError { index, entry });
        }
        *r = entry;
    }
    Ok(regs)
}

/// A successful PAE translation, as the PAE TLB caches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PaeTranslation {
    /// Physical base of the page (4 KiB- or, when `large`, 2 MiB-aligned);
    /// up to MAXPHYADDR bits.
    pub base: u64,
    /// A 2 MiB page.
    pub large: bool,
    /// Effective U/S and R/W (AND of PDE and PTE).
    pub rights: Rights,
    /// XD set at some level while EFER.NXE was on.
    pub xd: bool,
    /// The last-level entry's D bit was set once the walk finished.
    pub dirty: bool,
    /// The last-level entry had G set and CR4.PGE was on.
    pub global: bool,
}

impl PaeTranslation {
    /// The physical address of `va` under this translation.
    pub(crate) fn phys(&self, va: u32) -> u64 {
        let off = if self.large {
            bits::OFFSET_2M
        } else {
            bits::OFFSET_4K
        };
        self.base | (u64::from(va) & off)
    }
}

/// Reads and writes of a walk that hit no RAM.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WalkOutcome {
    /// Entry reads or A/D updates that hit no RAM.
    pub unbacked: u64,
}

/// Reads a 64-bit entry; all ones (open bus) outside RAM.
fn load(mem: &PhysMem, addr: u64, out: &mut WalkOutcome) -> u64 {
    mem.read_u64(addr).unwrap_or_else(|| {
        out.unbacked += 1;
        u64::MAX
    })
}

/// Sets `set` in the entry at `addr` (atomic under the machine lock); writes
/// only on change.
fn set_bits(mem: &PhysMem, addr: u64, set: u64, out: &mut WalkOutcome) {
    match mem.read_u64(addr) {
        Some(old) if old & set != set => {
            mem.write_u64(addr, old | set);
        }
        Some(_) => {}
        None => out.unbacked += 1,
    }
}

/// Walks PAE tables for `va` from the PDPTE registers.
///
/// Order of checks: PDPTE present; PDE present, then its reserved bits;
/// for a 2 MiB page the rights; else PTE present, its reserved bits, then
/// rights and XD combined over PDE and PTE. A not-present entry faults with
/// P = 0 whatever its other bits; a reserved bit faults with P | RSVD.
///
/// On success A is set in the PDE (and PTE), D in the last-level entry for
/// a write; a faulting walk changes nothing (as the classic walker).
pub(crate) fn walk(
    mem: &PhysMem,
    regs: &PaeRegs,
    pdptes: &Pdptes,
    va: u32,
    access: Access,
    mode: Mode,
    out: &mut WalkOutcome,
) -> Result<PaeTranslation, u32> {
    let code = regs.access_bits(access, mode);
    let rsvd = code | err::ERR_PRESENT | err::ERR_RESERVED;
    let write = access == Access::Write;
    let m = regs.maxphyaddr;
    let reserved = bits::reserved_high(m, regs.nxe);
    let va64 = u64::from(va);

    let pdpte = pdptes[(va >> 30) as usize];
    if pdpte & bits::P == 0 {
        return Err(code);
    }

    let pde_addr = (pdpte & bits::addr_4k(m)) | (((va64 >> 21) & 0x1FF) << 3);
    let pde = load(mem, pde_addr, out);
    if pde & bits::P == 0 {
        return Err(code);
    }
    if pde & reserved != 0 {
        return Err(rsvd);
    }

    if pde & bits::PS != 0 {
        if pde & bits::PDE_2M_RESERVED_LOW != 0 {
            return Err(rsvd);
        }
        let rights = Rights {
            user: pde & bits::US != 0,
            writable: pde & bits::RW != 0,
        };
        let xd = regs.nxe && pde & bits::XD != 0;
        regs.check(rights, xd, access, mode)?;
        set_bits(
            mem,
            pde_addr,
            bits::A | if write { bits::D } else { 0 },
            out,
        );
        return Ok(PaeTranslation {
            base: pde & bits::addr_2m(m),
            large: true,
            rights,
            xd,
            dirty: write || pde & bits::D != 0,
            global: regs.pge && pde & bits::G != 0,
        });
    }

    let pte_addr = (pde & bits::addr_4k(m)) | (((va64 >> 12) & 0x1FF) << 3);
    let pte = load(mem, pte_addr, out);
    if pte & bits::P == 0 {
        return Err(code);
    }
    if pte & reserved != 0 {
        return Err(rsvd);
    }
    let rights = Rights {
        user: pde & pte & bits::US != 0,
        writable: pde & pte & bits::RW != 0,
    };
    let xd = regs.nxe && (pde | pte) & bits::XD != 0;
    regs.check(rights, xd, access, mode)?;
    set_bits(mem, pde_addr, bits::A, out);
    set_bits(
        mem,
        pte_addr,
        bits::A | if write { bits::D } else { 0 },
        out,
    );
    Ok(PaeTranslation {
        base: pte & bits::addr_4k(m),
        large: false,
        rights,
        xd,
        dirty: write || pte & bits::D != 0,
        global: regs.pge && pte & bits::G != 0,
    })
}
