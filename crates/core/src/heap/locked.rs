//! [`LockedHeap`]: a heap behind a spin lock, usable as the kernel's
//! `#[global_allocator]`.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use spin::{Mutex, MutexGuard};

use super::{prefetch_block, Heap, HeapBackend};

/// A [`Heap`] behind a spin lock, implementing [`GlobalAlloc`] so `Box`,
/// `Vec` and `BTreeMap` work in the kernel.
///
/// It starts empty (so it can be a `static`) and receives its heap with
/// [`LockedHeap::init`], which must run before the first allocation: an
/// allocation through [`GlobalAlloc`] before it panics with a message that
/// says so (the panic cannot unwind out of the allocator: where panics
/// unwind, the process aborts after the message).
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

/// Reports an allocation through a [`LockedHeap`] that has no heap yet.
///
/// `extern "C"`, so the panic cannot unwind into the allocator's caller
/// (`GlobalAlloc` implementations must not unwind): with `panic = "abort"`
/// (a kernel) the panic handler gets the message; where panics unwind, the
/// message is printed and the process aborts.
#[cold]
#[inline(never)]
extern "C" fn uninitialised() -> ! {
    panic!(
        "LockedHeap: allocation before LockedHeap::init (install the heap before the first Box, Vec or String)"
    )
}

// SAFETY: every method goes through `Heap`, whose blocks are distinct live
// memory (the heap's invariants), aligned as the layout asks, and at least
// `layout.size()` bytes long; the lock serializes all access.
unsafe impl<B: HeapBackend + Send> GlobalAlloc for LockedHeap<B> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut guard = self.0.lock();
        match guard.as_mut() {
            Some(heap) => heap
                .alloc(layout.size(), layout.align())
                .map_or(ptr::null_mut(), NonNull::as_ptr),
            None => {
                // Unlocked first: the panic machinery may allocate.
                drop(guard);
                uninitialised()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // The block's headers start loading while the lock is taken (what
        // `free_sized` would prefetch, and its own header too).
        prefetch_block(ptr, layout.size());
        if let (Some(heap), Some(p)) = (self.0.lock().as_mut(), NonNull::new(ptr)) {
            // A refused free leaves the heap intact; nothing to report through
            // this interface.
            let _ = heap.free(p);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        prefetch_block(ptr, layout.size());
        match (self.0.lock().as_mut(), NonNull::new(ptr)) {
            (Some(heap), Some(p)) => heap
                .realloc(p, new_size, layout.align())
                .map_or(ptr::null_mut(), NonNull::as_ptr),
            _ => ptr::null_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::alloc::{GlobalAlloc, Layout};
    use std::process::Command;

    use super::LockedHeap;
    use crate::heap::ArenaBackend;

    /// Set in the child process that performs the allocation.
    const CHILD: &str = "MYOS_MM_UNINIT_HEAP_CHILD";

    #[test]
    #[cfg_attr(miri, ignore = "spawns a process")]
    fn allocation_before_init_panics_with_a_clear_message() {
        if std::env::var_os(CHILD).is_some() {
            let locked: LockedHeap<ArenaBackend<'static>> = LockedHeap::empty();
            // SAFETY: a valid layout; the call panics and never returns.
            let p = unsafe { locked.alloc(Layout::new::<u64>()) };
            std::println!("alloc returned {p:p}");
            return;
        }
        // The panic aborts the process (it may not unwind out of an
        // allocator), so it is observed from a child test process.
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "heap::locked::tests::allocation_before_init_panics_with_a_clear_message",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = std::string::String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "the child survived: {out:?}");
        assert!(
            stderr.contains("LockedHeap: allocation before LockedHeap::init"),
            "no message naming the cause in: {stderr}"
        );
        assert!(!std::string::String::from_utf8_lossy(&out.stdout).contains("alloc returned"));
    }
}
