//! Shared harness of the `vm_*` tests: [`myos_sim::World`] (a simulated
//! machine, a locked frame allocator, the kernel space, and accesses that go
//! through the sim's MMU with the core's fault handler servicing the
//! faults), plus a few constants and helpers.
#![allow(dead_code)]

use myos_mm::VirtAddr;

#[allow(unused_imports)]
pub use myos_sim::Mode::{Supervisor as S, User as U};
#[allow(unused_imports)]
pub use myos_sim::{Vm, World};

pub const MIB: u64 = 1 << 20;
pub const PAGE: u32 = 4096;

/// `va + off`.
pub fn at(va: VirtAddr, off: u32) -> VirtAddr {
    VirtAddr::new(va.as_u32() + off)
}
