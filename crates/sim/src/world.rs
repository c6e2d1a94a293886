//! [`World`]: a simulated machine with the memory manager on it — the
//! harness the core's address-space tests, the fuzz targets and the
//! benchmarks share.
//!
//! It owns the machine, a locked frame allocator over its RAM and the kernel
//! address space, remembers the frame counts before and after the kernel
//! space was built (so [`World::finish`] can check that everything came
//! back), and runs accesses through the MMU with a [`VmSpace`]'s fault
//! handler servicing the faults, as the CPU restarts a faulting instruction.
//!
//! ```
//! use myos_abi::{RawMman, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
//! use myos_mm::vm::FdTable;
//! use myos_mm::VirtAddr;
//! use myos_sim::{Mode, World};
//!
//! let w = World::new(16 << 20);
//! let mut vm = w.space();
//! let fds = FdTable::new();
//! let a = vm
//!     .mmap(&fds, VirtAddr::new(0), 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
//!     .unwrap();
//! // The write faults; the handler maps a zeroed page; the write is retried.
//! w.write_u32(&mut vm, a, 7, Mode::User).unwrap();
//! assert_eq!(w.read_u32(&mut vm, a, Mode::User), Ok(7));
//! vm.destroy();
//! w.finish();
//! ```

use myos_mm::frames::{FrameAllocator, FrameStats};
use myos_mm::paging::AddressSpace;
use myos_mm::vm::{FaultContext, FaultOutcome, PageFault as CoreFault, VmSpace};
use myos_mm::{PhysAddr, VirtAddr};
use spin::Mutex;

use crate::{FaultError, Mode, PageFault, SimMachine};

/// A user address space of a [`World`].
pub type Vm<'a> = VmSpace<'a, SimMachine, &'a Mutex<FrameAllocator>>;

/// Most faults one access may take before [`World::run`] calls it a loop
/// (an access touches at most a few pages, each faulting at most twice).
const MAX_FAULTS: usize = 16;

/// One simulated machine with the memory manager on it.
pub struct World {
    /// The machine.
    pub m: SimMachine,
    /// The frame allocator over its RAM.
    pub fa: Mutex<FrameAllocator>,
    /// The kernel address space (taken by [`World::finish`]).
    pub kernel: Option<AddressSpace>,
    /// Frame counts with only the kernel space built.
    pub base: FrameStats,
    /// Frame counts before anything was built.
    pub boot: FrameStats,
}

impl World {
    /// A machine with `ram` bytes, a frame allocator over it and a kernel
    /// space (direct map of up to 3 GiB) loaded.
    ///
    /// # Panics
    /// When the machine, the allocator or the kernel space can't be built
    /// (`ram` too small or beyond [`crate::MAX_RAM`]): this is a test harness.
    pub fn new(ram: u64) -> World {
        let m = SimMachine::new(ram).expect("simulated machine");
        let map = m.memory_map().to_vec();
        // SAFETY: the allocator lives next to the machine in `World` and is
        // dropped with it; the RAM buffer does not move with the machine.
        let mut fa = unsafe { FrameAllocator::new(&m, &map) }.expect("frame allocator");
        let boot = fa.stats();
        let direct = PhysAddr::new(ram.min(3 << 30) as u32);
        let kernel = AddressSpace::new_kernel(&m, &mut fa, direct).expect("kernel space");
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
    ///
    /// # Panics
    /// When there is no frame left for its page directory.
    pub fn space(&self) -> Vm<'_> {
        let kernel = self.kernel.as_ref().expect("kernel space");
        VmSpace::new(&self.m, &self.fa, kernel).expect("new user space")
    }

    /// Frame counts now.
    pub fn stats(&self) -> FrameStats {
        self.fa.lock().stats()
    }

    /// Frames in use beyond the baseline (negative if below it).
    pub fn used(&self) -> i64 {
        i64::from(self.stats().used) - i64::from(self.base.used)
    }

    /// Checks that every frame is back (all user spaces must be gone) and
    /// the allocator is consistent, then tears the kernel space down and
    /// checks again.
    ///
    /// # Panics
    /// On a leaked frame or an inconsistent allocator: that is what it checks.
    pub fn finish(mut self) {
        assert_eq!(self.stats(), self.base, "frames leaked by user spaces");
        self.fa.lock().validate().expect("frame allocator");
        let k = self.kernel.take().expect("kernel space");
        // Load a directory that is not the kernel's (frame 0 may be it).
        self.m.set_cr3((self.m.ram_bytes() - 4096) as u32);
        // SAFETY: every user space of this world is gone (checked above:
        // their frames are all back), so nothing refers to the kernel space.
        unsafe { k.destroy_kernel(&self.m, &mut *self.fa.lock()) };
        assert_eq!(self.stats(), self.boot, "kernel space leaked");
    }

    /// Runs `op` on the machine with `vm` loaded, servicing faults with
    /// `vm`'s handler and retrying, as the CPU restarts an instruction. An
    /// unresolved fault gives the handler's outcome. Each fault reaches the
    /// handler with the machine's CR4.SMEP, CR4.SMAP and EFLAGS.AC as its
    /// context, as the kernel's trap handler passes them.
    ///
    /// # Panics
    /// When `op` keeps faulting although the handler resolves every fault
    /// (a core bug: the handler claims a fix it didn't make).
    pub fn run<T>(
        &self,
        vm: &mut Vm<'_>,
        op: impl FnMut(&SimMachine) -> Result<T, PageFault>,
    ) -> Result<T, FaultOutcome> {
        if !vm.is_active() {
            vm.activate();
        }
        let mut last = None;
        // What the CPU knows besides the error code: SMEP, SMAP and AC.
        let context = FaultContext::new(self.m.smep(), self.m.smap(), self.m.ac());
        let r = self.m.run_with_faults(MAX_FAULTS, op, |f| {
            let fault = CoreFault::new(f.cr2, f.error_code).with_context(context);
            let o = vm.handle_fault(fault);
            last = Some(o);
            matches!(o, FaultOutcome::Resolved(_))
        });
        match r {
            Ok(v) => Ok(v),
            Err(FaultError::Unhandled(_)) => Err(last.expect("the handler's outcome")),
            Err(FaultError::TooManyFaults(f)) => panic!("fault loop at {f:?}"),
        }
    }

    /// Reads a `u32` at `va` (see [`World::run`]).
    pub fn read_u32(&self, vm: &mut Vm<'_>, va: VirtAddr, mode: Mode) -> Result<u32, FaultOutcome> {
        self.run(vm, |m| m.read_u32(va.as_u32(), mode))
    }

    /// Writes a `u32` at `va` (see [`World::run`]).
    pub fn write_u32(
        &self,
        vm: &mut Vm<'_>,
        va: VirtAddr,
        v: u32,
        mode: Mode,
    ) -> Result<(), FaultOutcome> {
        self.run(vm, |m| m.write_u32(va.as_u32(), v, mode))
    }

    /// Reads `len` bytes at `va` (see [`World::run`]).
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

    /// Writes `data` at `va` (see [`World::run`]).
    pub fn write_bytes(
        &self,
        vm: &mut Vm<'_>,
        va: VirtAddr,
        data: &[u8],
        mode: Mode,
    ) -> Result<(), FaultOutcome> {
        self.run(vm, |m| m.write_bytes(va.as_u32(), data, mode))
    }

    /// Fetches an instruction byte at `va` (see [`World::run`]).
    pub fn fetch(&self, vm: &mut Vm<'_>, va: VirtAddr, mode: Mode) -> Result<u8, FaultOutcome> {
        self.run(vm, |m| m.fetch(va.as_u32(), mode))
    }
}
