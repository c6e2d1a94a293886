//! The C process: `mmap`, `munmap` and `page_fault_handler` over the core's
//! [`VmSpace`].
//!
//! C code linked with this API runs as one process: a [`VmSpace`] created by
//! [`create_process`] (the host boot does it; a kernel calls it before
//! `c_main`), whose directory is `current_directory` once activated. Its
//! descriptor table ([`FdTable`]) holds the in-memory files C code creates
//! with `myos_file_create` (and whatever the platform adds with
//! [`with_fds`]).

use alloc::sync::Arc;
use core::ffi::c_void;
use core::ptr;

use myos_abi::{MemFile, RawMman};
use myos_mm::paging::{AddressSpace, Classic, Pae};
use myos_mm::vm::{
    FaultContext, FaultOutcome, FdTable, File, OpenFile, OpenMode, PageFault, VmSpace,
};
use myos_mm::{MmError, VirtAddr};
use spin::{Mutex, Once};

use crate::dir::{self, Dir};
use crate::errno::{record, CResult, Failure};
use crate::state::{mm, CMode, Frames, KernelSpace, Plat};

/// The C process's address space type (in paging mode `M`).
pub type Space<M = Classic> = VmSpace<'static, Plat, Frames, M>;

/// The C process, in the running paging mode.
pub(crate) enum Process {
    /// Classic paging.
    Classic(Mutex<Space<Classic>>),
    /// PAE paging.
    Pae(Mutex<Space<Pae>>),
}

/// Runs `$body` with `$space` bound to the process's lock
/// (`&Mutex<Space<M>>`) of the running mode; the body is compiled once per
/// mode, against the core's generic API.
macro_rules! with_process {
    ($process:expr, |$space:ident| $body:expr) => {
        match $process {
            Process::Classic($space) => $body,
            Process::Pae($space) => $body,
        }
    };
}

static PROCESS: Once<Process> = Once::new();
static FDS: Mutex<Option<FdTable>> = Mutex::new(None);
/// The pending fault for `page_fault_handler`: (CR2, error code).
static PENDING: Mutex<Option<PageFault>> = Mutex::new(None);

/// Creates the C process (a user address space sharing the kernel half) and
/// loads its directory, which becomes `current_directory`. Fails with
/// `AlreadyMapped` when it exists, or as [`VmSpace::new`].
pub fn create_process() -> Result<(), MmError> {
    if PROCESS.get().is_some() {
        return Err(MmError::AlreadyMapped);
    }
    let m = mm().map_err(|_| MmError::InvalidArgument)?;
    let process = match m.kernel {
        KernelSpace::Classic(k) => {
            Process::Classic(Mutex::new(VmSpace::new(m.platform, m.frames, &k.lock())?))
        }
        KernelSpace::Pae(k) => {
            Process::Pae(Mutex::new(VmSpace::new(m.platform, m.frames, &k.lock())?))
        }
    };
    let p = PROCESS.call_once(|| process);
    with_process!(p, |s| s.lock().activate());
    dir::set_current(Dir::Process);
    Ok(())
}

/// True once the C process exists.
pub(crate) fn process_exists() -> bool {
    PROCESS.get().is_some()
}

fn process() -> CResult<&'static Process> {
    PROCESS.get().ok_or(Failure::NotSetUp)
}

/// The process's space in mode `M`; `OtherMode` when it runs the other one.
fn process_in<M: CMode>() -> CResult<&'static Mutex<Space<M>>> {
    M::process(process()?).ok_or(Failure::OtherMode)
}

/// Runs `f` on the process's page tables (in mode `M`).
pub(crate) fn with_process_space<M: CMode, T>(
    f: impl FnOnce(&mut AddressSpace<M>) -> CResult<T>,
) -> CResult<T> {
    f(process_in::<M>()?.lock().address_space_mut())
}

/// Loads the process's directory.
pub(crate) fn activate_process() -> CResult<()> {
    with_process!(process()?, |s| s.lock().activate());
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
    handle(PageFault::new(cr2, error_code)).is_ok()
}

fn handle(fault: PageFault) -> CResult<()> {
    let outcome = with_process!(process()?, |s| s.lock().handle_fault(fault));
    match outcome {
        FaultOutcome::Resolved(_) => Ok(()),
        FaultOutcome::OutOfMemory => Err(MmError::OutOfMemory.into()),
        FaultOutcome::Signal(_) | FaultOutcome::KernelBug | FaultOutcome::ProtectionBug(_) => {
            Err(Failure::Unresolved)
        }
    }
}

/// Records the fault `page_fault_handler` services (what a trap entry
/// does with CR2 and the error code before calling it).
pub fn set_fault(cr2: u32, error_code: u32) {
    *PENDING.lock() = Some(PageFault::new(cr2, error_code));
}

/// `void myos_set_fault(uint32_t address, uint32_t error_code)`.
#[no_mangle]
pub extern "C" fn myos_set_fault(address: u32, error_code: u32) {
    set_fault(address, error_code);
    record(Ok(()));
}

/// `MYOS_FAULT_SMEP`: CR4.SMEP was on when the fault was taken.
pub const FAULT_SMEP: u32 = 1 << 0;
/// `MYOS_FAULT_SMAP`: CR4.SMAP was on.
pub const FAULT_SMAP: u32 = 1 << 1;
/// `MYOS_FAULT_AC`: EFLAGS.AC of the interrupted code was set (inside
/// `stac`/`clac`).
pub const FAULT_AC: u32 = 1 << 2;

