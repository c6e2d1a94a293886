//! The TLB-coherence checker: what every CPU may still use must be what
//! the page tables give now, and must not be memory the allocator took back.
//!
//! For every CPU and every entry of its TLB:
//! - a fresh walk of the CPU's CR3 (from RAM, ignoring every cache, setting
//!   no A/D bit) must map the page to the same frame, with at least the
//!   entry's rights (present, writable, user):
//!   [`Unmapped`](ViolationKind::Unmapped),
//!   [`OtherFrame`](ViolationKind::OtherFrame),
//!   [`MoreRights`](ViolationKind::MoreRights);
//! - the entry's frame must not be free
//!   ([`FreeFrame`](ViolationKind::FreeFrame)), except in the kernel's
//!   direct map, which maps every frame, free or not, by design;
//! - the fresh walk must not go through a free page table
//!   ([`WalkThroughFreeTable`](ViolationKind::WalkThroughFreeTable)).
//!
//! For every CPU and every cached PDE:
//! - the directory entry now must be present, point to the same table and
//!   give at least the cached rights ([`StalePde`](ViolationKind::StalePde),
//!   [`PdeMoreRights`](ViolationKind::PdeMoreRights));
//! - the table it points to must not be free
//!   ([`PdeFreeTable`](ViolationKind::PdeFreeTable)).
//!
//! An entry with *fewer* rights than the tables give is allowed: it faults,
//! and the fault handler's spurious-fault path deals with it.

use std::fmt;

use myos_mm::layout::is_direct_map;
use myos_mm::smp::CpuId;
use myos_mm::{Frame, PhysAddr};

use super::SmpMachine;
use crate::mmu::bits;
use crate::ram::Ram;

/// What a CPU has cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cached {
    /// A TLB entry.
    Tlb {
        /// Physical base of the page (4 MiB-aligned when `large`).
        phys: u32,
        /// User accesses allowed.
        user: bool,
        /// Writes allowed.
        writable: bool,
        /// A 4 MiB page.
        large: bool,
        /// Survives CR3 loads.
        global: bool,
    },
    /// A page-directory entry in the paging-structure cache.
    Pde(u32),
}

/// What a fresh walk of the CPU's CR3 finds now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walked {
    /// The page is mapped.
    Maps {
        /// Physical base of the page.
        phys: u32,
        /// Every level has U/S.
        user: bool,
        /// Every level has R/W.
        writable: bool,
        /// A 4 MiB page.
        large: bool,
        /// The page table the walk went through (none for a 4 MiB page).
        table: Option<u32>,
    },
    /// The page is not mapped (a not-present or reserved-bit entry).
    NotMapped,
    /// The directory entry now (for a cached PDE).
    Pde(u32),
}

/// The kind of incoherence found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// A TLB entry for a page the tables no longer map.
    Unmapped,
    /// A TLB entry for a page the tables now map to another frame.
    OtherFrame,
    /// A TLB entry with rights (write, user) the tables no longer give.
    MoreRights,
    /// A TLB entry pointing at a frame that is free in the allocator.
    FreeFrame,
    /// The fresh walk for a TLB entry goes through a free page table.
    WalkThroughFreeTable,
    /// A cached PDE the directory no longer has (not present, or pointing
    /// to another table or to a 4 MiB page).
    StalePde,
    /// A cached PDE with rights the directory entry no longer gives.
    PdeMoreRights,
    /// A cached PDE pointing to a page table that is free in the allocator.
    PdeFreeTable,
}

/// One incoherence: which CPU, which address, what it caches, what the
/// tables say now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The CPU whose cache is wrong.
    pub cpu: CpuId,
    /// The first address the entry covers (page, or 4 MiB region).
    pub va: u32,
    /// What is wrong.
    pub kind: ViolationKind,
    /// The cached entry.
    pub cached: Cached,
    /// The fresh walk.
    pub walk: Walked,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CPU {} at {:#010x}: {:?}; cached {:?}, tables now {:?}",
            self.cpu.index(),
            self.va,
            self.kind,
            self.cached,
            self.walk
        )
    }
}

fn frame(pa: u32) -> Frame {
    PhysAddr::new(pa).frame()
}

