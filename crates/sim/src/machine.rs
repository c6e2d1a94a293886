//! The simulated machine: RAM, memory map, control registers, MMU and TLB.

use std::ops::Range;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};

use myos_mm::frames::{MemoryRegion, RegionKind};
use myos_mm::layout::PAGE_SIZE;
use myos_mm::{Frame, Page, PhysAddr, Platform};

use crate::error::{FaultError, SimError};
use crate::fault::{Access, Mode, PageFault};
use crate::mmu::{self, Regs, WalkOutcome};
use crate::ram::Ram;
use crate::tlb::Tlb;

/// Most RAM a machine can have: 4 GiB (32-bit physical addresses, no PAE).
pub const MAX_RAM: u64 = 1 << 32;
/// TLB entries of a machine built without [`SimConfig::tlb_entries`].
pub const DEFAULT_TLB_ENTRIES: usize = 64;
/// End of conventional memory in the PC map of [`SimMachine::new`] (636 KiB;
/// the EBDA starts here).
pub const PC_LOW_RAM_END: u64 = 0x9_F000;
/// End of the PC's VGA/BIOS hole, start of extended memory (1 MiB).
pub const PC_HOLE_END: u64 = 0x10_0000;

const PAGE: u32 = PAGE_SIZE as u32;

/// The pieces of an access of `len` bytes at `va` that lie in one page
/// each, in order: each piece's first address and its byte range within
/// the access (as `rep movsb` walks it, so a fault stops at a piece).
pub(crate) fn page_pieces(va: u32, len: usize) -> impl Iterator<Item = (u32, Range<usize>)> {
    let mut done = 0usize;
    core::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let cur = va.wrapping_add(done as u32);
        let n = ((PAGE - (cur & (PAGE - 1))) as usize).min(len - done);
        let piece = done..done + n;
        done += n;
        Some((cur, piece))
    })
}

/// Counters of MMU and TLB events since the machine was built (or since
/// [`SimMachine::reset_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Translations served by a TLB entry (one per page an access touches).
    pub tlb_hits: u64,
    /// Translations that found no TLB entry.
    pub tlb_misses: u64,
    /// Page-table walks: one per miss, plus one per write through a cached
    /// entry that was not yet dirty (the walk that sets D).
    pub walks: u64,
    /// Page faults raised.
    pub faults: u64,
    /// TLB entries evicted to make room for a new one.
    pub tlb_evictions: u64,
    /// Single-page invalidations (`invlpg`, [`Platform::flush`]).
    pub invlpgs: u64,
    /// Whole-TLB flushes ([`Platform::flush_all`], [`SimMachine::flush_tlb`]).
    pub flush_alls: u64,
    /// CR3 loads ([`Platform::set_root`], [`SimMachine::set_cr3`]).
    pub cr3_loads: u64,
    /// Reads or writes (of data or of paging entries) that hit a physical
    /// address with no RAM behind it: reads saw all ones, writes were dropped.
    pub unbacked_accesses: u64,
}

/// A TLB entry as seen by [`SimMachine::tlb_peek`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbEntryInfo {
    /// The physical address the entry gives for the peeked virtual address.
    pub phys: u32,
    /// Effective U/S: user accesses allowed.
    pub user: bool,
    /// Effective R/W: writes allowed.
    pub writable: bool,
    /// The entry knows the page is dirty (writes need no walk).
    pub dirty: bool,
    /// The entry survives CR3 loads.
    pub global: bool,
    /// The entry maps a 4 MiB page.
    pub large: bool,
}

/// How to build a [`SimMachine`]: RAM size, memory map, TLB size and the
/// initial control-register bits. Start from [`SimMachine::builder`].
#[derive(Clone, Debug)]
pub struct SimConfig {
    ram_bytes: u64,
    map: Option<Vec<MemoryRegion>>,
    tlb_entries: usize,
    wp: bool,
    pse: bool,
    pge: bool,
    smep: bool,
    smap: bool,
    #[cfg(feature = "memfd")]
    shared_ram: bool,
}

