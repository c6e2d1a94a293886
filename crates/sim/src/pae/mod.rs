//! A PAE-mode machine: 64-bit paging entries, a 4-entry PDPT whose entries
//! are loaded into registers with CR3, 2 MiB pages, XD/NX under EFER.NXE,
//! and physical addresses up to MAXPHYADDR bits (36 by default), so frames
//! above 4 GiB are reachable (SDM 3A §4.4).
//!
//! [`PaeMachine`] is a CPU of its own next to the classic
//! [`SimMachine`](crate::SimMachine): the same TLB model and the same rights
//! rules (U/S and R/W ANDed over PDE and PTE, CR0.WP, SMEP, SMAP with
//! EFLAGS.AC), its own entry decoding ([`bits`]) and its own
//! TLB entries (64-bit frames, XD). It implements [`myos_mm::Platform`]
//! for the core's [`Pae`](myos_mm::paging::Pae) paging mode (`platform.rs`).
//!
//! Physical memory is a list of RAM banks, each lazily backed by the host
//! (untouched pages cost nothing), so a machine can have, say, 16 MiB at 0
//! and 16 MiB at 4 GiB; a single bank larger than 4 GiB works too where the
//! host lets a process reserve that much address space.
//!
//! ```
//! use myos_sim::pae::{bits, PaeMachine};
//! use myos_sim::Mode;
//!
//! let m = PaeMachine::builder()
//!     .ram(0, 16 << 20)
//!     .ram(1 << 32, 16 << 20)
//!     .build()
//!     .unwrap();
//! let (pdpt, pd, pt, page) = (0x1000u64, 0x2000u64, 0x3000u64, (1u64 << 32) + 0x5000);
//! m.write_phys_u64(pdpt, pd | bits::P).unwrap();
//! m.write_phys_u64(pd, pt | bits::P | bits::RW | bits::US).unwrap();
//! m.write_phys_u64(pt + 8, page | bits::P | bits::RW | bits::US).unwrap();
//! m.set_cr3(pdpt as u32).unwrap();
//! m.write_u32(0x1010, 0xDEAD_BEEF, Mode::User).unwrap();
//! assert_eq!(m.read_phys_u32(page + 0x10).unwrap(), 0xDEAD_BEEF);
//! ```

mod platform;
mod tlb;
mod walk;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use walk::{bits, PdpteError};

use crate::error::SimError;
use crate::fault::{Access, Mode, PageFault};
use crate::machine::{page_pieces, SimStats, DEFAULT_TLB_ENTRIES};
use crate::ram::Ram;
use tlb::PaeTlb;
use walk::{PaeRegs, Pdptes, WalkOutcome};

/// MAXPHYADDR of a machine built without [`PaeConfig::maxphyaddr`].
pub const DEFAULT_MAXPHYADDR: u8 = 36;
/// The smallest MAXPHYADDR a [`PaeMachine`] accepts.
pub const MIN_MAXPHYADDR: u8 = 32;
/// The largest MAXPHYADDR a [`PaeMachine`] accepts (the architectural limit).
pub const MAX_MAXPHYADDR: u8 = 52;

const PAGE: u64 = 4096;

/// Physical memory: RAM banks at fixed physical bases, sorted, disjoint.
/// Addresses in no bank are unbacked (reads see all ones, writes vanish).
pub(crate) struct PhysMem {
    banks: Vec<(u64, Ram)>,
}

impl PhysMem {
    /// The bank holding all of `addr..addr+len`, and the offset in it.
    pub(crate) fn find(&self, addr: u64, len: usize) -> Option<(&Ram, u64)> {
        self.banks
            .iter()
            .filter(|(base, _)| *base <= addr)
            .map(|(base, ram)| (ram, addr - base))
            .find(|(ram, off)| ram.contains(*off, len))
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        self.find(addr, buf.len())
            .is_some_and(|(ram, off)| ram.read(off, buf))
    }

