//! What a change to a page-table entry hands back: the TLB invalidation it
//! owes ([`Flush`]), or, when a mapping fails, the frame it was given
//! ([`MapError`]).

use super::table::drop_reference;
use crate::addr::{Frame, Page};
use crate::error::MmError;
use crate::frames::{FrameSource, OwnedFrame};
use crate::layout::KERNEL_BASE;
use crate::platform::Platform;

/// A TLB invalidation that is owed after a change to a page-table entry.
///
/// Dropping it without calling [`flush`](Flush::flush) or
/// [`ignore`](Flush::ignore) is a warning (`#[must_use]`): a forgotten
/// `invlpg` leaves a stale translation behind.
#[must_use = "the TLB may still hold the old translation: call .flush(platform) or .ignore()"]
#[derive(Debug)]
pub struct Flush {
    pub(super) page: Page,
    pub(super) dir: Frame,
}

impl Flush {
    /// Invalidates the page's TLB entry when the change can be cached: the
    /// page is in the (shared) kernel half, or its address space is loaded.
    pub fn flush<P: Platform + ?Sized>(self, platform: &P) {
        if self.page.start().as_u32() >= KERNEL_BASE || platform.root() == self.dir {
            platform.flush(self.page);
        }
    }

    /// Skips the invalidation: the caller flushes the whole TLB later, or
    /// knows the address space is not loaded anywhere.
    pub fn ignore(self) {}

    /// The page whose translation changed.
    pub fn page(&self) -> Page {
        self.page
    }
}

/// A failed [`AddressSpace::map`](super::AddressSpace::map) or
/// [`remap`](super::AddressSpace::remap): the
/// error, and the frame the call was given, still the caller's.
#[must_use = "the frame is still owned: map it elsewhere or release it"]
#[derive(Debug, PartialEq, Eq)]
pub struct MapError {
    /// Why the mapping failed (nothing changed).
    pub error: MmError,
    /// The frame that was to be mapped, handed back.
    pub frame: OwnedFrame,
}

impl MapError {
    /// Releases the frame (ignoring a frame no allocator manages) and
    /// returns the error.
    pub fn release<F: FrameSource + ?Sized>(self, frames: &mut F) -> MmError {
        drop_reference(frames, self.frame);
        self.error
    }
}
