//! `PROT_*`, `MAP_*` and the page-fault error-code bits, as
//! `include/myos/memory.h` defines them.
//!
//! Each constant is the bit of the core's typed flag, so the typed and the
//! raw forms cannot disagree; the values are checked at compile time below
//! and against the C header by the C API's layout test.

use myos_mm::vm::{MapFlags, Prot};

/// `PROT_NONE`: no access.
pub const PROT_NONE: u32 = Prot::empty().bits();
/// `PROT_READ`: readable.
pub const PROT_READ: u32 = Prot::READ.bits();
/// `PROT_WRITE`: writable (implies readable on x86).
pub const PROT_WRITE: u32 = Prot::WRITE.bits();
/// `PROT_EXEC`: executable (recorded; without NX it implies readable).
pub const PROT_EXEC: u32 = Prot::EXEC.bits();

/// `MAP_SHARED`: writes are shared with other mappings and reach the file.
pub const MAP_SHARED: u32 = MapFlags::SHARED.bits();
/// `MAP_PRIVATE`: copy-on-write; writes stay private to the process.
pub const MAP_PRIVATE: u32 = MapFlags::PRIVATE.bits();
/// `MAP_FIXED`: place the mapping exactly at `addr`, replacing what was there.
pub const MAP_FIXED: u32 = MapFlags::FIXED.bits();
/// `MAP_ANONYMOUS`: not backed by a file (`fd` must be -1, `offset` 0).
pub const MAP_ANONYMOUS: u32 = MapFlags::ANONYMOUS.bits();

/// The page-fault error-code bits (`ERR_*`): the i386 hardware's, which the
/// core decodes; re-exported so the header's whole set is checked here.
pub use myos_mm::vm::{ERR_FETCH, ERR_PRESENT, ERR_RESERVED, ERR_USER, ERR_WRITE};

// The spec's values (`include/myos/memory.h`, Linux i386).
const _: () = assert!(PROT_NONE == 0 && PROT_READ == 1 && PROT_WRITE == 2 && PROT_EXEC == 4);
const _: () = assert!(MAP_SHARED == 0x01 && MAP_PRIVATE == 0x02);
const _: () = assert!(MAP_FIXED == 0x10 && MAP_ANONYMOUS == 0x20);

/// `MYOS_O_RDONLY` (and the kernel's `O_RDONLY`): open for reading.
pub const O_RDONLY: u32 = 0;
/// `MYOS_O_WRONLY`: open for writing.
pub const O_WRONLY: u32 = 1;
/// `MYOS_O_RDWR` (and the kernel's `O_RDWR`): open for reading and writing.
pub const O_RDWR: u32 = 2;
/// `O_ACCMODE`: the bits of the access mode in `open` flags.
pub const O_ACCMODE: u32 = 3;

/// The access mode `O_RDONLY`/`O_WRONLY`/`O_RDWR` as an
/// [`OpenMode`](myos_mm::vm::OpenMode); anything else is `InvalidArgument`.
pub fn open_mode(raw: u32) -> Result<myos_mm::vm::OpenMode, myos_mm::MmError> {
    use myos_mm::vm::OpenMode;
    match raw {
        O_RDONLY => Ok(OpenMode::ReadOnly),
        O_WRONLY => Ok(OpenMode::WriteOnly),
        O_RDWR => Ok(OpenMode::ReadWrite),
        _ => Err(myos_mm::MmError::InvalidArgument),
    }
}
