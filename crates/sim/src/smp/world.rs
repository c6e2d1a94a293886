//! [`SmpWorld`]: the memory manager on an [`SmpMachine`] — a frame
//! allocator over its RAM, the kernel space loaded on every CPU, user spaces
//! whose platform is one CPU's handle, and the checker wired to the
//! allocator.
//!
//! Its frame source ([`GatherFrames`]) can put released frames aside
//! instead of freeing them ([`SmpWorld::defer_frees`]), so a test can play
//! the protocol of `docs/smp.md` around today's core: change the tables
//! (the core "frees" into the gather), shoot down, then
//! [`release_deferred`](SmpWorld::release_deferred) — or release too early
//! and watch the checker object.
//!
//! ```
//! use myos_abi::{RawMman, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
//! use myos_mm::vm::FdTable;
//! use myos_mm::VirtAddr;
//! use myos_sim::smp::world::SmpWorld;
//! use myos_sim::Mode;
//!
//! let w = SmpWorld::new(16 << 20, 2);
//! let mut vm = w.space(0);
//! let a = vm
//!     .mmap(&FdTable::new(), VirtAddr::new(0), 4096, PROT_READ | PROT_WRITE,
//!           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
//!     .unwrap();
//! w.write_u32(0, &mut vm, a.as_u32(), 7).unwrap();
//! w.cpu(1).set_cr3(vm.directory().start().as_u32());
//! assert_eq!(w.cpu(1).read_u32(a.as_u32(), Mode::User), Ok(7));
//! assert!(w.check().is_ok());
//! vm.destroy();
//! w.finish();
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use myos_mm::frames::{FrameAllocator, FrameRun, FrameSource, FrameStats, OwnedFrame, Zone};
use myos_mm::paging::AddressSpace;
use myos_mm::vm::{FaultOutcome, PageFault as CoreFault, VmSpace};
use myos_mm::{Frame, MmError, PhysAddr};
use spin::Mutex as SpinMutex;

use super::{CpuHandle, Delivery, SmpConfig, SmpMachine, Violation};
use crate::{Mode, PageFault};

/// Frames the core released while deferral was on, not yet freed.
#[derive(Debug, Default)]
pub struct Gather {
    on: AtomicBool,
    held: Mutex<Vec<OwnedFrame>>,
}

/// The frame source of an [`SmpWorld`]'s spaces: the allocator, except that
/// while deferral is on a release that would free a frame puts it in the
/// [`Gather`] instead.
#[derive(Clone, Copy)]
pub struct GatherFrames<'a> {
    fa: &'a SpinMutex<FrameAllocator>,
    gather: &'a Gather,
}

impl std::fmt::Debug for GatherFrames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatherFrames")
            .field("gather", self.gather)
            .finish_non_exhaustive()
    }
}

impl FrameSource for GatherFrames<'_> {
    fn alloc(&mut self, zone: Zone) -> Result<OwnedFrame, MmError> {
        self.fa.lock().alloc(zone)
    }
    fn alloc_contiguous(
        &mut self,
        count: u32,
        align_log2: u32,
        zone: Zone,
    ) -> Result<FrameRun, MmError> {
        self.fa.lock().alloc_contiguous(count, align_log2, zone)
    }
    fn share(&mut self, frame: Frame) -> Result<OwnedFrame, MmError> {
        self.fa.lock().share(frame)
    }
    fn release(&mut self, frame: OwnedFrame) -> Result<bool, MmError> {
        let mut fa = self.fa.lock();
        if self.gather.on.load(Ordering::Relaxed) && fa.refcount(frame.frame())? == 1 {
            self.gather
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(frame);
            return Ok(true);
        }
        fa.release(frame)
    }
    fn refcount(&self, frame: Frame) -> Result<u16, MmError> {
        self.fa.lock().refcount(frame)
    }
}

/// A user address space of an [`SmpWorld`], run by one CPU's handle.
pub type SmpVm<'a> = VmSpace<'a, CpuHandle, GatherFrames<'a>>;

/// Most faults one access may take before [`SmpWorld::run_on`] calls it a loop.
const MAX_FAULTS: usize = 16;

