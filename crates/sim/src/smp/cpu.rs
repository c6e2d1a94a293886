//! One simulated CPU: its control registers, its TLB (the model of
//! `tlb.rs`), its paging-structure cache, and translation through both.
//!
//! The paging-structure cache holds page-directory entries: a present PDE
//! that points to a page table, keyed by its 4 MiB region. A walk for an
//! address in a cached region uses the cached PDE and does not read the
//! directory again. This is the weakest guarantee the SDM (vol. 3A, §4.10.3
//! and §4.10.4) gives that software may rely on:
//!
//! - an entry is cached by every walk that reads a present PDE pointing to
//!   a page table, even one that then faults on the PTE (the SDM lets a CPU
//!   cache paging-structure entries for any walk, speculative ones too);
//! - it is used until invalidated, whatever the directory says meanwhile;
//! - `invlpg va` drops the TLB entry for `va` and the cached PDE of `va`'s
//!   4 MiB region (and no other);
//! - a page fault drops the same two entries for the faulting address;
//! - a CR3 load drops every non-global TLB entry and the whole PDE cache
//!   (global TLB entries survive); toggling CR4.PGE or CR4.PSE drops
//!   everything.
//!
//! The cache has no capacity limit: a smaller one would evict entries and so
//! hide a missing invalidation, never reveal one.
//!
//! The page-table walk itself follows `mmu::walk` (same order of checks,
//! same A/D updates, same rights check), with the PDE read replaced by the
//! cache lookup.

use std::collections::BTreeMap;

use crate::fault::{Access, Mode, PageFault};
use crate::mmu::{bits, Rights, Translation};
use crate::ram::Ram;
use crate::tlb::Tlb;
use crate::SimStats;

/// The control-register bits of one CPU that steer its walks: the
/// one-CPU machine's set (SMEP, SMAP and AC stay off on the N-CPU machine
/// until a test needs them).
pub(crate) type CpuRegs = crate::mmu::Regs;

/// Counters of one CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// TLB, walk and fault counters, as [`SimStats`] counts them for the
    /// one-CPU machine.
    pub mmu: SimStats,
    /// Walks that used a cached PDE instead of reading the directory.
    pub pde_cache_hits: u64,
    /// PDEs put in the paging-structure cache.
    pub pde_cache_fills: u64,
    /// Shootdown requests this CPU served (its "interrupts").
    pub requests_served: u64,
}

/// What a CPU caches and its registers (behind the CPU's lock).
#[derive(Debug)]
pub(crate) struct CpuState {
    pub regs: CpuRegs,
    pub tlb: Tlb,
    /// Cached PDEs by directory index (`va >> 22`).
    pub pde: BTreeMap<u32, u32>,
    pub stats: CpuStats,
}

/// Reads a paging entry; all ones (open bus) outside RAM.
fn load(ram: &Ram, addr: u32, stats: &mut SimStats) -> u32 {
    ram.read_u32(u64::from(addr)).unwrap_or_else(|| {
        stats.unbacked_accesses += 1;
        u32::MAX
    })
}

/// Sets `set` bits in the entry at `addr` (writes only on change).
fn set_bits(ram: &Ram, addr: u32, set: u32, stats: &mut SimStats) {
    match ram.read_u32(u64::from(addr)) {
        Some(old) if old & set != set => {
            ram.write_u32(u64::from(addr), old | set);
        }
        Some(_) => {}
        None => stats.unbacked_accesses += 1,
    }
}

impl CpuState {
    pub(crate) fn new(tlb_entries: usize, wp: bool, pse: bool, pge: bool) -> Self {
        Self {
            regs: CpuRegs {
                cr3: 0,
                wp,
                pse,
                pge,
                smep: false,
                smap: false,
                ac: false,
            },
            tlb: Tlb::new(tlb_entries),
            pde: BTreeMap::new(),
            stats: CpuStats::default(),
        }
    }

    /// `mov cr3`: non-global TLB entries and the whole PDE cache go.
    pub(crate) fn load_cr3(&mut self, value: u32) {
        self.regs.cr3 = value;
        self.flush_non_global();
        self.stats.mmu.cr3_loads += 1;
    }

    /// What a CR3 reload does to the caches.
    pub(crate) fn flush_non_global(&mut self) {
        self.tlb.flush_non_global();
        self.pde.clear();
    }

    /// Everything, global entries too.
    pub(crate) fn flush_everything(&mut self) {
        self.tlb.flush_everything();
        self.pde.clear();
    }

    /// `invlpg va`: the TLB entry and the cached PDE of `va`'s region.
    pub(crate) fn invlpg(&mut self, va: u32) {
        self.tlb.invalidate(va);
        self.pde.remove(&(va >> 22));
        self.stats.mmu.invlpgs += 1;
    }

