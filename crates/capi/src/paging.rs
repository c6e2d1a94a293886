//! Page directories, `get_page`, frames and mappings: the spec's
//! "Virtual Memory Management", "Page Frame Management" and "Memory Mapping"
//! functions over [`AddressSpace`] and the frame allocator.
//!
//! A `page_t *` is a pointer to a real page-table entry (what
//! [`AddressSpace::get_page`] returns). `alloc_frame`/`free_frame` work on the
//! entry itself, as C code expects (the core tolerates entries written
//! behind its back: its per-table counts are hints confirmed by a scan); the
//! entry's address tells which page it maps, for the TLB flush.

use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use myos_mm::frames::{FrameSource, Zone};
use myos_mm::layout::{DIRECT_ZONE_END, ENTRIES, PAGE_SIZE};
use myos_mm::paging::{AddressSpace, PageTableEntry, PteFlags};
use myos_mm::{Frame, MmError, OwnedFrame, Page, PhysAddr, VirtAddr};

use crate::dir::{current, publish_kernel_directory, set_current, Dir, KERNEL_DIR, PROCESS_DIR};
pub use crate::dir::{current_directory, kernel_directory, PageDirectory};
use crate::errno::{record, CResult, Failure};
use crate::state::{mm, Frames, Mm, Plat};
use crate::vm;

/// `page_t`: one page-table entry (its layout is [`PageTableEntry`]'s).
pub type PageT = PageTableEntry;

/// The address space a C handle names; `InvalidArgument` for NULL or a
/// pointer this API never handed out (or the process's before it exists).
fn dir_of(p: *const PageDirectory) -> CResult<Dir> {
    if ptr::eq(p, &KERNEL_DIR) {
        Ok(Dir::Kernel)
    } else if ptr::eq(p, &PROCESS_DIR) && vm::process_exists() {
        Ok(Dir::Process)
    } else {
        Err(MmError::InvalidArgument.into())
    }
}