    fn write(&self, addr: u64, buf: &[u8]) -> bool {
        self.find(addr, buf.len())
            .is_some_and(|(ram, off)| ram.write(off, buf))
    }

    pub(crate) fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b).then(|| u64::from_le_bytes(b))
    }

    pub(crate) fn write_u64(&self, addr: u64, value: u64) -> bool {
        self.write(addr, &value.to_le_bytes())
    }
}

/// Why building a [`PaeMachine`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaeConfigError {
    /// MAXPHYADDR outside [`MIN_MAXPHYADDR`]`..=`[`MAX_MAXPHYADDR`].
    BadMaxPhyAddr(u8),
    /// No RAM bank.
    NoRam,
    /// A bank is empty, or its base or size is not a multiple of 4 KiB.
    BadBank {
        /// Physical base.
        base: u64,
        /// Size in bytes.
        bytes: u64,
    },
    /// A bank reaches past `2^MAXPHYADDR`.
    BankAboveMaxPhyAddr {
        /// Physical base.
        base: u64,
        /// Size in bytes.
        bytes: u64,
    },
    /// A bank overlaps another.
    BankOverlap {
        /// Physical base.
        base: u64,
        /// Size in bytes.
        bytes: u64,
    },
    /// The host could not reserve a bank.
    Host(SimError),
}

