//! # myos-capi — the spec's C memory API over the Rust core
//!
//! `include/myos/memory.h` declares every type, function and constant of
//! `spec/memory-api.md`; this crate defines the functions as a thin
//! `extern "C"` layer over [`myos_mm`]: it converts arguments (raw `u32`
//! addresses into typed ones, C handles into the core's objects), calls the
//! core, and maps errors to the errno-style value `mm_errno()` reports. The
//! numbers (`PROT_*`, `MAP_*`, the `MM_E*` codes and the mapping of each
//! core error to one, the raw `mmap` arguments) are [`myos_abi`]'s, shared
//! with a kernel's system calls. The semantics the spec leaves open are
//! decided and documented in the header.
//!
//! The crate is also the composition root for C code: it holds, in
//! `spin::Once` statics, the pieces one machine's memory manager is made of
//! (the platform, the frame allocator, the kernel address space, the kernel
//! heap, the current process's VM space). Two ways in:
//!
//! - **In the kernel** (`no_std`, i686): the kernel registers what it has
//!   built with [`register_parts`] (or lets this crate build it with
//!   [`register`]; [`register_parts_pae`] and [`register_pae`] for a kernel
//!   in PAE paging, where C code uses `page64_t`), optionally its heap with [`register_kernel_heap`], and a
//!   console writer with [`register_console`]; then C code linked into the
//!   kernel calls the spec's functions by their names.
//! - **On the host** (feature `hosted`): `myos_sim_boot()` boots a simulated
//!   i386 (crate `myos-sim`) and registers it; see the `hosted` module for how
//!   simulated virtual addresses become real host addresses so C code can
//!   dereference what `kmalloc` and `mmap` return.
//!
//! Nothing here panics on bad input from C: every entry point validates its
//! arguments (NULL, unknown handles, ranges) and reports failures through
//! `mm_errno()`.
#![cfg_attr(not(any(test, feature = "hosted")), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::missing_safety_doc)]

extern crate alloc;

pub mod console;
pub mod dir;
pub mod errno;
pub mod heap;
pub mod layout;
pub mod paging;
pub mod state;
pub mod vm;

#[cfg(feature = "hosted")]
pub mod hosted;

pub use console::register_console;
pub use errno::{mm_errno, Failure};
pub use heap::{register_kernel_heap, HeapOps};
pub use state::{
    is_registered, paging, register, register_pae, register_parts, register_parts_pae, Paging, Plat,
};
pub use vm::{handle_page_fault, set_fault};
