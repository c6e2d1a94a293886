//! Kernel access to user memory: `copy_to_user`/`copy_from_user`, which
//! fault pages in (and break copy-on-write) as a user access would.

use super::VmSpace;
use crate::addr::{Frame, VirtAddr};
use crate::error::MmError;
use crate::frames::FrameSource;
use crate::layout::{PAGE_SIZE, USER_END};
use crate::paging::{Entry, PagingMode, PteFlags};
use crate::platform::Platform;
use crate::vm::fault::{ErrorCode, FaultOutcome, PageFault};

impl<P: Platform + ?Sized, F: FrameSource + Clone, M: PagingMode> VmSpace<'_, P, F, M> {
    /// Copies `src` to user memory at `dst`, as a user-mode write would:
    /// pages are faulted in and copy-on-write is broken through the fault
    /// handler, then bytes are written through the frames
    /// ([`Platform::write_frame`]), not through the MMU.
    ///
    /// `BadAddress` (EFAULT) when a page of the range is not writable user
    /// memory (no region, protection, past EOF); `OutOfMemory` when a page
    /// could not be brought in. On error, the pages before the bad one may
    /// have been written.
    pub fn copy_to_user(&mut self, dst: VirtAddr, src: &[u8]) -> Result<(), MmError> {
        let mut done = 0usize;
        while done < src.len() {
            let va = user_addr(dst, done)?;
            let off = va.page_offset() as usize;
            let n = (PAGE_SIZE - off).min(src.len() - done);
            let frame = self.user_frame(va, true)?;
            self.platform.write_frame(frame, off, &src[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Copies user memory at `src` into `dst`, as a user-mode read would
    /// (pages are faulted in). Errors as [`copy_to_user`](Self::copy_to_user).
    pub fn copy_from_user(&mut self, src: VirtAddr, dst: &mut [u8]) -> Result<(), MmError> {
        let mut done = 0usize;
        while done < dst.len() {
            let va = user_addr(src, done)?;
            let off = va.page_offset() as usize;
            let n = (PAGE_SIZE - off).min(dst.len() - done);
            let frame = self.user_frame(va, false)?;
            self.platform
                .read_frame(frame, off, &mut dst[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// The frame behind user address `va`, for a user read or write:
    /// walks the page table and, when the entry does not allow the access,
    /// runs the fault handler as for a user fault.
    pub(super) fn user_frame(&mut self, va: VirtAddr, write: bool) -> Result<Frame, MmError> {
        for _ in 0..3 {
            let e = self
                .space
                .entry(self.platform, va.page())
                .filter(|e| e.is_present());
            let mut code = ErrorCode::USER;
            if write {
                code |= ErrorCode::WRITE;
            }
            match e {
                Some(e)
                    if e.flags().contains(PteFlags::USER)
                        && (!write || e.flags().contains(PteFlags::WRITABLE)) =>
                {
                    return Ok(e.frame());
                }
                Some(_) => code |= ErrorCode::PRESENT,
                None => {}
            }
            match self.handle_fault(PageFault::new(va.as_u32(), code.bits())) {
                FaultOutcome::Resolved(_) => {}
                FaultOutcome::OutOfMemory => return Err(MmError::OutOfMemory),
                FaultOutcome::Signal(_)
                | FaultOutcome::KernelBug
                | FaultOutcome::ProtectionBug(_) => return Err(MmError::BadAddress),
            }
        }
        Err(MmError::BadAddress)
    }
}

/// `base + offset` as a user address; `BadAddress` past user space.
fn user_addr(base: VirtAddr, offset: usize) -> Result<VirtAddr, MmError> {
    let off = u32::try_from(offset).map_err(|_| MmError::BadAddress)?;
    match base.checked_add(off) {
        Some(va) if va.as_u32() < USER_END => Ok(va),
        _ => Err(MmError::BadAddress),
    }
}