impl SimConfig {
    /// A machine with `ram_bytes` of RAM, the PC memory map, a
    /// [`DEFAULT_TLB_ENTRIES`]-entry TLB and CR0.WP, CR4.PSE, CR4.PGE on.
    pub fn new(ram_bytes: u64) -> Self {
        Self {
            ram_bytes,
            map: None,
            tlb_entries: DEFAULT_TLB_ENTRIES,
            wp: true,
            pse: true,
            pge: true,
            smep: false,
            smap: false,
            #[cfg(feature = "memfd")]
            shared_ram: false,
        }
    }
    /// Puts RAM in a memfd (feature `memfd`), so that its frames can also be
    /// mapped elsewhere in the host process: see [`SimMachine::ram_fd`].
    #[cfg(feature = "memfd")]
    pub fn shared_ram(mut self, on: bool) -> Self {
        self.shared_ram = on;
        self
    }
    /// Uses `map` instead of the PC memory map.
    pub fn memory_map(mut self, map: &[MemoryRegion]) -> Self {
        self.map = Some(map.to_vec());
        self
    }
    /// TLB capacity in entries; 0 disables the TLB (every access walks).
    pub fn tlb_entries(mut self, entries: usize) -> Self {
        self.tlb_entries = entries;
        self
    }
    /// Initial CR0.WP (default on): supervisor writes honour R/W.
    pub fn wp(mut self, on: bool) -> Self {
        self.wp = on;
        self
    }
    /// Initial CR4.PSE (default on): PS in a PDE maps a 4 MiB page.
    pub fn pse(mut self, on: bool) -> Self {
        self.pse = on;
        self
    }
    /// Initial CR4.PGE (default on): the G bit makes translations global.
    pub fn pge(mut self, on: bool) -> Self {
        self.pge = on;
        self
    }
    /// Initial CR4.SMEP (default off, as on a CPU without it): supervisor
    /// fetches from user pages fault, fetch faults carry `ERR_FETCH`.
    pub fn smep(mut self, on: bool) -> Self {
        self.smep = on;
        self
    }
    /// Initial CR4.SMAP (default off): supervisor data accesses to user
    /// pages fault unless EFLAGS.AC is set (it starts clear).
    pub fn smap(mut self, on: bool) -> Self {
        self.smap = on;
        self
    }
    /// Builds the machine.
    ///
    /// Fails when the RAM size is zero, above 4 GiB or not a multiple of 4
    /// KiB, when a map region is empty (`start >= end`) or a usable one
    /// reaches past RAM (reserved regions may lie anywhere), or when the host
    /// cannot reserve the RAM.
    pub fn build(self) -> Result<SimMachine, SimError> {
        let bytes = self.ram_bytes;
        if bytes == 0 {
            return Err(SimError::ZeroRam);
        }
        if bytes > MAX_RAM {
            return Err(SimError::RamTooLarge(bytes));
        }
        if bytes & u64::from(PAGE - 1) != 0 {
            return Err(SimError::RamNotPageMultiple(bytes));
        }
        let map = self.map.unwrap_or_else(|| pc_memory_map(bytes));
        for r in &map {
            if r.start >= r.end {
                return Err(SimError::EmptyRegion(*r));
            }
            if r.kind == RegionKind::Usable && r.end > bytes {
                return Err(SimError::UsableOutsideRam(*r));
            }
        }
        #[cfg(feature = "memfd")]
        let ram = if self.shared_ram {
            Ram::new_memfd(bytes)?
        } else {
            Ram::new(bytes)?
        };
        #[cfg(not(feature = "memfd"))]
        let ram = Ram::new(bytes)?;
        let cpu = Cpu {
            regs: Regs {
                cr3: 0,
                wp: self.wp,
                pse: self.pse,
                pge: self.pge,
                smep: self.smep,
                smap: self.smap,
                ac: false,
            },
            tlb: Tlb::new(self.tlb_entries),
            stats: SimStats::default(),
        };
        Ok(SimMachine {
            ram,
            map,
            cpu: Mutex::new(cpu),
        })
    }
}

