//! The error type of every fallible call in the core.

use core::fmt;

/// Why a memory-management operation failed. Nothing is changed when an
/// operation returns an error.
///
/// The numbers C callers and system calls see (errno codes) are
/// `myos-abi`'s mapping of these variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MmError {
    /// No free physical frame (or run of frames) satisfies the request, or a
    /// heap cannot grow any further.
    OutOfMemory,
    /// An address or size that must be page-aligned (or aligned as asked) isn't.
    Misaligned,
    /// An address, frame or range lies outside what the call accepts.
    OutOfRange,
    /// A generic bad argument (zero length, conflicting flags, …).
    InvalidArgument,
    /// The frame is free: freeing or sharing it again is a bug in the caller.
    FrameNotAllocated,
    /// The frame is already allocated (claiming a specific frame).
    FrameInUse,
    /// The frame is reserved (kernel image, firmware, a memory-map hole) and
    /// never handed out or freed.
    FrameReserved,
    /// A frame's reference count would overflow.
    RefcountOverflow,
    /// The virtual page is already mapped and replacing was not asked for.
    AlreadyMapped,
    /// The virtual page is not mapped.
    NotMapped,
    /// The address lies in a fixed kernel range (e.g. the direct map, mapped
    /// with 4 MiB pages) that cannot be changed page by page.
    FixedMapping,
    /// A file descriptor does not name an open file.
    BadFileDescriptor,
    /// The requested access is not allowed (e.g. a shared writable mapping of
    /// a file opened read-only).
    AccessDenied,
    /// The pointer was not returned by this heap, or is not the start of a block.
    BadPointer,
    /// The block was already freed.
    DoubleFree,
    /// A heap header or boundary tag failed its integrity check (an overflow
    /// from a neighbouring block, or a wild write).
    HeapCorrupted,
    /// A user pointer does not point at accessible user memory (a fault
    /// `copy_to_user`/`copy_from_user` could not resolve).
    BadAddress,
    /// Part of the range is not mapped by any region (`mprotect`, `msync`).
    NoRegion,
}

impl MmError {
    /// A short human-readable description.
    pub const fn as_str(self) -> &'static str {
        match self {
            MmError::OutOfMemory => "out of memory",
            MmError::Misaligned => "misaligned address or size",
            MmError::OutOfRange => "address or frame out of range",
            MmError::InvalidArgument => "invalid argument",
            MmError::FrameNotAllocated => "frame is not allocated",
            MmError::FrameInUse => "frame is already allocated",
            MmError::FrameReserved => "frame is reserved",
            MmError::RefcountOverflow => "frame reference count overflow",
            MmError::AlreadyMapped => "page already mapped",
            MmError::NotMapped => "page not mapped",
            MmError::FixedMapping => "address is in a fixed kernel mapping",
            MmError::BadFileDescriptor => "bad file descriptor",
            MmError::AccessDenied => "access denied",
            MmError::BadPointer => "pointer not allocated by this heap",
            MmError::DoubleFree => "block already freed",
            MmError::HeapCorrupted => "heap metadata corrupted",
            MmError::BadAddress => "bad user address",
            MmError::NoRegion => "range not mapped",
        }
    }
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for MmError {}
