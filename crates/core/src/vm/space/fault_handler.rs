//! The page-fault handler: decoding a fault against the regions and
//! dispatching it by cause (demand-zero, shared object page, file page-in,
//! copy-on-write, stack growth).

use super::{drop_ref, narrows, page_of, pte_flags, VmSpace};
use crate::addr::VirtAddr;
use crate::error::MmError;
use crate::frames::{FrameSource, OwnedFrame, Zone};
use crate::layout::USER_END;
use crate::paging::{Entry, PageAttrs, PagingMode, PteFlags, TlbBatch};
use crate::platform::Platform;
use crate::vm::fault::{
    AccessKind, ErrorCode, FaultKind, FaultOutcome, PageFault, SegvCause, Signal,
};
use crate::vm::object::PageError;
use crate::vm::region::{Region, GUARD_PAGES, MIN_PAGE};
use crate::vm::Prot;

impl<P: Platform + ?Sized, F: FrameSource + Clone, M: PagingMode> VmSpace<'_, P, F, M> {
    /// The page-fault handler: services a fault of this space (CR2 and the
    /// error code, decoded by [`PageFault::new`]).
    ///
    /// Not-present faults inside a region bring the page in (demand-zero,
    /// shared object page, file page-in); write faults on present read-only
    /// pages of writable private regions copy-on-write (or reuse the frame
    /// when its count is 1); faults just below a growable stack extend it.
    /// User faults outside any region, or forbidden by the region's
    /// protection, give `SIGSEGV`; file pages wholly past EOF give `SIGBUS`.
    /// Supervisor faults are serviced like user ones when a region allows
    /// the access; otherwise (or with `ERR_RESERVED`) they are a
    /// [`FaultOutcome::KernelBug`]. A supervisor fetch from a user address
    /// under SMEP, or a supervisor data access to one under SMAP with
    /// EFLAGS.AC clear (the fault's [`context`](PageFault::context)), is a
    /// [`FaultOutcome::ProtectionBug`] naming the cause, whether the page is
    /// present or not: no mapping makes such an access legal. A fault on a
    /// present entry is taken for a stale TLB entry
    /// ([`FaultKind::Spurious`]) only when the entry allows the access at
    /// the fault's privilege level under its protections, so no fault the
    /// handler cannot fix is retried forever. Every outcome is counted in
    /// [`fault_stats`](Self::fault_stats).
    pub fn handle_fault(&mut self, fault: PageFault) -> FaultOutcome {
        let out = self.resolve(fault);
        self.stats.record(&out);
        out
    }

    pub(super) fn resolve(&mut self, fault: PageFault) -> FaultOutcome {
        let user = fault.is_user();
        let addr = fault.addr;
        let deny = |cause| {
            if user {
                FaultOutcome::Signal(Signal::Segv { addr, cause })
            } else {
                FaultOutcome::KernelBug
            }
        };
        if fault.code.contains(ErrorCode::RESERVED) {
            return FaultOutcome::KernelBug;
        }
        if addr.as_u32() >= USER_END {
            return deny(if fault.is_protection() {
                SegvCause::Protection
            } else {
                SegvCause::NoRegion
            });
        }
        if let Some(bug) = fault.protection_bug() {
            // Ring 0 touched a user address in a way SMEP/SMAP forbid:
            // whatever the page tables hold, a retry faults again.
            return FaultOutcome::ProtectionBug(bug);
        }
        let page = addr.page().number();
        let (start, region, grew) = match self.regions.lookup(page) {
            Some((s, r)) => (s, r, false),
            None => match self.grow_stack(page) {
                Some((s, r)) => (s, r, true),
                None => return deny(SegvCause::NoRegion),
            },
        };
        let write = fault.access() == AccessKind::Write;
        if !region.prot.readable() || (write && !region.prot.writable()) {
            return deny(SegvCause::Protection);
        }
        // With NX, a fetch from a page without PROT_EXEC is refused (never
        // resolved as a read). Classic paging can't refuse fetches, and
        // reports ERR_FETCH only under SMEP: nothing changes there.
        let fetch = fault.access() == AccessKind::Fetch;
        if M::NX && fetch && !region.prot.contains(Prot::EXEC) {
            return deny(SegvCause::Protection);
        }
        let entry = self
            .space
            .entry(self.platform, page_of(page))
            .filter(|e| e.is_present());
        let out = match entry {
            None => self.fault_in(start, &region, page, write, addr),
            Some(e) if write && !e.flags().contains(PteFlags::WRITABLE) => {
                self.write_fault(start, &region, page, e)
            }
            Some(e) if !e.flags().contains(PteFlags::USER) || (fetch && e.no_exec()) => {
                // Entry flags lag behind the region (cannot happen through
                // this API; repair rather than loop).
                let writable = self.may_write_in_place(start, &region, page, e.frame());
                self.set_flags(page, pte_flags::<M>(region.prot, writable));
                FaultOutcome::Resolved(FaultKind::Spurious)
            }
            Some(e) if allows(e.flags(), &fault) => {
                // The entry allows the access: a stale TLB entry.
                self.platform.flush(page_of(page));
                FaultOutcome::Resolved(FaultKind::Spurious)
            }
            // The entry forbids what the CPU was asked to do and nothing
            // above changes it: retrying would fault forever.
            Some(_) => deny(SegvCause::Protection),
        };
        match out {
            FaultOutcome::Resolved(_) if grew => FaultOutcome::Resolved(FaultKind::StackGrowth),
            out => out,
        }
    }

    /// Extends a growable stack down to `page` when `page` lies in its
    /// growth range and keeps the guard gap to the region below.
    pub(super) fn grow_stack(&mut self, page: u32) -> Option<(u32, Region)> {
        if page < MIN_PAGE {
            return None;
        }
        let (s, r) = self.regions.next_above(page)?;
        let limit = r.stack_limit?.get();
        if page < limit {
            return None;
        }
        if let Some((_, prev)) = self.regions.prev_below(page) {
            if prev.end.saturating_add(GUARD_PAGES) > page {
                return None;
            }
        }
        self.regions.extend_down(s, page);
        self.regions.lookup(page)
    }

    /// Maps `frame` (a reference the caller owns) at `page`. A not-present
    /// entry is never cached by the TLB, so no flush is needed.
    pub(super) fn install(
        &mut self,
        page: u32,
        frame: OwnedFrame,
        flags: PageAttrs,
    ) -> Result<(), MmError> {
        let platform = self.platform;
        let space = &mut *self.space;
        match space.map(platform, &mut self.frames, page_of(page), frame, flags) {
            Ok(flush) => {
                flush.ignore();
                Ok(())
            }
            Err(e) => {
                drop_ref(&mut self.frames, e.frame);
                Err(e.error)
            }
        }
    }

    /// Sets the flags of a present page. Widening flushes this CPU only
    /// (other CPUs with the narrower entry fault spuriously and flush
    /// themselves); narrowing shoots the space's other CPUs down.
    pub(super) fn set_flags(&mut self, page: u32, flags: PageAttrs) {
        let platform = self.platform;
        let space = &mut *self.space;
        let old = space.entry(platform, page_of(page)).map(|e| e.attrs());
        if let Ok(flush) = space.protect(platform, page_of(page), flags) {
            if old.is_some_and(|old| narrows(old, flags)) {
                let mut batch = TlbBatch::new();
                batch.push(flush);
                self.finish_batch(batch);
            } else {
                flush.flush(platform);
            }
        }
    }

    /// A not-present fault in a region that allows the access.
    pub(super) fn fault_in(
        &mut self,
        start: u32,
        region: &Region,
        page: u32,
        write: bool,
        addr: VirtAddr,
    ) -> FaultOutcome {
        let oom = |_| FaultOutcome::OutOfMemory;
        let Some((object, index)) = region.object_index(start, page) else {
            // Private anonymous: demand-zero.
            let frame = match self.frames.alloc(Zone::High) {
                Ok(f) => f,
                Err(_) => return FaultOutcome::OutOfMemory,
            };
            self.platform.zero_frame(frame.frame());
            return match self.install(page, frame, pte_flags::<M>(region.prot, true)) {
                Ok(()) => FaultOutcome::Resolved(FaultKind::DemandZero),
                Err(e) => oom(e),
            };
        };
        let cached = match object.page(self.platform, &mut self.frames, index) {
            Ok(f) => f,
            Err(PageError::PastEof) => return FaultOutcome::Signal(Signal::Bus { addr }),
            Err(PageError::NoMemory) => return FaultOutcome::OutOfMemory,
        };
        let kind = if object.is_file() {
            FaultKind::FilePage
        } else {
            FaultKind::SharedAnon
        };
        if !region.shared && write {
            // Private file page, first touched by a write: copy it now.
            let frame = match self.frames.alloc(Zone::High) {
                Ok(f) => f,
                Err(_) => return FaultOutcome::OutOfMemory,
            };
            self.platform.copy_frame(frame.frame(), cached);
            return match self.install(page, frame, pte_flags::<M>(region.prot, true)) {
                Ok(()) => FaultOutcome::Resolved(kind),
                Err(e) => oom(e),
            };
        }
        let Ok(shared) = self.frames.share(cached) else {
            return FaultOutcome::OutOfMemory;
        };
        // Shared anonymous pages are writable at once; shared file pages
        // only on a write (so the first write is seen and marks the page
        // dirty); private file pages never (their first write copies).
        let writable = region.shared && (!object.is_file() || write);
        if writable && object.is_file() {
            object.mark_dirty(index);
        }
        match self.install(page, shared, pte_flags::<M>(region.prot, writable)) {
            Ok(()) => FaultOutcome::Resolved(kind),
            Err(e) => oom(e),
        }
    }

    /// A write to a present read-only page of a writable region.
    pub(super) fn write_fault(
        &mut self,
        start: u32,
        region: &Region,
        page: u32,
        e: M::Entry,
    ) -> FaultOutcome {
        let writable = pte_flags::<M>(region.prot, true);
        if region.shared {
            let kind = match region.object_index(start, page) {
                Some((object, index)) if object.is_file() => {
                    object.mark_dirty(index);
                    FaultKind::WriteNotify
                }
                _ => FaultKind::Spurious,
            };
            self.set_flags(page, writable);
            return FaultOutcome::Resolved(kind);
        }
        let old = e.frame();
        if self.frames.refcount(old) == Ok(1) {
            self.set_flags(page, writable);
            return FaultOutcome::Resolved(FaultKind::CowReuse);
        }
        let frame = match self.frames.alloc(Zone::High) {
            Ok(f) => f,
            Err(_) => return FaultOutcome::OutOfMemory,
        };
        self.platform.copy_frame(frame.frame(), old);
        let platform = self.platform;
        let space = &mut *self.space;
        match space.remap(platform, &mut self.frames, page_of(page), frame, writable) {
            Ok((prev, flush)) => {
                // The entry now names another frame: the space's other CPUs
                // must drop the old one before the old frame's reference
                // goes (with it gone, its other owner may find a count of
                // 1 and write it in place while a stale entry still reads
                // it).
                let mut batch = TlbBatch::new();
                batch.push(flush);
                if let Some(prev) = prev {
                    batch.defer(prev);
                }
                self.finish_batch(batch);
                FaultOutcome::Resolved(FaultKind::CopyOnWrite)
            }
            Err(e) => {
                drop_ref(&mut self.frames, e.frame);
                FaultOutcome::OutOfMemory
            }
        }
    }
}

/// True when a present entry with `flags` (the page directory entries of
/// user tables always allow user access and writes) lets the access of
/// `fault` through at its privilege level, under the fault's SMEP/SMAP
/// context and with CR0.WP on (the kernel sets it): a fresh walk that would
/// not fault, so a fault on it came from a stale TLB entry.
fn allows(flags: PteFlags, fault: &PageFault) -> bool {
    let user_page = flags.contains(PteFlags::USER);
    let write = fault.access() == AccessKind::Write;
    if write && !flags.contains(PteFlags::WRITABLE) {
        return false;
    }
    if fault.is_user() {
        // No NX under classic paging: a readable user page is executable.
        return user_page;
    }
    if fault.is_protection() && !write {
        // Ring 0 reads and fetches every present page (SMEP and SMAP
        // aside): no stale entry explains such a fault.
        return false;
    }
    !(user_page && fault.protection_bug().is_some())
}
