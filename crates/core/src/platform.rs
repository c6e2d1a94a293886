//! The hardware boundary: the one trait through which the core touches the machine.

use core::ptr::NonNull;

use crate::addr::{Frame, Page};
use crate::layout::{DIRECT_ZONE_END, PAGE_SIZE};
use crate::smp::{CpuId, CpuSet, Invalidate};

/// What the core needs from the machine: access to physical frames, the
/// page-directory base register (CR3) and the TLB.
///
/// Methods take `&self`, so each test can own its own simulated machine and
/// tests run in parallel. The reference kernel implements it with the direct
/// map, `mov cr3` and `invlpg`; `myos-sim` with a host buffer and a TLB model.
///
/// # Safety
///
/// Implementors promise that:
/// - for every frame below [`DIRECT_ZONE_END`] that lies in RAM,
///   [`frame_ptr`](Platform::frame_ptr) returns a pointer valid for reads and
///   writes of `PAGE_SIZE` bytes for as long as the platform lives, and that
///   consecutive frames in that range have consecutive pointers (the core
///   keeps arrays, e.g. frame metadata, across frames);
/// - the frame data methods ([`zero_frame`](Platform::zero_frame) and the
///   others) work for every RAM frame, including those above the direct map;
/// - the core has exclusive use of every frame it allocates (the platform
///   does not hand the same memory to anyone else).
pub unsafe trait Platform {
    /// Kernel-virtual pointer to a direct-mapped frame (the direct map on x86,
    /// an offset into the RAM buffer in the simulator). Only called for frames
    /// below [`DIRECT_ZONE_END`].
    fn frame_ptr(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]>;

    /// The page directory currently loaded (CR3).
    fn root(&self) -> Frame;

    /// Loads `root` into CR3, which also flushes every non-global TLB entry.
    ///
    /// # Safety
    ///
    /// `root` must be a valid page directory whose kernel half maps the code
    /// and data the caller is running on.
    unsafe fn set_root(&self, root: Frame);

    /// Invalidates the TLB entry for one page (`invlpg`).
    fn flush(&self, page: Page);

    /// Invalidates every non-global TLB entry (reloads CR3).
    fn flush_all(&self);

    /// The CPU the caller runs on. The default is for one-CPU platforms.
    fn cpu_id(&self) -> CpuId {
        CpuId::BOOT
    }

    /// The CPUs that are online and may cache kernel-half (global)
    /// translations: the targets of a kernel-half shootdown (the core
    /// leaves the caller out). The default is for one-CPU platforms: the
    /// caller only.
    fn online_cpus(&self) -> CpuSet {
        CpuSet::only(self.cpu_id())
    }

    /// Makes every CPU in `targets` (never the caller's own CPU: the core
    /// flushes that one itself with [`flush`](Platform::flush) and
    /// [`flush_all`](Platform::flush_all)) drop what `what` names from its
    /// TLB and paging-structure caches, and returns only when each has
    /// done so.
    ///
    /// The core calls it after changing the page tables and before
    /// releasing any frame or page table whose translations it removed, so
    /// when it returns no CPU can reach those frames any more. An
    /// implementation must not deadlock when a target spins with
    /// interrupts disabled: a CPU that waits (for a lock, or for the
    /// acknowledgements of its own shootdown) services requests addressed
    /// to it while it waits, or requests come by NMI.
    ///
    /// The default is for one-CPU platforms, which have no other CPU: it
    /// asserts in debug builds that `targets` is empty.
    fn shootdown(&self, targets: CpuSet, what: Invalidate<'_>) {
        let _ = what;
        debug_assert!(
            targets.is_empty(),
            "shootdown to {targets:?} on a one-CPU platform"
        );
    }

    /// Fills a frame with zeroes. The default goes through
    /// [`frame_ptr`](Platform::frame_ptr); platforms with high memory override
    /// the data methods to reach frames above the direct map.
    fn zero_frame(&self, frame: Frame) {
        debug_assert!(frame.start().as_u64() < DIRECT_ZONE_END);
        // SAFETY: the trait contract makes `frame_ptr` valid for PAGE_SIZE
        // writes, and the core owns the frame it asks to clear.
        unsafe { self.frame_ptr(frame).as_ptr().write_bytes(0, 1) }
    }

    /// Copies the whole of `src` into `dst` (distinct frames).
    fn copy_frame(&self, dst: Frame, src: Frame) {
        debug_assert!(dst != src);
        let (d, s) = (self.frame_ptr(dst), self.frame_ptr(src));
        // SAFETY: both pointers are valid for PAGE_SIZE bytes (trait
        // contract) and distinct frames never overlap.
        unsafe { core::ptr::copy_nonoverlapping(s.as_ptr(), d.as_ptr(), 1) }
    }

    /// Reads `buf.len()` bytes at `offset` within `frame`.
    ///
    /// Panics if `offset + buf.len() > PAGE_SIZE` (a bug in the core).
    #[inline]
    fn read_frame(&self, frame: Frame, offset: usize, buf: &mut [u8]) {
        assert!(offset <= PAGE_SIZE && buf.len() <= PAGE_SIZE - offset);
        let p = self.frame_ptr(frame).as_ptr().cast::<u8>();
        // SAFETY: the range lies within the frame (checked above), which is
        // valid for reads (trait contract) and does not overlap `buf`.
        unsafe { core::ptr::copy_nonoverlapping(p.add(offset), buf.as_mut_ptr(), buf.len()) }
    }

    /// Writes `buf` at `offset` within `frame`.
    ///
    /// Panics if `offset + buf.len() > PAGE_SIZE` (a bug in the core).
    #[inline]
    fn write_frame(&self, frame: Frame, offset: usize, buf: &[u8]) {
        assert!(offset <= PAGE_SIZE && buf.len() <= PAGE_SIZE - offset);
        let p = self.frame_ptr(frame).as_ptr().cast::<u8>();
        // SAFETY: as in `read_frame`, for writes.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), p.add(offset), buf.len()) }
    }
}

// SAFETY: a shared reference forwards to a platform that keeps the promises.
unsafe impl<T: Platform + ?Sized> Platform for &T {
    fn frame_ptr(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        (**self).frame_ptr(frame)
    }
    fn root(&self) -> Frame {
        (**self).root()
    }
    unsafe fn set_root(&self, root: Frame) {
        // SAFETY: forwarded; the caller upholds `set_root`'s contract.
        unsafe { (**self).set_root(root) }
    }
    fn flush(&self, page: Page) {
        (**self).flush(page)
    }
    fn flush_all(&self) {
        (**self).flush_all()
    }
    fn cpu_id(&self) -> CpuId {
        (**self).cpu_id()
    }
    fn online_cpus(&self) -> CpuSet {
        (**self).online_cpus()
    }
    fn shootdown(&self, targets: CpuSet, what: Invalidate<'_>) {
        (**self).shootdown(targets, what)
    }
    fn zero_frame(&self, frame: Frame) {
        (**self).zero_frame(frame)
    }
    fn copy_frame(&self, dst: Frame, src: Frame) {
        (**self).copy_frame(dst, src)
    }
    fn read_frame(&self, frame: Frame, offset: usize, buf: &mut [u8]) {
        (**self).read_frame(frame, offset, buf)
    }
    fn write_frame(&self, frame: Frame, offset: usize, buf: &[u8]) {
        (**self).write_frame(frame, offset, buf)
    }
}
