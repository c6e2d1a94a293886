//! The kernel's one instance of the memory manager: [`Mm`] (frame
//! allocator from the multiboot map, kernel address space in the paging
//! mode chosen at boot) and the kernel heap as the global allocator.

use core::sync::atomic::{AtomicU32, Ordering};

use myos_mm::addr::{PhysAddr, FRAME_COUNT_4G};
use myos_mm::frames::{
    FrameAllocator, FrameRun, FrameSource, FrameStats, MemoryRegion, OwnedFrame, RegionKind, Zone,
};
use myos_mm::heap::{Heap, HeapFlags, HeapStats, LockedHeap};
use myos_mm::layout::{DIRECT_ZONE_END, HEAP_START, KERNEL_HEAP_MAX, PAGE_SIZE, PHYS_END};
use myos_mm::paging::{
    AddressSpace, AnyModeHeapBackend, Classic, Pae, PagedHeapBackend, PagingMode,
};
use myos_mm::{Frame, MmError};
use spin::{Mutex, Once};

use crate::arch::gdt;
use crate::platform::{Paging, X86Platform};

/// The machine (stateless; a static so the core can borrow it for `'static`).
pub static PLATFORM: X86Platform = X86Platform;

/// The frame source every address space uses.
pub type Frames = &'static Mutex<FrameAllocator>;

/// The kernel address space in the mode the kernel booted in. The kernel
/// carries both instantiations of the core's paging code; this enum (and
/// [`crate::process::UserSpace`] for processes) picks one at run time.
pub enum KernelSpace {
    /// Classic two-level paging.
    Classic(Mutex<AddressSpace<Classic>>),
    /// PAE paging.
    Pae(Mutex<AddressSpace<Pae>>),
}

/// Runs `$body` with `$space` bound to the kernel address space's lock
/// (`&spin::Mutex<AddressSpace<M>>`) of the running mode. The body is
/// compiled once per mode, so it is written once against the core's
/// generic API.
macro_rules! with_kernel_space {
    ($mm:expr, |$space:ident| $body:expr) => {
        match $mm.kernel() {
            $crate::mm::KernelSpace::Classic($space) => $body,
            $crate::mm::KernelSpace::Pae($space) => $body,
        }
    };
}
pub(crate) use with_kernel_space;

/// The memory manager of this machine: the frame allocator (every frame of
/// the firmware map the mode can reach) and the kernel address space.
/// Locks are separate: heap → address space → frames, as in the core's
/// `System`, which is this for classic paging only.
pub struct Mm {
    frames: Mutex<FrameAllocator>,
    kernel: KernelSpace,
}

impl Mm {
    /// The machine.
    pub fn platform(&self) -> &'static X86Platform {
        &PLATFORM
    }

    /// The frame allocator.
    pub fn frames(&self) -> &Mutex<FrameAllocator> {
        &self.frames
    }

    /// The kernel address space (use [`with_kernel_space`] to work on it).
    pub fn kernel(&self) -> &KernelSpace {
        &self.kernel
    }

    /// The paging mode of the kernel address space.
    pub fn paging(&self) -> Paging {
        match self.kernel {
            KernelSpace::Classic(_) => Paging::Classic,
            KernelSpace::Pae(_) => Paging::Pae,
        }
    }

    /// The kernel address space's root (page directory, or PDPT): what CR3
    /// holds when no user space is loaded.
    pub fn kernel_root(&self) -> Frame {
        with_kernel_space!(self, |space| space.lock().directory())
    }
}

/// The heap backend: frames mapped into the kernel space's heap window, in
/// the running mode.
pub type KernelHeapBackend = AnyModeHeapBackend<'static, X86Platform, Frames>;

/// The memory manager, set up once by [`init`].
static MM: Once<Mm> = Once::new();

/// One past the highest usable physical address.
static RAM_END: Once<u64> = Once::new();

/// The kernel heap, the global allocator (`Box`, `Vec`, `BTreeMap`).
#[global_allocator]
static HEAP: LockedHeap<KernelHeapBackend> = LockedHeap::empty();

/// Bytes of the heap mapped at boot.
const HEAP_INITIAL: usize = 16 * PAGE_SIZE;

