//! # myos-abi — the numbers C and user space see
//!
//! The core (`myos-mm`) speaks Rust: [`Prot`](myos_mm::vm::Prot) and
//! [`MapFlags`](myos_mm::vm::MapFlags), a typed
//! [`MapRequest`](myos_mm::vm::MapRequest), `Result<_, MmError>`. This
//! crate is where those meet the integers of the spec's C API
//! (`include/myos/memory.h`) and of a kernel's system calls, with one
//! definition of each number:
//!
//! - [`mman`]: `PROT_*`, `MAP_*` and the page-fault error-code bits `ERR_*`;
//! - [`errno`]: the errno values, the mapping from [`MmError`](myos_mm::MmError)
//!   ([`Errno`]), and the codes only a system-call layer returns;
//! - [`signal`]: signal numbers and the number of a fault's
//!   [`Signal`](myos_mm::vm::Signal);
//! - [`raw`]: the spec's raw `mmap(addr, length, prot, flags, fd, offset)`
//!   and `mprotect`, validating integers into the typed request
//!   ([`RawMman`]);
//! - [`memfs`]: [`MemFs`], the in-memory file system behind the kernel's
//!   `open`, the C API's memory files, the tests and the fuzz targets.
//!
//! `myos-capi` and a kernel's syscall layer both use it; it exports no
//! symbols, so host tests and fuzz targets can link it too.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod errno;
pub mod memfs;
pub mod mman;
pub mod raw;
pub mod signal;

pub use errno::Errno;
pub use memfs::{MemFile, MemFs};
pub use mman::*;
pub use raw::{map_request, RawMman};
