//! The memory manager C code talks to: registered once, read everywhere.
//!
//! It runs in one paging mode, the kernel's: classic two-level paging (the
//! spec's, whose entries are `page_t`) or PAE (64-bit entries, `page64_t`).
//! [`KernelSpace`] holds the kernel address space of that mode; the C layer's
//! internals are generic over the mode (`CMode`) and each entry point picks
//! the instance with [`Mm::paging`].

use myos_mm::frames::{FrameAllocator, MemoryRegion};
use myos_mm::paging::{AddressSpace, Classic, Pae, PagingMode};
use myos_mm::system::System;
use myos_mm::{MmError, Platform};
use spin::{Mutex, Once};

use crate::dir::{self, Dir};
use crate::errno::{CResult, Failure};
use crate::vm::{Process, Space};

/// The platform type the C layer works with: any [`Platform`] shared between
/// threads (the kernel's `X86Platform`, the host's simulated machine).
pub type Plat = dyn Platform + Sync;

/// The paging mode C code runs in (`myos_paging_mode()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// Classic two-level paging: `page_t`, `get_page` (`MYOS_PAGING_CLASSIC`).
    Classic,
    /// PAE paging: `page64_t`, `get_page64` (`MYOS_PAGING_PAE`).
    Pae,
}

/// `MYOS_PAGING_CLASSIC`: what `myos_paging_mode()` returns in classic mode.
pub const PAGING_CLASSIC: i32 = 1;
/// `MYOS_PAGING_PAE`: what `myos_paging_mode()` returns in PAE mode.
pub const PAGING_PAE: i32 = 2;

impl Paging {
    /// The `MYOS_PAGING_*` number C sees.
    pub const fn code(self) -> i32 {
        match self {
            Paging::Classic => PAGING_CLASSIC,
            Paging::Pae => PAGING_PAE,
        }
    }
}

/// The kernel address space (`kernel_directory`) in the running mode.
#[derive(Clone, Copy)]
pub enum KernelSpace {
    /// Classic paging (what [`register_parts`] registers).
    Classic(&'static Mutex<AddressSpace<Classic>>),
    /// PAE paging (what [`register_parts_pae`] registers).
    Pae(&'static Mutex<AddressSpace<Pae>>),
}

/// The pieces of one machine's memory manager.
#[derive(Clone, Copy)]
pub struct Mm {
    /// The machine.
    pub platform: &'static Plat,
    /// The frame allocator (a `FrameSource` through `&Mutex`).
    pub frames: &'static Mutex<FrameAllocator>,
    /// The kernel address space (`kernel_directory`).
    pub kernel: KernelSpace,
}

impl Mm {
    /// The paging mode of the kernel space.
    pub fn paging(&self) -> Paging {
        match self.kernel {
            KernelSpace::Classic(_) => Paging::Classic,
            KernelSpace::Pae(_) => Paging::Pae,
        }
    }

    /// The kernel space if it is in mode `M`; `OtherMode` otherwise.
    pub(crate) fn kernel_in<M: CMode>(&self) -> CResult<&'static Mutex<AddressSpace<M>>> {
        M::kernel(self.kernel).ok_or(Failure::OtherMode)
    }
}

/// A paging mode the C layer runs in: finds the mode's instance in the
/// registered state (the generic internals of `paging`, `vm` and `heap`
/// reach the state through it). Implemented for [`Classic`] and [`Pae`].
pub(crate) trait CMode: PagingMode {
    /// The kernel space, if it is in this mode.
    fn kernel(k: KernelSpace) -> Option<&'static Mutex<AddressSpace<Self>>>;
    /// The C process, if it is in this mode.
    fn process(p: &Process) -> Option<&Mutex<Space<Self>>>;
}

impl CMode for Classic {
    fn kernel(k: KernelSpace) -> Option<&'static Mutex<AddressSpace<Self>>> {
        match k {
            KernelSpace::Classic(s) => Some(s),
            KernelSpace::Pae(_) => None,
        }
    }
    fn process(p: &Process) -> Option<&Mutex<Space<Self>>> {
        match p {
            Process::Classic(s) => Some(s),
            Process::Pae(_) => None,
        }
    }
}

