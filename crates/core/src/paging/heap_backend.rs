//! [`PagedHeapBackend`]: heap pages from the frame allocator, mapped into an
//! address space (the kernel heap's backend).

use spin::Mutex;

use super::batch::TlbBatch;
use super::entry::PteFlags;
use super::mode::{Classic, Pae, PagingMode};
use super::space::AddressSpace;
use crate::addr::{Page, PhysAddr, VirtAddr};
use crate::error::MmError;
use crate::frames::{FrameSource, Zone};
use crate::heap::{HeapBackend, HeapFlags};
use crate::layout::{KERNEL_BASE, PAGE_SIZE};
use crate::lockorder::{Held, Level};
use crate::platform::Platform;

/// Backs a heap with frames from `F`, mapped at the heap's addresses in an
/// address space (normally the kernel space, whose heap range has
/// preallocated, shared page tables, so growing never allocates a table).
///
/// Heap pages come from any zone, high memory included: the heap reaches
/// them through its own mapping, not the direct map. Contiguous requests
/// (`kmalloc_physical`) get one physically contiguous run.
pub struct PagedHeapBackend<'a, P: Platform + ?Sized, F: FrameSource, M: PagingMode = Classic> {
    platform: &'a P,
    space: &'a Mutex<AddressSpace<M>>,
    frames: F,
}

impl<'a, P: Platform + ?Sized, F: FrameSource, M: PagingMode> PagedHeapBackend<'a, P, F, M> {
    /// A backend mapping into `space` with frames from `frames`.
    ///
    /// # Safety
    ///
    /// The addresses the heap maps must be usable as pointers by the code
    /// that runs the heap: `space` is the address space the CPU uses (or the
    /// heap lies in the kernel half every space shares). Only the kernel
    /// meets this; on the host, use the backend's methods directly and never
    /// build a `Heap` over it.
    pub unsafe fn new(platform: &'a P, space: &'a Mutex<AddressSpace<M>>, frames: F) -> Self {
        Self {
            platform,
            space,
            frames,
        }
    }

    /// The frame source (e.g. to read its statistics in tests).
    pub fn frames(&self) -> &F {
        &self.frames
    }

    fn pte_flags(addr: usize, flags: HeapFlags) -> PteFlags {
        let mut f = PteFlags::empty();
        if !flags.readonly {
            f |= PteFlags::WRITABLE;
        }
        if !flags.supervisor {
            f |= PteFlags::USER;
        }
        if addr >= KERNEL_BASE as usize {
            f |= PteFlags::GLOBAL;
        }
        f
    }

    /// Unmaps the first `done` pages at `first` and drops their frames.
    ///
    /// Heap pages are global kernel-half pages: every online CPU may cache
    /// them, so each batch of up to 32 pages ends with a local `invlpg` of
    /// each and one shootdown to every other online CPU, and only then are
    /// the frames freed ([`unmap_kernel_pages`]).
    fn undo(&mut self, first: Page, done: u32) {
        let mut space = self.space.lock();
        let _held = Held::new(self.platform.cpu_id(), Level::KernelSpace);
        unmap_kernel_pages(self.platform, &mut space, &mut self.frames, first, done);
    }
}

/// Unmaps `count` kernel-half pages from `first` (pages that are not
/// mapped are skipped) and frees their frames once every online CPU has
/// dropped them: batches of at most [`BATCH_PAGES`](super::BATCH_PAGES)
/// pages, each ended with a local flush and one shootdown to the other
/// online CPUs. Never allocates (safe under the heap's lock). The heap
/// shrinks through this; the kernel drops kernel stacks through it.
///
/// `space` is the kernel space (or any space: kernel-half tables are
/// shared), locked by the caller.
pub fn unmap_kernel_pages<P: Platform + ?Sized, F: FrameSource + ?Sized, M: PagingMode>(
    platform: &P,
    space: &mut AddressSpace<M>,
    frames: &mut F,
    first: Page,
    count: u32,
) {
    let mut batch = TlbBatch::new();
    for k in 0..count {
        let Some(page) = first.checked_add(k) else {
            break;
        };
        if space.unmap_batched(platform, page, &mut batch).is_ok() && batch.is_full() {
            let _ = core::mem::take(&mut batch).finish(platform, space, frames);
        }
    }
    let _ = batch.finish(platform, space, frames);
}