impl core::fmt::Display for PaeConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMaxPhyAddr(m) => write!(
                f,
                "MAXPHYADDR {m} is outside {MIN_MAXPHYADDR}..={MAX_MAXPHYADDR}"
            ),
            Self::NoRam => write!(f, "no RAM bank"),
            Self::BadBank { base, bytes } => write!(
                f,
                "RAM bank of {bytes:#x} bytes at {base:#x} is empty or not 4 KiB-aligned"
            ),
            Self::BankAboveMaxPhyAddr { base, bytes } => write!(
                f,
                "RAM bank of {bytes:#x} bytes at {base:#x} reaches past MAXPHYADDR"
            ),
            Self::BankOverlap { base, bytes } => write!(
                f,
                "RAM bank of {bytes:#x} bytes at {base:#x} overlaps another"
            ),
            Self::Host(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PaeConfigError {}

/// How to build a [`PaeMachine`]: RAM banks, MAXPHYADDR, TLB size and the
/// initial control bits. Defaults: MAXPHYADDR 36, a
/// [`DEFAULT_TLB_ENTRIES`]-entry TLB, CR0.WP and CR4.PGE on, EFER.NXE,
/// SMEP and SMAP off.
#[derive(Clone, Debug)]
pub struct PaeConfig {
    banks: Vec<(u64, u64)>,
    maxphyaddr: u8,
    tlb_entries: usize,
    wp: bool,
    pge: bool,
    nxe: bool,
    smep: bool,
    smap: bool,
    #[cfg(feature = "memfd")]
    shared_ram: bool,
}

impl Default for PaeConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl PaeConfig {
    /// The defaults, with no RAM yet.
    pub fn new() -> Self {
        Self {
            banks: Vec::new(),
            maxphyaddr: DEFAULT_MAXPHYADDR,
            tlb_entries: DEFAULT_TLB_ENTRIES,
            wp: true,
            pge: true,
            nxe: false,
            smep: false,
            smap: false,
            #[cfg(feature = "memfd")]
            shared_ram: false,
        }
    }
    /// Puts each RAM bank in a memfd of its own (feature `memfd`), so that
    /// its frames can also be mapped elsewhere in the host process: see
    /// [`PaeMachine::ram_fd`].
    #[cfg(feature = "memfd")]
    pub fn shared_ram(mut self, on: bool) -> Self {
        self.shared_ram = on;
        self
    }
    /// Adds a RAM bank of `bytes` at physical address `base`.
    pub fn ram(mut self, base: u64, bytes: u64) -> Self {
        self.banks.push((base, bytes));
        self
    }
    /// MAXPHYADDR: physical-address width in bits (entry bits from it up to
    /// 62 are reserved).
    pub fn maxphyaddr(mut self, bits: u8) -> Self {
        self.maxphyaddr = bits;
        self
    }
    /// TLB capacity; 0 disables the TLB.
    pub fn tlb_entries(mut self, entries: usize) -> Self {
        self.tlb_entries = entries;
        self
    }
    /// Initial CR0.WP.
    pub fn wp(mut self, on: bool) -> Self {
        self.wp = on;
        self
    }
    /// Initial CR4.PGE.
    pub fn pge(mut self, on: bool) -> Self {
        self.pge = on;
        self
    }
    /// Initial IA32_EFER.NXE.
    pub fn nxe(mut self, on: bool) -> Self {
        self.nxe = on;
        self
    }
    /// Initial CR4.SMEP.
    pub fn smep(mut self, on: bool) -> Self {
        self.smep = on;
        self
    }
    /// Initial CR4.SMAP.
    pub fn smap(mut self, on: bool) -> Self {
        self.smap = on;
        self
    }

    /// Builds the machine: CR3 = 0 and the PDPTE registers all zero (not
    /// present) until the first [`PaeMachine::set_cr3`].
    pub fn build(self) -> Result<PaeMachine, PaeConfigError> {
        let m = self.maxphyaddr;
        if !(MIN_MAXPHYADDR..=MAX_MAXPHYADDR).contains(&m) {
            return Err(PaeConfigError::BadMaxPhyAddr(m));
        }
        if self.banks.is_empty() {
            return Err(PaeConfigError::NoRam);
        }
        let mut sorted = self.banks.clone();
        sorted.sort_unstable();
        let mut banks = Vec::with_capacity(sorted.len());
        let mut prev_end = 0u64;
        for (i, &(base, bytes)) in sorted.iter().enumerate() {
            if bytes == 0 || base % PAGE != 0 || bytes % PAGE != 0 {
                return Err(PaeConfigError::BadBank { base, bytes });
            }
            let end = base.checked_add(bytes);
            if end.is_none_or(|e| e > 1u64 << m) {
                return Err(PaeConfigError::BankAboveMaxPhyAddr { base, bytes });
            }
            if i > 0 && base < prev_end {
                return Err(PaeConfigError::BankOverlap { base, bytes });
            }
            prev_end = base + bytes;
            #[cfg(feature = "memfd")]
            let ram = if self.shared_ram {
                Ram::new_memfd(bytes)
            } else {
                Ram::new(bytes)
            };
            #[cfg(not(feature = "memfd"))]
            let ram = Ram::new(bytes);
            banks.push((base, ram.map_err(PaeConfigError::Host)?));
        }
        Ok(PaeMachine {
            mem: PhysMem { banks },
            cpu: Mutex::new(PaeCpu {
                regs: PaeRegs {
                    cr3: 0,
                    wp: self.wp,
                    pge: self.pge,
                    smep: self.smep,
                    smap: self.smap,
                    ac: false,
                    nxe: self.nxe,
                    maxphyaddr: m,
                },
                pdptes: [0; 4],
                tlb: PaeTlb::new(self.tlb_entries),
                stats: SimStats::default(),
            }),
        })
    }
}

/// A PAE TLB entry as [`PaeMachine::tlb_peek`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaeTlbEntryInfo {
    /// The physical address the entry gives for the peeked address.
    pub phys: u64,
    /// Effective U/S.
    pub user: bool,
    /// Effective R/W.
    pub writable: bool,
    /// XD was set at some level (with EFER.NXE on).
    pub execute_disable: bool,
    /// The entry knows the page is dirty.
    pub dirty: bool,
    /// The entry survives CR3 loads.
    pub global: bool,
    /// A 2 MiB page.
    pub large: bool,
}

#[derive(Debug)]
struct PaeCpu {
    regs: PaeRegs,
    pdptes: Pdptes,
    tlb: PaeTlb,
    stats: SimStats,
}

