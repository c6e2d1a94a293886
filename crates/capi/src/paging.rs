//! Page directories, `get_page`, frames and mappings: the spec's
//! "Virtual Memory Management", "Page Frame Management" and "Memory Mapping"
//! functions over [`AddressSpace`] and the frame allocator.
//!
//! A `page_t *` is a pointer to a real page-table entry (what
//! [`AddressSpace::get_page`] returns). `alloc_frame`/`free_frame` work on the
//! entry itself, as C code expects (the core tolerates entries written
//! behind its back: its per-table counts are hints confirmed by a scan); the
//! entry's address tells which page it maps, for the TLB flush.
//!
//! Under PAE paging the entries are 64 bits: `get_page64` returns a
//! `page64_t *` (a [`PaeEntry`]), `alloc_frame64`/`free_frame64` work on it,
//! and the `page_t` calls refuse with `MM_EOPNOTSUPP` (and the `page64_t`
//! calls do under classic paging). The rest is written once, generic over
//! the mode, and each entry point runs the registered mode's instance.

use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use myos_mm::frames::{FrameSource, Zone};
use myos_mm::layout::PAGE_SIZE;
use myos_mm::paging::{
    read_entry, write_entry, AddressSpace, Classic, Entry, Pae, PaeEntry, PageAttrs,
    PageTableEntry, PteFlags,
};
use myos_mm::{Frame, MmError, OwnedFrame, Page, PhysAddr, VirtAddr};

use crate::dir::{current, publish_kernel_directory, set_current, Dir, KERNEL_DIR, PROCESS_DIR};
pub use crate::dir::{current_directory, kernel_directory, PageDirectory};
use crate::errno::{record, CResult, Failure};
use crate::state::{mm, CMode, Frames, KernelSpace, Mm, Paging, Plat};
use crate::vm;

/// `page_t`: one page-table entry (its layout is [`PageTableEntry`]'s).
pub type PageT = PageTableEntry;

/// `page64_t`: one PAE page-table entry (its layout is [`PaeEntry`]'s).
pub type Page64T = PaeEntry;

/// Runs `$f::<M>($args)` for the paging mode `M` of the registered memory
/// manager (`MM_ENODEV` before one is registered): each generic function
/// below is compiled once per mode.
macro_rules! in_mode {
    ($f:ident($($arg:expr),* $(,)?)) => {
        mm().and_then(|m| match m.paging() {
            Paging::Classic => $f::<Classic>($($arg),*),
            Paging::Pae => $f::<Pae>($($arg),*),
        })
    };
}

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

