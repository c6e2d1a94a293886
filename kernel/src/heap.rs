//! The kernel heap as the global allocator.
//!
//! Until the core's heap lands this allocator refuses every request (the
//! kernel does not allocate yet), so the `alloc` crate the core links against
//! has an allocator to call.

use core::alloc::{GlobalAlloc, Layout};

/// The global allocator.
pub struct KernelHeap;

// SAFETY: never hands out memory, so it cannot hand out overlapping blocks.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap;