/// A simulated 32-bit x86 CPU with PAE paging on (see the [module](self)).
///
/// Linear addresses are 32 bits; physical addresses are `u64`, below
/// `2^MAXPHYADDR`. Everything works through `&self` behind one lock.
pub struct PaeMachine {
    mem: PhysMem,
    cpu: Mutex<PaeCpu>,
}

impl core::fmt::Debug for PaeMachine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let cpu = self.lock();
        let banks: Vec<_> = self.mem.banks.iter().map(|(b, r)| (*b, r.len())).collect();
        f.debug_struct("PaeMachine")
            .field("ram_banks", &banks)
            .field("regs", &cpu.regs)
            .field("pdptes", &cpu.pdptes)
            .field("tlb_entries", &cpu.tlb.len())
            .finish()
    }
}

impl PaeMachine {
    /// A configuration to fill in (at least one [`PaeConfig::ram`] bank).
    pub fn builder() -> PaeConfig {
        PaeConfig::new()
    }

    /// The configuration of a PC with RAM on both sides of 4 GiB, as a PAE
    /// kernel sees it: `low` bytes at 0, `high` bytes at 4 GiB (no bank
    /// when 0), NX enabled. More options can follow before `build()`.
    pub fn split_ram(low: u64, high: u64) -> PaeConfig {
        let cfg = PaeConfig::new().ram(0, low).nxe(true);
        if high > 0 {
            cfg.ram(1 << 32, high)
        } else {
            cfg
        }
    }

    fn lock(&self) -> MutexGuard<'_, PaeCpu> {
        self.cpu.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The memfd of the RAM bank holding the frame at physical `pa`, and
    /// the frame's offset in it, for a machine built with
    /// [`PaeConfig::shared_ram`] (else `None`; `None` too outside RAM).
    /// Mapping the file `MAP_SHARED` at that offset gives another host view
    /// of the frame, coherent with the machine's.
    #[cfg(feature = "memfd")]
    pub fn ram_fd(&self, pa: u64) -> Option<(std::os::fd::BorrowedFd<'_>, u64)> {
        let (ram, off) = self.mem.find(pa, 1)?;
        Some((ram.fd()?, off))
    }

    /// MAXPHYADDR in bits.
    pub fn maxphyaddr(&self) -> u8 {
        self.lock().regs.maxphyaddr
    }

    // ----- physical access -----

    /// Reads RAM at physical `pa`.
    pub fn read_phys(&self, pa: u64, buf: &mut [u8]) -> Result<(), SimError> {
        let _cpu = self.lock();
        if self.mem.read(pa, buf) {
            Ok(())
        } else {
            Err(SimError::PhysOutOfRange {
                addr: pa,
                len: buf.len(),
            })
        }
    }

    /// Writes RAM at physical `pa`.
    pub fn write_phys(&self, pa: u64, buf: &[u8]) -> Result<(), SimError> {
        let _cpu = self.lock();
        if self.mem.write(pa, buf) {
            Ok(())
        } else {
            Err(SimError::PhysOutOfRange {
                addr: pa,
                len: buf.len(),
            })
        }
    }

    /// Reads a little-endian `u64` (a paging entry) at physical `pa`.
    pub fn read_phys_u64(&self, pa: u64) -> Result<u64, SimError> {
        let mut b = [0u8; 8];
        self.read_phys(pa, &mut b).map(|()| u64::from_le_bytes(b))
    }

    /// Writes a little-endian `u64` (a paging entry) at physical `pa`.
    pub fn write_phys_u64(&self, pa: u64, value: u64) -> Result<(), SimError> {
        self.write_phys(pa, &value.to_le_bytes())
    }

    /// Reads a little-endian `u32` at physical `pa`.
    pub fn read_phys_u32(&self, pa: u64) -> Result<u32, SimError> {
        let mut b = [0u8; 4];
        self.read_phys(pa, &mut b).map(|()| u32::from_le_bytes(b))
    }

