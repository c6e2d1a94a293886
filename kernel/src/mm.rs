//! The kernel's one instance of the memory manager: the core's [`System`]
//! (frame allocator from the multiboot map, kernel address space) and the
//! kernel heap as the global allocator.

use myos_mm::frames::{
    FrameAllocator, FrameRun, FrameSource, FrameStats, MemoryRegion, OwnedFrame, RegionKind, Zone,
};
use myos_mm::heap::{Heap, HeapFlags, HeapStats, LockedHeap};
use myos_mm::layout::{HEAP_START, KERNEL_HEAP_MAX, PAGE_SIZE};
use myos_mm::paging::{AddressSpace, PagedHeapBackend};
use myos_mm::system::System;
use myos_mm::{Frame, MmError};
use spin::{Mutex, MutexGuard, Once};

use crate::arch::gdt;
use crate::platform::X86Platform;

/// The machine (stateless; a static so the core can borrow it for `'static`).
pub static PLATFORM: X86Platform = X86Platform;

/// The memory manager of this machine.
pub type Mm = System<X86Platform>;

/// The frame source every address space uses.
pub type Frames = &'static Mutex<FrameAllocator>;

/// The heap backend: frames mapped into the kernel space's heap window.
pub type KernelHeapBackend = PagedHeapBackend<'static, X86Platform, Frames>;

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

/// Builds the frame allocator from `regions` and the kernel address space,
/// switches to it, and creates the kernel heap (over the heap window below
/// the kernel-stack area).
pub fn init(regions: &[MemoryRegion]) -> Result<&'static Mm, MmError> {
    RAM_END.call_once(|| {
        regions
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .map(|r| r.end)
            .max()
            .unwrap_or(0)
    });
    // SAFETY: the regions come from the firmware map with the kernel image,
    // the boot information and the modules reserved, so usable RAM is unused.
    let system = unsafe { System::new(&PLATFORM, regions)? };
    let mm: &'static Mm = MM.call_once(|| system);
    {
        let space = mm.kernel_space().lock();
        space.activate(&PLATFORM);
        gdt::set_double_fault_cr3(space.directory().start().as_u32());
    }
    crate::platform::enable_global_pages();
    // SAFETY: this is the machine the code runs on, and the heap lies in the
    // kernel half that every address space shares.
    let backend = unsafe { mm.heap_backend() };
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

impl FrameSource for UserFrames {
    fn alloc(&mut self, zone: Zone) -> Result<OwnedFrame, MmError> {
        let mut fa = self.0.lock();
        if fa.stats().free <= USER_RESERVE_FRAMES {
            return Err(MmError::OutOfMemory);
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
        self.0.lock().release(frame)
    }
    fn refcount(&self, frame: Frame) -> Result<u16, MmError> {
        self.0.lock().refcount(frame)
    }
}

/// The kernel address space, locked. Never allocate from the heap while
/// holding it (the heap grows under this lock: heap → space → frames).
pub fn kernel_space() -> MutexGuard<'static, AddressSpace> {
    get().kernel_space().lock()
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
