//! Heaps: `init_kheap`, `create_heap`, the `kmalloc` family, `kfree` and the
//! statistics, over the core's [`Heap`] (through [`LockedHeap`]) with a
//! [`PagedHeapBackend`] mapping into the kernel address space.
//!
//! A `heap_t *` is a pointer to a [`HeapHandle`] this module handed out; a
//! registry of live handles lets every call check the pointer first, and
//! keeps heaps from overlapping.

use alloc::boxed::Box;
use core::ffi::c_void;
use core::ptr::{self, NonNull};

use myos_mm::heap::{Heap, HeapBackend, HeapFlags, HeapStats, LockedHeap};
use myos_mm::layout::{HEAP_END, HEAP_START, PAGE_SIZE};
use myos_mm::paging::{AnyModeHeapBackend, PagedHeapBackend};
use myos_mm::{MmError, PhysAddr};
use spin::{Mutex, Once};

use crate::errno::{record, CResult, Failure};
use crate::state::{mm, Frames, KernelSpace, Plat};

/// First address of the kernel heap `init_kheap` creates.
pub const KHEAP_START: u32 = HEAP_START;
/// Bytes the kernel heap maps at creation (1 MiB).
pub const KHEAP_INITIAL: u32 = 1 << 20;
/// Exclusive bound the kernel heap grows to: 128 MiB above its start, or
/// half the heap window when a build makes the window smaller than 256 MiB
/// (the rest is for `create_heap`).
pub const KHEAP_MAX: u32 = if HEAP_END - HEAP_START >= 256 << 20 {
    HEAP_START + (128 << 20)
} else {
    HEAP_START + (HEAP_END - HEAP_START) / 2
};
const _: () = assert!(KHEAP_MAX.is_multiple_of(PAGE_SIZE as u32) && KHEAP_MAX < HEAP_END);

/// What the C layer needs from a heap: implemented by every
/// [`LockedHeap`], so a kernel can register its own global-allocator heap
/// with [`register_kernel_heap`] and C's `kmalloc` shares it.
pub trait HeapOps: Sync {
    /// `size` bytes aligned to `align` (8 or 4096).
    fn alloc(&self, size: usize, align: usize) -> Result<NonNull<u8>, MmError>;
    /// Physically contiguous memory and its physical address.
    fn alloc_physical(
        &self,
        size: usize,
        page_aligned: bool,
    ) -> Result<(NonNull<u8>, PhysAddr), MmError>;
    /// Frees a block (refusing bad pointers).
    fn free(&self, ptr: NonNull<u8>) -> Result<(), MmError>;
    /// The heap's statistics.
    fn stats(&self) -> HeapStats;
    /// `[start, max)`: the addresses the heap may use.
    fn bounds(&self) -> (usize, usize);
}

impl<B: HeapBackend + Send> HeapOps for LockedHeap<B> {
    fn alloc(&self, size: usize, align: usize) -> Result<NonNull<u8>, MmError> {
        self.lock()
            .as_mut()
            .ok_or(MmError::OutOfMemory)?
            .alloc(size, align)
    }
    fn alloc_physical(
        &self,
        size: usize,
        page_aligned: bool,
    ) -> Result<(NonNull<u8>, PhysAddr), MmError> {
        self.lock()
            .as_mut()
            .ok_or(MmError::OutOfMemory)?
            .alloc_physical(size, page_aligned)
    }
    fn free(&self, ptr: NonNull<u8>) -> Result<(), MmError> {
        self.lock().as_mut().ok_or(MmError::BadPointer)?.free(ptr)
    }
    fn stats(&self) -> HeapStats {
        self.lock().as_ref().map(Heap::stats).unwrap_or_default()
    }
    fn bounds(&self) -> (usize, usize) {
        self.lock()
            .as_ref()
            .map_or((0, 0), |h| (h.start(), h.max()))
    }
}

/// The backend of the heaps this crate creates: pages mapped into the
/// kernel space, in the running paging mode.
pub type Backend = AnyModeHeapBackend<'static, Plat, Frames>;

