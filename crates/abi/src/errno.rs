//! errno values (Linux i386), the spec's `MM_E*` codes among them, and the
//! code of each core error.

use myos_mm::MmError;

/// Operation not permitted (`MM_EPERM`).
pub const EPERM: i32 = 1;
/// No such file (the kernel's `open`).
pub const ENOENT: i32 = 2;
/// Bad file descriptor (`MM_EBADF`).
pub const EBADF: i32 = 9;
/// No child processes (the kernel's `waitpid`).
pub const ECHILD: i32 = 10;
/// Try again (the kernel's process limit).
pub const EAGAIN: i32 = 11;
/// Out of memory (`MM_ENOMEM`).
pub const ENOMEM: i32 = 12;
/// Permission denied (`MM_EACCES`).
pub const EACCES: i32 = 13;
/// Bad address (`MM_EFAULT`).
pub const EFAULT: i32 = 14;
/// Device or resource busy.
pub const EBUSY: i32 = 16;
/// File exists: already mapped (`MM_EEXIST`).
pub const EEXIST: i32 = 17;
/// No such device: the memory manager is not set up (`MM_ENODEV`).
pub const ENODEV: i32 = 19;
/// Invalid argument (`MM_EINVAL`).
pub const EINVAL: i32 = 22;
/// Function not implemented (the kernel's unknown system calls).
pub const ENOSYS: i32 = 38;
/// Value too large: a reference count would overflow, or a physical
/// address above 4 GiB has no 32-bit form (`MM_EOVERFLOW`).
pub const EOVERFLOW: i32 = 75;
/// Operation not supported: the C API's call for the other paging mode
/// (`get_page` under PAE, `get_page64` under classic paging;
/// `MM_EOPNOTSUPP`).
pub const EOPNOTSUPP: i32 = 95;

/// The errno code of a core error.
pub const fn errno_of(e: MmError) -> i32 {
    match e {
        MmError::OutOfMemory => ENOMEM,
        MmError::Misaligned
        | MmError::OutOfRange
        | MmError::InvalidArgument
        | MmError::FrameNotAllocated
        | MmError::FrameInUse
        | MmError::FrameReserved
        | MmError::NotMapped
        | MmError::BadPointer
        | MmError::DoubleFree => EINVAL,
        MmError::RefcountOverflow => EOVERFLOW,
        MmError::AlreadyMapped => EEXIST,
        MmError::FixedMapping => EPERM,
        MmError::BadFileDescriptor => EBADF,
        MmError::AccessDenied => EACCES,
        MmError::HeapCorrupted => EFAULT,
        MmError::BadAddress => EFAULT,
        MmError::NoRegion => ENOMEM,
        // `MmError` is non-exhaustive; a new variant gets its own code here.
        _ => EINVAL,
    }
}

/// `error.errno()`: the errno code the C API and system calls report.
pub trait Errno {
    /// The errno code (positive; a system call returns its negation).
    fn errno(self) -> i32;
}

impl Errno for MmError {
    fn errno(self) -> i32 {
        errno_of(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_core_errors() {
        assert_eq!(MmError::OutOfMemory.errno(), ENOMEM);
        assert_eq!(MmError::DoubleFree.errno(), EINVAL);
        assert_eq!(MmError::AlreadyMapped.errno(), EEXIST);
        assert_eq!(MmError::NoRegion.errno(), ENOMEM);
        assert_eq!(MmError::HeapCorrupted.errno(), EFAULT);
    }
}
