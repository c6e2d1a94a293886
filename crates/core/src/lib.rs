//! # myos-mm — the MyOS memory manager core
//!
//! A `no_std` implementation of the MyOS Memory Management API for 32-bit x86
//! (two-level paging, or PAE: [`paging::PagingMode`]). It knows nothing about
//! the machine it runs on: every access to hardware goes through the
//! [`Platform`] trait, implemented by
//! the reference kernel (real page tables, `mov cr3`, `invlpg`) and by the
//! `myos-sim` crate (a simulated MMU on the host).
//!
//! Modules, bottom up:
//! - [`addr`]: typed physical/virtual addresses, frames and pages;
//! - [`layout`]: every address constant of the virtual and physical layout;
//! - [`error`]: the [`MmError`] type every fallible call returns;
//! - [`platform`]: the hardware boundary;
//! - [`smp`]: CPU numbers and sets, and what a TLB shootdown asks of other CPUs;
//! - [`frames`]: the physical frame allocator with per-frame reference counts;
//! - [`paging`]: page-table entries, flags and address spaces;
//! - [`system`]: the pieces assembled for one machine (what a kernel keeps in a static);
//! - [`heap`]: the kernel heap (`kmalloc`/`kfree`), TLSF-class with integrity checks;
//! - [`vm`]: user address spaces: regions, mmap/munmap/mprotect, fork, and the
//!   page-fault handler (demand paging, copy-on-write, file mappings, stack growth).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod addr;
pub mod error;
pub mod frames;
pub mod heap;
pub mod layout;
pub mod lockorder;
pub mod paging;
pub mod platform;
pub mod smp;
pub mod system;
pub mod vm;

pub use addr::{Frame, Page, PhysAddr, VirtAddr};
pub use error::MmError;
pub use frames::OwnedFrame;
pub use platform::Platform;
