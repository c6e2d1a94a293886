//! [`LockedHeap`]: a heap behind a spin lock, usable as the kernel's
//! `#[global_allocator]`.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use spin::{Mutex, MutexGuard};

use super::{Heap, HeapBackend};

/// A [`Heap`] behind a spin lock, implementing [`GlobalAlloc`] so `Box`,
/// `Vec` and `BTreeMap` work in the kernel.
///
/// It starts empty (so it can be a `static`) and receives its heap with
/// [`LockedHeap::init`]; until then every allocation fails (returns null).
/// `dealloc` of a bad pointer is refused by the heap's checks and otherwise
/// ignored: `GlobalAlloc` has no way to report it (use
/// [`LockedHeap::lock`] and [`Heap::free`] to see the error).
pub struct LockedHeap<B: HeapBackend>(Mutex<Option<Heap<B>>>);

impl<B: HeapBackend> LockedHeap<B> {
    /// A locked heap with no heap yet.
    pub const fn empty() -> Self {
        Self(Mutex::new(None))
    }

    /// Installs `heap`, returning the previous one (if any).
    pub fn init(&self, heap: Heap<B>) -> Option<Heap<B>> {
        self.0.lock().replace(heap)
    }

    /// Locks the heap for direct use (statistics, `validate`, typed errors).
    pub fn lock(&self) -> MutexGuard<'_, Option<Heap<B>>> {
        self.0.lock()
    }
}

impl<B: HeapBackend> Default for LockedHeap<B> {
    fn default() -> Self {
        Self::empty()
    }
}

// SAFETY: every method goes through `Heap`, whose blocks are distinct live
// memory (the heap's invariants), aligned as the layout asks, and at least
// `layout.size()` bytes long; the lock serializes all access.
unsafe impl<B: HeapBackend + Send> GlobalAlloc for LockedHeap<B> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.0.lock().as_mut() {
            Some(heap) => heap
                .alloc(layout.size(), layout.align())
                .map_or(ptr::null_mut(), NonNull::as_ptr),
            None => ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        if let (Some(heap), Some(p)) = (self.0.lock().as_mut(), NonNull::new(ptr)) {
            // A refused free leaves the heap intact; nothing to report through
            // this interface.
            let _ = heap.free(p);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (self.0.lock().as_mut(), NonNull::new(ptr)) {
            (Some(heap), Some(p)) => heap
                .realloc(p, new_size, layout.align())
                .map_or(ptr::null_mut(), NonNull::as_ptr),
            _ => ptr::null_mut(),
        }
    }
}