/// The memory manager. Panics before [`init`] (a kernel bug: nothing calls it
/// that early).
pub fn get() -> &'static Mm {
    MM.get()
        .unwrap_or_else(|| panic!("memory manager used before mm::init"))
}

/// The kernel space of mode `M` over `frames`: the direct map of RAM up to
/// `ram_end` (at most 768 MiB) and the shared heap and kmap tables.
fn kernel_space<M: PagingMode>(
    frames: &mut FrameAllocator,
    ram_end: u32,
) -> Result<Mutex<AddressSpace<M>>, MmError> {
    AddressSpace::<M>::create_kernel(&PLATFORM, frames, PhysAddr::new(ram_end)).map(Mutex::new)
}

/// Builds the frame allocator from `regions` and the kernel address space
/// in the running paging mode (classic: RAM below 4 GiB; PAE: all of it,
/// up to 64 GiB), switches to it, and creates the kernel heap (over the
/// heap window below the kernel-stack area).
pub fn init(regions: &[MemoryRegion], paging: Paging) -> Result<&'static Mm, MmError> {
    RAM_END.call_once(|| {
        regions
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .map(|r| r.end)
            .max()
            .unwrap_or(0)
    });
    let direct_end = regions
        .iter()
        .filter(|r| r.kind == RegionKind::Usable && r.start < PHYS_END)
        .map(|r| r.end.min(PHYS_END - 1).min(DIRECT_ZONE_END))
        .max()
        .unwrap_or(0) as u32;
    // SAFETY: the regions come from the firmware map with the kernel image,
    // the boot information and the modules reserved, so usable RAM is unused;
    // the platform reaches every frame (direct map, or kmap up to 64 GiB).
    let mut frames = unsafe {
        match paging {
            Paging::Classic => FrameAllocator::new(&PLATFORM, regions)?,
            Paging::Pae => FrameAllocator::new_below(&PLATFORM, regions, PhysAddr::MAX + 1)?,
        }
    };
    let kernel = match paging {
        Paging::Classic => KernelSpace::Classic(kernel_space(&mut frames, direct_end)?),
        Paging::Pae => KernelSpace::Pae(kernel_space(&mut frames, direct_end)?),
    };
    let mm: &'static Mm = MM.call_once(|| Mm {
        frames: Mutex::new(frames),
        kernel,
    });
    with_kernel_space!(mm, |space| {
        let space = space.lock();
        space.activate(&PLATFORM);
        gdt::set_double_fault_cr3(space.directory().start().as_u32());
    });
    crate::platform::enable_global_pages();
    // SAFETY: this is the machine the code runs on, and the heap lies in the
    // kernel half that every address space shares.
    let backend = unsafe {
        match &mm.kernel {
            KernelSpace::Classic(k) => {
                KernelHeapBackend::Classic(PagedHeapBackend::new(&PLATFORM, k, &mm.frames))
            }
            KernelSpace::Pae(k) => {
                KernelHeapBackend::Pae(PagedHeapBackend::new(&PLATFORM, k, &mm.frames))
            }
        }
    };
    let heap = Heap::new(
        backend,
        HEAP_START as usize,
        HEAP_START as usize + HEAP_INITIAL,
        KERNEL_HEAP_MAX as usize,
        HeapFlags::KERNEL,
    )?;
    HEAP.init(heap);
    Ok(mm)
}

/// One past the highest usable physical address.
pub fn ram_end() -> u64 {
    RAM_END.get().copied().unwrap_or(0)
}

/// The frame allocator, as a frame source (the kernel heap's).
pub fn frames() -> Frames {
    get().frames()
}

/// Free frames kept back from user memory: user page allocations fail
/// below this many (the faulting process is killed, `fork` fails), so the
/// kernel heap can still grow for the kernel's own, infallible allocations
/// when user processes have eaten every other frame (like Linux's
/// `min_free_kbytes` watermark).
pub const USER_RESERVE_FRAMES: u32 = 256;

/// `fork` (and starting a program) fails with `ENOMEM` below this many free
/// frames, well above [`USER_RESERVE_FRAMES`], so the processes that exist
/// can still fault their pages in.
pub const FORK_RESERVE_FRAMES: u32 = 2 * USER_RESERVE_FRAMES;