/// The memory manager on an N-CPU machine.
pub struct SmpWorld {
    /// The machine.
    pub machine: Arc<SmpMachine>,
    cpus: Vec<CpuHandle>,
    /// The frame allocator over its RAM (also the checker's oracle).
    pub fa: Arc<SpinMutex<FrameAllocator>>,
    gather: Gather,
    /// The kernel address space, locked as the kernel locks it.
    kernel: SpinMutex<AddressSpace>,
    /// Frame counts with only the kernel space built.
    pub base: FrameStats,
}

impl std::fmt::Debug for SmpWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmpWorld")
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

impl SmpWorld {
    /// `cpus` CPUs and `ram` bytes, deterministic delivery.
    ///
    /// # Panics
    /// When the machine, the allocator or the kernel space can't be built.
    pub fn new(ram: u64, cpus: usize) -> SmpWorld {
        Self::with_config(SmpConfig::new(ram, cpus))
    }

    /// `cpus` CPUs and `ram` bytes, threaded delivery (each host thread one
    /// CPU).
    pub fn threaded(ram: u64, cpus: usize) -> SmpWorld {
        Self::with_config(SmpConfig::new(ram, cpus).delivery(Delivery::Threaded))
    }

    /// A world on a machine built from `config`; the kernel space is loaded
    /// on every CPU and the checker's oracle is the frame allocator.
    ///
    /// # Panics
    /// As [`new`](Self::new).
    pub fn with_config(config: SmpConfig) -> SmpWorld {
        let machine = config.build().expect("simulated machine");
        let cpus: Vec<CpuHandle> = (0..machine.cpu_count()).map(|n| machine.cpu(n)).collect();
        let map = machine.memory_map().to_vec();
        // SAFETY: the usable regions are the machine's RAM, used by nothing
        // but this world. The allocator keeps pointers into that RAM, which
        // lives as long as any handle of the machine: the world holds
        // `machine` and the handles, and the allocator's other owner is the
        // machine's own oracle, dropped with the machine.
        let mut fa = unsafe { FrameAllocator::new(&cpus[0], &map) }.expect("frame allocator");
        let direct = PhysAddr::new(machine.ram_bytes().min(3 << 30) as u32);
        let kernel = AddressSpace::new_kernel(&cpus[0], &mut fa, direct).expect("kernel space");
        for c in &cpus {
            kernel.activate(c);
        }
        let base = fa.stats();
        let fa = Arc::new(SpinMutex::new(fa));
        let oracle = Arc::clone(&fa);
        machine.set_free_frame_oracle(Arc::new(move |f| oracle.lock().refcount(f) == Ok(0)));
        SmpWorld {
            machine,
            cpus,
            fa,
            gather: Gather::default(),
            kernel: SpinMutex::new(kernel),
            base,
        }
    }

    /// CPU `n`'s handle.
    pub fn cpu(&self, n: usize) -> &CpuHandle {
        &self.cpus[n]
    }