    /// The walk of `mmu::walk`, through the PDE cache.
    fn walk(&mut self, ram: &Ram, va: u32, access: Access, mode: Mode) -> Result<Translation, u32> {
        let regs = self.regs;
        let code = access.error_bits(regs.smep) | mode.error_bits();
        let write = access == Access::Write;
        let pdi = va >> 22;
        let pde_addr = (regs.cr3 & bits::ADDR_4K) | (pdi << 2);
        let pde = match self.pde.get(&pdi) {
            Some(&cached) => {
                self.stats.pde_cache_hits += 1;
                cached
            }
            None => load(ram, pde_addr, &mut self.stats.mmu),
        };
        if pde & bits::P == 0 {
            return Err(code);
        }
        if regs.pse && pde & bits::PS != 0 {
            if pde & bits::PDE_4M_RESERVED != 0 {
                return Err(code | crate::err::ERR_PRESENT | crate::err::ERR_RESERVED);
            }
            let rights = Rights {
                user: pde & bits::US != 0,
                writable: pde & bits::RW != 0,
            };
            rights.check(access, mode, &regs).map_err(|c| code | c)?;
            let set = bits::A | if write { bits::D } else { 0 };
            set_bits(ram, pde_addr, set, &mut self.stats.mmu);
            return Ok(Translation {
                base: pde & bits::ADDR_4M,
                large: true,
                rights,
                dirty: write || pde & bits::D != 0,
                global: regs.pge && pde & bits::G != 0,
            });
        }
        // A present PDE pointing to a table: cached whatever the PTE says.
        if let std::collections::btree_map::Entry::Vacant(e) = self.pde.entry(pdi) {
            e.insert(pde);
            self.stats.pde_cache_fills += 1;
        }
        let pte_addr = (pde & bits::ADDR_4K) | (((va >> 12) & 0x3FF) << 2);
        let pte = load(ram, pte_addr, &mut self.stats.mmu);
        if pte & bits::P == 0 {
            return Err(code);
        }
        let rights = Rights {
            user: pde & pte & bits::US != 0,
            writable: pde & pte & bits::RW != 0,
        };
        rights.check(access, mode, &regs).map_err(|c| code | c)?;
        set_bits(ram, pde_addr, bits::A, &mut self.stats.mmu);
        let set = bits::A | if write { bits::D } else { 0 };
        set_bits(ram, pte_addr, set, &mut self.stats.mmu);
        Ok(Translation {
            base: pte & bits::ADDR_4K,
            large: false,
            rights,
            dirty: write || pte & bits::D != 0,
            global: regs.pge && pte & bits::G != 0,
        })
    }

    /// Translates `va` for one access as `SimMachine::translate` does (TLB
    /// first; a hit whose rights forbid the access faults and drops the
    /// entry; a write through a clean entry walks again; a miss walks and
    /// fills).
    pub(crate) fn translate(
        &mut self,
        ram: &Ram,
        va: u32,
        access: Access,
        mode: Mode,
    ) -> Result<u32, PageFault> {
        if let Some(tr) = self.tlb.lookup(va) {
            self.stats.mmu.tlb_hits += 1;
            match tr.rights.check(access, mode, &self.regs) {
                Err(code) => return Err(self.raise(va, code)),
                Ok(()) if access != Access::Write || tr.dirty => return Ok(tr.phys(va)),
                Ok(()) => {}
            }
        } else {
            self.stats.mmu.tlb_misses += 1;
        }
        self.stats.mmu.walks += 1;
        match self.walk(ram, va, access, mode) {
            Ok(tr) => {
                if self.tlb.insert(va, tr) {
                    self.stats.mmu.tlb_evictions += 1;
                }
                Ok(tr.phys(va))
            }
            Err(code) => Err(self.raise(va, code)),
        }
    }

    /// Records a fault at `va`. A page fault drops the TLB entry and the
    /// cached PDE that would translate `va` (SDM §4.10.4.1).
    fn raise(&mut self, va: u32, error_code: u32) -> PageFault {
        self.stats.mmu.faults += 1;
        self.tlb.invalidate(va);
        self.pde.remove(&(va >> 22));
        PageFault {
            cr2: va,
            error_code,
        }
    }

    /// Translates the (at most two) pages of an access of `len` bytes
    /// (1..=4096) before any data moves: `(physical address, length)` each.
    pub(crate) fn translate_small(
        &mut self,
        ram: &Ram,
        va: u32,
        len: u32,
        access: Access,
        mode: Mode,
    ) -> Result<[(u32, u32); 2], PageFault> {
        const PAGE: u32 = 4096;
        let first = len.min(PAGE - (va & (PAGE - 1)));
        let pa0 = self.translate(ram, va, access, mode)?;
        if first == len {
            return Ok([(pa0, len), (0, 0)]);
        }
        let va1 = va.wrapping_add(first);
        let pa1 = self.translate(ram, va1, access, mode)?;
        Ok([(pa0, first), (pa1, len - first)])
    }
}
