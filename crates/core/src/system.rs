//! [`System`]: one machine's memory manager, assembled.
//!
//! The core has no global state. A kernel (or the C API's host library)
//! builds one `System` at boot and keeps it in a `static` behind a
//! `spin::Once`; everything else borrows from it. Locks are separate so that
//! the heap, the kernel space and the frame allocator can be used from each
//! other's paths: the order is heap → address space → frames, and code
//! holding the frame lock never allocates from the heap.

use spin::Mutex;

use crate::addr::{PhysAddr, FRAME_COUNT_4G};
use crate::error::MmError;
use crate::frames::{FrameAllocator, MemoryRegion, RegionKind};
use crate::layout::{DIRECT_ZONE_END, PAGE_SHIFT, PHYS_END};
use crate::paging::{AddressSpace, Classic, PagedHeapBackend, PagingMode};
use crate::platform::Platform;

/// The frame allocator and the kernel address space of one machine, in
/// paging mode `M` (classic by default).
pub struct System<P: Platform + ?Sized + 'static, M: PagingMode = Classic> {
    platform: &'static P,
    frames: Mutex<FrameAllocator>,
    kernel: Mutex<AddressSpace<M>>,
}

impl<P: Platform + ?Sized + 'static> System<P, Classic> {
    /// Builds the frame allocator from `map` and the kernel address space
    /// (`init_paging`) in classic mode: the direct map of RAM up to 768 MiB
    /// and the shared heap and kmap page tables. The caller then loads it
    /// with [`AddressSpace::activate`]. [`create`](Self::create) is the same
    /// for any mode.
    ///
    /// # Safety
    ///
    /// As [`FrameAllocator::new`]: the usable regions of `map` are RAM that
    /// nobody else uses.
    pub unsafe fn new(platform: &'static P, map: &[MemoryRegion]) -> Result<Self, MmError> {
        // SAFETY: forwarded to the caller.
        unsafe { Self::create(platform, map) }
    }
}

impl<P: Platform + ?Sized + 'static, M: PagingMode> System<P, M> {
    /// [`new`](System::new) in mode `M`: in PAE mode the frame allocator
    /// also takes the RAM from 4 GiB up to 64 GiB (which the platform's
    /// frame data methods must reach, e.g. through kmap).
    ///
    /// # Safety
    ///
    /// As [`FrameAllocator::new_below`]: the usable regions of `map` are RAM
    /// that nobody else uses.
    pub unsafe fn create(platform: &'static P, map: &[MemoryRegion]) -> Result<Self, MmError> {
        let phys_end = if M::FRAME_LIMIT > FRAME_COUNT_4G {
            u64::from(M::FRAME_LIMIT) << PAGE_SHIFT
        } else {
            PHYS_END
        };
        // SAFETY: forwarded to the caller; `platform` is 'static.
        let mut frames = unsafe { FrameAllocator::new_below(platform, map, phys_end)? };
        let ram_end = map
            .iter()
            .filter(|r| r.kind == RegionKind::Usable && r.start < PHYS_END)
            .map(|r| r.end.min(PHYS_END - 1).min(DIRECT_ZONE_END))
            .max()
            .unwrap_or(0);
        let kernel =
            AddressSpace::create_kernel(platform, &mut frames, PhysAddr::new(ram_end as u32))?;
        Ok(Self {
            platform,
            frames: Mutex::new(frames),
            kernel: Mutex::new(kernel),
        })
    }

    /// The machine.
    pub fn platform(&self) -> &'static P {
        self.platform
    }

    /// The frame allocator (a [`FrameSource`](crate::frames::FrameSource)
    /// through `&Mutex`).
    pub fn frames(&self) -> &Mutex<FrameAllocator> {
        &self.frames
    }

    /// The kernel address space (`kernel_directory`).
    pub fn kernel_space(&self) -> &Mutex<AddressSpace<M>> {
        &self.kernel
    }

    /// A heap backend mapping into the kernel space with frames from this
    /// system (for `create_heap` / `init_kheap`).
    ///
    /// # Safety
    ///
    /// As [`PagedHeapBackend::new`]: the heap's addresses must be usable as
    /// pointers, i.e. this is the machine the code runs on and the heap lies
    /// in the shared kernel half.
    pub unsafe fn heap_backend(
        &'static self,
    ) -> PagedHeapBackend<'static, P, &'static Mutex<FrameAllocator>, M> {
        // SAFETY: forwarded to the caller.
        unsafe { PagedHeapBackend::new(self.platform, &self.kernel, &self.frames) }
    }
}