/// `heap_t`: what a `heap_t *` points at.
pub enum HeapHandle {
    /// A heap owned elsewhere (the kernel's registered heap, or ours).
    Shared(&'static dyn HeapOps),
    /// A heap made by `create_heap` (boxed; `myos_heap_destroy` frees it).
    Created(Box<LockedHeap<Backend>>),
}

impl HeapHandle {
    fn ops(&self) -> &dyn HeapOps {
        match self {
            HeapHandle::Shared(h) => *h,
            HeapHandle::Created(h) => &**h,
        }
    }
}

/// Most heaps alive at once (the kernel heap included).
const MAX_HEAPS: usize = 16;

/// Addresses of live handles (0 = free slot).
static REGISTRY: Mutex<[usize; MAX_HEAPS]> = Mutex::new([0; MAX_HEAPS]);
/// The kernel heap's handle.
static KHEAP: Once<&'static HeapHandle> = Once::new();
/// The kernel heap `init_kheap` creates when the platform registered none.
static OWN_KHEAP: Once<LockedHeap<Backend>> = Once::new();

fn register_handle(h: &'static HeapHandle) -> CResult<()> {
    let mut reg = REGISTRY.lock();
    let slot = reg
        .iter_mut()
        .find(|s| **s == 0)
        .ok_or(MmError::OutOfMemory)?;
    *slot = ptr::from_ref(h).expose_provenance();
    Ok(())
}

/// The live handle `p` points at; `InvalidArgument` for anything else.
fn handle_of(p: *const HeapHandle) -> CResult<&'static HeapHandle> {
    if p.is_null() || !REGISTRY.lock().contains(&p.addr()) {
        return Err(MmError::InvalidArgument.into());
    }
    // SAFETY: registered handles are leaked boxes or statics, alive until
    // `myos_heap_destroy` removes them from the registry (checked above).
    Ok(unsafe { &*p })
}

/// Registers the kernel's own heap as the one `kmalloc` uses (instead of
/// the one `init_kheap` would create). Fails with `AlreadyMapped` when a
/// kernel heap exists already.
pub fn register_kernel_heap(heap: &'static dyn HeapOps) -> Result<(), MmError> {
    let mut fresh = false;
    KHEAP.call_once(|| {
        fresh = true;
        Box::leak(Box::new(HeapHandle::Shared(heap)))
    });
    if !fresh {
        return Err(MmError::AlreadyMapped);
    }
    let h = *KHEAP.get().ok_or(MmError::InvalidArgument)?;
    register_handle(h).map_err(|_| MmError::OutOfMemory)
}

/// A heap over `[start, max)` mapped in the kernel space.
fn new_heap(start: u32, end: u32, max: u32, flags: HeapFlags) -> CResult<LockedHeap<Backend>> {
    let m = mm()?;
    // SAFETY: the heap lies in the kernel heap window (checked by every
    // caller), whose page tables every address space shares, so its
    // addresses are valid pointers whatever directory is loaded: in the
    // kernel directly, on the host through the aliasing of `hosted`.
    let backend = unsafe {
        match m.kernel {
            KernelSpace::Classic(k) => {
                Backend::Classic(PagedHeapBackend::new(m.platform, k, m.frames))
            }
            KernelSpace::Pae(k) => Backend::Pae(PagedHeapBackend::new(m.platform, k, m.frames)),
        }
    };
    let heap = Heap::new(backend, start as usize, end as usize, max as usize, flags)?;
    let locked = LockedHeap::empty();
    locked.init(heap);
    Ok(locked)
}

/// The kernel heap, created on first use.
fn kheap() -> CResult<&'static dyn HeapOps> {
    if let Some(h) = KHEAP.get() {
        return Ok(h.ops());
    }
    init_kheap_inner()?;
    Ok(KHEAP.get().ok_or(Failure::NotSetUp)?.ops())
}

fn init_kheap_inner() -> CResult<()> {
    if KHEAP.get().is_some() {
        return Ok(());
    }
    mm()?;
    if OWN_KHEAP.get().is_none() {
        let heap = new_heap(
            KHEAP_START,
            KHEAP_START + KHEAP_INITIAL,
            KHEAP_MAX,
            HeapFlags::KERNEL,
        )?;
        OWN_KHEAP.call_once(|| heap);
    }
    let own: &'static LockedHeap<Backend> = OWN_KHEAP.get().ok_or(Failure::NotSetUp)?;
    let mut fresh = false;
    let h = *KHEAP.call_once(|| {
        fresh = true;
        Box::leak(Box::new(HeapHandle::Shared(own)))
    });
    if fresh {
        register_handle(h)?;
    }
    Ok(())
}

/// `void init_kheap(void)`.
#[no_mangle]
pub extern "C" fn init_kheap() {
    record(init_kheap_inner());
}

