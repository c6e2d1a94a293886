//! The C handles of page directories — `page_directory_t`,
//! `kernel_directory`, `current_directory` — and which address space each
//! names (`Dir`). At the bottom of the C layer: `state`, `paging` and `vm`
//! all use it, and it uses none of them.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// `page_directory_t`: an opaque handle naming one address space.
#[repr(C)]
pub struct PageDirectory {
    id: u32,
}

/// The kernel directory's handle.
pub(crate) static KERNEL_DIR: PageDirectory = PageDirectory { id: 0 };
/// The C process's directory handle (see [`crate::vm`]).
pub(crate) static PROCESS_DIR: PageDirectory = PageDirectory { id: 1 };

/// `page_directory_t *kernel_directory`: the kernel address space's handle,
/// NULL until a platform is registered. (`AtomicPtr<T>` has the layout of
/// `T *`, so C reads it as a plain pointer variable.)
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static kernel_directory: AtomicPtr<PageDirectory> = AtomicPtr::new(ptr::null_mut());

/// `page_directory_t *current_directory`: the handle of the directory loaded
/// in CR3, NULL until `init_paging` (or the host boot) loads one.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static current_directory: AtomicPtr<PageDirectory> = AtomicPtr::new(ptr::null_mut());

/// Which address space a handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    /// The kernel address space.
    Kernel,
    /// The C process's space (its `VmSpace`).
    Process,
}

/// The C handle of `dir`.
pub(crate) fn handle(dir: Dir) -> *mut PageDirectory {
    let h = match dir {
        Dir::Kernel => &KERNEL_DIR,
        Dir::Process => &PROCESS_DIR,
    };
    ptr::from_ref(h).cast_mut()
}

/// The directory loaded now (the kernel's until something else is loaded).
pub(crate) fn current() -> Dir {
    if ptr::eq(current_directory.load(Ordering::Relaxed), &PROCESS_DIR) {
        Dir::Process
    } else {
        Dir::Kernel
    }
}

/// Publishes `kernel_directory` once a platform is registered.
pub(crate) fn publish_kernel_directory() {
    kernel_directory.store(handle(Dir::Kernel), Ordering::Relaxed);
}

/// Records that `dir` is loaded.
pub(crate) fn set_current(dir: Dir) {
    current_directory.store(handle(dir), Ordering::Relaxed);
}
