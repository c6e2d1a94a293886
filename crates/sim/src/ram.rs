//! The machine's RAM: one zeroed host allocation, backed lazily by the host.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::error::SimError;

/// Alignment of the host allocation. Kept at most the allocator's minimum
/// alignment so that `alloc_zeroed` becomes `calloc`, which glibc serves with
/// a fresh anonymous `mmap` for large sizes: untouched pages cost nothing.
/// (A larger alignment would make std zero the whole buffer by hand.)
const HOST_ALIGN: usize = 8;

/// RAM of a fixed size, addressed by physical byte address.
///
/// Only raw-pointer copies touch the buffer (no Rust references into it are
/// ever created), so pointers handed out by
/// [`SimMachine::frame_ptr`](crate::SimMachine) stay valid alongside it.
pub(crate) struct Ram {
    base: NonNull<u8>,
    layout: Layout,
    /// The memfd behind a shared RAM (feature `memfd`); `None` for a plain
    /// host allocation.
    #[cfg(feature = "memfd")]
    fd: Option<std::os::fd::OwnedFd>,
}

// SAFETY: `Ram` owns its allocation exclusively; the raw pointer is only a
// handle to it, so moving it to another thread is fine.
unsafe impl Send for Ram {}
// SAFETY: shared access only reads `base`/`layout`; the bytes are touched via
// raw copies, which the machine serializes behind its lock for its safe API
// (callers of `frame_ptr` own their synchronization, per the `Platform`
// contract).
unsafe impl Sync for Ram {}

impl Ram {
    /// Allocates `bytes` of zeroed RAM (`bytes` already validated: non-zero).
    pub(crate) fn new(bytes: u64) -> Result<Self, SimError> {
        let size = usize::try_from(bytes).map_err(|_| SimError::HostAllocFailed(bytes))?;
        let layout = Layout::from_size_align(size, HOST_ALIGN)
            .map_err(|_| SimError::HostAllocFailed(bytes))?;
        debug_assert!(size > 0);
        // SAFETY: `layout` has a non-zero size (the caller rejects zero RAM).
        let p = unsafe { alloc::alloc_zeroed(layout) };
        let base = NonNull::new(p).ok_or(SimError::HostAllocFailed(bytes))?;
        Ok(Self {
            base,
            layout,
            #[cfg(feature = "memfd")]
            fd: None,
        })
    }

    /// Allocates `bytes` of zeroed RAM in a memfd, mapped shared: the same
    /// frames can be mapped again elsewhere in the host process (at offset =
    /// physical address), which is how the C API's host library makes
    /// simulated virtual addresses real host addresses. The file is sparse,
    /// so untouched RAM costs nothing.
    #[cfg(feature = "memfd")]
    pub(crate) fn new_memfd(bytes: u64) -> Result<Self, SimError> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

        let fail = SimError::HostAllocFailed(bytes);
        let size = usize::try_from(bytes).map_err(|_| fail)?;
        let len = libc::off_t::try_from(bytes).map_err(|_| fail)?;
        let layout = Layout::from_size_align(size, HOST_ALIGN).map_err(|_| fail)?;
        // SAFETY: a NUL-terminated name and valid flags; the result is checked.
        let raw = unsafe { libc::memfd_create(c"myos-sim-ram".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(fail);
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: plain syscall on the descriptor we own.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } != 0 {
            return Err(fail);
        }
        // SAFETY: a new shared mapping of the whole file at an address the
        // kernel chooses; it overlaps nothing we own. Checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(fail);
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or(fail)?;
        Ok(Self {
            base,
            layout,
            fd: Some(fd),
        })
    }

    /// The memfd behind a shared RAM: the byte at physical address `a` is at
    /// file offset `a`.
    #[cfg(feature = "memfd")]
    pub(crate) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// Size in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.layout.size() as u64
    }

    /// True when `addr..addr+len` lies inside RAM.
    pub(crate) fn contains(&self, addr: u64, len: usize) -> bool {
        addr.checked_add(len as u64)
            .is_some_and(|end| end <= self.len())
    }

    /// Pointer to the byte at `addr`.
    ///
    /// # Safety
    ///
    /// `addr` must be inside RAM (`contains(addr, 1)`, or `addr == len` for a
    /// one-past-the-end pointer).
    pub(crate) unsafe fn ptr(&self, addr: u64) -> NonNull<u8> {
        debug_assert!(addr <= self.len());
        // SAFETY: the caller keeps `addr` within the allocation, whose size
        // fits in `usize`.
        unsafe { self.base.add(addr as usize) }
    }

    /// Copies RAM at `addr` into `buf`; `false` (and nothing copied) when the
    /// range is not entirely inside RAM.
    pub(crate) fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        if !self.contains(addr, buf.len()) {
            return false;
        }
        // SAFETY: the range is inside the allocation (checked above), `buf`
        // is a distinct host buffer, and RAM is only touched by raw copies.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr(addr).as_ptr(), buf.as_mut_ptr(), buf.len())
        };
        true
    }

    /// Copies `buf` into RAM at `addr`; `false` (and nothing copied) when the
    /// range is not entirely inside RAM.
    pub(crate) fn write(&self, addr: u64, buf: &[u8]) -> bool {
        if !self.contains(addr, buf.len()) {
            return false;
        }
        // SAFETY: as in `read`, in the other direction.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.ptr(addr).as_ptr(), buf.len()) };
        true
    }

    /// Reads a little-endian `u32`; `None` outside RAM.
    pub(crate) fn read_u32(&self, addr: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b).then(|| u32::from_le_bytes(b))
    }

    /// Writes a little-endian `u32`; `false` outside RAM.
    pub(crate) fn write_u32(&self, addr: u64, value: u32) -> bool {
        self.write(addr, &value.to_le_bytes())
    }
}

impl Drop for Ram {
    fn drop(&mut self) {
        #[cfg(feature = "memfd")]
        if self.fd.is_some() {
            // SAFETY: `base` is the start of our own mapping of exactly this
            // size, unmapped once; the descriptor closes when `fd` drops.
            unsafe { libc::munmap(self.base.as_ptr().cast(), self.layout.size()) };
            return;
        }
        // SAFETY: `base` came from `alloc_zeroed` with this very layout and
        // is freed exactly once.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}
