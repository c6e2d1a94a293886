//! A simulated machine with the memory manager on it, in the machine's
//! paging mode: classic on `SimMachine`, PAE on `PaeMachine`.

use myos_mm::frames::FrameAllocator;
use myos_mm::paging::AddressSpace;
use myos_mm::vm::VmSpace;
use myos_mm::PhysAddr;
use myos_sim::{SimMachine, WorldMachine};
use spin::Mutex;

/// A user address space of a [`World`] on machine `M`.
pub type Vm<'a, M = SimMachine> =
    VmSpace<'a, M, &'a Mutex<FrameAllocator>, <M as WorldMachine>::Paging>;

/// A machine, its frame allocator (covering all of its RAM,
/// [`FrameAllocator::new_below`]) and the kernel space, loaded.
pub struct World<M: WorldMachine = SimMachine> {
    /// The machine.
    pub m: Box<M>,
    /// The frame allocator, locked as the kernel shares it.
    pub fa: Mutex<FrameAllocator>,
    /// The kernel address space.
    pub kernel: AddressSpace<M::Paging>,
}

impl World {
    /// A classic machine with `ram` bytes of RAM.
    pub fn new(ram: u64) -> World {
        World::on(SimMachine::new(ram).expect("machine"))
    }
}

impl<M: WorldMachine> World<M> {
    /// The memory manager on machine `m`.
    pub fn on(m: M) -> World<M> {
        let m = Box::new(m);
        let map = m.world_memory_map();
        // SAFETY: the machine is boxed in the same `World` as the allocator,
        // so its RAM outlives every use of the allocator.
        let mut fa =
            unsafe { FrameAllocator::new_below(&*m, &map, m.phys_end()) }.expect("allocator");
        let direct = PhysAddr::try_from_u64(m.direct_ram()).expect("direct map");
        let kernel =
            AddressSpace::<M::Paging>::create_kernel(&*m, &mut fa, direct).expect("kernel space");
        kernel.activate(&*m);
        World {
            m,
            fa: Mutex::new(fa),
            kernel,
        }
    }

    /// A new user address space.
    pub fn space(&self) -> Vm<'_, M> {
        VmSpace::new(&*self.m, &self.fa, &self.kernel).expect("space")
    }

    /// Frames in use (allocated, metadata excluded).
    pub fn used(&self) -> u32 {
        self.fa.lock().stats().used
    }
}