/// A walk that reads RAM only and changes nothing.
fn peek(ram: &Ram, cr3: u32, pse: bool, va: u32) -> Walked {
    let Some(pde) = ram.read_u32(u64::from((cr3 & bits::ADDR_4K) | ((va >> 22) << 2))) else {
        return Walked::NotMapped;
    };
    if pde & bits::P == 0 {
        return Walked::NotMapped;
    }
    if pse && pde & bits::PS != 0 {
        if pde & bits::PDE_4M_RESERVED != 0 {
            return Walked::NotMapped;
        }
        return Walked::Maps {
            phys: pde & bits::ADDR_4M,
            user: pde & bits::US != 0,
            writable: pde & bits::RW != 0,
            large: true,
            table: None,
        };
    }
    let table = pde & bits::ADDR_4K;
    let Some(pte) = ram.read_u32(u64::from(table | (((va >> 12) & 0x3FF) << 2))) else {
        return Walked::NotMapped;
    };
    if pte & bits::P == 0 {
        return Walked::NotMapped;
    }
    Walked::Maps {
        phys: pte & bits::ADDR_4K,
        user: pde & pte & bits::US != 0,
        writable: pde & pte & bits::RW != 0,
        large: false,
        table: Some(table),
    }
}

/// Checks every CPU of `m`; `is_free` says whether a frame is free in the
/// frame allocator (frames it does not manage: `false`). The caller holds
/// the machine lock ([`SmpMachine::check`] takes it).
pub fn check(m: &SmpMachine, is_free: &dyn Fn(Frame) -> bool) -> Vec<Violation> {
    let mut out = Vec::new();
    for n in 0..m.cpu_count() {
        let cpu = CpuId::new(n).expect("below MAX_CPUS");
        let (regs, tlb, pdes) = {
            let st = m.state(n);
            let tlb: Vec<_> = st.tlb.entries().collect();
            let pdes: Vec<_> = st.pde.iter().map(|(&k, &v)| (k, v)).collect();
            (st.regs, tlb, pdes)
        };
        for (va, tr) in tlb {
            let cached = Cached::Tlb {
                phys: tr.base,
                user: tr.rights.user,
                writable: tr.rights.writable,
                large: tr.large,
                global: tr.global,
            };
            let walk = peek(&m.ram, regs.cr3, regs.pse, va);
            let mut report = |kind| {
                out.push(Violation {
                    cpu,
                    va,
                    kind,
                    cached,
                    walk,
                })
            };
            match walk {
                Walked::Maps {
                    phys,
                    user,
                    writable,
                    large,
                    table,
                } => {
                    if phys != tr.base || large != tr.large {
                        report(ViolationKind::OtherFrame);
                    } else if (tr.rights.user && !user) || (tr.rights.writable && !writable) {
                        report(ViolationKind::MoreRights);
                    }
                    if table.is_some_and(|t| is_free(frame(t))) {
                        report(ViolationKind::WalkThroughFreeTable);
                    }
                }
                Walked::NotMapped | Walked::Pde(_) => report(ViolationKind::Unmapped),
            }
            if !is_direct_map(va) {
                let frames = if tr.large { 1024 } else { 1 };
                if (0..frames).any(|i| is_free(frame(tr.base + i * 4096))) {
                    report(ViolationKind::FreeFrame);
                }
            }
        }
        for (pdi, cached_pde) in pdes {
            let va = pdi << 22;
            let now = m
                .ram
                .read_u32(u64::from((regs.cr3 & bits::ADDR_4K) | (pdi << 2)))
                .unwrap_or(u32::MAX);
            let mut report = |kind| {
                out.push(Violation {
                    cpu,
                    va,
                    kind,
                    cached: Cached::Pde(cached_pde),
                    walk: Walked::Pde(now),
                })
            };
            let same_table = now & bits::P != 0
                && !(regs.pse && now & bits::PS != 0)
                && now & bits::ADDR_4K == cached_pde & bits::ADDR_4K;
            if !same_table {
                report(ViolationKind::StalePde);
            } else if (cached_pde & !now) & (bits::RW | bits::US) != 0 {
                report(ViolationKind::PdeMoreRights);
            }
            if is_free(frame(cached_pde & bits::ADDR_4K)) {
                report(ViolationKind::PdeFreeTable);
            }
        }
    }
    out
}
