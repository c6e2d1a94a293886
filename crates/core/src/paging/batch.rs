//! [`TlbBatch`]: the pages one operation narrowed or removed, and the frames
//! it may free only once no CPU can reach them (Linux's `mmu_gather`).
//!
//! An operation that removes or narrows translations (munmap, mprotect to
//! fewer rights, a copy-on-write remap, fork's write protection, freeing a
//! page table, shrinking the heap, dropping a kernel stack) changes the
//! entries, [`push`](TlbBatch::push)es each change's [`Flush`] token into a
//! batch, [`defer`](TlbBatch::defer)s the frames whose last reference went
//! away, and ends with [`finish`](TlbBatch::finish):
//!
//! 1. a sequentially consistent fence, then the space's CPU set is read;
//! 2. the calling CPU is flushed if the space is loaded here (page by page
//!    up to [`LOCAL_PAGES`], else one full flush);
//! 3. one [`Platform::shootdown`] to the other CPUs of the set (every other
//!    online CPU for kernel-half pages): the page list while it holds at
//!    most [`BATCH_PAGES`] pages, else `AllNonGlobal` (user half);
//!    nothing when the space is live only here;
//! 4. the deferred frames are released.
//!
//! See `docs/smp.md` for the argument.

use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::sync::atomic::{fence, Ordering};

use super::mode::PagingMode;
use super::space::{AddressSpace, Flush};
use crate::addr::Page;
use crate::error::MmError;
use crate::frames::{FrameSource, OwnedFrame};
use crate::layout::KERNEL_BASE;
use crate::platform::Platform;
use crate::smp::{CpuSet, Invalidate};

/// Pages a batch lists; one more makes the remote request a full flush
/// (Linux's `tlb_single_page_flush_ceiling` is 33 pages).
pub const BATCH_PAGES: usize = 32;

/// Pages the calling CPU invalidates one by one before one full flush is
/// cheaper (the one-CPU core's threshold).
pub const LOCAL_PAGES: usize = 16;

/// Frames a batch holds without allocating.
const INLINE_FRAMES: usize = 32;

/// The pages of one operation and the frames it frees after its shootdown.
///
/// Dropping a batch that still holds pages or frames is a bug (the TLBs were
/// not invalidated, the deferred frames leak): hence `#[must_use]`.
#[must_use = "end the batch with .finish(platform, space, frames): the TLBs still hold the old translations"]
#[derive(Debug)]
pub struct TlbBatch {
    /// The first `min(count, BATCH_PAGES)` are initialised (left
    /// uninitialised otherwise: a batch is made per call, and most calls
    /// record a page or two).
    pages: [MaybeUninit<Page>; BATCH_PAGES],
    /// Pages changed (may exceed `BATCH_PAGES`: then only the count is kept).
    count: usize,
    /// A kernel-half (global) page was changed.
    kernel: bool,
    /// The first `inline_len` are initialised: references owned by the batch.
    inline: [MaybeUninit<OwnedFrame>; INLINE_FRAMES],
    inline_len: usize,
    /// False for a batch of widened entries: flushed here only.
    remote: bool,
    /// Frames beyond `INLINE_FRAMES` (user-half batches only; a kernel-half
    /// batch must never allocate: the heap may be the caller).
    spill: Vec<OwnedFrame>,
}

impl Default for TlbBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`TlbBatch::finish`] did (for tests and benchmarks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Pages the batch named.
    pub pages: usize,
    /// The CPUs a shootdown went to (empty: none was sent).
    pub targets: CpuSet,
    /// The request was a full flush rather than a page list.
    pub full: bool,
    /// Frames released after the shootdown.
    pub released: usize,
}

impl TlbBatch {
    /// An empty batch.
    #[inline]
    pub const fn new() -> Self {
        TlbBatch {
            pages: [const { MaybeUninit::uninit() }; BATCH_PAGES],
            count: 0,
            kernel: false,
            inline: [const { MaybeUninit::uninit() }; INLINE_FRAMES],
            inline_len: 0,
            remote: true,
            spill: Vec::new(),
        }
    }

    /// A batch of permission upgrades: [`finish`](Self::finish) flushes the
    /// calling CPU only (as the one-CPU core always did) and sends nothing;
    /// another CPU that still holds the narrower entry takes a spurious
    /// fault, which flushes its own TLB.
    pub const fn local_only() -> Self {
        let mut b = Self::new();
        b.remote = false;
        b
    }

    /// Records a changed page whose old translation other CPUs may cache.
    #[inline]
    pub fn add_page(&mut self, page: Page) {
        if self.count < BATCH_PAGES {
            self.pages[self.count].write(page);
        }
        self.count += 1;
        self.kernel |= page.start().as_u32() >= KERNEL_BASE;
    }

    /// Takes over a [`Flush`] token: the page is invalidated by
    /// [`finish`](Self::finish), here and on the other CPUs.
    #[inline]
    pub fn push(&mut self, flush: Flush) {
        self.add_page(flush.page());
        flush.ignore();
    }