impl CMode for Pae {
    fn kernel(k: KernelSpace) -> Option<&'static Mutex<AddressSpace<Self>>> {
        match k {
            KernelSpace::Pae(s) => Some(s),
            KernelSpace::Classic(_) => None,
        }
    }
    fn process(p: &Process) -> Option<&Mutex<Space<Self>>> {
        match p {
            Process::Pae(s) => Some(s),
            Process::Classic(_) => None,
        }
    }
}

/// The frame source every call uses: the allocator behind its lock.
pub(crate) type Frames = &'static Mutex<FrameAllocator>;

static MM: Once<Mm> = Once::new();
static SYSTEM: Once<System<Plat>> = Once::new();
/// What [`register_pae`] builds.
static PAE_SYSTEM: Once<System<Plat, Pae>> = Once::new();

/// The registered memory manager, or `MM_ENODEV`.
pub(crate) fn mm() -> CResult<Mm> {
    MM.get().copied().ok_or(Failure::NotSetUp)
}

/// True once a platform is registered.
pub fn is_registered() -> bool {
    MM.get().is_some()
}

/// The paging mode of the registered memory manager (`None` before).
pub fn paging() -> Option<Paging> {
    MM.get().map(Mm::paging)
}

/// Registers the memory manager a kernel has already built: its platform,
/// frame allocator and kernel address space (which must be loaded, or be
/// loaded by `init_paging`), in classic paging. Fails with `AlreadyMapped`
/// when something is registered already.
pub fn register_parts(
    platform: &'static Plat,
    frames: &'static Mutex<FrameAllocator>,
    kernel: &'static Mutex<AddressSpace>,
) -> Result<(), MmError> {
    register_mm(Mm {
        platform,
        frames,
        kernel: KernelSpace::Classic(kernel),
    })
}

/// As [`register_parts`], for a kernel that runs PAE paging: C code then
/// uses `page64_t` and `get_page64` (`get_page` refuses), and everything
/// else of the API works as in classic mode. The allocator should cover the
/// RAM above 4 GiB too (`FrameAllocator::new_below`).
pub fn register_parts_pae(
    platform: &'static Plat,
    frames: &'static Mutex<FrameAllocator>,
    kernel: &'static Mutex<AddressSpace<Pae>>,
) -> Result<(), MmError> {
    register_mm(Mm {
        platform,
        frames,
        kernel: KernelSpace::Pae(kernel),
    })
}

fn register_mm(parts: Mm) -> Result<(), MmError> {
    let mut fresh = false;
    MM.call_once(|| {
        fresh = true;
        parts
    });
    dir::publish_kernel_directory();
    if !fresh {
        return Err(MmError::AlreadyMapped);
    }
    let active = match parts.kernel {
        KernelSpace::Classic(k) => k.lock().is_active(parts.platform),
        KernelSpace::Pae(k) => k.lock().is_active(parts.platform),
    };
    if active {
        // The kernel runs on its directory already: C code sees it as current.
        dir::set_current(Dir::Kernel);
    }
    Ok(())
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
    if is_registered() || SYSTEM.get().is_some() || PAE_SYSTEM.get().is_some() {
        return Err(MmError::AlreadyMapped);
    }
    // SAFETY: forwarded to the caller.
    let system = unsafe { System::new(platform, map)? };
    let system = SYSTEM.call_once(|| system);
    register_parts(system.platform(), system.frames(), system.kernel_space())
}

/// As [`register`], in PAE paging (a `System::<_, Pae>`): the frame
/// allocator covers every usable region of `map` up to 64 GiB, the kernel
/// space is a PAE one (the direct map of RAM up to 768 MiB). The platform
/// must run PAE paging (its root is a PDPT). Fails as
/// [`System::create`], or with `AlreadyMapped` when something is
/// registered already.
///
/// # Safety
///
/// As [`register`].
pub unsafe fn register_pae(platform: &'static Plat, map: &[MemoryRegion]) -> Result<(), MmError> {
    if is_registered() || SYSTEM.get().is_some() || PAE_SYSTEM.get().is_some() {
        return Err(MmError::AlreadyMapped);
    }
    // SAFETY: forwarded to the caller.
    let system = unsafe { System::<Plat, Pae>::create(platform, map)? };
    let system = PAE_SYSTEM.call_once(|| system);
    register_parts_pae(system.platform(), system.frames(), system.kernel_space())
}
