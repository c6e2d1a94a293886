//! The spec's raw `mmap(addr, length, prot, flags, fd, offset)` and
//! `mprotect(addr, length, prot)`: integers as a system call or a C caller
//! passes them, validated into the core's typed request.

use myos_mm::frames::FrameSource;
use myos_mm::paging::PagingMode;
use myos_mm::vm::{FdTable, MapFlags, MapRequest, MapSource, Prot, VmSpace};
use myos_mm::{MmError, Platform, VirtAddr};

/// Parses a raw `prot`: unknown bits are `InvalidArgument`.
pub fn prot(raw: u32) -> Result<Prot, MmError> {
    Prot::from_bits(raw).ok_or(MmError::InvalidArgument)
}

/// Validates the raw arguments of `mmap` into a [`MapRequest`]; `fd` is
/// resolved through `fds`.
///
/// Errors, checked in this order: `InvalidArgument` (EINVAL) for `length`
/// 0, unknown `prot` or `flags` bits, neither or both of
/// `MAP_SHARED`/`MAP_PRIVATE`, `MAP_ANONYMOUS` with `fd != -1` or
/// `offset != 0`; `BadFileDescriptor` (EBADF) when `fd` names no open
/// file. [`VmSpace::map`] checks the rest.
pub fn map_request(
    fds: &FdTable,
    addr: VirtAddr,
    length: u32,
    prot: u32,
    flags: u32,
    fd: i32,
    offset: u32,
) -> Result<MapRequest, MmError> {
    if length == 0 {
        return Err(MmError::InvalidArgument);
    }
    let prot = self::prot(prot)?;
    let flags = MapFlags::from_bits(flags).ok_or(MmError::InvalidArgument)?;
    let shared = match (
        flags.contains(MapFlags::SHARED),
        flags.contains(MapFlags::PRIVATE),
    ) {
        (true, false) => true,
        (false, true) => false,
        _ => return Err(MmError::InvalidArgument),
    };
    let source = if flags.contains(MapFlags::ANONYMOUS) {
        if fd != -1 || offset != 0 {
            return Err(MmError::InvalidArgument);
        }
        MapSource::Anonymous
    } else {
        MapSource::File {
            file: fds.get(fd)?.clone(),
            offset,
        }
    };
    let fixed = flags.contains(MapFlags::FIXED);
    Ok(MapRequest {
        // Address 0 without MAP_FIXED is "no hint".
        addr: (fixed || addr.as_u32() != 0).then_some(addr),
        length,
        prot,
        shared,
        fixed,
        source,
    })
}

/// The raw calls on a [`VmSpace`] (import the trait to call them as methods).
pub trait RawMman {
    /// `mmap(addr, length, prot, flags, fd, offset)`: [`map_request`], then
    /// [`VmSpace::map`]. Returns the mapping's address; nothing changes on
    /// error.
    #[allow(clippy::too_many_arguments)] // the spec's C signature
    fn mmap(
        &mut self,
        fds: &FdTable,
        addr: VirtAddr,
        length: u32,
        prot: u32,
        flags: u32,
        fd: i32,
        offset: u32,
    ) -> Result<VirtAddr, MmError>;

    /// `mprotect(addr, length, prot)`: [`prot`], then [`VmSpace::protect`].
    fn mprotect(&mut self, addr: VirtAddr, length: u32, prot: u32) -> Result<(), MmError>;
}

impl<P: Platform + ?Sized, F: FrameSource + Clone, M: PagingMode> RawMman for VmSpace<'_, P, F, M> {
    fn mmap(
        &mut self,
        fds: &FdTable,
        addr: VirtAddr,
        length: u32,
        prot: u32,
        flags: u32,
        fd: i32,
        offset: u32,
    ) -> Result<VirtAddr, MmError> {
        self.map(&map_request(fds, addr, length, prot, flags, fd, offset)?)
    }

    fn mprotect(&mut self, addr: VirtAddr, length: u32, prot: u32) -> Result<(), MmError> {
        self.protect(addr, length, self::prot(prot)?)
    }
}