    /// Puts a reference aside, released by [`finish`](Self::finish) after
    /// the shootdown.
    #[inline]
    pub fn defer(&mut self, frame: OwnedFrame) {
        if self.inline_len < INLINE_FRAMES {
            self.inline[self.inline_len].write(frame);
            self.inline_len += 1;
        } else {
            debug_assert!(!self.kernel, "a kernel-half batch must not allocate");
            self.spill.push(frame);
        }
    }

    /// Pages recorded so far.
    pub fn pages(&self) -> usize {
        self.count
    }

    /// Frames put aside so far.
    #[inline]
    pub fn deferred(&self) -> usize {
        self.inline_len + self.spill.len()
    }

    /// True when the page list or the inline frame slots are full: a
    /// kernel-half caller (which must not allocate, and whose full flush
    /// would reach global entries) finishes the batch and starts another.
    pub fn is_full(&self) -> bool {
        self.count >= BATCH_PAGES || self.inline_len >= INLINE_FRAMES
    }

    /// True when nothing was recorded.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.deferred() == 0
    }

    /// Ends the operation (see the module documentation): local flush if
    /// `space` is loaded here, one shootdown to the other CPUs that may
    /// cache its translations, then the deferred frames are released.
    #[inline]
    pub fn finish<P: Platform + ?Sized, F: FrameSource + ?Sized, M: PagingMode>(
        mut self,
        platform: &P,
        space: &AddressSpace<M>,
        frames: &mut F,
    ) -> BatchOutcome {
        let mut out = BatchOutcome {
            pages: self.count,
            ..BatchOutcome::default()
        };
        if self.is_empty() {
            return out;
        }
        if self.count > 0 {
            let (targets, full) = self.invalidate(platform, space);
            out.targets = targets;
            out.full = full;
        }
        out.released = self.release(frames);
        out
    }

    /// Steps 1–3: the fence, the local flush and the shootdown.
    fn invalidate<P: Platform + ?Sized, M: PagingMode>(
        &mut self,
        platform: &P,
        space: &AddressSpace<M>,
    ) -> (CpuSet, bool) {
        // The entries were written before: a CPU that joins the set after
        // this fence walks the new entries; one that joined before is read
        // below (`AtomicCpuSet::insert` is a SeqCst RMW).
        fence(Ordering::SeqCst);
        let me = platform.cpu_id();
        let global = self.kernel || space.is_kernel();
        let (others, here) = if global {
            (platform.online_cpus(), true)
        } else {
            let set = space.cpu_set(platform);
            (set, set.contains(me) || space.is_active(platform))
        };
        let listed = self.listed();
        if here {
            if self.count <= LOCAL_PAGES || (global && self.count <= BATCH_PAGES) {
                for &p in listed {
                    platform.flush(p);
                }
            } else if global {
                // Kernel callers finish before the list overflows
                // (`is_full`); reaching this is a core bug, but flush what
                // is known rather than nothing.
                debug_assert!(false, "kernel-half batch of {} pages", self.count);
                for &p in listed {
                    platform.flush(p);
                }
                platform.flush_all();
            } else {
                platform.flush_all();
            }
        }
        let targets = if self.remote {
            others.without(me)
        } else {
            CpuSet::EMPTY
        };
        let full = self.count > BATCH_PAGES;
        if !targets.is_empty() {
            let what = match (full, global) {
                (false, _) => Invalidate::Pages(listed),
                (true, false) => Invalidate::AllNonGlobal,
                (true, true) => Invalidate::Everything,
            };
            platform.shootdown(targets, what);
        }
        self.count = 0;
        self.kernel = false;
        (targets, full)
    }

    /// The pages recorded, while they fit the list.
    fn listed(&self) -> &[Page] {
        let n = self.count.min(BATCH_PAGES);
        // SAFETY: the first `n` slots were written by `add_page` (`count`
        // only grows past them once they are all written); `MaybeUninit<Page>`
        // has `Page`'s layout.
        unsafe { core::slice::from_raw_parts(self.pages.as_ptr().cast::<Page>(), n) }
    }

    /// Step 4.
    fn release<F: FrameSource + ?Sized>(&mut self, frames: &mut F) -> usize {
        let n = self.deferred();
        let held = core::mem::replace(&mut self.inline_len, 0);
        for slot in &self.inline[..held] {
            // SAFETY: the first `held` slots hold references `defer` wrote;
            // `inline_len` is already 0, so each is read (moved out) once.
            let f = unsafe { slot.assume_init_read() };
            release_reference(frames, f);
        }
        for f in self.spill.drain(..) {
            release_reference(frames, f);
        }
        n
    }
}

/// Drops one reference. Frames the allocator doesn't manage (device memory
/// mapped by address) carry none and are skipped; any other failure is a
/// bug in the core's accounting.
fn release_reference<F: FrameSource + ?Sized>(frames: &mut F, frame: OwnedFrame) {
    let f = frame.frame();
    match frames.release(frame) {
        Ok(_) | Err(MmError::FrameReserved) | Err(MmError::OutOfRange) => {}
        Err(e) => debug_assert!(false, "releasing {f:?}: {e:?}"),
    }
}