    // ----- control registers -----

    /// CR3 (the PDPT's physical address in bits 31..5).
    pub fn cr3(&self) -> u32 {
        self.lock().regs.cr3
    }

    /// Loads CR3 under PAE: reads the four PDPTEs at `value[31:5]` into the
    /// PDPTE registers, then drops every non-global TLB entry. A present
    /// PDPTE with a reserved bit set is a #GP: the error is returned and
    /// CR3, the PDPTE registers and the TLB are unchanged.
    pub fn set_cr3(&self, value: u32) -> Result<(), PdpteError> {
        let mut cpu = self.lock();
        let mut out = WalkOutcome::default();
        let loaded = walk::load_pdptes(&self.mem, value, cpu.regs.maxphyaddr, &mut out);
        cpu.stats.unbacked_accesses += out.unbacked;
        cpu.pdptes = loaded?;
        cpu.regs.cr3 = value;
        cpu.tlb.flush_non_global();
        cpu.stats.cr3_loads += 1;
        Ok(())
    }

    /// Reloads the PDPTE registers from the PDPT at the current CR3, as a
    /// `mov` to CR0 or CR4 that changes paging bits does, without touching
    /// the TLB. On error (#GP) the registers are unchanged.
    pub fn load_pdptes(&self) -> Result<(), PdpteError> {
        let mut cpu = self.lock();
        let mut out = WalkOutcome::default();
        let loaded = walk::load_pdptes(&self.mem, cpu.regs.cr3, cpu.regs.maxphyaddr, &mut out);
        cpu.stats.unbacked_accesses += out.unbacked;
        cpu.pdptes = loaded?;
        Ok(())
    }

    /// The PDPTE registers (what walks use; memory may have changed since).
    pub fn pdptes(&self) -> [u64; 4] {
        self.lock().pdptes
    }

    /// CR0.WP.
    pub fn wp(&self) -> bool {
        self.lock().regs.wp
    }

    /// Sets CR0.WP (applied at each access; no flush).
    pub fn set_wp(&self, on: bool) {
        self.lock().regs.wp = on;
    }

    /// CR4.PGE.
    pub fn pge(&self) -> bool {
        self.lock().regs.pge
    }

    /// Sets CR4.PGE; a change flushes the whole TLB.
    pub fn set_pge(&self, on: bool) {
        let mut cpu = self.lock();
        if cpu.regs.pge != on {
            cpu.regs.pge = on;
            cpu.tlb.flush_everything();
        }
    }

    /// IA32_EFER.NXE.
    pub fn nxe(&self) -> bool {
        self.lock().regs.nxe
    }

    /// Sets IA32_EFER.NXE. A change flushes the whole TLB in the sim (the
    /// meaning of bit 63 changes; real CPUs need not flush, software that
    /// toggles NXE with live mappings flushes itself).
    pub fn set_nxe(&self, on: bool) {
        let mut cpu = self.lock();
        if cpu.regs.nxe != on {
            cpu.regs.nxe = on;
            cpu.tlb.flush_everything();
        }
    }

    /// CR4.SMEP.
    pub fn smep(&self) -> bool {
        self.lock().regs.smep
    }

    /// Sets CR4.SMEP (checked at each access).
    pub fn set_smep(&self, on: bool) {
        self.lock().regs.smep = on;
    }

    /// CR4.SMAP.
    pub fn smap(&self) -> bool {
        self.lock().regs.smap
    }

    /// Sets CR4.SMAP (checked at each access).
    pub fn set_smap(&self, on: bool) {
        self.lock().regs.smap = on;
    }

    /// EFLAGS.AC.
    pub fn ac(&self) -> bool {
        self.lock().regs.ac
    }

    /// Sets EFLAGS.AC (`stac`/`clac`).
    pub fn set_ac(&self, on: bool) {
        self.lock().regs.ac = on;
    }

    // ----- TLB -----

