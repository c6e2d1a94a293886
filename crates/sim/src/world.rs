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
//! The machine is a [`WorldMachine`]: the classic [`SimMachine`] (the
//! default, with the core in classic paging mode) or the [`PaeMachine`]
//! (the core in PAE mode, RAM above 4 GiB, NX), so one test or model runs
//! in both modes.
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

use myos_mm::frames::{FrameAllocator, FrameStats, MemoryRegion, RegionKind};
use myos_mm::layout::PHYS_END;
use myos_mm::paging::{AddressSpace, Classic, Pae, PagingMode};
use myos_mm::vm::{FaultContext, FaultOutcome, PageFault as CoreFault, VmSpace};
use myos_mm::{PhysAddr, Platform, VirtAddr};
use spin::Mutex;

use crate::pae::PaeMachine;
use crate::{FaultError, Mode, PageFault, SimMachine};

/// A user address space of a [`World`] on machine `M`.
pub type Vm<'a, M = SimMachine> =
    VmSpace<'a, M, &'a Mutex<FrameAllocator>, <M as WorldMachine>::Paging>;

/// A simulated machine a [`World`] runs the core on, and the core's paging
/// mode there: [`SimMachine`] with [`Classic`], [`PaeMachine`] with [`Pae`].
pub trait WorldMachine: Platform + Sized {
    /// The core's paging mode on this machine.
    type Paging: PagingMode;
    /// The memory map the frame allocator is built from.
    fn world_memory_map(&self) -> Vec<MemoryRegion>;
    /// The physical end the allocator covers
    /// ([`FrameAllocator::new_below`]).
    fn phys_end(&self) -> u64;
    /// Bytes of RAM the kernel's direct map covers (from 0).
    fn direct_ram(&self) -> u64;
    /// Loads CR3 with an empty root (no process, no kernel space), before
    /// the kernel space is destroyed.
    fn park(&self);
    /// SMEP, SMAP and EFLAGS.AC, as a fault reports them.
    fn context(&self) -> FaultContext;
    /// Sets CR4.SMEP, CR4.SMAP and EFLAGS.AC from `cx`.
    fn set_context(&self, cx: FaultContext);
    /// True when EFER.NXE is on (PAE): fetches from no-execute pages fault
    /// and every fetch fault reports ERR_FETCH.
    fn nx(&self) -> bool;
    /// [`SimMachine::run_with_faults`].
    fn run_faults<T>(
        &self,
        max_faults: usize,
        op: impl FnMut(&Self) -> Result<T, PageFault>,
        handler: impl FnMut(PageFault) -> bool,
    ) -> Result<T, FaultError>;
    /// Reads a `u32` at `va`.
    fn read_u32_at(&self, va: u32, mode: Mode) -> Result<u32, PageFault>;
    /// Writes a `u32` at `va`.
    fn write_u32_at(&self, va: u32, v: u32, mode: Mode) -> Result<(), PageFault>;
    /// Reads bytes at `va`, page by page.
    fn read_bytes_at(&self, va: u32, buf: &mut [u8], mode: Mode) -> Result<(), PageFault>;
    /// Writes bytes at `va`, page by page.
    fn write_bytes_at(&self, va: u32, data: &[u8], mode: Mode) -> Result<(), PageFault>;
    /// Fetches one instruction byte at `va`.
    fn fetch_at(&self, va: u32, mode: Mode) -> Result<u8, PageFault>;
}

/// The access and CPU-state methods of [`WorldMachine`], forwarded to the
/// machine's inherent methods of the same meaning (both machines have them).
macro_rules! forward_accesses {
    () => {
        fn run_faults<T>(
            &self,
            max_faults: usize,
            op: impl FnMut(&Self) -> Result<T, PageFault>,
            handler: impl FnMut(PageFault) -> bool,
        ) -> Result<T, FaultError> {
            self.run_with_faults(max_faults, op, handler)
        }
        fn read_u32_at(&self, va: u32, mode: Mode) -> Result<u32, PageFault> {
            self.read_u32(va, mode)
        }
        fn write_u32_at(&self, va: u32, v: u32, mode: Mode) -> Result<(), PageFault> {
            self.write_u32(va, v, mode)
        }
        fn read_bytes_at(&self, va: u32, buf: &mut [u8], mode: Mode) -> Result<(), PageFault> {
            self.read_bytes(va, buf, mode)
        }
        fn write_bytes_at(&self, va: u32, data: &[u8], mode: Mode) -> Result<(), PageFault> {
            self.write_bytes(va, data, mode)
        }
        fn fetch_at(&self, va: u32, mode: Mode) -> Result<u8, PageFault> {
            self.fetch(va, mode)
        }
        fn context(&self) -> FaultContext {
            FaultContext::new(self.smep(), self.smap(), self.ac())
        }
        fn set_context(&self, cx: FaultContext) {
            self.set_smep(cx.smep);
            self.set_smap(cx.smap);
            self.set_ac(cx.ac);
        }
    };
}

impl WorldMachine for SimMachine {
    type Paging = Classic;
    fn world_memory_map(&self) -> Vec<MemoryRegion> {
        self.memory_map().to_vec()
    }
    fn phys_end(&self) -> u64 {
        PHYS_END
    }
    fn direct_ram(&self) -> u64 {
        self.ram_bytes().min(3 << 30)
    }
    fn park(&self) {
        // The last frame is above everything the world maps; classic CR3
        // loads check nothing.
        self.set_cr3((self.ram_bytes() - 4096) as u32);
    }
    fn nx(&self) -> bool {
        false
    }
    forward_accesses!();
}

