//! The kernel's one instance of the memory manager: the frame allocator
//! built from the multiboot map and the kernel address space.

use myos_mm::frames::{FrameAllocator, FrameStats, MemoryRegion, RegionKind};
use myos_mm::layout::PAGE_SIZE;
use myos_mm::paging::AddressSpace;
use myos_mm::{MmError, PhysAddr, Platform};
use spin::{Mutex, Once};

use crate::arch::gdt;
use crate::platform::X86Platform;

/// The memory manager's state.
pub struct Mm {
    /// The machine.
    pub platform: X86Platform,
    /// Physical frames.
    pub frames: Mutex<FrameAllocator>,
    /// The kernel address space (its kernel half is every space's).
    pub kernel_space: Mutex<AddressSpace>,
    /// One past the highest usable physical address.
    pub ram_end: u64,
}

/// The memory manager, set up once by [`init`].
static MM: Once<Mm> = Once::new();

/// The memory manager. Panics before [`init`] (a kernel bug: nothing calls it
/// that early).
pub fn get() -> &'static Mm {
    MM.get()
        .unwrap_or_else(|| panic!("memory manager used before mm::init"))
}

/// Builds the frame allocator from `regions`, creates the kernel address
/// space and switches to it.
pub fn init(regions: &[MemoryRegion]) -> Result<&'static Mm, MmError> {
    let platform = X86Platform;
    let ram_end = regions
        .iter()
        .filter(|r| r.kind == RegionKind::Usable)
        .map(|r| r.end)
        .max()
        .unwrap_or(0);
    // SAFETY: the regions come from the firmware map with the kernel image,
    // the boot information and the modules reserved, so usable RAM is unused;
    // the platform is a zero-sized value that lives as long as the allocator
    // (both move into the `Once` below, which lives forever).
    let mut frames = unsafe { FrameAllocator::new(&platform, regions)? };
    let ram_end_addr =
        PhysAddr::try_from_u64(ram_end.min(u64::from(u32::MAX) & !(PAGE_SIZE as u64 - 1)))?;
    let space = AddressSpace::new_kernel(&platform, &mut frames, ram_end_addr)?;
    space.activate(&platform);
    crate::platform::enable_global_pages();
    gdt::set_double_fault_cr3(space.directory().start().as_u32());
    debug_assert_eq!(platform.root(), space.directory());
    Ok(MM.call_once(|| Mm {
        platform,
        frames: Mutex::new(frames),
        kernel_space: Mutex::new(space),
        ram_end,
    }))
}

/// Frame counts now.
pub fn frame_stats() -> FrameStats {
    get().frames.lock().stats()
}
