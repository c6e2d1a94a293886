//! Shared harness of the `vm_*` tests: a simulated machine, a locked frame
//! allocator, the kernel space, and accesses that go through the sim's MMU
//! with the core's fault handler servicing the faults.
#![allow(dead_code)]

use myos_mm::frames::{FrameAllocator, FrameStats};
use myos_mm::paging::AddressSpace;
use myos_mm::vm::{FaultOutcome, PageFault, VmSpace};
use myos_mm::{PhysAddr, VirtAddr};
use myos_sim::{FaultError, Mode, SimMachine};
use spin::Mutex;

#[allow(unused_imports)]
pub use myos_sim::Mode::{Supervisor as S, User as U};

/// The user address space type of the tests.
pub type Vm<'a> = VmSpace<'a, SimMachine, &'a Mutex<FrameAllocator>>;

pub const MIB: u64 = 1 << 20;
pub const PAGE: u32 = 4096;

/// One simulated machine with the memory manager on it.
pub struct World {
    pub m: SimMachine,
    pub fa: Mutex<FrameAllocator>,
    pub kernel: Option<AddressSpace>,
    /// Frame counts with only the kernel space built.
    pub base: FrameStats,
    /// Frame counts before anything was built.
    pub boot: FrameStats,
}

impl World {
    pub fn new(ram: u64) -> World {
        let m = SimMachine::new(ram).unwrap();
        let map = m.memory_map().to_vec();
        // SAFETY: the allocator lives next to the machine in `World` and is
        // dropped with it; the RAM buffer does not move with the machine.
        let mut fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
        let boot = fa.stats();
        let kernel =
            AddressSpace::new_kernel(&m, &mut fa, PhysAddr::new(ram.min(3 << 30) as u32)).unwrap();
        kernel.activate(&m);
        let base = fa.stats();
        World {
            m,
            fa: Mutex::new(fa),
            kernel: Some(kernel),
            base,
            boot,
        }
    }

    /// A fresh user space (not loaded).
    pub fn space(&self) -> Vm<'_> {
        VmSpace::new(&self.m, &self.fa, self.kernel.as_ref().unwrap()).unwrap()
    }

    /// Frame counts now.
    pub fn stats(&self) -> FrameStats {
        self.fa.lock().stats()
    }

    /// Frames in use beyond the baseline.
    pub fn used(&self) -> i64 {
        i64::from(self.stats().used) - i64::from(self.base.used)
    }

    /// Checks every frame is back (all user spaces must be gone), then tears
    /// the kernel space down and checks again.
    pub fn finish(mut self) {
        assert_eq!(self.stats(), self.base, "frames leaked by user spaces");
        self.fa.lock().validate().unwrap();
        let k = self.kernel.take().unwrap();
        // Load a directory that is not the kernel's (frame 0 may be it).
        self.m.set_cr3((self.m.ram_bytes() - 4096) as u32);
        // SAFETY: every user space of the test is gone.
        unsafe { k.destroy_kernel(&self.m, &mut *self.fa.lock()) };
        assert_eq!(self.stats(), self.boot);
    }

    /// Runs `op` on the machine with `vm` loaded, servicing faults with
    /// `vm`'s handler and retrying, as the CPU restarts an instruction.
    /// An unresolved fault gives the handler's outcome.
    pub fn run<T>(
        &self,
        vm: &mut Vm<'_>,
        op: impl FnMut(&SimMachine) -> Result<T, myos_sim::PageFault>,
    ) -> Result<T, FaultOutcome> {
        if !vm.is_active() {
            vm.activate();
        }
        let mut last = None;
        let r = self.m.run_with_faults(16, op, |f| {
            let o = vm.handle_fault(PageFault::new(f.cr2, f.error_code));
            last = Some(o);
            matches!(o, FaultOutcome::Resolved(_))
        });
        match r {
            Ok(v) => Ok(v),
            Err(FaultError::Unhandled(_)) => Err(last.unwrap()),
            Err(FaultError::TooManyFaults(f)) => panic!("fault loop at {f:?}"),
        }
    }

    pub fn read_u32(&self, vm: &mut Vm<'_>, va: VirtAddr, mode: Mode) -> Result<u32, FaultOutcome> {
        self.run(vm, |m| m.read_u32(va.as_u32(), mode))
    }

    pub fn write_u32(
        &self,
        vm: &mut Vm<'_>,
        va: VirtAddr,
        v: u32,
        mode: Mode,
    ) -> Result<(), FaultOutcome> {
        self.run(vm, |m| m.write_u32(va.as_u32(), v, mode))
    }

    pub fn read_bytes(
        &self,
        vm: &mut Vm<'_>,
        va: VirtAddr,
        len: usize,
        mode: Mode,
    ) -> Result<Vec<u8>, FaultOutcome> {
        let mut buf = vec![0u8; len];
        self.run(vm, |m| m.read_bytes(va.as_u32(), &mut buf, mode))?;
        Ok(buf)
    }

    pub fn write_bytes(
        &self,
        vm: &mut Vm<'_>,
        va: VirtAddr,
        data: &[u8],
        mode: Mode,
    ) -> Result<(), FaultOutcome> {
        self.run(vm, |m| m.write_bytes(va.as_u32(), data, mode))
    }

    pub fn fetch(&self, vm: &mut Vm<'_>, va: VirtAddr, mode: Mode) -> Result<u8, FaultOutcome> {
        self.run(vm, |m| m.fetch(va.as_u32(), mode))
    }
}

/// `va + off`.
pub fn at(va: VirtAddr, off: u32) -> VirtAddr {
    VirtAddr::new(va.as_u32() + off)
}