/// The PC-like memory map [`SimMachine::new`] uses for `ram_bytes` of RAM:
/// usable `0..0x9F000`, reserved `0x9F000..0x100000` (EBDA, VGA memory,
/// option and BIOS ROMs), usable `1 MiB..ram_bytes`. Usable ranges are
/// clipped to RAM (a machine of 1 MiB or less has no extended memory).
pub fn pc_memory_map(ram_bytes: u64) -> Vec<MemoryRegion> {
    let mut map = Vec::with_capacity(3);
    if ram_bytes > 0 {
        map.push(MemoryRegion {
            start: 0,
            end: ram_bytes.min(PC_LOW_RAM_END),
            kind: RegionKind::Usable,
        });
    }
    map.push(MemoryRegion {
        start: PC_LOW_RAM_END,
        end: PC_HOLE_END,
        kind: RegionKind::Reserved,
    });
    if ram_bytes > PC_HOLE_END {
        map.push(MemoryRegion {
            start: PC_HOLE_END,
            end: ram_bytes,
            kind: RegionKind::Usable,
        });
    }
    map
}

/// The CPU state behind the machine lock.
#[derive(Debug)]
struct Cpu {
    regs: Regs,
    tlb: Tlb,
    stats: SimStats,
}

/// A simulated 32-bit x86 machine: RAM, a memory map, CR0.WP/CR3/CR4.PSE/
/// CR4.PGE/CR4.SMEP/CR4.SMAP/EFLAGS.AC, an MMU that walks two-level page
/// tables as an i386 does, and a TLB that keeps stale translations until
/// they are flushed.
///
/// Everything works through `&self` (one lock serializes the CPU state and
/// every access made through the safe API), and the machine is `Send` and
/// `Sync`, so each test owns its machine and tests run in parallel.
///
/// Virtual and physical addresses are raw `u32` register values here, as the
/// CPU sees them (CR2 is a raw register too); linear addresses wrap at 4 GiB.
pub struct SimMachine {
    ram: Ram,
    map: Vec<MemoryRegion>,
    cpu: Mutex<Cpu>,
}

impl std::fmt::Debug for SimMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cpu = self.lock();
        f.debug_struct("SimMachine")
            .field("ram_bytes", &self.ram.len())
            .field("memory_map", &self.map)
            .field("regs", &cpu.regs)
            .field("tlb_entries", &cpu.tlb.len())
            .field("stats", &cpu.stats)
            .finish()
    }
}

impl SimMachine {
    /// A machine with `ram_bytes` of RAM and the PC memory map
    /// ([`pc_memory_map`]); defaults as [`SimConfig::new`].
    ///
    /// RAM is lazily backed: a 4 GiB machine costs only the pages touched.
    pub fn new(ram_bytes: u64) -> Result<Self, SimError> {
        SimConfig::new(ram_bytes).build()
    }

    /// A machine with `ram_bytes` of RAM described by `map`.
    pub fn with_map(ram_bytes: u64, map: &[MemoryRegion]) -> Result<Self, SimError> {
        SimConfig::new(ram_bytes).memory_map(map).build()
    }

    /// A configuration to adjust before [`SimConfig::build`].
    pub fn builder(ram_bytes: u64) -> SimConfig {
        SimConfig::new(ram_bytes)
    }