/// The fault `cr2`/`error_code` taken with the protections named by
/// `cpu_flags` (`MYOS_FAULT_*`); `None` for unknown flag bits.
pub fn fault_with_flags(cr2: u32, error_code: u32, cpu_flags: u32) -> Option<PageFault> {
    if cpu_flags & !(FAULT_SMEP | FAULT_SMAP | FAULT_AC) != 0 {
        return None;
    }
    let context = FaultContext::new(
        cpu_flags & FAULT_SMEP != 0,
        cpu_flags & FAULT_SMAP != 0,
        cpu_flags & FAULT_AC != 0,
    );
    Some(PageFault::new(cr2, error_code).with_context(context))
}

/// `void myos_set_fault_ctx(uint32_t address, uint32_t error_code,
/// uint32_t cpu_flags)`: as `myos_set_fault`, for a kernel that turned on
/// SMEP or SMAP: `cpu_flags` says which (`MYOS_FAULT_SMEP`,
/// `MYOS_FAULT_SMAP`) and whether EFLAGS.AC was set (`MYOS_FAULT_AC`), so a
/// supervisor access the CPU refused is reported (`MM_EFAULT`) instead of
/// being taken for a stale TLB entry and retried forever. Unknown flag
/// bits: `MM_EINVAL`, nothing recorded.
#[no_mangle]
pub extern "C" fn myos_set_fault_ctx(address: u32, error_code: u32, cpu_flags: u32) {
    let r = fault_with_flags(address, error_code, cpu_flags)
        .map(|fault| *PENDING.lock() = Some(fault))
        .ok_or(Failure::Mm(MmError::InvalidArgument));
    record(r);
}

/// `void page_fault_handler(void)`: services the pending fault.
#[no_mangle]
pub extern "C" fn page_fault_handler() {
    let pending = PENDING.lock().take();
    let r = pending
        .ok_or(Failure::Mm(MmError::InvalidArgument))
        .and_then(handle);
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
        let va = with_process!(p, |s| s.lock().mmap(
            table,
            a,
            length,
            prot as u32,
            flags as u32,
            fd,
            offset
        ))?;
        Ok(ptr::with_exposed_provenance_mut::<c_void>(va.as_usize()))
    });
    record(r).unwrap_or(ptr::null_mut())
}

/// `int munmap(void *addr, uint32_t length)`: 0, or -1 on failure.
/// (`myos_munmap` on the host.)
#[cfg_attr(not(feature = "hosted"), no_mangle)]
#[cfg_attr(feature = "hosted", export_name = "myos_munmap")]
pub extern "C" fn munmap(addr: *mut c_void, length: u32) -> i32 {
    let r =
        addr_of(addr).and_then(|a| Ok(with_process!(process()?, |s| s.lock().munmap(a, length))?));
    record(r).map_or(-1, |()| 0)
}

/// `MYOS_O_RDONLY`, `MYOS_O_WRONLY`, `MYOS_O_RDWR` as [`OpenMode`]s.
fn open_mode(mode: i32) -> CResult<OpenMode> {
    let raw = u32::try_from(mode).map_err(|_| MmError::InvalidArgument)?;
    Ok(myos_abi::open_mode(raw)?)
}

/// `int myos_file_create(const void *data, uint32_t len, int mode)`: an
/// in-memory file holding `len` bytes of `data`, opened with `mode` in the C
/// process's descriptor table; its descriptor, or -1.
///
/// # Safety
///
/// `data` must be valid for reads of `len` bytes (it may be NULL when `len`
/// is 0).
#[no_mangle]
pub unsafe extern "C" fn myos_file_create(data: *const c_void, len: u32, mode: i32) -> i32 {
    let r = open_mode(mode).and_then(|mode| {
        let bytes: &[u8] = if len == 0 {
            &[]
        } else if data.is_null() {
            return Err(MmError::InvalidArgument.into());
        } else {
            // SAFETY: the caller promises `len` readable bytes at `data`.
            unsafe { core::slice::from_raw_parts(data.cast::<u8>(), len as usize) }
        };
        let file: Arc<dyn File> = Arc::new(MemFile::new(bytes));
        Ok(with_fds(|t| t.insert(OpenFile::new(file, mode))))
    });
    record(r).unwrap_or(-1)
}

/// `int myos_file_read(int fd, uint32_t offset, void *buf, uint32_t len)`:
/// reads the file behind `fd` (what reached it, e.g. through a shared
/// mapping); the bytes read, or -1.
///
/// # Safety
///
/// `buf` must be valid for writes of `len` bytes (it may be NULL when `len`
/// is 0).
#[no_mangle]
pub unsafe extern "C" fn myos_file_read(fd: i32, offset: u32, buf: *mut c_void, len: u32) -> i32 {
    let r = with_fds(|t| t.get(fd).map(|f| f.file().clone()))
        .map_err(Failure::from)
        .and_then(|file| {
            if len == 0 {
                return Ok(0);
            }
            if buf.is_null() {
                return Err(MmError::InvalidArgument.into());
            }
            // SAFETY: the caller promises `len` writable bytes at `buf`.
            let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len as usize) };
            let n = file.read_at(u64::from(offset), out)?;
            Ok(i32::try_from(n).unwrap_or(i32::MAX))
        });
    record(r).unwrap_or(-1)
}

/// `int myos_file_close(int fd)`: 0, or -1 (`MM_EBADF`). Mappings of the
/// file stay valid.
#[no_mangle]
pub extern "C" fn myos_file_close(fd: i32) -> i32 {
    let r = with_fds(|t| t.close(fd).map(drop)).map_err(Failure::from);
    record(r).map_or(-1, |()| 0)
}
