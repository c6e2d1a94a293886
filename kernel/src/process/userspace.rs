//! [`UserSpace`]: a process's address space in the paging mode the kernel
//! booted in. The core's `VmSpace` takes the mode as a type parameter; the
//! kernel picks it at boot, so a process holds one of the two
//! instantiations and every call goes to the one it holds. Each method is
//! one `match` that calls the same core method in both arms.

use alloc::vec::Vec;

use myos_abi::RawMman;
use myos_mm::paging::{Classic, Pae, SpaceCpus};
use myos_mm::vm::{
    FaultOutcome, FaultStats, FdTable, MapRequest, PageFault, Prot, RegionInfo, VmSpace,
};
use myos_mm::{MmError, PhysAddr, VirtAddr};

use crate::mm::{self, with_kernel_space, UserFrames, PLATFORM};
use crate::platform::X86Platform;

/// A process's user address space.
pub enum UserSpace {
    /// Classic two-level paging (no NX: every readable page executes).
    Classic(VmSpace<'static, X86Platform, UserFrames, Classic>),
    /// PAE paging (NX on every page mapped without `PROT_EXEC`).
    Pae(VmSpace<'static, X86Platform, UserFrames, Pae>),
}

/// Runs `$body` with `$vm` bound to the space of either mode.
macro_rules! on_vm {
    ($self:expr, |$vm:ident| $body:expr) => {
        match $self {
            UserSpace::Classic($vm) => $body,
            UserSpace::Pae($vm) => $body,
        }
    };
}

impl UserSpace {
    /// A new, empty user space sharing the kernel half, in the kernel's mode.
    pub fn new() -> Result<Self, MmError> {
        let mm = mm::get();
        with_kernel_space!(mm, |kernel| {
            let kernel = kernel.lock();
            VmSpace::new(&PLATFORM, mm::user_frames(), &kernel).map(Into::into)
        })
    }

    /// `VmSpace::map`.
    pub fn map(&mut self, req: &MapRequest) -> Result<VirtAddr, MmError> {
        on_vm!(self, |vm| vm.map(req))
    }

    /// `VmSpace::map_stack`.
    pub fn map_stack(&mut self, top: VirtAddr, size: u32, max: u32) -> Result<VirtAddr, MmError> {
        on_vm!(self, |vm| vm.map_stack(top, size, max))
    }

    /// `VmSpace::protect`.
    pub fn protect(&mut self, addr: VirtAddr, length: u32, prot: Prot) -> Result<(), MmError> {
        on_vm!(self, |vm| vm.protect(addr, length, prot))
    }

    /// `VmSpace::munmap`.
    pub fn munmap(&mut self, addr: VirtAddr, length: u32) -> Result<(), MmError> {
        on_vm!(self, |vm| vm.munmap(addr, length))
    }

    /// `VmSpace::copy_to_user`.
    pub fn copy_to_user(&mut self, dst: VirtAddr, src: &[u8]) -> Result<(), MmError> {
        on_vm!(self, |vm| vm.copy_to_user(dst, src))
    }

    /// `VmSpace::copy_from_user`.
    pub fn copy_from_user(&mut self, src: VirtAddr, dst: &mut [u8]) -> Result<(), MmError> {
        on_vm!(self, |vm| vm.copy_from_user(src, dst))
    }

    /// `VmSpace::handle_fault`.
    pub fn handle_fault(&mut self, fault: PageFault) -> FaultOutcome {
        on_vm!(self, |vm| vm.handle_fault(fault))
    }

    /// `VmSpace::fork`: the child, in the same mode.
    pub fn fork(&mut self) -> Result<Self, MmError> {
        on_vm!(self, |vm| vm.fork().map(Into::into))
    }

    /// `VmSpace::fault_stats`.
    pub fn fault_stats(&self) -> FaultStats {
        on_vm!(self, |vm| vm.fault_stats())
    }

    /// `VmSpace::resident_pages`.
    pub fn resident_pages(&self) -> usize {
        on_vm!(self, |vm| vm.resident_pages())
    }

    /// The regions, in address order (`VmSpace::regions`, collected).
    pub fn regions(&self) -> Vec<RegionInfo> {
        on_vm!(self, |vm| vm.regions().collect())
    }

    /// Where `va` is mapped now (`AddressSpace::translate`).
    pub fn translate(&self, va: VirtAddr) -> Option<PhysAddr> {
        on_vm!(self, |vm| vm.address_space().translate(&PLATFORM, va))
    }

    /// The handle on the set of CPUs that may cache the space.
    pub fn cpus(&self) -> SpaceCpus {
        on_vm!(self, |vm| vm.address_space().cpus())
    }
}

impl From<VmSpace<'static, X86Platform, UserFrames, Classic>> for UserSpace {
    fn from(vm: VmSpace<'static, X86Platform, UserFrames, Classic>) -> Self {
        UserSpace::Classic(vm)
    }
}

impl From<VmSpace<'static, X86Platform, UserFrames, Pae>> for UserSpace {
    fn from(vm: VmSpace<'static, X86Platform, UserFrames, Pae>) -> Self {
        UserSpace::Pae(vm)
    }
}

impl RawMman for UserSpace {
    fn mmap(
        &mut self,
        fds: &FdTable,
        addr: VirtAddr,
        length: u32,
        prot: u32,
        flags: u32,
        fd: i32,
        offset: u32,
    ) -> Result<VirtAddr, MmError> {
        on_vm!(self, |vm| vm
            .mmap(fds, addr, length, prot, flags, fd, offset))
    }

    fn mprotect(&mut self, addr: VirtAddr, length: u32, prot: u32) -> Result<(), MmError> {
        on_vm!(self, |vm| vm.mprotect(addr, length, prot))
    }
}