    fn lock(&self) -> MutexGuard<'_, Cpu> {
        // A panic while holding the lock cannot leave the CPU state torn in
        // a way that matters to a test, so poisoning is ignored.
        self.cpu.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// RAM size in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.ram.len()
    }

    /// The memfd holding RAM, for a machine built with
    /// [`SimConfig::shared_ram`] (else `None`). Physical address `a` is file
    /// offset `a`: mapping the file `MAP_SHARED` at offset `frame * 4096`
    /// gives another host view of that frame, coherent with the machine's.
    #[cfg(feature = "memfd")]
    pub fn ram_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.ram.fd()
    }

    /// The physical memory map (what a boot loader would report).
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.map
    }

    // ----- control registers and TLB control -----

    /// CR3 (the page directory's physical address in bits 31..12).
    pub fn cr3(&self) -> u32 {
        self.lock().regs.cr3
    }

    /// Loads CR3 (`mov cr3`): drops every non-global TLB entry, even when
    /// the value is unchanged.
    pub fn set_cr3(&self, value: u32) {
        let mut cpu = self.lock();
        cpu.regs.cr3 = value;
        cpu.tlb.flush_non_global();
        cpu.stats.cr3_loads += 1;
    }

    /// CR0.WP.
    pub fn wp(&self) -> bool {
        self.lock().regs.wp
    }

    /// Sets CR0.WP. Cached entries keep their rights; WP is applied at each
    /// access, so no flush is needed.
    pub fn set_wp(&self, on: bool) {
        self.lock().regs.wp = on;
    }

    /// CR4.PSE.
    pub fn pse(&self) -> bool {
        self.lock().regs.pse
    }

    /// Sets CR4.PSE; a change flushes the whole TLB, global entries too.
    pub fn set_pse(&self, on: bool) {
        let mut cpu = self.lock();
        if cpu.regs.pse != on {
            cpu.regs.pse = on;
            cpu.tlb.flush_everything();
        }
    }

    /// CR4.PGE.
    pub fn pge(&self) -> bool {
        self.lock().regs.pge
    }

    /// Sets CR4.PGE; a change flushes the whole TLB, global entries too (the
    /// usual way to drop global entries).
    pub fn set_pge(&self, on: bool) {
        let mut cpu = self.lock();
        if cpu.regs.pge != on {
            cpu.regs.pge = on;
            cpu.tlb.flush_everything();
        }
    }

    /// CR4.SMEP.
    pub fn smep(&self) -> bool {
        self.lock().regs.smep
    }

    /// Sets CR4.SMEP (checked at every access, cached entries included).
    pub fn set_smep(&self, on: bool) {
        self.lock().regs.smep = on;
    }

    /// CR4.SMAP.
    pub fn smap(&self) -> bool {
        self.lock().regs.smap
    }

    /// Sets CR4.SMAP (checked at every access, cached entries included).
    pub fn set_smap(&self, on: bool) {
        self.lock().regs.smap = on;
    }

    /// EFLAGS.AC of the running code.
    pub fn ac(&self) -> bool {
        self.lock().regs.ac
    }

    /// Sets EFLAGS.AC: `stac` (true) or `clac` (false). (Real CPUs raise
    /// #UD for both without SMAP; the sim allows them.)
    pub fn set_ac(&self, on: bool) {
        self.lock().regs.ac = on;
    }

    /// `invlpg va`: drops the TLB entry translating `va`, even a global one
    /// (for a 4 MiB page, any address inside it drops the whole page).
    pub fn invlpg(&self, va: u32) {
        let mut cpu = self.lock();
        cpu.tlb.invalidate(va);
        cpu.stats.invlpgs += 1;
    }

    /// Drops every non-global TLB entry (as reloading CR3 with its own value).
    pub fn flush_tlb(&self) {
        let mut cpu = self.lock();
        cpu.tlb.flush_non_global();
        cpu.stats.flush_alls += 1;
    }

    /// Drops every TLB entry, global ones too (as toggling CR4.PGE off and on).
    pub fn flush_tlb_everything(&self) {
        self.lock().tlb.flush_everything();
    }

    /// TLB capacity in entries.
    pub fn tlb_capacity(&self) -> usize {
        self.lock().tlb.capacity()
    }

    /// Number of cached TLB entries.
    pub fn tlb_len(&self) -> usize {
        self.lock().tlb.len()
    }

    /// The TLB entry that would translate `va`, without any side effect.
    pub fn tlb_peek(&self, va: u32) -> Option<TlbEntryInfo> {
        self.lock().tlb.lookup(va).map(|t| TlbEntryInfo {
            phys: t.phys(va),
            user: t.rights.user,
            writable: t.rights.writable,
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

    // ----- physical access (tests build page tables with these) -----

    /// Reads `buf.len()` bytes of RAM at physical address `pa`.
    pub fn read_phys(&self, pa: u64, buf: &mut [u8]) -> Result<(), SimError> {
        let _cpu = self.lock();
        if self.ram.read(pa, buf) {
            Ok(())
        } else {
            Err(SimError::PhysOutOfRange {
                addr: pa,
                len: buf.len(),
            })
        }
    }

    /// Writes `buf` into RAM at physical address `pa`.
    pub fn write_phys(&self, pa: u64, buf: &[u8]) -> Result<(), SimError> {
        let _cpu = self.lock();
        if self.ram.write(pa, buf) {
            Ok(())
        } else {
            Err(SimError::PhysOutOfRange {
                addr: pa,
                len: buf.len(),
            })
        }
    }

    /// Reads a little-endian `u32` (e.g. a paging entry) at `pa`.
    pub fn read_phys_u32(&self, pa: u64) -> Result<u32, SimError> {
        let mut b = [0; 4];
        self.read_phys(pa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a little-endian `u32` (e.g. a paging entry) at `pa`.
    pub fn write_phys_u32(&self, pa: u64, value: u32) -> Result<(), SimError> {
        self.write_phys(pa, &value.to_le_bytes())
    }

    // ----- virtual access through the MMU -----

    /// Translates `va` for one access, exactly as a real access would: the
    /// TLB is consulted and filled, A/D bits are set, faults are counted.
    ///
    /// TLB model, in order:
    /// 1. A hit whose cached rights forbid the access faults (even if the
    ///    page tables have since been relaxed: a "spurious" fault), and, as
    ///    the SDM specifies, the fault drops the entry, so a retry walks.
    /// 2. A hit serves the access without a walk, except a write through an
    ///    entry not yet known dirty: that re-walks (the walk sets D, and may
    ///    fault if the tables changed) and refills the entry.
    /// 3. A miss walks; success fills the TLB (FIFO eviction when full),
    ///    failure caches nothing.
    pub fn translate(&self, va: u32, access: Access, mode: Mode) -> Result<u32, PageFault> {
        let mut cpu = self.lock();
        self.translate_in(&mut cpu, va, access, mode)
    }

    fn translate_in(
        &self,
        cpu: &mut Cpu,
        va: u32,
        access: Access,
        mode: Mode,
    ) -> Result<u32, PageFault> {
        if let Some(tr) = cpu.tlb.lookup(va) {
            cpu.stats.tlb_hits += 1;
            match tr.rights.check(access, mode, &cpu.regs) {
                Err(code) => return Err(Self::raise(cpu, va, code)),
                Ok(()) if access != Access::Write || tr.dirty => return Ok(tr.phys(va)),
                Ok(()) => {} // a write through a clean entry: walk to set D
            }
        } else {
            cpu.stats.tlb_misses += 1;
        }
        cpu.stats.walks += 1;
        let mut out = WalkOutcome::default();
        let walked = mmu::walk(&self.ram, cpu.regs, va, access, mode, &mut out);
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

    /// Records a fault at `va`; a fault drops any TLB entry for `va`.
    fn raise(cpu: &mut Cpu, va: u32, error_code: u32) -> PageFault {
        cpu.stats.faults += 1;
        cpu.tlb.invalidate(va);
        PageFault {
            cr2: va,
            error_code,
        }
    }

    fn load(&self, cpu: &mut Cpu, pa: u32, buf: &mut [u8]) {
        if !self.ram.read(u64::from(pa), buf) {
            buf.fill(0xFF);
            cpu.stats.unbacked_accesses += 1;
        }
    }

    fn store(&self, cpu: &mut Cpu, pa: u32, buf: &[u8]) {
        if !self.ram.write(u64::from(pa), buf) {
            cpu.stats.unbacked_accesses += 1;
        }
    }

    /// Translates the (at most two) pages of a small access before any data
    /// moves, as one instruction does: all of it happens, or none.
    /// Returns `(physical address, length)` per page piece.
    fn translate_small(
        &self,
        cpu: &mut Cpu,
        va: u32,
        len: u32,
        access: Access,
        mode: Mode,
    ) -> Result<[(u32, u32); 2], PageFault> {
        debug_assert!((1..=PAGE).contains(&len));
        let first = len.min(PAGE - (va & (PAGE - 1)));
        let pa0 = self.translate_in(cpu, va, access, mode)?;
        if first == len {
            return Ok([(pa0, len), (0, 0)]);
        }
        let va1 = va.wrapping_add(first);
        let pa1 = self.translate_in(cpu, va1, access, mode)?;
        Ok([(pa0, first), (pa1, len - first)])
    }

    fn read_small<const N: usize>(
        &self,
        va: u32,
        access: Access,
        mode: Mode,
    ) -> Result<[u8; N], PageFault> {
        let mut cpu = self.lock();
        let pieces = self.translate_small(&mut cpu, va, N as u32, access, mode)?;
        let mut out = [0u8; N];
        let mut at = 0usize;
        for (pa, n) in pieces {
            let n = n as usize;
            self.load(&mut cpu, pa, &mut out[at..at + n]);
            at += n;
        }
        Ok(out)
    }

    fn write_small(&self, va: u32, data: &[u8], mode: Mode) -> Result<(), PageFault> {
        let mut cpu = self.lock();
        let pieces = self.translate_small(&mut cpu, va, data.len() as u32, Access::Write, mode)?;
        let mut at = 0usize;
        for (pa, n) in pieces {
            let n = n as usize;
            self.store(&mut cpu, pa, &data[at..at + n]);
            at += n;
        }
        Ok(())
    }

    /// Reads one byte.
    pub fn read_u8(&self, va: u32, mode: Mode) -> Result<u8, PageFault> {
        self.read_small::<1>(va, Access::Read, mode).map(|b| b[0])
    }

    /// Reads a little-endian `u32`. It may be unaligned and cross a page:
    /// both pages are translated first (the first fault is reported, with
    /// CR2 the first byte on the faulting page) and nothing is read unless
    /// both succeed.
    pub fn read_u32(&self, va: u32, mode: Mode) -> Result<u32, PageFault> {
        self.read_small::<4>(va, Access::Read, mode)
            .map(u32::from_le_bytes)
    }

    /// Writes one byte.
    pub fn write_u8(&self, va: u32, value: u8, mode: Mode) -> Result<(), PageFault> {
        self.write_small(va, &[value], mode)
    }

    /// Writes a little-endian `u32`, all or nothing (as [`read_u32`]): when
    /// the second page faults, nothing is written, though the first page's
    /// walk has already set its A and D bits (as on hardware, which may
    /// update them for a store that then faults).
    ///
    /// [`read_u32`]: SimMachine::read_u32
    pub fn write_u32(&self, va: u32, value: u32, mode: Mode) -> Result<(), PageFault> {
        self.write_small(va, &value.to_le_bytes(), mode)
    }

    /// Fetches one instruction byte (needs only read permission, and a
    /// supervisor page for ring 0 under SMEP; a fault carries
    /// [`ERR_FETCH`](crate::err::ERR_FETCH) only under SMEP).
    pub fn fetch(&self, va: u32, mode: Mode) -> Result<u8, PageFault> {
        self.read_small::<1>(va, Access::Fetch, mode).map(|b| b[0])
    }

    /// Reads `buf.len()` bytes at `va`, page by page (like `rep movsb`).
    ///
    /// On a fault, CR2 is the first byte of the faulting page piece (`va`
    /// itself, or the start of a later page) and `buf` holds the bytes of
    /// the pages before it; the rest of `buf` is unchanged.
    pub fn read_bytes(&self, va: u32, buf: &mut [u8], mode: Mode) -> Result<(), PageFault> {
        let mut cpu = self.lock();
        for (cur, piece) in page_pieces(va, buf.len()) {
            let pa = self.translate_in(&mut cpu, cur, Access::Read, mode)?;
            self.load(&mut cpu, pa, &mut buf[piece]);
        }
        Ok(())
    }

    /// Writes `data` at `va`, page by page (like `rep movsb`).
    ///
    /// On a fault, CR2 is the first byte of the faulting page piece and the
    /// bytes for the pages before it **have been written**; nothing at or
    /// after CR2 has. Retrying the whole write after the fault is resolved
    /// is therefore safe.
    pub fn write_bytes(&self, va: u32, data: &[u8], mode: Mode) -> Result<(), PageFault> {
        let mut cpu = self.lock();
        for (cur, piece) in page_pieces(va, data.len()) {
            let pa = self.translate_in(&mut cpu, cur, Access::Write, mode)?;
            self.store(&mut cpu, pa, &data[piece]);
        }
        Ok(())
    }

    /// Runs `op` (an access, or several), and on each page fault calls
    /// `handler` (the kernel's page-fault handler) and retries — as the CPU
    /// restarts the faulting instruction after the handler returns.
    ///
    /// `handler` returns `true` when it resolved the fault (retry) and
    /// `false` when it did not (e.g. it would signal the process), which
    /// ends the run with [`FaultError::Unhandled`]. The handler runs at most
    /// `max_faults` times; a fault after that ends the run with
    /// [`FaultError::TooManyFaults`] (a handler that "resolves" without
    /// fixing anything would otherwise loop forever).
    ///
    /// ```
    /// use myos_sim::{FaultError, Mode, SimMachine};
    /// let m = SimMachine::new(4 << 20).unwrap();
    /// // No page tables (CR3 = 0 points at a zeroed directory): everything faults.
    /// let r = m.run_with_faults(3, |m| m.read_u32(0x1000, Mode::User), |_| true);
    /// assert!(matches!(r, Err(FaultError::TooManyFaults(f)) if f.cr2 == 0x1000));
    /// assert_eq!(m.stats().faults, 4);
    /// ```
    pub fn run_with_faults<T, Op, H>(
        &self,
        max_faults: usize,
        op: Op,
        handler: H,
    ) -> Result<T, FaultError>
    where
        Op: FnMut(&Self) -> Result<T, PageFault>,
        H: FnMut(PageFault) -> bool,
    {
        crate::fault::retry_faults(self, max_faults, op, handler)
    }

    /// Pointer to `frame` in the RAM buffer, for any frame in RAM.
    ///
    /// Panics when the frame lies outside RAM: the core only asks for frames
    /// of the memory map, so that is a core bug.
    fn frame_in_ram(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        let addr = u64::from(frame.start().as_u32());
        assert!(
            self.ram.contains(addr, PAGE_SIZE),
            "core bug: {frame:?} is outside the simulated RAM ({:#x} bytes)",
            self.ram.len()
        );
        // SAFETY: the whole frame lies inside RAM (checked above).
        unsafe { self.ram.ptr(addr) }.cast()
    }
}

// SAFETY: `frame_ptr` returns, for every frame in RAM (direct-mapped or not),
// a pointer into the one RAM allocation, valid for PAGE_SIZE bytes for as
// long as the machine lives, and consecutive frames have consecutive
// pointers (frame n is at offset n * PAGE_SIZE). The data methods work for
// every RAM frame (`zero_frame` is overridden to drop the default's
// direct-map assertion; the others use `frame_ptr`, which reaches all RAM).
// The sim never hands RAM to anyone but its user.
unsafe impl Platform for SimMachine {
    /// Pointer into the RAM buffer. Works for every frame in RAM, also above
    /// the 768 MiB direct map; panics for frames outside RAM (a core bug).
    fn frame_ptr(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        self.frame_in_ram(frame)
    }

    fn root(&self) -> Frame {
        PhysAddr::new(self.cr3()).frame()
    }

    /// Loads CR3 with the frame's address (see [`SimMachine::set_cr3`]).
    unsafe fn set_root(&self, root: Frame) {
        self.set_cr3(root.start().as_u32());
    }

    fn flush(&self, page: Page) {
        self.invlpg(page.start().as_u32());
    }

    fn flush_all(&self) {
        self.flush_tlb();
    }

    fn zero_frame(&self, frame: Frame) {
        let p = self.frame_in_ram(frame);
        // SAFETY: `p` is valid for PAGE_SIZE bytes of writes (inside RAM).
        unsafe { p.as_ptr().write_bytes(0, 1) }
    }
}