/// Runs `f` on the address space `dir` names, with the frame source.
pub(crate) fn with_space<T>(
    dir: Dir,
    f: impl FnOnce(&'static Plat, &mut Frames, &mut AddressSpace) -> CResult<T>,
) -> CResult<T> {
    let m = mm()?;
    let mut frames = m.frames;
    match dir {
        Dir::Kernel => f(m.platform, &mut frames, &mut m.kernel.lock()),
        Dir::Process => vm::with_process_space(|space| f(m.platform, &mut frames, space)),
    }
}

/// The directory frame of `dir`, if it exists.
fn directory_frame(m: &Mm, dir: Dir) -> Option<Frame> {
    match dir {
        Dir::Kernel => Some(m.kernel.lock().directory()),
        Dir::Process => vm::process_directory(),
    }
}

/// The page an entry pointer maps, found by looking for its page table in
/// the current and the kernel directory; `None` for an entry outside them.
fn page_of_entry(m: &Mm, entry: NonNull<PageT>) -> Option<Page> {
    let addr = entry.as_ptr().addr();
    let (table_addr, index) = (addr & !(PAGE_SIZE - 1), (addr % PAGE_SIZE) / 4);
    let cur = current();
    let dirs = [Some(cur), (cur != Dir::Kernel).then_some(Dir::Kernel)];
    for d in dirs.into_iter().flatten() {
        let Some(dir) = directory_frame(m, d) else {
            continue;
        };
        let mut raw = [0u8; PAGE_SIZE];
        m.platform.read_frame(dir, 0, &mut raw);
        for pdi in 0..ENTRIES {
            let b = &raw[pdi * 4..pdi * 4 + 4];
            let pde = PageTableEntry::from_raw(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            if !pde.is_present() || pde.flags().contains(PteFlags::HUGE) {
                continue;
            }
            if u64::from(pde.frame().start().as_u32()) >= DIRECT_ZONE_END {
                continue;
            }
            if m.platform.frame_ptr(pde.frame()).as_ptr().addr() == table_addr {
                let va = ((pdi << 22) | (index << 12)) as u32;
                return Some(VirtAddr::new(va).page());
            }
        }
    }
    None
}

/// Entry flags for `is_kernel` / `is_writeable`.
fn flags(is_kernel: i32, is_writeable: i32) -> PteFlags {
    let mut f = PteFlags::PRESENT;
    if is_kernel == 0 {
        f |= PteFlags::USER;
    }
    if is_writeable != 0 {
        f |= PteFlags::WRITABLE;
    }
    f
}

/// Drops a reference a mapping held; frames the allocator doesn't manage
/// (device memory mapped by address) carry none.
fn release(frames: &mut Frames, frame: OwnedFrame) -> CResult<()> {
    match frames.release(frame) {
        Ok(_) | Err(MmError::FrameReserved) | Err(MmError::OutOfRange) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `void init_paging(void)`: loads the kernel directory unless a directory
/// is current already (the kernel or the host boot may have loaded one).
#[no_mangle]
pub extern "C" fn init_paging() {
    record(init_paging_inner());
}

fn init_paging_inner() -> CResult<()> {
    let m = mm()?;
    publish_kernel_directory();
    if current_directory.load(Ordering::Relaxed).is_null() {
        let space = m.kernel.lock();
        if !space.is_active(m.platform) {
            space.activate(m.platform);
        }
        set_current(Dir::Kernel);
    }
    Ok(())
}

/// `void switch_page_directory(page_directory_t *dir)`.
///
/// # Safety
///
/// None beyond C's: any pointer value is checked against the handles this
/// API hands out before use.
#[no_mangle]
pub unsafe extern "C" fn switch_page_directory(dir: *mut PageDirectory) {
    record(switch_inner(dir));
}

fn switch_inner(dir: *mut PageDirectory) -> CResult<()> {
    let d = dir_of(dir)?;
    let m = mm()?;
    match d {
        Dir::Kernel => m.kernel.lock().activate(m.platform),
        Dir::Process => vm::activate_process()?,
    }
    set_current(d);
    Ok(())
}

/// `page_t *get_page(uint32_t address, int make, page_directory_t *dir)`.
///
/// # Safety
///
/// None beyond C's: `dir` is checked against the handles this API hands out.
#[no_mangle]
pub unsafe extern "C" fn get_page(address: u32, make: i32, dir: *mut PageDirectory) -> *mut PageT {
    let r = dir_of(dir).and_then(|d| {
        with_space(d, |p, frames, space| {
            space
                .get_page(p, frames, VirtAddr::new(address), make != 0)?
                .ok_or(Failure::Mm(MmError::NotMapped))
        })
    });
    record(r).map_or(ptr::null_mut(), NonNull::as_ptr)
}

/// `void alloc_frame(page_t *page, int is_kernel, int is_writeable)`.
///
/// # Safety
///
/// `page` must be NULL or point to a page-table entry (what `get_page`
/// returned, while its table lives) or to any writable, aligned `page_t`.
#[no_mangle]
pub unsafe extern "C" fn alloc_frame(page: *mut PageT, is_kernel: i32, is_writeable: i32) {
    // SAFETY: forwarded to the caller.
    record(unsafe { alloc_frame_inner(page, is_kernel, is_writeable) });
}

/// # Safety
///
/// As [`alloc_frame`].
unsafe fn alloc_frame_inner(page: *mut PageT, is_kernel: i32, is_writeable: i32) -> CResult<()> {
    let page = NonNull::new(page).ok_or(MmError::InvalidArgument)?;
    let m = mm()?;
    let _space = m.kernel.lock(); // serializes entry updates with the core's
                                  // SAFETY: the caller promises a valid, aligned entry.
    let old = unsafe { page.as_ptr().read_volatile() };
    if old.is_present() {
        return Ok(());
    }
    let mut frames = m.frames;
    let frame = frames.alloc(Zone::High)?;
    m.platform.zero_frame(frame.frame());
    // The entry holds the reference from now on: C code owns it through the
    // `page_t`, and gives it back with `free_frame`.
    let new = PageTableEntry::new(frame.into_raw(), flags(is_kernel, is_writeable));
    // SAFETY: as above. A not-present entry is never cached by the TLB, so
    // no flush is owed.
    unsafe { page.as_ptr().write_volatile(new) };
    Ok(())
}

/// `void free_frame(page_t *page)`.
///
/// # Safety
///
/// As [`alloc_frame`].
#[no_mangle]
pub unsafe extern "C" fn free_frame(page: *mut PageT) {
    // SAFETY: forwarded to the caller.
    record(unsafe { free_frame_inner(page) });
}

/// # Safety
///
/// As [`alloc_frame`].
unsafe fn free_frame_inner(page: *mut PageT) -> CResult<()> {
    let page = NonNull::new(page).ok_or(MmError::InvalidArgument)?;
    let m = mm()?;
    let mapped = page_of_entry(&m, page);
    let _space = m.kernel.lock();
    // SAFETY: the caller promises a valid, aligned entry.
    let old = unsafe { page.as_ptr().read_volatile() };
    if !old.is_present() {
        return Ok(());
    }
    // SAFETY: as above.
    unsafe { page.as_ptr().write_volatile(PageTableEntry::EMPTY) };
    match mapped {
        Some(p) => m.platform.flush(p),
        None => m.platform.flush_all(),
    }
    let mut frames = m.frames;
    // SAFETY: a present entry holds one reference (the paging rule, which
    // `alloc_frame` and `map_page` keep for the entries C code writes, or
    // none for a frame no allocator manages); the entry was just cleared.
    release(&mut frames, unsafe { OwnedFrame::from_raw(old.frame()) })
}

/// `void map_page(uint32_t virtual_addr, uint32_t physical_addr, int is_kernel, int is_writeable)`.
#[no_mangle]
pub extern "C" fn map_page(
    virtual_addr: u32,
    physical_addr: u32,
    is_kernel: i32,
    is_writeable: i32,
) {
    let page = VirtAddr::new(virtual_addr).page();
    let frame = PhysAddr::new(physical_addr).frame();
    let r = with_space(current(), |p, frames, space| {
        // The mapping's own reference: claim a free frame, share an
        // allocated one, none for memory the allocator doesn't manage.
        let owned = match frames.refcount(frame) {
            Ok(0) => frames.lock().claim(frame),
            Ok(_) => frames.share(frame),
            Err(MmError::FrameReserved) | Err(MmError::OutOfRange) => {
                // SAFETY: no allocator manages the frame (device memory a C
                // kernel maps by address): the second case of `from_raw`.
                Ok(unsafe { OwnedFrame::from_raw(frame) })
            }
            Err(e) => Err(e),
        }?;
        match space.remap(p, frames, page, owned, flags(is_kernel, is_writeable)) {
            Ok((old, flush)) => {
                flush.flush(p);
                if let Some(old) = old {
                    release(frames, old)?;
                }
                Ok(())
            }
            Err(e) => {
                release(frames, e.frame)?;
                Err(e.error.into())
            }
        }
    });
    record(r);
}

/// `void unmap_page(uint32_t virtual_addr)`.
#[no_mangle]
pub extern "C" fn unmap_page(virtual_addr: u32) {
    let page = VirtAddr::new(virtual_addr).page();
    let r = with_space(current(), |p, frames, space| {
        let (frame, flush) = space.unmap(p, frames, page)?;
        flush.flush(p);
        release(frames, frame)
    });
    record(r);
}

/// `uint32_t get_physical_address(uint32_t virtual_addr)`: `MM_PHYS_NONE`
/// (`0xFFFFFFFF`) when unmapped.
#[no_mangle]
pub extern "C" fn get_physical_address(virtual_addr: u32) -> u32 {
    let r = with_space(current(), |p, _, space| {
        space
            .translate(p, VirtAddr::new(virtual_addr))
            .map(PhysAddr::as_u32)
            .ok_or(Failure::Mm(MmError::NotMapped))
    });
    record(r).unwrap_or(PHYS_NONE)
}

/// `MM_PHYS_NONE`: what `get_physical_address` returns for an unmapped address.
pub const PHYS_NONE: u32 = u32::MAX;

/// `uint32_t myos_frames_free(void)`: free physical frames now (for leak
/// checks: a sequence that gives everything back restores the count).
#[no_mangle]
pub extern "C" fn myos_frames_free() -> u32 {
    record(mm().map(|m| m.frames.lock().stats().free)).unwrap_or(0)
}