/// `heap_t *myos_kheap(void)`: the kernel heap's handle (NULL before it exists).
#[no_mangle]
pub extern "C" fn myos_kheap() -> *mut HeapHandle {
    let r = KHEAP.get().copied().ok_or(Failure::NotSetUp);
    record(r).map_or(ptr::null_mut(), |h| ptr::from_ref(h).cast_mut())
}

/// `heap_t *create_heap(uint32_t start, uint32_t end, uint32_t max, uint8_t supervisor, uint8_t readonly)`.
#[no_mangle]
pub extern "C" fn create_heap(
    start: u32,
    end: u32,
    max: u32,
    supervisor: u8,
    readonly: u8,
) -> *mut HeapHandle {
    record(create_heap_inner(start, end, max, supervisor, readonly))
        .map_or(ptr::null_mut(), |h| ptr::from_ref(h).cast_mut())
}

fn create_heap_inner(
    start: u32,
    end: u32,
    max: u32,
    supervisor: u8,
    readonly: u8,
) -> CResult<&'static HeapHandle> {
    let page = PAGE_SIZE as u32;
    if !start.is_multiple_of(page) || !end.is_multiple_of(page) || !max.is_multiple_of(page) {
        return Err(MmError::Misaligned.into());
    }
    if start == 0 || end <= start || max < end {
        return Err(MmError::InvalidArgument.into());
    }
    if start < HEAP_START || max > HEAP_END {
        return Err(MmError::OutOfRange.into());
    }
    // Make sure the kernel heap exists (and is counted) before checking overlaps.
    let _ = kheap();
    {
        let reg = REGISTRY.lock();
        for &a in reg.iter().filter(|&&a| a != 0) {
            // SAFETY: registered handles are alive (see `handle_of`).
            let (s, e) = unsafe { &*ptr::with_exposed_provenance::<HeapHandle>(a) }
                .ops()
                .bounds();
            if (start as usize) < e && s < max as usize {
                return Err(MmError::AlreadyMapped.into());
            }
        }
    }
    let flags = HeapFlags {
        supervisor: supervisor != 0,
        readonly: readonly != 0,
    };
    let heap = new_heap(start, end, max, flags)?;
    let h: &'static HeapHandle = Box::leak(Box::new(HeapHandle::Created(Box::new(heap))));
    if let Err(e) = register_handle(h) {
        // SAFETY: `h` was leaked just above and never shared.
        drop(unsafe { Box::from_raw(ptr::from_ref(h).cast_mut()) });
        return Err(e);
    }
    Ok(h)
}

/// `int myos_heap_destroy(heap_t *heap)`: unmaps a heap `create_heap` made.
///
/// # Safety
///
/// No block of the heap may be used afterwards (it is unmapped).
#[no_mangle]
pub unsafe extern "C" fn myos_heap_destroy(heap: *mut HeapHandle) -> i32 {
    let r = handle_of(heap).and_then(|h| match h {
        HeapHandle::Created(_) => {
            let mut reg = REGISTRY.lock();
            if let Some(slot) = reg.iter_mut().find(|s| **s == heap.addr()) {
                *slot = 0;
            }
            drop(reg);
            // SAFETY: created handles are leaked boxes; it is out of the
            // registry, so no other call reaches it again.
            drop(unsafe { Box::from_raw(heap) });
            Ok(0)
        }
        HeapHandle::Shared(_) => Err(MmError::InvalidArgument.into()),
    });
    record(r).unwrap_or(-1)
}

fn alloc_in(ops: &dyn HeapOps, size: u32, page_align: bool) -> CResult<*mut c_void> {
    let align = if page_align { PAGE_SIZE } else { 8 };
    Ok(ops.alloc(size as usize, align)?.as_ptr().cast())
}

/// `void *myos_heap_alloc(heap_t *heap, uint32_t size, int page_align)`.
///
/// # Safety
///
/// None beyond C's: `heap` is checked against the live handles.
#[no_mangle]
pub unsafe extern "C" fn myos_heap_alloc(
    heap: *mut HeapHandle,
    size: u32,
    page_align: i32,
) -> *mut c_void {
    let r = handle_of(heap).and_then(|h| alloc_in(h.ops(), size, page_align != 0));
    record(r).unwrap_or(ptr::null_mut())
}

/// `int myos_heap_free(heap_t *heap, void *ptr)`: 0, or -1 when refused.
///
/// # Safety
///
/// None beyond C's: the heap checks the pointer before touching anything.
#[no_mangle]
pub unsafe extern "C" fn myos_heap_free(heap: *mut HeapHandle, p: *mut c_void) -> i32 {
    let r = handle_of(heap).and_then(|h| match NonNull::new(p.cast::<u8>()) {
        Some(p) => h.ops().free(p).map_err(Failure::from),
        None => Ok(()),
    });
    record(r).map_or(-1, |()| 0)
}

