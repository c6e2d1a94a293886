//! Address spaces: a page directory, its page tables, and the operations on them.
//!
//! Every address space shares the kernel half (`KERNEL_BASE..4 GiB`). In
//! classic mode its page-directory entries are copied from the kernel space
//! when the space is created; in PAE mode its PDPTE\[3\] points at the
//! kernel space's kernel page directory (see [`super::mode`]). Either way
//! they reach the same page tables, which are allocated once (the direct
//! map uses large pages, the heap and kmap windows have their tables
//! preallocated) and never copied or freed. The user half has its own page
//! tables, allocated on demand and freed again when unmapping leaves them
//! empty (in PAE mode its three page directories are allocated with the
//! space).
//!
//! Ownership rule: a present entry that points at a frame managed by the
//! frame allocator holds one reference to it. [`AddressSpace::map`] consumes
//! an [`OwnedFrame`] (and gives it back inside a [`MapError`] when it fails);
//! [`AddressSpace::unmap`] hands the entry's reference back as an
//! `OwnedFrame`; [`AddressSpace::destroy`] drops the references of whatever
//! is still mapped. The space keeps its own directory and table frames as
//! plain numbers and turns them back into owned references, through
//! `entry_reference`, only when it frees them.

use core::marker::PhantomData;
use core::ptr::NonNull;

use super::batch::TlbBatch;
use super::cpus::SpaceCpus;
use super::entry::{Entry, PageAttrs, PteFlags};
use super::mode::{Classic, PagingMode, PAE_PD_ENTRIES, PDPT_ENTRIES};
pub use super::outcome::{Flush, MapError};
use super::table::{entry_reference, new_table, release_owned, release_table, Table};
use crate::addr::{Frame, Page, PhysAddr, VirtAddr};
use crate::error::MmError;
use crate::frames::{FrameSource, OwnedFrame};
use crate::layout::{
    is_direct_map, DIRECT_MAP_START, DIRECT_ZONE_END, HEAP_START, KERNEL_BASE, KMAP_END,
    RESERVED_START,
};
use crate::platform::Platform;
use crate::smp::CpuSet;

/// Flags of a user-half page-directory entry: the page-table entries decide.
const USER_PDE: PteFlags = PteFlags::PRESENT
    .union(PteFlags::WRITABLE)
    .union(PteFlags::USER);
/// Flags of a kernel-half page-directory entry.
const KERNEL_PDE: PteFlags = PteFlags::PRESENT.union(PteFlags::WRITABLE);
/// Flags of a direct-map entry: a global, writable large kernel page.
const DIRECT_PDE: PteFlags = KERNEL_PDE.union(PteFlags::HUGE).union(PteFlags::GLOBAL);
/// Flags of a PAE page-directory-pointer-table entry (only P: R/W and U/S
/// are reserved there).
const PDPTE: PteFlags = PteFlags::PRESENT;

/// The PAE PDPT entry of the kernel half (`0xC000_0000..`): every space's
/// points at the kernel space's directory; the entries below it are the
/// space's own.
const KERNEL_PDPTE: usize = (KERNEL_BASE >> 30) as usize;

/// First and one-past-last directory index whose kernel tables are preallocated.
fn kernel_tables<M: PagingMode>() -> (usize, usize) {
    (M::dir_index(HEAP_START), M::dir_index(KMAP_END))
}

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

/// One address space: a page directory (in PAE mode a PDPT and its page
/// directories) and the user page tables it owns, in paging mode `M`.
///
/// Not `Clone`: the space owns its frames, and [`destroy`](Self::destroy)
/// gives them back.
#[derive(Debug)]
pub struct AddressSpace<M: PagingMode = Classic> {
    /// The page directory, or in PAE mode the PDPT (what CR3 holds while
    /// this space runs).
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
    mode: PhantomData<M>,
}

impl AddressSpace<Classic> {
    /// Creates the kernel address space in classic mode: the direct map of
    /// physical memory up to `ram_end` (at most 768 MiB, with global 4 MiB
    /// pages) and the preallocated, shared page tables of the heap and kmap
    /// windows. [`create_kernel`](Self::create_kernel) is the same for any
    /// mode (`AddressSpace::<Pae>::create_kernel`).
    pub fn new_kernel<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        platform: &P,
        frames: &mut F,
        ram_end: PhysAddr,
    ) -> Result<Self, MmError> {
        Self::create_kernel(platform, frames, ram_end)
    }
}