    /// `invlpg va` (for a 2 MiB page, any address inside drops it).
    pub fn invlpg(&self, va: u32) {
        let mut cpu = self.lock();
        cpu.tlb.invalidate(va);
        cpu.stats.invlpgs += 1;
    }

    /// Drops every non-global TLB entry (without reloading the PDPTEs).
    pub fn flush_tlb(&self) {
        let mut cpu = self.lock();
        cpu.tlb.flush_non_global();
        cpu.stats.flush_alls += 1;
    }

    /// Drops every TLB entry, global ones too.
    pub fn flush_tlb_everything(&self) {
        self.lock().tlb.flush_everything();
    }

    /// Number of cached TLB entries.
    pub fn tlb_len(&self) -> usize {
        self.lock().tlb.len()
    }

    /// The TLB entry that would translate `va`, without side effects.
    pub fn tlb_peek(&self, va: u32) -> Option<PaeTlbEntryInfo> {
        self.lock().tlb.lookup(va).map(|t| PaeTlbEntryInfo {
            phys: t.phys(va),
            user: t.rights.user,
            writable: t.rights.writable,
            execute_disable: t.xd,
            dirty: t.dirty,
            global: t.global,
            large: t.large,
        })
    }

    /// Counters since the machine was built or last reset.
    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// Zeroes every counter.
    pub fn reset_stats(&self) {
        self.lock().stats = SimStats::default();
    }

    // ----- virtual access -----

    /// Translates `va` for one access, with the classic machine's TLB
    /// model: a hit whose rights (or XD) forbid the access faults and drops
    /// the entry; a write through a not-yet-dirty entry walks again; a miss
    /// walks and a success fills the TLB.
    pub fn translate(&self, va: u32, access: Access, mode: Mode) -> Result<u64, PageFault> {
        let mut cpu = self.lock();
        self.translate_in(&mut cpu, va, access, mode)
    }

    fn translate_in(
        &self,
        cpu: &mut PaeCpu,
        va: u32,
        access: Access,
        mode: Mode,
    ) -> Result<u64, PageFault> {
        if let Some(tr) = cpu.tlb.lookup(va) {
            cpu.stats.tlb_hits += 1;
            match cpu.regs.check(tr.rights, tr.xd, access, mode) {
                Err(code) => return Err(Self::raise(cpu, va, code)),
                Ok(()) if access != Access::Write || tr.dirty => return Ok(tr.phys(va)),
                Ok(()) => {}
            }
        } else {
            cpu.stats.tlb_misses += 1;
        }
        cpu.stats.walks += 1;
        let mut out = WalkOutcome::default();
        let walked = walk::walk(
            &self.mem,
            &cpu.regs,
            &cpu.pdptes,
            va,
            access,
            mode,
            &mut out,
        );
        cpu.stats.unbacked_accesses += out.unbacked;
        match walked {
            Ok(tr) => {
                if cpu.tlb.insert(va, tr) {
                    cpu.stats.tlb_evictions += 1;
                }
                Ok(tr.phys(va))
            }
            Err(code) => Err(Self::raise(cpu, va, code)),
        }
    }

    fn raise(cpu: &mut PaeCpu, va: u32, error_code: u32) -> PageFault {
        cpu.stats.faults += 1;
        cpu.tlb.invalidate(va);
        PageFault::new(va, error_code)
    }

    /// Translates the (at most two) pages of a small access first: all of
    /// it happens or none.
    fn translate_small(
        &self,
        cpu: &mut PaeCpu,
        va: u32,
        len: u32,
        access: Access,
        mode: Mode,
    ) -> Result<[(u64, usize); 2], PageFault> {
        let page = PAGE as u32;
        let first = len.min(page - (va & (page - 1)));
        let pa0 = self.translate_in(cpu, va, access, mode)?;
        if first == len {
            return Ok([(pa0, len as usize), (0, 0)]);
        }
        let pa1 = self.translate_in(cpu, va.wrapping_add(first), access, mode)?;
        Ok([(pa0, first as usize), (pa1, (len - first) as usize)])
    }