    /// A fresh user space whose platform is CPU `cpu` (its operations flush
    /// that CPU; it is not loaded anywhere yet).
    ///
    /// # Panics
    /// When there is no frame left for its directory.
    pub fn space(&self, cpu: usize) -> SmpVm<'_> {
        let kernel = self.kernel.lock();
        VmSpace::new(&self.cpus[cpu], self.frames(), &kernel).expect("new user space")
    }

    /// The kernel address space and its lock (the kernel heap's backend
    /// maps into it; its kernel-half tables are every space's).
    pub fn kernel(&self) -> &SpinMutex<AddressSpace> {
        &self.kernel
    }

    /// The frame source the spaces use.
    pub fn frames(&self) -> GatherFrames<'_> {
        GatherFrames {
            fa: &self.fa,
            gather: &self.gather,
        }
    }

    /// Whether `frame` is free in the allocator.
    pub fn is_free(&self, frame: Frame) -> bool {
        self.fa.lock().refcount(frame) == Ok(0)
    }

    /// Runs the checker (see [`SmpMachine::check`]).
    pub fn check(&self) -> Result<(), Vec<Violation>> {
        self.machine.check()
    }

    /// While on, frames the core releases for the last time are put aside
    /// instead of freed.
    pub fn defer_frees(&self, on: bool) {
        self.gather.on.store(on, Ordering::Relaxed);
    }

    /// Frees the frames put aside; returns how many.
    pub fn release_deferred(&self) -> usize {
        let held = std::mem::take(
            &mut *self
                .gather
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let count = held.len();
        let mut fa = self.fa.lock();
        for f in held {
            let frame = f.frame();
            let r = fa.release(f);
            assert_eq!(r, Ok(true), "deferred {frame:?} had another owner");
        }
        count
    }

    /// Frames put aside and not yet freed.
    pub fn deferred(&self) -> Vec<Frame> {
        self.gather
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(OwnedFrame::frame)
            .collect()
    }

    /// Runs `op` on CPU `cpu` with `vm` loaded there (CR3 loaded if it is
    /// not), servicing faults with `vm`'s handler (which runs the core on
    /// `vm`'s own CPU) and retrying, all under the machine lock.
    ///
    /// # Panics
    /// On a fault loop (a handler that claims a fix it didn't make).
    pub fn run_on<'w, T>(
        &'w self,
        cpu: usize,
        vm: &mut SmpVm<'w>,
        mut op: impl FnMut(&CpuHandle) -> Result<T, PageFault>,
    ) -> Result<T, FaultOutcome> {
        let c = &self.cpus[cpu];
        c.exclusive(|| {
            // The core now runs on this CPU: its flushes and `cpu_id` are
            // this CPU's.
            vm.set_platform(c);
            let dir = vm.directory().start().as_u32();
            if c.cr3() != dir || !vm.address_space().cpu_set(c).contains(c.id()) {
                vm.address_space().activate(c);
            }
            let mut faults = 0;
            loop {
                match op(c) {
                    Ok(v) => return Ok(v),
                    Err(f) => {
                        assert!(faults < MAX_FAULTS, "fault loop at {f:?}");
                        faults += 1;
                        match vm.handle_fault(CoreFault::new(f.cr2, f.error_code)) {
                            FaultOutcome::Resolved(_) => {}
                            o => return Err(o),
                        }
                    }
                }
            }
        })
    }

    /// Runs `f` on `vm` as CPU `cpu` (the space's platform becomes that
    /// CPU's handle) under the machine lock: a system call (munmap,
    /// mprotect, fork...) made on that CPU.
    pub fn on_cpu<'w, T>(
        &'w self,
        cpu: usize,
        vm: &mut SmpVm<'w>,
        f: impl FnOnce(&mut SmpVm<'w>) -> T,
    ) -> T {
        let c = &self.cpus[cpu];
        c.exclusive(|| {
            vm.set_platform(c);
            f(vm)
        })
    }

    /// Loads `vm` on CPU `cpu` the way a context switch does: the CPU
    /// joins the space's CPU set, then loads CR3.
    pub fn load<'w>(&'w self, cpu: usize, vm: &SmpVm<'w>) {
        let c = &self.cpus[cpu];
        c.exclusive(|| vm.address_space().activate(c));
    }

    /// Switches CPU `cpu` back to the kernel space, leaving `vm`'s set.
    pub fn unload<'w>(&'w self, cpu: usize, vm: &SmpVm<'w>) {
        let c = &self.cpus[cpu];
        c.exclusive(|| self.kernel.lock().switch_from(vm.address_space(), c));
    }

    /// Reads a user `u32` on CPU `cpu` (see [`run_on`](Self::run_on)).
    pub fn read_u32<'w>(
        &'w self,
        cpu: usize,
        vm: &mut SmpVm<'w>,
        va: u32,
    ) -> Result<u32, FaultOutcome> {
        self.run_on(cpu, vm, |c| c.read_u32(va, Mode::User))
    }

    /// Writes a user `u32` on CPU `cpu` (see [`run_on`](Self::run_on)).
    pub fn write_u32<'w>(
        &'w self,
        cpu: usize,
        vm: &mut SmpVm<'w>,
        va: u32,
        v: u32,
    ) -> Result<(), FaultOutcome> {
        self.run_on(cpu, vm, |c| c.write_u32(va, v, Mode::User))
    }

    /// Frees the deferred frames, checks that every frame is back (all user
    /// spaces must be gone) and the allocator is consistent.
    ///
    /// # Panics
    /// On a leaked frame or an inconsistent allocator.
    pub fn finish(self) {
        self.release_deferred();
        let fa = self.fa.lock();
        assert_eq!(fa.stats(), self.base, "frames leaked by user spaces");
        fa.validate().expect("frame allocator");
    }
}