/// Runs `f` on the address space `dir` names (in mode `M`), with the frame
/// source. `OtherMode` when the memory manager runs the other mode.
pub(crate) fn with_space<M: CMode, T>(
    dir: Dir,
    f: impl FnOnce(&'static Plat, &mut Frames, &mut AddressSpace<M>) -> CResult<T>,
) -> CResult<T> {
    let m = mm()?;
    let mut frames = m.frames;
    match dir {
        Dir::Kernel => f(m.platform, &mut frames, &mut m.kernel_in::<M>()?.lock()),
        Dir::Process => vm::with_process_space(|space| f(m.platform, &mut frames, space)),
    }
}

/// The page an entry pointer maps, found by looking for its page table in
/// the current and the kernel directory; `None` for an entry outside them.
fn page_of_entry<M: CMode>(entry: usize) -> Option<Page> {
    let size = core::mem::size_of::<M::Entry>();
    let (table_addr, index) = (entry & !(PAGE_SIZE - 1), (entry % PAGE_SIZE) / size);
    let cur = current();
    let dirs = [Some(cur), (cur != Dir::Kernel).then_some(Dir::Kernel)];
    for d in dirs.into_iter().flatten() {
        let found = with_space::<M, _>(d, |p, frames, space| {
            for di in 0..M::DIR_ENTRIES {
                let base = (di as u32) << M::DIR_SHIFT;
                // Entry 0 of the table covering `base`, if it has one (no
                // table is created: `make` is false).
                let Ok(Some(first)) = space.get_page(p, frames, VirtAddr::new(base), false) else {
                    continue;
                };
                if first.as_ptr().addr() == table_addr {
                    let va = base | ((index as u32) << PAGE_SIZE.trailing_zeros());
                    return Ok(Some(VirtAddr::new(va).page()));
                }
            }
            Ok(None)
        });
        if let Ok(Some(page)) = found {
            return Some(page);
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
        activate_kernel(&m);
        set_current(Dir::Kernel);
    }
    Ok(())
}

/// Loads the kernel space unless it is loaded.
fn activate_kernel(m: &Mm) {
    match m.kernel {
        KernelSpace::Classic(k) => {
            let space = k.lock();
            if !space.is_active(m.platform) {
                space.activate(m.platform);
            }
        }
        KernelSpace::Pae(k) => {
            let space = k.lock();
            if !space.is_active(m.platform) {
                space.activate(m.platform);
            }
        }
    }
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
        Dir::Kernel => match m.kernel {
            KernelSpace::Classic(k) => k.lock().activate(m.platform),
            KernelSpace::Pae(k) => k.lock().activate(m.platform),
        },
        Dir::Process => vm::activate_process()?,
    }
    set_current(d);
    Ok(())
}

/// `int myos_paging_mode(void)`: `MYOS_PAGING_CLASSIC` or
/// `MYOS_PAGING_PAE`; 0 (`MM_ENODEV`) before a memory manager is registered.
#[no_mangle]
pub extern "C" fn myos_paging_mode() -> i32 {
    record(mm().map(|m| m.paging().code())).unwrap_or(0)
}

/// The entry mapping `address` in `dir`, in mode `M`: `OtherMode` first
/// when the memory manager runs the other mode.
fn get_page_in<M: CMode>(
    address: u32,
    make: i32,
    dir: *mut PageDirectory,
) -> CResult<NonNull<M::Entry>> {
    mm()?.kernel_in::<M>()?;
    let d = dir_of(dir)?;
    with_space::<M, _>(d, |p, frames, space| {
        space
            .get_page(p, frames, VirtAddr::new(address), make != 0)?
            .ok_or(Failure::Mm(MmError::NotMapped))
    })
}

/// `page_t *get_page(uint32_t address, int make, page_directory_t *dir)`.
/// NULL with `MM_EOPNOTSUPP` in PAE mode (use `get_page64`).
///
/// # Safety
///
/// None beyond C's: `dir` is checked against the handles this API hands out.
#[no_mangle]
pub unsafe extern "C" fn get_page(address: u32, make: i32, dir: *mut PageDirectory) -> *mut PageT {
    let r = get_page_in::<Classic>(address, make, dir);
    record(r).map_or(ptr::null_mut(), NonNull::as_ptr)
}

/// `page64_t *get_page64(uint32_t address, int make, page_directory_t *dir)`:
/// `get_page` for PAE paging. NULL with `MM_EOPNOTSUPP` in classic mode.
///
/// # Safety
///
/// None beyond C's: `dir` is checked against the handles this API hands out.
#[no_mangle]
pub unsafe extern "C" fn get_page64(
    address: u32,
    make: i32,
    dir: *mut PageDirectory,
) -> *mut Page64T {
    let r = get_page_in::<Pae>(address, make, dir);
    record(r).map_or(ptr::null_mut(), NonNull::as_ptr)
}

/// `void alloc_frame(page_t *page, int is_kernel, int is_writeable)`.
/// `MM_EOPNOTSUPP` in PAE mode (use `alloc_frame64`).
///
/// # Safety
///
/// `page` must be NULL or point to a page-table entry (what `get_page`
/// returned, while its table lives) or to any writable, aligned `page_t`.
#[no_mangle]
pub unsafe extern "C" fn alloc_frame(page: *mut PageT, is_kernel: i32, is_writeable: i32) {
    let attrs = PageAttrs::new(flags(is_kernel, is_writeable));
    // SAFETY: forwarded to the caller.
    record(unsafe { alloc_frame_in::<Classic>(page, attrs) });
}

/// `void alloc_frame64(page64_t *page, int is_kernel, int is_writeable,
/// int no_exec)`: `alloc_frame` for PAE entries; `no_exec != 0` sets NX.
/// `MM_EOPNOTSUPP` in classic mode.
///
/// # Safety
///
/// `page` must be NULL or point to a PAE page-table entry (what
/// `get_page64` returned, while its table lives) or to any writable,
/// aligned `page64_t`.
#[no_mangle]
pub unsafe extern "C" fn alloc_frame64(
    page: *mut Page64T,
    is_kernel: i32,
    is_writeable: i32,
    no_exec: i32,
) {
    let attrs = PageAttrs::new(flags(is_kernel, is_writeable)).with_no_exec(no_exec != 0);
    // SAFETY: forwarded to the caller.
    record(unsafe { alloc_frame_in::<Pae>(page, attrs) });
}

/// # Safety
///
/// As [`alloc_frame`], for an entry of mode `M`.
unsafe fn alloc_frame_in<M: CMode>(page: *mut M::Entry, attrs: PageAttrs) -> CResult<()> {
    let m = mm()?;
    let kernel = m.kernel_in::<M>()?;
    let page = NonNull::new(page).ok_or(MmError::InvalidArgument)?;
    let _space = kernel.lock(); // serializes entry updates with the core's
                                // SAFETY: the caller promises a valid, aligned entry.
    let old = unsafe { read_entry(page.as_ptr()) };
    if old.is_present() {
        return Ok(());
    }
    let mut frames = m.frames;
    let frame = frames.alloc(Zone::High)?;
    m.platform.zero_frame(frame.frame());
    // The entry holds the reference from now on: C code owns it through the
    // `page_t`, and gives it back with `free_frame`.
    let new = M::Entry::map_to(frame.into_raw(), attrs);
    // SAFETY: as above. A not-present entry is never cached by the TLB, so
    // no flush is owed.
    unsafe { write_entry(page.as_ptr(), new) };
    Ok(())
}

/// `void free_frame(page_t *page)`. `MM_EOPNOTSUPP` in PAE mode (use
/// `free_frame64`).
///
/// # Safety
///
/// As [`alloc_frame`].
#[no_mangle]
pub unsafe extern "C" fn free_frame(page: *mut PageT) {
    // SAFETY: forwarded to the caller.
    record(unsafe { free_frame_in::<Classic>(page) });
}

/// `void free_frame64(page64_t *page)`: `free_frame` for PAE entries.
/// `MM_EOPNOTSUPP` in classic mode.
///
/// # Safety
///
/// As [`alloc_frame64`].
#[no_mangle]
pub unsafe extern "C" fn free_frame64(page: *mut Page64T) {
    // SAFETY: forwarded to the caller.
    record(unsafe { free_frame_in::<Pae>(page) });
}

/// # Safety
///
/// As [`alloc_frame`], for an entry of mode `M`.
unsafe fn free_frame_in<M: CMode>(page: *mut M::Entry) -> CResult<()> {
    let m = mm()?;
    let kernel = m.kernel_in::<M>()?;
    let page = NonNull::new(page).ok_or(MmError::InvalidArgument)?;
    let mapped = page_of_entry::<M>(page.as_ptr().addr());
    let _space = kernel.lock();
    // SAFETY: the caller promises a valid, aligned entry.
    let old = unsafe { read_entry(page.as_ptr()) };
    if !old.is_present() {
        return Ok(());
    }
    // SAFETY: as above.
    unsafe { write_entry(page.as_ptr(), M::Entry::EMPTY) };
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

/// Maps `virtual_addr`'s page to `frame` in the current directory (mode `M`).
fn map_page_in<M: CMode>(virtual_addr: u32, frame: Frame, flags: PteFlags) -> CResult<()> {
    let page = VirtAddr::new(virtual_addr).page();
    with_space::<M, _>(current(), |p, frames, space| {
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
        match space.remap(p, frames, page, owned, flags) {
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
    })
}

/// `void map_page(uint32_t virtual_addr, uint32_t physical_addr, int is_kernel, int is_writeable)`.
#[no_mangle]
pub extern "C" fn map_page(
    virtual_addr: u32,
    physical_addr: u32,
    is_kernel: i32,
    is_writeable: i32,
) {
    let frame = PhysAddr::new(physical_addr).frame();
    let f = flags(is_kernel, is_writeable);
    record(in_mode!(map_page_in(virtual_addr, frame, f)));
}

/// `void map_page64(uint32_t virtual_addr, uint64_t physical_addr, int
/// is_kernel, int is_writeable)`: `map_page` with a 64-bit physical
/// address (frames above 4 GiB in PAE mode; classic entries refuse them
/// with `MM_EINVAL`, as they do addresses at or above 64 GiB).
#[no_mangle]
pub extern "C" fn map_page64(
    virtual_addr: u32,
    physical_addr: u64,
    is_kernel: i32,
    is_writeable: i32,
) {
    let f = flags(is_kernel, is_writeable);
    let r = PhysAddr::try_from_u64(physical_addr)
        .map_err(Failure::from)
        .and_then(|pa| in_mode!(map_page_in(virtual_addr, pa.frame(), f)));
    record(r);
}

fn unmap_page_in<M: CMode>(virtual_addr: u32) -> CResult<()> {
    let page = VirtAddr::new(virtual_addr).page();
    with_space::<M, _>(current(), |p, frames, space| {
        let (frame, flush) = space.unmap(p, frames, page)?;
        flush.flush(p);
        release(frames, frame)
    })
}

/// `void unmap_page(uint32_t virtual_addr)`.
#[no_mangle]
pub extern "C" fn unmap_page(virtual_addr: u32) {
    record(in_mode!(unmap_page_in(virtual_addr)));
}

fn translate_in<M: CMode>(virtual_addr: u32) -> CResult<PhysAddr> {
    with_space::<M, _>(current(), |p, _, space| {
        space
            .translate(p, VirtAddr::new(virtual_addr))
            .ok_or(Failure::Mm(MmError::NotMapped))
    })
}

/// `uint32_t get_physical_address(uint32_t virtual_addr)`: `MM_PHYS_NONE`
/// (`0xFFFFFFFF`) when unmapped, or (PAE mode) with `MM_EOVERFLOW` when
/// the frame lies above 4 GiB.
#[no_mangle]
pub extern "C" fn get_physical_address(virtual_addr: u32) -> u32 {
    let r = in_mode!(translate_in(virtual_addr))
        .and_then(|pa| pa.to_u32().ok_or(Failure::AboveFourGiB));
    record(r).unwrap_or(PHYS_NONE)
}

/// `uint64_t get_physical_address64(uint32_t virtual_addr)`: the physical
/// address in either mode, above 4 GiB too; `MM_PHYS64_NONE` when unmapped.
#[no_mangle]
pub extern "C" fn get_physical_address64(virtual_addr: u32) -> u64 {
    record(in_mode!(translate_in(virtual_addr)).map(PhysAddr::as_u64)).unwrap_or(PHYS64_NONE)
}

/// `MM_PHYS_NONE`: what `get_physical_address` returns for an unmapped address.
pub const PHYS_NONE: u32 = u32::MAX;

/// `MM_PHYS64_NONE`: what `get_physical_address64` returns for an unmapped
/// address.
pub const PHYS64_NONE: u64 = u64::MAX;

/// `uint32_t myos_frames_free(void)`: free physical frames now (for leak
/// checks: a sequence that gives everything back restores the count).
#[no_mangle]
pub extern "C" fn myos_frames_free() -> u32 {
    record(mm().map(|m| m.frames.lock().stats().free)).unwrap_or(0)
}