/// The frame source of user address spaces: the allocator, with the
/// kernel's reserve held back from new allocations.
#[derive(Clone, Copy)]
pub struct UserFrames(Frames);

/// The frame source for user address spaces.
pub fn user_frames() -> UserFrames {
    UserFrames(frames())
}

/// True when more than `frames` frames are free.
pub fn free_frames_above(frames: u32) -> bool {
    frame_stats().free > frames
}

/// First frame above 4 GiB.
const FIRST_FRAME_ABOVE_4G: Frame = match Frame::from_number(FRAME_COUNT_4G) {
    Ok(f) => f,
    Err(_) => panic!("4 GiB is a frame number"),
};

/// Frames above 4 GiB that user address spaces hold now (allocated
/// through [`UserFrames`] and not yet freed).
static USER_FRAMES_ABOVE_4G: AtomicU32 = AtomicU32::new(0);

/// Frames above 4 GiB that user address spaces hold now.
pub fn user_frames_above_4g() -> u32 {
    USER_FRAMES_ABOVE_4G.load(Ordering::Relaxed)
}

/// True when `frame` lies above 4 GiB.
fn above_4g(frame: Frame) -> bool {
    frame >= FIRST_FRAME_ABOVE_4G
}

impl FrameSource for UserFrames {
    /// In PAE mode, user pages (zone `High`) come from above 4 GiB first:
    /// only they can use that RAM, and what lies below stays for the page
    /// tables and the heap. Classic mode never reaches that RAM.
    fn alloc(&mut self, zone: Zone) -> Result<OwnedFrame, MmError> {
        let mut fa = self.0.lock();
        if fa.stats().free <= USER_RESERVE_FRAMES {
            return Err(MmError::OutOfMemory);
        }
        if zone == Zone::High && crate::platform::paging() == Paging::Pae {
            if let Ok(frame) = fa.alloc_at_or_above(FIRST_FRAME_ABOVE_4G) {
                USER_FRAMES_ABOVE_4G.fetch_add(1, Ordering::Relaxed);
                return Ok(frame);
            }
        }
        fa.alloc(zone)
    }
    fn alloc_contiguous(
        &mut self,
        count: u32,
        align_log2: u32,
        zone: Zone,
    ) -> Result<FrameRun, MmError> {
        let mut fa = self.0.lock();
        if fa.stats().free <= USER_RESERVE_FRAMES.saturating_add(count) {
            return Err(MmError::OutOfMemory);
        }
        fa.alloc_contiguous(count, align_log2, zone)
    }
    fn share(&mut self, frame: Frame) -> Result<OwnedFrame, MmError> {
        self.0.lock().share(frame)
    }
    fn release(&mut self, frame: OwnedFrame) -> Result<bool, MmError> {
        let number = frame.frame();
        let freed = self.0.lock().release(frame);
        if freed == Ok(true) && above_4g(number) {
            USER_FRAMES_ABOVE_4G.fetch_sub(1, Ordering::Relaxed);
        }
        freed
    }
    fn refcount(&self, frame: Frame) -> Result<u16, MmError> {
        self.0.lock().refcount(frame)
    }
}

/// Frame counts now.
pub fn frame_stats() -> FrameStats {
    get().frames().lock().stats()
}

/// Heap statistics now.
pub fn heap_stats() -> HeapStats {
    HEAP.lock().as_ref().map(|h| h.stats()).unwrap_or_default()
}

/// Validates the heap's metadata.
pub fn heap_validate() -> Result<(), MmError> {
    HEAP.lock().as_ref().map_or(Ok(()), |h| h.validate())
}

/// The kernel heap, for the C API's `kmalloc` (it shares the global allocator).
pub fn heap_ops() -> &'static dyn myos_capi::HeapOps {
    &HEAP
}

/// Runs `f` on the heap itself (typed errors, direct frees).
pub fn with_heap<R>(f: impl FnOnce(&mut Heap<KernelHeapBackend>) -> R) -> Option<R> {
    HEAP.lock().as_mut().map(f)
}

/// Gives unused heap pages back (the heap keeps its initial size).
pub fn heap_trim() {
    if let Some(h) = HEAP.lock().as_mut() {
        h.trim();
    }
}