/// The first page of `[addr, addr + pages * 4096)`, checked to fit in 32 bits.
fn first_page(addr: usize, pages: usize) -> Result<(Page, u32), MmError> {
    let start = u32::try_from(addr).map_err(|_| MmError::OutOfRange)?;
    let count = u32::try_from(pages).map_err(|_| MmError::OutOfRange)?;
    let bytes = count
        .checked_mul(PAGE_SIZE as u32)
        .ok_or(MmError::OutOfRange)?;
    start.checked_add(bytes - 1).ok_or(MmError::OutOfRange)?;
    Ok((Page::from_start(VirtAddr::new(start))?, count))
}

// SAFETY: `map` maps fresh frames (owned by nothing else) at exactly the
// requested pages, writable unless `readonly`; a contiguous request maps one
// physically contiguous run in address order; `phys` reads the page tables;
// the constructor's contract makes the mapped addresses valid pointers.
unsafe impl<P: Platform + ?Sized, F: FrameSource, M: PagingMode> HeapBackend
    for PagedHeapBackend<'_, P, F, M>
{
    fn pointer(&self, addr: usize) -> *mut u8 {
        core::ptr::with_exposed_provenance_mut(addr)
    }

    fn map(
        &mut self,
        addr: usize,
        pages: usize,
        contiguous: bool,
        flags: HeapFlags,
    ) -> Result<(), MmError> {
        let (first, count) = first_page(addr, pages)?;
        if count == 0 {
            return Ok(());
        }
        let pte = Self::pte_flags(addr, flags);
        let mut run = if contiguous {
            Some(
                self.frames
                    .alloc_contiguous(count, 0, Zone::High)?
                    .into_frames(),
            )
        } else {
            None
        };
        for k in 0..count {
            let frame = match run.as_mut() {
                Some(frames) => frames.next().ok_or(MmError::OutOfRange),
                None => self.frames.alloc(Zone::High),
            };
            let mapped = frame.and_then(|f| {
                let page = match Page::from_number(first.number() + k) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = self.frames.release(f);
                        return Err(e);
                    }
                };
                let mut space = self.space.lock();
                let _held = Held::new(self.platform.cpu_id(), Level::KernelSpace);
                space
                    .map(self.platform, &mut self.frames, page, f, pte)
                    .map_err(|e| e.release(&mut self.frames))
            });
            match mapped {
                Ok(flush) => flush.flush(self.platform),
                Err(e) => {
                    self.undo(first, k);
                    // The part of the run that was never mapped.
                    for f in run.into_iter().flatten() {
                        let _ = self.frames.release(f);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn unmap(&mut self, addr: usize, pages: usize) {
        if let Ok((first, count)) = first_page(addr, pages) {
            self.undo(first, count);
        }
    }

    fn phys(&self, addr: usize) -> Option<PhysAddr> {
        let va = VirtAddr::new(u32::try_from(addr).ok()?);
        self.space.lock().translate(self.platform, va)
    }
}

/// A [`PagedHeapBackend`] in the paging mode chosen at boot: what a kernel
/// that carries both modes (and the C layer) puts behind its heap. Every
/// method forwards to the variant's backend.
pub enum AnyModeHeapBackend<'a, P: Platform + ?Sized, F: FrameSource> {
    /// Classic paging.
    Classic(PagedHeapBackend<'a, P, F, Classic>),
    /// PAE paging.
    Pae(PagedHeapBackend<'a, P, F, Pae>),
}

// SAFETY: each variant is a `PagedHeapBackend`, which meets the contract;
// every method forwards to it unchanged.
unsafe impl<P: Platform + ?Sized, F: FrameSource> HeapBackend for AnyModeHeapBackend<'_, P, F> {
    fn pointer(&self, addr: usize) -> *mut u8 {
        match self {
            Self::Classic(b) => b.pointer(addr),
            Self::Pae(b) => b.pointer(addr),
        }
    }
    fn map(
        &mut self,
        addr: usize,
        pages: usize,
        contiguous: bool,
        flags: HeapFlags,
    ) -> Result<(), MmError> {
        match self {
            Self::Classic(b) => b.map(addr, pages, contiguous, flags),
            Self::Pae(b) => b.map(addr, pages, contiguous, flags),
        }
    }
    fn unmap(&mut self, addr: usize, pages: usize) {
        match self {
            Self::Classic(b) => b.unmap(addr, pages),
            Self::Pae(b) => b.unmap(addr, pages),
        }
    }
    fn phys(&self, addr: usize) -> Option<PhysAddr> {
        match self {
            Self::Classic(b) => b.phys(addr),
            Self::Pae(b) => b.phys(addr),
        }
    }
}
