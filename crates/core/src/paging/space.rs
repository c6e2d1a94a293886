//! Address spaces: a page directory, its page tables, and the operations on them.
//!
//! Every address space shares the kernel half (`KERNEL_BASE..4 GiB`): its
//! page-directory entries are copied from the kernel space when the space is
//! created, and they point at the same page tables, which are allocated once
//! (the direct map uses 4 MiB pages, the heap and kmap windows have their
//! tables preallocated) and never copied or freed. The user half has its own
//! page tables, allocated on demand and freed again when unmapping leaves
//! them empty.
//!
//! Ownership rule: a present entry that points at a frame managed by the
//! frame allocator holds one reference to it. [`AddressSpace::map`] consumes
//! an [`OwnedFrame`] (and gives it back inside a [`MapError`] when it fails);
//! [`AddressSpace::unmap`] hands the entry's reference back as an
//! `OwnedFrame`; [`AddressSpace::destroy`] drops the references of whatever
//! is still mapped. The space keeps its own directory and table frames as
//! plain numbers and turns them back into owned references, through
//! `entry_reference`, only when it frees them.

use core::ptr::NonNull;

use super::batch::TlbBatch;
use super::cpus::SpaceCpus;
use super::entry::{PageTableEntry, PteFlags};
pub use super::outcome::{Flush, MapError};
use super::table::{entry_reference, new_table, release_owned, release_table, Table};
use crate::addr::{Frame, Page, PhysAddr, VirtAddr};
use crate::error::MmError;
use crate::frames::{FrameSource, OwnedFrame};
use crate::layout::{
    is_direct_map, DIRECT_MAP_START, DIRECT_ZONE_END, ENTRIES, HEAP_START, KERNEL_BASE,
    KERNEL_PD_INDEX, KMAP_END, TABLE_SPAN,
};
use crate::platform::Platform;
use crate::smp::CpuSet;

/// Flags of a user-half page-directory entry: the page-table entries decide.
const USER_PDE: PteFlags = PteFlags::PRESENT
    .union(PteFlags::WRITABLE)
    .union(PteFlags::USER);
/// Flags of a kernel-half page-directory entry.
const KERNEL_PDE: PteFlags = PteFlags::PRESENT.union(PteFlags::WRITABLE);
/// Flags of a direct-map entry: a global, writable 4 MiB kernel page.
const DIRECT_PDE: PteFlags = KERNEL_PDE.union(PteFlags::HUGE).union(PteFlags::GLOBAL);
/// First and one-past-last directory index whose kernel tables are preallocated.
const KERNEL_TABLES: (usize, usize) = ((HEAP_START >> 22) as usize, (KMAP_END >> 22) as usize);

/// What [`AddressSpace::table_for`] does for a user address whose page table
/// does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MissingTable {
    /// Creates the table.
    Create,
    /// Reports that there is none (`Ok(None)`).
    Absent,
}

/// What [`AddressSpace::set_mapping`] does with a page that is mapped already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mapped {
    /// Fails with `AlreadyMapped` ([`AddressSpace::map`]).
    Refuse,
    /// Replaces the mapping ([`AddressSpace::remap`]).
    Replace,
}

/// One address space: a page directory and the user page tables it owns.
///
/// Not `Clone`: the space owns its frames, and [`destroy`](Self::destroy)
/// gives them back.
#[derive(Debug)]
pub struct AddressSpace {
    /// The page directory (what CR3 holds while this space runs).
    dir: Frame,
    /// The metadata frame: `u16` counters of live entries per user page
    /// table (a hint that is confirmed by a scan before a table is freed,
    /// so entries written behind the core's back, through the C API's
    /// `page_t *`, are safe), and in its last word the CPUs that may cache
    /// this space's non-global translations ([`SpaceCpus`]): each CPU that
    /// loads it ([`activate`](Self::activate)) until it loads another space
    /// ([`switch_from`](Self::switch_from), [`deactivate`](Self::deactivate)).
    counts: Frame,
    /// True for the kernel space, which owns the shared kernel tables.
    kernel: bool,
}