/// `void *kmalloc(uint32_t size)`.
#[no_mangle]
pub extern "C" fn kmalloc(size: u32) -> *mut c_void {
    record(kheap().and_then(|h| alloc_in(h, size, false))).unwrap_or(ptr::null_mut())
}

/// `void *kmalloc_aligned(uint32_t size)`.
#[no_mangle]
pub extern "C" fn kmalloc_aligned(size: u32) -> *mut c_void {
    record(kheap().and_then(|h| alloc_in(h, size, true))).unwrap_or(ptr::null_mut())
}

/// # Safety
///
/// `physical` must be NULL or valid for a `u32` write.
unsafe fn physical_alloc(size: u32, physical: *mut u32, page_aligned: bool) -> *mut c_void {
    let r = kheap().and_then(|h| {
        let (p, phys) = h.alloc_physical(size as usize, page_aligned)?;
        // Byte i is at `phys + i`: the whole block must lie below 4 GiB for
        // `*physical` to describe it (PAE mode may place it higher).
        match phys.to_u32() {
            Some(low) if u64::from(low) + u64::from(size) <= 1 << 32 => Ok((p, low)),
            _ => {
                h.free(p)?;
                Err(Failure::AboveFourGiB)
            }
        }
    });
    match record(r) {
        Some((p, phys)) => {
            if !physical.is_null() {
                // SAFETY: the caller promises `physical` is writable.
                unsafe { physical.write_unaligned(phys) };
            }
            p.as_ptr().cast()
        }
        None => ptr::null_mut(),
    }
}

/// `void *kmalloc_physical(uint32_t size, uint32_t *physical)`.
///
/// # Safety
///
/// `physical` must be NULL or valid for a `uint32_t` write.
#[no_mangle]
pub unsafe extern "C" fn kmalloc_physical(size: u32, physical: *mut u32) -> *mut c_void {
    // SAFETY: forwarded to the caller.
    unsafe { physical_alloc(size, physical, false) }
}

/// `void *kmalloc_aligned_physical(uint32_t size, uint32_t *physical)`.
///
/// # Safety
///
/// As [`kmalloc_physical`].
#[no_mangle]
pub unsafe extern "C" fn kmalloc_aligned_physical(size: u32, physical: *mut u32) -> *mut c_void {
    // SAFETY: forwarded to the caller.
    unsafe { physical_alloc(size, physical, true) }
}

/// `void kfree(void *ptr)`: NULL does nothing; bad pointers are refused.
///
/// # Safety
///
/// None beyond C's: the heap checks the pointer (range, alignment, header)
/// before touching anything.
#[no_mangle]
pub unsafe extern "C" fn kfree(p: *mut c_void) {
    let r = match NonNull::new(p.cast::<u8>()) {
        None => Ok(()),
        Some(p) => kheap().and_then(|h| h.free(p).map_err(Failure::from)),
    };
    record(r);
}

fn stats() -> CResult<HeapStats> {
    Ok(kheap()?.stats())
}

/// `uint32_t get_free_memory(void)`.
#[no_mangle]
pub extern "C" fn get_free_memory() -> u32 {
    record(stats()).map_or(0, |s| s.free_bytes as u32)
}

/// `uint32_t get_used_memory(void)`.
#[no_mangle]
pub extern "C" fn get_used_memory() -> u32 {
    record(stats()).map_or(0, |s| s.used_bytes as u32)
}

/// `void get_heap_stats(uint32_t *total_blocks, uint32_t *free_blocks, uint32_t *largest_free)`.
///
/// # Safety
///
/// Each pointer must be NULL or valid for a `uint32_t` write.
#[no_mangle]
pub unsafe extern "C" fn get_heap_stats(
    total_blocks: *mut u32,
    free_blocks: *mut u32,
    largest_free: *mut u32,
) {
    let s = record(stats()).unwrap_or_default();
    for (out, v) in [
        (total_blocks, s.total_blocks),
        (free_blocks, s.free_blocks),
        (largest_free, s.largest_free),
    ] {
        if !out.is_null() {
            // SAFETY: the caller promises each non-NULL pointer is writable.
            unsafe { out.write_unaligned(v as u32) };
        }
    }
}