impl WorldMachine for PaeMachine {
    type Paging = Pae;
    /// The banks, with frame 0 reserved: it stays zeroed, a PDPT of four
    /// not-present entries that [`park`](WorldMachine::park) loads.
    fn world_memory_map(&self) -> Vec<MemoryRegion> {
        let mut map = self.memory_map();
        map.push(MemoryRegion {
            start: 0,
            end: 4096,
            kind: RegionKind::Reserved,
        });
        map
    }
    fn phys_end(&self) -> u64 {
        self.ram_end().min(PhysAddr::MAX + 1)
    }
    fn direct_ram(&self) -> u64 {
        // The bank at 0: the direct map covers low RAM only.
        self.memory_map()
            .iter()
            .find(|r| r.start == 0)
            .map_or(0, |r| r.end)
            .min(3 << 30)
    }
    fn park(&self) {
        self.set_cr3(0).expect("frame 0 is an empty PDPT");
    }
    fn nx(&self) -> bool {
        self.nxe()
    }
    forward_accesses!();
}

/// Most faults one access may take before [`World::run`] calls it a loop
/// (an access touches at most a few pages, each faulting at most twice).
const MAX_FAULTS: usize = 16;

/// One simulated machine with the memory manager on it.
pub struct World<M: WorldMachine = SimMachine> {
    /// The machine.
    pub m: M,
    /// The frame allocator over its RAM.
    pub fa: Mutex<FrameAllocator>,
    /// The kernel address space (taken by [`World::finish`]).
    pub kernel: Option<AddressSpace<M::Paging>>,
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
        World::on(SimMachine::new(ram).expect("simulated machine"))
    }
}

impl World<PaeMachine> {
    /// A PAE machine with `low` bytes of RAM at 0 and `high` bytes at 4 GiB
    /// (none when 0), EFER.NXE on, the core in PAE mode: a frame allocator
    /// over all of it and a kernel space (direct map of the low RAM, up to
    /// 3 GiB) loaded.
    ///
    /// # Panics
    /// When the machine, the allocator or the kernel space can't be built:
    /// this is a test harness.
    pub fn new_pae(low: u64, high: u64) -> World<PaeMachine> {
        World::on(
            PaeMachine::split_ram(low, high)
                .build()
                .expect("simulated PAE machine"),
        )
    }
}

impl<M: WorldMachine> World<M> {
    /// The memory manager on machine `m`: a frame allocator over its RAM
    /// and a kernel space (direct map of up to 3 GiB) loaded.
    ///
    /// # Panics
    /// When the allocator or the kernel space can't be built.
    pub fn on(m: M) -> World<M> {
        let map = m.world_memory_map();
        // SAFETY: the allocator lives next to the machine in `World` and is
        // dropped with it; the RAM buffers do not move with the machine.
        let mut fa =
            unsafe { FrameAllocator::new_below(&m, &map, m.phys_end()) }.expect("frame allocator");
        let boot = fa.stats();
        let direct = PhysAddr::try_from_u64(m.direct_ram()).expect("direct map");
        let kernel =
            AddressSpace::<M::Paging>::create_kernel(&m, &mut fa, direct).expect("kernel space");
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
    pub fn space(&self) -> Vm<'_, M> {
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
        // Load a root that is not the kernel's.
        self.m.park();
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
        vm: &mut Vm<'_, M>,
        op: impl FnMut(&M) -> Result<T, PageFault>,
    ) -> Result<T, FaultOutcome> {
        if !vm.is_active() {
            vm.activate();
        }
        let mut last = None;
        // What the CPU knows besides the error code: SMEP, SMAP and AC.
        let context = self.m.context();
        let r = self.m.run_faults(MAX_FAULTS, op, |f| {
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
    pub fn read_u32(
        &self,
        vm: &mut Vm<'_, M>,
        va: VirtAddr,
        mode: Mode,
    ) -> Result<u32, FaultOutcome> {
        self.run(vm, |m| m.read_u32_at(va.as_u32(), mode))
    }

    /// Writes a `u32` at `va` (see [`World::run`]).
    pub fn write_u32(
        &self,
        vm: &mut Vm<'_, M>,
        va: VirtAddr,
        v: u32,
        mode: Mode,
    ) -> Result<(), FaultOutcome> {
        self.run(vm, |m| m.write_u32_at(va.as_u32(), v, mode))
    }

    /// Reads `len` bytes at `va` (see [`World::run`]).
    pub fn read_bytes(
        &self,
        vm: &mut Vm<'_, M>,
        va: VirtAddr,
        len: usize,
        mode: Mode,
    ) -> Result<Vec<u8>, FaultOutcome> {
        let mut buf = vec![0u8; len];
        self.run(vm, |m| m.read_bytes_at(va.as_u32(), &mut buf, mode))?;
        Ok(buf)
    }

    /// Writes `data` at `va` (see [`World::run`]).
    pub fn write_bytes(
        &self,
        vm: &mut Vm<'_, M>,
        va: VirtAddr,
        data: &[u8],
        mode: Mode,
    ) -> Result<(), FaultOutcome> {
        self.run(vm, |m| m.write_bytes_at(va.as_u32(), data, mode))
    }

    /// Fetches an instruction byte at `va` (see [`World::run`]).
    pub fn fetch(&self, vm: &mut Vm<'_, M>, va: VirtAddr, mode: Mode) -> Result<u8, FaultOutcome> {
        self.run(vm, |m| m.fetch_at(va.as_u32(), mode))
    }
}
