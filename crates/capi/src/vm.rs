//! The C process: `mmap`, `munmap` and `page_fault_handler` over the core's
//! [`VmSpace`].
//!
//! C code linked with this API runs as one process: a [`VmSpace`] created by
//! [`create_process`] (the host boot does it; a kernel calls it before
//! `c_main`), whose directory is `current_directory` once activated. Its
//! descriptor table ([`FdTable`]) is empty unless the platform adds files
//! with [`with_fds`].

use core::ffi::c_void;
use core::ptr;

use myos_mm::paging::AddressSpace;
use myos_mm::vm::{FaultOutcome, FdTable, PageFault, VmSpace};
use myos_mm::{Frame, MmError, VirtAddr};
use spin::{Mutex, Once};

use crate::errno::{record, CResult, Failure};
use crate::paging::{self, Dir, Frames};
use crate::state::{mm, Plat};

/// The C process's address space type.
pub type Space = VmSpace<'static, Plat, Frames>;

static PROCESS: Once<Mutex<Space>> = Once::new();
static FDS: Mutex<Option<FdTable>> = Mutex::new(None);
/// The pending fault for `page_fault_handler`: (CR2, error code).
static PENDING: Mutex<Option<(u32, u32)>> = Mutex::new(None);

/// Creates the C process (a user address space sharing the kernel half) and
/// loads its directory, which becomes `current_directory`. Fails with
/// `AlreadyMapped` when it exists, or as [`VmSpace::new`].
pub fn create_process() -> Result<(), MmError> {
    if PROCESS.get().is_some() {
        return Err(MmError::AlreadyMapped);
    }
    let m = mm().map_err(|_| MmError::InvalidArgument)?;
    let space = {
        let kernel = m.kernel.lock();
        VmSpace::new(m.platform, m.frames, &kernel)?
    };
    let p = PROCESS.call_once(|| Mutex::new(space));
    p.lock().activate();
    paging::set_current(Dir::Process);
    Ok(())
}

/// True once the C process exists.
pub(crate) fn process_exists() -> bool {
    PROCESS.get().is_some()
}

fn process() -> CResult<&'static Mutex<Space>> {
    PROCESS.get().ok_or(Failure::NotSetUp)
}

/// Runs `f` on the process's page tables.
pub(crate) fn with_process_space<T>(f: impl FnOnce(&mut AddressSpace) -> CResult<T>) -> CResult<T> {
    f(process()?.lock().address_space_mut())
}

/// The process's directory frame.
pub(crate) fn process_directory() -> Option<Frame> {
    PROCESS.get().map(|p| p.lock().directory())
}

/// Loads the process's directory.
pub(crate) fn activate_process() -> CResult<()> {
    process()?.lock().activate();
    Ok(())
}

/// Runs `f` on the process's descriptor table (e.g. to open files that C
/// code then maps by descriptor).
pub fn with_fds<T>(f: impl FnOnce(&mut FdTable) -> T) -> T {
    f(FDS.lock().get_or_insert_with(FdTable::new))
}

/// Services a page fault of the C process: `true` when it is resolved
/// (retry the access), `false` when no region allows it (a kernel bug for
/// a supervisor fault, a signal for a user one) or memory ran out. Also
/// `false` before the process exists. For a kernel's `#PF` handler and the
/// host's `SIGSEGV` handler.
pub fn handle_page_fault(cr2: u32, error_code: u32) -> bool {
    handle(cr2, error_code).is_ok()
}

fn handle(cr2: u32, error_code: u32) -> CResult<()> {
    let fault = PageFault::new(cr2, error_code);
    match process()?.lock().handle_fault(fault) {
        FaultOutcome::Resolved(_) => Ok(()),
        FaultOutcome::OutOfMemory => Err(MmError::OutOfMemory.into()),
        FaultOutcome::Signal(_) | FaultOutcome::KernelBug => Err(Failure::Unresolved),
    }
}

/// Records the fault `page_fault_handler` services (what a trap entry
/// does with CR2 and the error code before calling it).
pub fn set_fault(cr2: u32, error_code: u32) {
    *PENDING.lock() = Some((cr2, error_code));
}

/// `void myos_set_fault(uint32_t address, uint32_t error_code)`.
#[no_mangle]
pub extern "C" fn myos_set_fault(address: u32, error_code: u32) {
    set_fault(address, error_code);
    record(Ok(()));
}

/// `void page_fault_handler(void)`: services the pending fault.
#[no_mangle]
pub extern "C" fn page_fault_handler() {
    let pending = PENDING.lock().take();
    let r = pending
        .ok_or(Failure::Mm(MmError::InvalidArgument))
        .and_then(|(cr2, code)| handle(cr2, code));
    record(r);
}

/// A C pointer as a 32-bit address (`OutOfRange` above 4 GiB on the host).
fn addr_of(p: *mut c_void) -> CResult<VirtAddr> {
    u32::try_from(p.addr())
        .map(VirtAddr::new)
        .map_err(|_| MmError::OutOfRange.into())
}

/// `void *mmap(void *addr, uint32_t length, int prot, int flags, int fd,
/// uint32_t offset)`: NULL on failure. (`myos_mmap` on the host.)
#[cfg_attr(not(feature = "hosted"), no_mangle)]
#[cfg_attr(feature = "hosted", export_name = "myos_mmap")]
pub extern "C" fn mmap(
    addr: *mut c_void,
    length: u32,
    prot: i32,
    flags: i32,
    fd: i32,
    offset: u32,
) -> *mut c_void {
    let r = addr_of(addr).and_then(|a| {
        let p = process()?;
        let fds = FDS.lock();
        let empty = FdTable::new();
        let table = fds.as_ref().unwrap_or(&empty);
        let va = p
            .lock()
            .mmap(table, a, length, prot as u32, flags as u32, fd, offset)?;
        Ok(ptr::with_exposed_provenance_mut::<c_void>(va.as_usize()))
    });
    record(r).unwrap_or(ptr::null_mut())
}

/// `int munmap(void *addr, uint32_t length)`: 0, or -1 on failure.
/// (`myos_munmap` on the host.)
#[cfg_attr(not(feature = "hosted"), no_mangle)]
#[cfg_attr(feature = "hosted", export_name = "myos_munmap")]
pub extern "C" fn munmap(addr: *mut c_void, length: u32) -> i32 {
    let r = addr_of(addr).and_then(|a| Ok(process()?.lock().munmap(a, length)?));
    record(r).map_or(-1, |()| 0)
}