    fn read_small<const N: usize>(
        &self,
        va: u32,
        access: Access,
        mode: Mode,
    ) -> Result<[u8; N], PageFault> {
        let mut cpu = self.lock();
        let pieces = self.translate_small(&mut cpu, va, N as u32, access, mode)?;
        let mut buf = [0u8; N];
        let mut at = 0;
        for (pa, n) in pieces {
            if !self.mem.read(pa, &mut buf[at..at + n]) {
                buf[at..at + n].fill(0xFF);
                cpu.stats.unbacked_accesses += 1;
            }
            at += n;
        }
        Ok(buf)
    }

    fn write_small(&self, va: u32, data: &[u8], mode: Mode) -> Result<(), PageFault> {
        let mut cpu = self.lock();
        let pieces = self.translate_small(&mut cpu, va, data.len() as u32, Access::Write, mode)?;
        let mut at = 0;
        for (pa, n) in pieces {
            if !self.mem.write(pa, &data[at..at + n]) {
                cpu.stats.unbacked_accesses += 1;
            }
            at += n;
        }
        Ok(())
    }

    /// Reads one byte.
    pub fn read_u8(&self, va: u32, mode: Mode) -> Result<u8, PageFault> {
        self.read_small::<1>(va, Access::Read, mode).map(|b| b[0])
    }

    /// Reads a little-endian `u32` (may cross a page; all or nothing).
    pub fn read_u32(&self, va: u32, mode: Mode) -> Result<u32, PageFault> {
        self.read_small::<4>(va, Access::Read, mode)
            .map(u32::from_le_bytes)
    }

    /// Writes one byte.
    pub fn write_u8(&self, va: u32, value: u8, mode: Mode) -> Result<(), PageFault> {
        self.write_small(va, &[value], mode)
    }

    /// Writes a little-endian `u32` (may cross a page; all or nothing).
    pub fn write_u32(&self, va: u32, value: u32, mode: Mode) -> Result<(), PageFault> {
        self.write_small(va, &value.to_le_bytes(), mode)
    }

    /// Reads `buf.len()` bytes at `va`, page by page (like `rep movsb`): on a
    /// fault, CR2 is the first byte of the faulting page piece and `buf`
    /// holds the bytes of the pages before it.
    pub fn read_bytes(&self, va: u32, buf: &mut [u8], mode: Mode) -> Result<(), PageFault> {
        let mut cpu = self.lock();
        for (cur, piece) in page_pieces(va, buf.len()) {
            let pa = self.translate_in(&mut cpu, cur, Access::Read, mode)?;
            if !self.mem.read(pa, &mut buf[piece.clone()]) {
                buf[piece].fill(0xFF);
                cpu.stats.unbacked_accesses += 1;
            }
        }
        Ok(())
    }

    /// Writes `data` at `va`, page by page (like `rep movsb`): on a fault,
    /// the bytes for the pages before CR2 have been written, nothing at or
    /// after it (retrying the whole write is safe).
    pub fn write_bytes(&self, va: u32, data: &[u8], mode: Mode) -> Result<(), PageFault> {
        let mut cpu = self.lock();
        for (cur, piece) in page_pieces(va, data.len()) {
            let pa = self.translate_in(&mut cpu, cur, Access::Write, mode)?;
            if !self.mem.write(pa, &data[piece]) {
                cpu.stats.unbacked_accesses += 1;
            }
        }
        Ok(())
    }

    /// Fetches one instruction byte: needs read rights, no XD at any level
    /// while EFER.NXE is on, and a supervisor page for ring 0 under SMEP. A
    /// fault carries [`ERR_FETCH`](crate::err::ERR_FETCH) under SMEP or NXE.
    pub fn fetch(&self, va: u32, mode: Mode) -> Result<u8, PageFault> {
        self.read_small::<1>(va, Access::Fetch, mode).map(|b| b[0])
    }
}
