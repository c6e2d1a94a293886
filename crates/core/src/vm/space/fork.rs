//! `fork`: a child space with the same regions, private pages shared
//! copy-on-write and shared pages shared.

use alloc::vec::Vec;
use core::mem::ManuallyDrop;

use super::{drop_ref, VmSpace};
use crate::error::MmError;
use crate::frames::{FrameSource, OwnedFrame};
use crate::paging::{AddressSpace, Entry, PageAttrs, PagingMode, PteFlags, TlbBatch};
use crate::platform::Platform;
use crate::vm::fault::FaultStats;

impl<P: Platform + ?Sized, F: FrameSource + Clone, M: PagingMode> VmSpace<'_, P, F, M> {
    /// `fork`: a copy of this address space. Page tables are copied, data
    /// pages never: private writable pages become read-only in both spaces
    /// with their reference counts raised (copy-on-write), shared pages stay
    /// shared (and writable where they were). The parent's TLB is flushed
    /// once at the end, not per page. The child gets the same regions and
    /// zeroed fault counters. Raw mappings outside every region (see
    /// [`address_space_mut`](Self::address_space_mut)) are shared as they are.
    ///
    /// On `OutOfMemory` the child is torn down and the parent keeps working
    /// (some of its pages may have become copy-on-write read-only, which
    /// only costs a reuse fault later).
    pub fn fork(&mut self) -> Result<Self, MmError> {
        let platform = self.platform;
        let mut frames = self.frames.clone();
        let child_space = AddressSpace::new_user(platform, &mut frames, &self.space)?;
        let mut child = VmSpace {
            platform,
            frames,
            space: ManuallyDrop::new(child_space),
            kernel_dir: self.kernel_dir,
            regions: self.regions.clone(),
            stats: FaultStats::default(),
        };
        let mut entries = Vec::new();
        self.space
            .for_each_user_mapping(platform, |page, e| entries.push((page, e)));
        // The parent's entries made read-only: narrowed, so its other CPUs
        // are shot down (one request at the end, a full flush past 32
        // pages) before the child can see the frames' raised counts.
        let mut batch = TlbBatch::new();
        let mut cursor: Option<(u32, u32, bool)> = None; // (start, end, shared) of the current region
        let space = &mut *self.space;
        let child_space = &mut *child.space;
        for (page, e) in entries {
            let n = page.number();
            let shared = match cursor {
                Some((s, end, shared)) if s <= n && n < end => shared,
                _ => match self.regions.find(n) {
                    Some((s, r)) => {
                        cursor = Some((s, r.end, r.shared));
                        r.shared
                    }
                    // A raw mapping outside every region (made through
                    // `address_space_mut`): the child shares it as it is.
                    None => true,
                },
            };
            let mut flags = PageAttrs {
                flags: e.flags() & (PteFlags::USER | PteFlags::WRITABLE),
                no_exec: e.no_exec(),
            };
            if !shared && flags.flags.contains(PteFlags::WRITABLE) {
                flags.flags.remove(PteFlags::WRITABLE);
                if let Ok(flush) = space.protect(platform, page, flags) {
                    batch.push(flush);
                }
            }
            // Frames the allocator doesn't manage (device memory mapped by
            // address through `address_space_mut`) carry no reference.
            let (counted, frame) = match self.frames.share(e.frame()) {
                Ok(f) => (true, f),
                Err(MmError::FrameReserved | MmError::OutOfRange) => {
                    // SAFETY: the allocator manages no such frame (the
                    // second case of `OwnedFrame::from_raw`); the parent
                    // maps it already.
                    (false, unsafe { OwnedFrame::from_raw(e.frame()) })
                }
                Err(err) => {
                    let _ = batch.finish(platform, space, &mut self.frames);
                    return Err(err);
                }
            };
            match child_space.map(platform, &mut self.frames, page, frame, flags) {
                Ok(flush) => flush.ignore(),
                Err(err) => {
                    if counted {
                        drop_ref(&mut self.frames, err.frame);
                    } else {
                        // Not a reference: nothing to give back.
                        let _ = err.frame.into_raw();
                    }
                    let err = err.error;
                    let _ = batch.finish(platform, space, &mut self.frames);
                    return Err(err);
                }
            }
        }
        let _ = batch.finish(platform, space, &mut self.frames);
        Ok(child)
    }
}