impl<M: PagingMode> AddressSpace<M> {
    /// Creates the kernel address space in mode `M`: the direct map of
    /// physical memory up to `ram_end` (at most 768 MiB, with global large
    /// pages: 4 MiB, or 2 MiB in PAE mode) and the preallocated, shared page
    /// tables of the heap and kmap windows (in PAE mode, all in the one
    /// kernel page directory that every space's PDPTE\[3\] points at).
    pub fn create_kernel<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        platform: &P,
        frames: &mut F,
        ram_end: PhysAddr,
    ) -> Result<Self, MmError> {
        let space = Self::alloc_directory(platform, frames, None)?;
        let span = M::table_span();
        let direct_end = ram_end
            .as_u64()
            .min(DIRECT_ZONE_END)
            .div_ceil(u64::from(span)) as usize;
        for i in 0..direct_end {
            let phys = Frame::from_start(PhysAddr::new((i as u32) * span))?;
            let (dir, j) = space.dir_slot(platform, M::KERNEL_DIR_INDEX + i);
            dir.set(j, M::Entry::map_to(phys, DIRECT_PDE.into()));
        }
        let (first, end) = kernel_tables::<M>();
        for i in first..end {
            match new_table(platform, frames) {
                Ok(t) => {
                    let (dir, j) = space.dir_slot(platform, i);
                    dir.set(j, M::Entry::map_to(t, KERNEL_PDE.into()));
                }
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
        kernel: &AddressSpace<M>,
    ) -> Result<Self, MmError> {
        let space = Self::alloc_directory(platform, frames, Some(kernel))?;
        if !M::PDPT {
            let (src, dst) = (
                Table::<M::Entry>::of(platform, kernel.dir),
                Table::<M::Entry>::of(platform, space.dir),
            );
            for i in M::KERNEL_DIR_INDEX..M::DIR_ENTRIES {
                dst.set(i, src.get(i));
            }
        }
        Ok(space)
    }

    /// The directory (classic) or PDPT and page directories (PAE) and the
    /// counts frame. A PAE user space's PDPTE\[3\] is `kernel`'s kernel
    /// directory; the kernel space (`kernel` is `None`) allocates its own.
    fn alloc_directory<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        platform: &P,
        frames: &mut F,
        kernel: Option<&AddressSpace<M>>,
    ) -> Result<Self, MmError> {
        let dir = new_table(platform, frames)?;
        let counts = match new_table(platform, frames) {
            Ok(counts) => counts,
            Err(e) => {
                release_owned(frames, dir);
                return Err(e);
            }
        };
        let space = AddressSpace {
            dir,
            counts,
            kernel: kernel.is_none(),
            mode: PhantomData,
        };
        if M::PDPT {
            let pdpt = Table::<M::Entry>::of(platform, dir);
            for i in 0..PDPT_ENTRIES {
                let pd = match (i, kernel) {
                    (KERNEL_PDPTE, Some(k)) => Table::<M::Entry>::of(platform, k.dir)
                        .get(KERNEL_PDPTE)
                        .frame(),
                    _ => match new_table(platform, frames) {
                        Ok(pd) => pd,
                        Err(e) => {
                            // The directories made so far are in the PDPT.
                            space.release_directory(platform, frames);
                            return Err(e);
                        }
                    },
                };
                pdpt.set(i, M::Entry::map_to(pd, PDPTE.into()));
            }
        }
        Ok(space)
    }

    /// Frees the directory, the counts frame and (PAE) the user page
    /// directories; the kernel directory too for the kernel space.
    fn release_directory<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        self,
        platform: &P,
        frames: &mut F,
    ) {
        if M::PDPT {
            let pdpt = Table::<M::Entry>::of(platform, self.dir);
            let owned = if self.kernel {
                PDPT_ENTRIES
            } else {
                KERNEL_PDPTE
            };
            for i in 0..owned {
                let e = pdpt.get(i);
                if e.is_present() {
                    release_owned(frames, e.frame());
                }
            }
        }
        release_owned(frames, self.counts);
        release_owned(frames, self.dir);
    }

    /// The directory frame holding directory entry `index` (over all
    /// directories), and the entry's index in it.
    #[inline]
    fn dir_slot<P: Platform + ?Sized>(
        &self,
        platform: &P,
        index: usize,
    ) -> (Table<M::Entry>, usize) {
        if M::PDPT {
            let pdpt = Table::<M::Entry>::of(platform, self.dir);
            let pd = pdpt.get(index / PAE_PD_ENTRIES).frame();
            (Table::of(platform, pd), index % PAE_PD_ENTRIES)
        } else {
            (Table::of(platform, self.dir), index)
        }
    }

    /// Directory entry `index` (over all directories).
    #[inline]
    fn dir_entry<P: Platform + ?Sized>(&self, platform: &P, index: usize) -> M::Entry {
        let (t, i) = self.dir_slot(platform, index);
        t.get(i)
    }

    /// The page directory's frame, or in PAE mode the PDPT's (the value
    /// CR3 holds while this space runs).
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
    pub fn switch_from<P: Platform + ?Sized>(&self, prev: &AddressSpace<M>, platform: &P) {
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
    pub fn entry<P: Platform + ?Sized>(&self, platform: &P, page: Page) -> Option<M::Entry> {
        let va = page.start().as_u32();
        let pde = self.dir_entry(platform, M::dir_index(va));
        if !pde.is_present() || pde.flags().contains(PteFlags::HUGE) {
            return None;
        }
        Some(Table::<M::Entry>::of(platform, pde.frame()).get(M::table_index(va)))
    }

    /// The physical address `va` translates to (`get_physical_address`), or
    /// `None` when it is not mapped. Follows 4 MiB entries too.
    pub fn translate<P: Platform + ?Sized>(&self, platform: &P, va: VirtAddr) -> Option<PhysAddr> {
        let v = va.as_u32();
        let pde = self.dir_entry(platform, M::dir_index(v));
        if !pde.is_present() {
            return None;
        }
        if pde.flags().contains(PteFlags::HUGE) {
            let base = pde.frame().start().align_down(M::table_span());
            return base.checked_add(v & (M::table_span() - 1));
        }
        let pte = Table::<M::Entry>::of(platform, pde.frame()).get(M::table_index(v));
        if !pte.is_present() {
            return None;
        }
        pte.frame().start().checked_add(va.page_offset())
    }

    /// A pointer to the entry mapping `va` (`get_page`). With `make`, a
    /// missing user page table is created; without it, `Ok(None)` is
    /// returned when there is no table. Direct-map addresses give
    /// `FixedMapping`; the top 4 MiB (reserved for the platform, e.g. a
    /// kernel's fixmap, even where the kernel installed a table) gives
    /// `OutOfRange`. (`make` stays the spec's flag, a `bool`, as the C API, the fuzzer and the
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
    ) -> Result<Option<NonNull<M::Entry>>, MmError> {
        let missing = if make {
            MissingTable::Create
        } else {
            MissingTable::Absent
        };
        match self.table_for(platform, frames, va, missing)? {
            Some(t) => Ok(Some(t.entry_ptr(M::table_index(va.as_u32())))),
            None => Ok(None),
        }
    }

    fn table_for<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        platform: &P,
        frames: &mut F,
        va: VirtAddr,
        missing: MissingTable,
    ) -> Result<Option<Table<M::Entry>>, MmError> {
        if is_direct_map(va.as_u32()) {
            return Err(MmError::FixedMapping);
        }
        if va.as_u32() >= RESERVED_START {
            // The platform's (a kernel's fixmap), even when it has a table.
            return Err(MmError::OutOfRange);
        }
        let di = M::dir_index(va.as_u32());
        let (dir, j) = self.dir_slot(platform, di);
        let pde = dir.get(j);
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
        dir.set(j, M::Entry::map_to(t, USER_PDE.into()));
        self.set_count(platform, di, 0);
        Ok(Some(Table::of(platform, t)))
    }

    /// Maps `page` to `frame` with `flags` (`PRESENT` is implied; a
    /// [`PageAttrs`] adds no-execute, which classic entries ignore),
    /// creating the page table if needed. The entry takes over the
    /// reference `frame` is. Fails with `AlreadyMapped` if the page is
    /// mapped, `FixedMapping` in the direct map, `InvalidArgument` for flags
    /// that don't belong in a page-table entry (`HUGE`), `OutOfRange` for a
    /// frame the mode's entries can't hold (at or above 4 GiB in classic
    /// mode); the error carries `frame` back.
    pub fn map<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        platform: &P,
        frames: &mut F,
        page: Page,
        frame: OwnedFrame,
        flags: impl Into<PageAttrs>,
    ) -> Result<Flush, MapError> {
        let (old, flush) =
            self.set_mapping(platform, frames, page, frame, flags.into(), Mapped::Refuse)?;
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
        flags: impl Into<PageAttrs>,
    ) -> Result<(Option<OwnedFrame>, Flush), MapError> {
        self.set_mapping(platform, frames, page, frame, flags.into(), Mapped::Replace)
    }

    fn set_mapping<P: Platform + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        platform: &P,
        frames: &mut F,
        page: Page,
        frame: OwnedFrame,
        attrs: PageAttrs,
        mapped: Mapped,
    ) -> Result<(Option<OwnedFrame>, Flush), MapError> {
        if attrs.flags.contains(PteFlags::HUGE) {
            return Err(MapError {
                error: MmError::InvalidArgument,
                frame,
            });
        }
        if frame.frame().number() >= M::FRAME_LIMIT {
            return Err(MapError {
                error: MmError::OutOfRange,
                frame,
            });
        }
        let va = page.start();
        let ti = M::table_index(va.as_u32());
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
        let old = table.get(ti);
        if old.is_present() && mapped == Mapped::Refuse {
            return Err(MapError {
                error: MmError::AlreadyMapped,
                frame,
            });
        }
        // The entry now holds the reference `frame` was.
        let attrs = PageAttrs {
            flags: attrs.flags | PteFlags::PRESENT,
            ..attrs
        };
        table.set(ti, M::Entry::map_to(frame.into_raw(), attrs));
        if old.is_unused() && va.as_u32() < KERNEL_BASE {
            let di = M::dir_index(va.as_u32());
            let n = self.count(platform, di);
            self.set_count(platform, di, n.saturating_add(1));
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

    /// Changes the flags (and, in PAE mode, no-execute) of a mapped page,
    /// keeping its frame.
    pub fn protect<P: Platform + ?Sized>(
        &mut self,
        platform: &P,
        page: Page,
        flags: impl Into<PageAttrs>,
    ) -> Result<Flush, MmError> {
        let attrs: PageAttrs = flags.into();
        if attrs.flags.contains(PteFlags::HUGE) {
            return Err(MmError::InvalidArgument);
        }
        let table = self.present_table(platform, page)?;
        let i = M::table_index(page.start().as_u32());
        let e = table.get(i);
        if !e.is_present() {
            return Err(MmError::NotMapped);
        }
        table.set(
            i,
            e.with_attrs(PageAttrs {
                flags: attrs.flags | PteFlags::PRESENT,
                ..attrs
            }),
        );
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
        let va = page.start().as_u32();
        let table = self.present_table(platform, page)?;
        let e = table.get(M::table_index(va));
        if !e.is_present() {
            return Err(MmError::NotMapped);
        }
        table.set(M::table_index(va), M::Entry::EMPTY);
        let freed = if va < KERNEL_BASE {
            self.forget_entry(platform, M::dir_index(va), table)
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
    ) -> Result<Table<M::Entry>, MmError> {
        let va = page.start();
        if is_direct_map(va.as_u32()) {
            return Err(MmError::FixedMapping);
        }
        let pde = self.dir_entry(platform, M::dir_index(va.as_u32()));
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
        table: Table<M::Entry>,
    ) -> Option<Frame> {
        let n = self.count(platform, pdi).saturating_sub(1);
        if n > 0 {
            self.set_count(platform, pdi, n);
            return None;
        }
        match table.live_entries() {
            0 => {
                let (dir, j) = self.dir_slot(platform, pdi);
                let t = dir.get(j).frame();
                dir.set(j, M::Entry::EMPTY);
                Some(t)
            }
            live => {
                self.set_count(platform, pdi, live);
                None
            }
        }
    }

    #[inline]
    fn count<P: Platform + ?Sized>(&self, platform: &P, pdi: usize) -> u16 {
        let mut b = [0u8; 2];
        platform.read_frame(self.counts, pdi * 2, &mut b);
        u16::from_ne_bytes(b)
    }

    #[inline]
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
        for pdi in 0..M::KERNEL_DIR_INDEX {
            let pde = self.dir_entry(platform, pdi);
            if pde.is_present() {
                release_table::<M::Entry, _, _>(platform, frames, pde.frame());
            }
        }
        self.release_directory(platform, frames);
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
        let (first, end) = kernel_tables::<M>();
        for pdi in first..end {
            let pde = self.dir_entry(platform, pdi);
            if pde.is_present() {
                release_table::<M::Entry, _, _>(platform, frames, pde.frame());
            }
        }
        self.destroy(platform, frames);
    }

    /// Calls `f` for every present 4 KiB mapping in the user half, in address
    /// order (used by fork and by tests).
    pub fn for_each_user_mapping<P: Platform + ?Sized>(
        &self,
        platform: &P,
        mut f: impl FnMut(Page, M::Entry),
    ) {
        for pdi in 0..M::KERNEL_DIR_INDEX {
            let pde = self.dir_entry(platform, pdi);
            if !pde.is_present() {
                continue;
            }
            let t = Table::<M::Entry>::of(platform, pde.frame());
            for pti in 0..M::ENTRIES {
                let e = t.get(pti);
                if e.is_present() {
                    let va = (pdi << M::DIR_SHIFT) | (pti << 12);
                    let page = VirtAddr::new(va as u32).page();
                    f(page, e);
                }
            }
        }
    }

    /// Number of user page tables this space owns (for accounting tests).
    pub fn user_table_count<P: Platform + ?Sized>(&self, platform: &P) -> usize {
        (0..M::KERNEL_DIR_INDEX)
            .filter(|&i| self.dir_entry(platform, i).is_present())
            .count()
    }
}

const _: () = assert!(DIRECT_MAP_START == KERNEL_BASE);