impl AddressSpace {
    /// Creates the kernel address space: the direct map of physical memory
    /// up to `ram_end` (at most 768 MiB, with global 4 MiB pages) and the
    /// preallocated, shared page tables of the heap and kmap windows.
    pub fn new_kernel<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        platform: &P,
        frames: &mut F,
        ram_end: PhysAddr,
    ) -> Result<Self, MmError> {
        let space = Self::alloc_directory(platform, frames, true)?;
        let dir = Table::of(platform, space.dir);
        let direct_end = (ram_end.as_u32() as u64)
            .min(DIRECT_ZONE_END)
            .div_ceil(TABLE_SPAN as u64) as usize;
        for i in 0..direct_end {
            let phys = Frame::from_start(PhysAddr::new((i as u32) * TABLE_SPAN))?;
            dir.set(KERNEL_PD_INDEX + i, PageTableEntry::new(phys, DIRECT_PDE));
        }
        for i in KERNEL_TABLES.0..KERNEL_TABLES.1 {
            match new_table(platform, frames) {
                Ok(t) => dir.set(i, PageTableEntry::new(t, KERNEL_PDE)),
                Err(e) => {
                    // SAFETY: the space was never shared with another address space.
                    unsafe { space.destroy_kernel(platform, frames) };
                    return Err(e);
                }
            }
        }
        Ok(space)
    }

    /// Creates a user address space whose kernel half is `kernel`'s.
    pub fn new_user<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        platform: &P,
        frames: &mut F,
        kernel: &AddressSpace,
    ) -> Result<Self, MmError> {
        let space = Self::alloc_directory(platform, frames, false)?;
        let (src, dst) = (
            Table::of(platform, kernel.dir),
            Table::of(platform, space.dir),
        );
        for i in KERNEL_PD_INDEX..ENTRIES {
            dst.set(i, src.get(i));
        }
        Ok(space)
    }

    fn alloc_directory<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        platform: &P,
        frames: &mut F,
        kernel: bool,
    ) -> Result<Self, MmError> {
        let dir = new_table(platform, frames)?;
        match new_table(platform, frames) {
            Ok(counts) => Ok(AddressSpace {
                dir,
                counts,
                kernel,
            }),
            Err(e) => {
                release_owned(frames, dir);
                Err(e)
            }
        }
    }

    /// The page directory's frame (the value CR3 holds while this space runs).
    pub fn directory(&self) -> Frame {
        self.dir
    }

    /// True for the kernel space.
    pub fn is_kernel(&self) -> bool {
        self.kernel
    }

    /// True when this space is loaded in CR3.
    pub fn is_active<P: Platform + ?Sized>(&self, platform: &P) -> bool {
        platform.root() == self.dir
    }

    /// The handle on this space's CPU set that a scheduler keeps beside
    /// the space, to switch CPUs in and out without the space's lock.
    pub fn cpus(&self) -> SpaceCpus {
        SpaceCpus::new(self.dir, self.counts)
    }

    /// Loads this space into CR3 (`switch_page_directory`) on the calling
    /// CPU, which first joins the space's CPU set (see
    /// [`SpaceCpus::activate`] for why in that order).
    ///
    /// The CPU stays in the set of the space it loaded before: call
    /// [`switch_from`](Self::switch_from) to leave it in the same step, or
    /// [`deactivate`](Self::deactivate) on that space afterwards.
    pub fn activate<P: Platform + ?Sized>(&self, platform: &P) {
        // SAFETY: `&self` keeps the space alive; its kernel half is the
        // kernel space's, which maps the code the caller runs.
        unsafe { self.cpus().activate(platform) }
    }

    /// The context switch from `prev` to this space on the calling CPU:
    /// joins this space's set, loads CR3 (which drops every non-global
    /// entry of `prev` from this CPU's TLB), then leaves `prev`'s set. A
    /// shootdown of `prev` that read the set before the removal targets
    /// this CPU needlessly, which is harmless; after it, this CPU holds
    /// nothing of `prev`. Nothing happens to the sets when `prev` is this
    /// space (CR3 is still reloaded).
    pub fn switch_from<P: Platform + ?Sized>(&self, prev: &AddressSpace, platform: &P) {
        self.activate(platform);
        if prev.dir != self.dir {
            prev.deactivate(platform);
        }
    }

    /// The calling CPU leaves this space's set. Call it only once the CPU
    /// has loaded another directory (or when it goes offline): the CR3 load
    /// is what drops this space's translations from its TLB.
    pub fn deactivate<P: Platform + ?Sized>(&self, platform: &P) {
        // SAFETY: `&self` keeps the space alive.
        unsafe { self.cpus().leave(platform) }
    }

    /// The CPUs that may cache this space's non-global translations now.
    pub fn cpu_set<P: Platform + ?Sized>(&self, platform: &P) -> CpuSet {
        // SAFETY: `&self` keeps the space alive.
        unsafe { self.cpus().load(platform) }
    }

    /// The entry mapping `page`, if its page table exists. Direct-map pages
    /// (4 MiB entries) have no page-table entry and give `None`.
    pub fn entry<P: Platform + ?Sized>(&self, platform: &P, page: Page) -> Option<PageTableEntry> {
        let va = page.start();
        let pde = Table::of(platform, self.dir).get(va.pd_index());
        if !pde.is_present() || pde.flags().contains(PteFlags::HUGE) {
            return None;
        }
        Some(Table::of(platform, pde.frame()).get(va.pt_index()))
    }

    /// The physical address `va` translates to (`get_physical_address`), or
    /// `None` when it is not mapped. Follows 4 MiB entries too.
    pub fn translate<P: Platform + ?Sized>(&self, platform: &P, va: VirtAddr) -> Option<PhysAddr> {
        let pde = Table::of(platform, self.dir).get(va.pd_index());
        if !pde.is_present() {
            return None;
        }
        if pde.flags().contains(PteFlags::HUGE) {
            return Some(PhysAddr::new(
                (pde.raw() & !(TABLE_SPAN - 1)) | (va.as_u32() & (TABLE_SPAN - 1)),
            ));
        }
        let pte = Table::of(platform, pde.frame()).get(va.pt_index());
        pte.is_present()
            .then(|| PhysAddr::new(pte.frame().start().as_u32() | va.page_offset()))
    }

    /// A pointer to the entry mapping `va` (`get_page`). With `make`, a
    /// missing user page table is created; without it, `Ok(None)` is
    /// returned when there is no table. Direct-map addresses give
    /// `FixedMapping`, the unused top 4 MiB gives `OutOfRange`. (`make`
    /// stays the spec's flag, a `bool`, as the C API, the fuzzer and the
    /// tests pass it; inside, it becomes a `MissingTable`.)
    ///
    /// The pointer stays valid until the table is freed: by `unmap` of its
    /// last entry, or `destroy`.
    pub fn get_page<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        platform: &P,
        frames: &mut F,
        va: VirtAddr,
        make: bool,
    ) -> Result<Option<NonNull<PageTableEntry>>, MmError> {
        let missing = if make {
            MissingTable::Create
        } else {
            MissingTable::Absent
        };
        match self.table_for(platform, frames, va, missing)? {
            Some(t) => Ok(Some(t.entry_ptr(va.pt_index()))),
            None => Ok(None),
        }
    }

    fn table_for<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        platform: &P,
        frames: &mut F,
        va: VirtAddr,
        missing: MissingTable,
    ) -> Result<Option<Table>, MmError> {
        if is_direct_map(va.as_u32()) {
            return Err(MmError::FixedMapping);
        }
        let dir = Table::of(platform, self.dir);
        let pde = dir.get(va.pd_index());
        if pde.is_present() {
            return Ok(Some(Table::of(platform, pde.frame())));
        }
        if va.as_u32() >= KERNEL_BASE {
            // Kernel tables are preallocated; what has none is not mappable.
            return Err(MmError::OutOfRange);
        }
        if missing == MissingTable::Absent {
            return Ok(None);
        }
        let t = new_table(platform, frames)?;
        dir.set(va.pd_index(), PageTableEntry::new(t, USER_PDE));
        self.set_count(platform, va.pd_index(), 0);
        Ok(Some(Table::of(platform, t)))
    }

    /// Maps `page` to `frame` with `flags` (`PRESENT` is implied), creating
    /// the page table if needed. The entry takes over the reference `frame`
    /// is. Fails with `AlreadyMapped` if the page is mapped, `FixedMapping`
    /// in the direct map, `InvalidArgument` for flags that don't belong in a
    /// page-table entry (`HUGE`); the error carries `frame` back.
    pub fn map<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        platform: &P,
        frames: &mut F,
        page: Page,
        frame: OwnedFrame,
        flags: PteFlags,
    ) -> Result<Flush, MapError> {
        let (old, flush) =
            self.set_mapping(platform, frames, page, frame, flags, Mapped::Refuse)?;
        debug_assert!(old.is_none());
        Ok(flush)
    }

    /// Like [`map`](Self::map), but replaces an existing mapping and returns
    /// the reference the old entry held, now the caller's.
    pub fn remap<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        platform: &P,
        frames: &mut F,
        page: Page,
        frame: OwnedFrame,
        flags: PteFlags,
    ) -> Result<(Option<OwnedFrame>, Flush), MapError> {
        self.set_mapping(platform, frames, page, frame, flags, Mapped::Replace)
    }

    fn set_mapping<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        platform: &P,
        frames: &mut F,
        page: Page,
        frame: OwnedFrame,
        flags: PteFlags,
        mapped: Mapped,
    ) -> Result<(Option<OwnedFrame>, Flush), MapError> {
        if flags.contains(PteFlags::HUGE) {
            return Err(MapError {
                error: MmError::InvalidArgument,
                frame,
            });
        }
        let va = page.start();
        let table = match self.table_for(platform, frames, va, MissingTable::Create) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Err(MapError {
                    error: MmError::OutOfRange,
                    frame,
                })
            }
            Err(error) => return Err(MapError { error, frame }),
        };
        let old = table.get(va.pt_index());
        if old.is_present() && mapped == Mapped::Refuse {
            return Err(MapError {
                error: MmError::AlreadyMapped,
                frame,
            });
        }
        // The entry now holds the reference `frame` was.
        table.set(
            va.pt_index(),
            PageTableEntry::new(frame.into_raw(), flags | PteFlags::PRESENT),
        );
        if old.is_unused() && va.as_u32() < KERNEL_BASE {
            let n = self.count(platform, va.pd_index());
            self.set_count(platform, va.pd_index(), n.saturating_add(1));
        }
        // SAFETY: the old entry was present and has just been overwritten:
        // its reference is no longer claimed by any entry.
        let old = old
            .is_present()
            .then(|| unsafe { entry_reference(old.frame()) });
        Ok((
            old,
            Flush {
                page,
                dir: self.dir,
            },
        ))
    }

    /// Changes the flags of a mapped page, keeping its frame.
    pub fn protect<P: Platform + ?Sized>(
        &mut self,
        platform: &P,
        page: Page,
        flags: PteFlags,
    ) -> Result<Flush, MmError> {
        if flags.contains(PteFlags::HUGE) {
            return Err(MmError::InvalidArgument);
        }
        let table = self.present_table(platform, page)?;
        let i = page.start().pt_index();
        let e = table.get(i);
        if !e.is_present() {
            return Err(MmError::NotMapped);
        }
        table.set(i, e.with_flags(flags | PteFlags::PRESENT));
        Ok(Flush {
            page,
            dir: self.dir,
        })
    }

    /// Unmaps `page` and returns the reference its entry held, now the
    /// caller's. A user page table left empty is freed, after the page was
    /// flushed here (if the space is loaded) and shot down on the other CPUs
    /// of the space's set; the returned [`Flush`] is then redundant but
    /// harmless. To unmap several pages with one shootdown, use
    /// [`unmap_batched`](Self::unmap_batched).
    ///
    /// On several CPUs, the caller must not release the returned frame
    /// before the other CPUs dropped the translation: a one-CPU caller may
    /// release it after the flush; an SMP caller uses `unmap_batched`.
    pub fn unmap<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        platform: &P,
        frames: &mut F,
        page: Page,
    ) -> Result<(OwnedFrame, Flush), MmError> {
        let (frame, table) = self.unmap_entry(platform, page)?;
        if let Some(table) = table {
            let mut batch = TlbBatch::new();
            batch.add_page(page);
            // SAFETY: the table's directory entry was just cleared: the
            // space no longer claims the reference `new_table` gave it.
            batch.defer(unsafe { entry_reference(table) });
            let _ = batch.finish(platform, self, frames);
        }
        Ok((
            frame,
            Flush {
                page,
                dir: self.dir,
            },
        ))
    }

    /// Unmaps `page` into `batch`: the page is recorded for the batch's
    /// flush and shootdown, and the reference the entry held, and the page
    /// table when the unmap left it empty, are put aside in the batch,
    /// released by [`TlbBatch::finish`] after the shootdown.
    pub fn unmap_batched<P: Platform + ?Sized>(
        &mut self,
        platform: &P,
        page: Page,
        batch: &mut TlbBatch,
    ) -> Result<(), MmError> {
        let (frame, table) = self.unmap_entry(platform, page)?;
        batch.add_page(page);
        batch.defer(frame);
        if let Some(table) = table {
            // SAFETY: as in `unmap`.
            batch.defer(unsafe { entry_reference(table) });
        }
        Ok(())
    }

    /// Clears the entry of `page`; returns its reference and, when a user
    /// page table became empty, that table (its directory entry cleared,
    /// the frame not yet freed).
    fn unmap_entry<P: Platform + ?Sized>(
        &mut self,
        platform: &P,
        page: Page,
    ) -> Result<(OwnedFrame, Option<Frame>), MmError> {
        let va = page.start();
        let table = self.present_table(platform, page)?;
        let e = table.get(va.pt_index());
        if !e.is_present() {
            return Err(MmError::NotMapped);
        }
        table.set(va.pt_index(), PageTableEntry::EMPTY);
        let freed = if va.as_u32() < KERNEL_BASE {
            self.forget_entry(platform, va.pd_index(), table)
        } else {
            None
        };
        // SAFETY: the entry was present and has just been cleared.
        Ok((unsafe { entry_reference(e.frame()) }, freed))
    }

    fn present_table<P: Platform + ?Sized>(
        &self,
        platform: &P,
        page: Page,
    ) -> Result<Table, MmError> {
        let va = page.start();
        if is_direct_map(va.as_u32()) {
            return Err(MmError::FixedMapping);
        }
        let pde = Table::of(platform, self.dir).get(va.pd_index());
        if !pde.is_present() {
            return Err(MmError::NotMapped);
        }
        Ok(Table::of(platform, pde.frame()))
    }

    /// Notes that one entry of user table `pdi` was cleared; when a scan
    /// confirms the table is empty, clears its directory entry and returns
    /// the table, for the caller to free after the TLB shootdown (another
    /// CPU's paging-structure cache may still point at it).
    fn forget_entry<P: Platform + ?Sized>(
        &mut self,
        platform: &P,
        pdi: usize,
        table: Table,
    ) -> Option<Frame> {
        let n = self.count(platform, pdi).saturating_sub(1);
        if n > 0 {
            self.set_count(platform, pdi, n);
            return None;
        }
        match table.live_entries() {
            0 => {
                let dir = Table::of(platform, self.dir);
                let t = dir.get(pdi).frame();
                dir.set(pdi, PageTableEntry::EMPTY);
                Some(t)
            }
            live => {
                self.set_count(platform, pdi, live);
                None
            }
        }
    }

    fn count<P: Platform + ?Sized>(&self, platform: &P, pdi: usize) -> u16 {
        let mut b = [0u8; 2];
        platform.read_frame(self.counts, pdi * 2, &mut b);
        u16::from_ne_bytes(b)
    }

    fn set_count<P: Platform + ?Sized>(&self, platform: &P, pdi: usize, n: u16) {
        platform.write_frame(self.counts, pdi * 2, &n.to_ne_bytes());
    }

    /// Frees the address space: drops the reference of every frame still
    /// mapped in the user half, frees the user page tables and the directory.
    /// The shared kernel tables are never freed here (even for the kernel
    /// space, whose tables other spaces share); see
    /// [`destroy_kernel`](Self::destroy_kernel).
    ///
    /// The space must not be loaded in CR3.
    pub fn destroy<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        self,
        platform: &P,
        frames: &mut F,
    ) {
        debug_assert!(
            !self.is_active(platform),
            "destroying the loaded address space"
        );
        let dir = Table::of(platform, self.dir);
        for pdi in 0..KERNEL_PD_INDEX {
            let pde = dir.get(pdi);
            if pde.is_present() {
                release_table(platform, frames, pde.frame());
            }
        }
        release_owned(frames, self.counts);
        release_owned(frames, self.dir);
    }

    /// Frees the kernel space including the shared kernel tables and the
    /// frames mapped in them.
    ///
    /// # Safety
    ///
    /// No other address space may exist (they share the kernel tables), and
    /// the space must not be loaded in CR3.
    pub unsafe fn destroy_kernel<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        self,
        platform: &P,
        frames: &mut F,
    ) {
        let dir = Table::of(platform, self.dir);
        for pdi in KERNEL_TABLES.0..KERNEL_TABLES.1 {
            let pde = dir.get(pdi);
            if pde.is_present() {
                release_table(platform, frames, pde.frame());
            }
        }
        self.destroy(platform, frames);
    }

    /// Calls `f` for every present 4 KiB mapping in the user half, in address
    /// order (used by fork and by tests).
    pub fn for_each_user_mapping<P: Platform + ?Sized>(
        &self,
        platform: &P,
        mut f: impl FnMut(Page, PageTableEntry),
    ) {
        let dir = Table::of(platform, self.dir);
        for pdi in 0..KERNEL_PD_INDEX {
            let pde = dir.get(pdi);
            if !pde.is_present() {
                continue;
            }
            let t = Table::of(platform, pde.frame());
            for pti in 0..ENTRIES {
                let e = t.get(pti);
                if e.is_present() {
                    let page = VirtAddr::new(((pdi << 22) | (pti << 12)) as u32).page();
                    f(page, e);
                }
            }
        }
    }

    /// Number of user page tables this space owns (for accounting tests).
    pub fn user_table_count<P: Platform + ?Sized>(&self, platform: &P) -> usize {
        let dir = Table::of(platform, self.dir);
        (0..KERNEL_PD_INDEX)
            .filter(|&i| dir.get(i).is_present())
            .count()
    }
}

const _: () = assert!(DIRECT_MAP_START == KERNEL_BASE);
