//! The memory manager C code talks to: registered once, read everywhere.

use myos_mm::frames::{FrameAllocator, MemoryRegion};
use myos_mm::paging::AddressSpace;
use myos_mm::system::System;
use myos_mm::{MmError, Platform};
use spin::{Mutex, Once};

use crate::dir::{self, Dir};
use crate::errno::{CResult, Failure};

/// The platform type the C layer works with: any [`Platform`] shared between
/// threads (the kernel's `X86Platform`, the host's simulated machine).
pub type Plat = dyn Platform + Sync;

/// The pieces of one machine's memory manager.
#[derive(Clone, Copy)]
pub struct Mm {
    /// The machine.
    pub platform: &'static Plat,
    /// The frame allocator (a `FrameSource` through `&Mutex`).
    pub frames: &'static Mutex<FrameAllocator>,
    /// The kernel address space (`kernel_directory`).
    pub kernel: &'static Mutex<AddressSpace>,
}

/// The frame source every call uses: the allocator behind its lock.
pub(crate) type Frames = &'static Mutex<FrameAllocator>;

static MM: Once<Mm> = Once::new();
static SYSTEM: Once<System<Plat>> = Once::new();

/// The registered memory manager, or `MM_ENODEV`.
pub(crate) fn mm() -> CResult<Mm> {
    MM.get().copied().ok_or(Failure::NotSetUp)
}

/// True once a platform is registered.
pub fn is_registered() -> bool {
    MM.get().is_some()
}

/// Registers the memory manager a kernel has already built: its platform,
/// frame allocator and kernel address space (which must be loaded, or be
/// loaded by `init_paging`). Fails with `AlreadyMapped` when something is
/// registered already.
pub fn register_parts(
    platform: &'static Plat,
    frames: &'static Mutex<FrameAllocator>,
    kernel: &'static Mutex<AddressSpace>,
) -> Result<(), MmError> {
    let mut fresh = false;
    MM.call_once(|| {
        fresh = true;
        Mm {
            platform,
            frames,
            kernel,
        }
    });
    dir::publish_kernel_directory();
    if fresh && kernel.lock().is_active(platform) {
        // The kernel runs on its directory already: C code sees it as current.
        dir::set_current(Dir::Kernel);
    }
    if fresh {
        Ok(())
    } else {
        Err(MmError::AlreadyMapped)
    }
}

/// Builds the frame allocator and the kernel address space of `platform`
/// from `map` (a [`System`]) and registers them. `init_paging` then loads
/// the kernel directory. Fails as [`System::new`], or with `AlreadyMapped`
/// when something is registered already.
///
/// # Safety
///
/// As [`System::new`]: the usable regions of `map` are RAM nobody else uses
/// (in particular, no other frame allocator manages them).
pub unsafe fn register(platform: &'static Plat, map: &[MemoryRegion]) -> Result<(), MmError> {
    if is_registered() || SYSTEM.get().is_some() {
        return Err(MmError::AlreadyMapped);
    }
    // SAFETY: forwarded to the caller.
    let system = unsafe { System::new(platform, map)? };
    let system = SYSTEM.call_once(|| system);
    register_parts(system.platform(), system.frames(), system.kernel_space())
}
