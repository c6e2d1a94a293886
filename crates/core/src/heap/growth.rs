//! Where the heap's memory comes from and goes back to: growing at the top
//! through the backend (amortised steps), shrinking when enough is free at
//! the top, and [`Heap::trim`].

use super::tag::{size_of_tag, FREE, PREV_FREE};
use super::{align_up, Heap, HeapBackend, FIRST_BLOCK, GRANULE, MIN_BLOCK, SENTINEL};
use crate::error::MmError;
use crate::layout::PAGE_SIZE;

/// Smallest growth step (see [`grow_step`]).
pub const GROW_MIN: usize = 4 * PAGE_SIZE;
/// Largest growth step (see [`grow_step`]).
pub const GROW_MAX: usize = 256 * PAGE_SIZE;
/// Smallest number of free bytes at the top that makes the heap give pages
/// back after a free (see [`shrink_threshold`]).
pub const SHRINK_THRESHOLD: usize = 2 * GROW_MIN;

/// How much the heap grows by, at least, when `len` bytes are mapped and no
/// free block fits a request: an eighth of the heap, between [`GROW_MIN`]
/// (16 KiB) and [`GROW_MAX`] (1 MiB), in whole pages. (A request bigger than
/// that maps what it needs; near `max` the heap maps what is left up to
/// `max` if that is enough.) Growing by a fraction of the heap makes the
/// number of backend calls logarithmic in the heap's size rather than
/// linear, and leaves at most one step of mapped free memory at the top.
pub const fn grow_step(len: usize) -> usize {
    let s = len / 8;
    let s = if s < GROW_MIN {
        GROW_MIN
    } else if s > GROW_MAX {
        GROW_MAX
    } else {
        s
    };
    s & !(PAGE_SIZE - 1)
}

/// Free bytes at the top above which a free gives whole pages back, when
/// `len` bytes are mapped: twice [`grow_step`]`(len)` (so a heap that has
/// just grown does not shrink again at the next free, nor grow again at the
/// next allocation: growth and shrinking are amortised), at least
/// [`SHRINK_THRESHOLD`].
pub const fn shrink_threshold(len: usize) -> usize {
    2 * grow_step(len)
}

/// What memory a growth step (or an allocation) needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Contiguity {
    /// Pages that are contiguous in the heap's virtual range (any request).
    Virtual,
    /// A physically contiguous run ([`Heap::alloc_physical`]): mapped as
    /// one run and never rounded up to a growth step.
    Physical,
}

/// How far [`Heap::shrink`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shrink {
    /// Only when at least [`shrink_threshold`] bytes can go, or the heap is
    /// completely free (after a free).
    PastThreshold,
    /// Every whole free page at the top above the initial size
    /// ([`Heap::trim`]).
    All,
}

impl<B: HeapBackend> Heap<B> {
    /// Whether `off` is the offset of the top block (the free block that
    /// ends at the sentinel) of a heap that has grown beyond its initial
    /// size. A block that ends at `off` is merged at once when freed, not
    /// quick-listed, so the heap can shrink. Compares `off` with the
    /// recorded top block: no memory is read.
    #[inline(always)]
    pub(super) fn is_shrinkable_top(&self, off: usize) -> bool {
        off as u32 == self.top_block && self.len > self.min_len
    }

    /// No free block fits `need`: grows the heap, or if it cannot grow,
    /// merges the quick lists and looks again. (Merging first would throw
    /// the quick lists away on every growth step of a growing heap; they
    /// hold a bounded amount of memory.)
    #[cold]
    pub(super) fn make_room(&mut self, need: usize) -> Result<(usize, usize), MmError> {
        match self.grow(need, Contiguity::Virtual) {
            Ok(()) => self.find_free(need)?.ok_or(MmError::OutOfMemory),
            Err(e) if self.quick_blocks() != 0 => {
                self.flush_quick()?;
                if let Some(found) = self.find_free(need)? {
                    return Ok(found);
                }
                // The merge may have freed the top: fewer pages are needed.
                self.grow(need, Contiguity::Virtual).map_err(|_| e)?;
                self.find_free(need)?.ok_or(MmError::OutOfMemory)
            }
            Err(e) => Err(e),
        }
    }

    /// The last block if it is free: `(offset, size)`, after checking the
    /// sentinel's header (an overflow of the last block clobbers it) and the
    /// free block's footer and header.
    pub(super) fn last_free(&self) -> Result<Option<(usize, usize)>, MmError> {
        let s = self.len - SENTINEL;
        let tag = self.checked_tag(s).ok_or(MmError::HeapCorrupted)?;
        if tag & !PREV_FREE != 0 {
            return Err(MmError::HeapCorrupted);
        }
        if tag & PREV_FREE == 0 {
            return Ok(None);
        }
        let size = self.read_word(s - 4) as usize;
        if size < MIN_BLOCK || size > s - FIRST_BLOCK || !size.is_multiple_of(GRANULE) {
            return Err(MmError::HeapCorrupted);
        }
        match self.checked_tag(s - size) {
            Some(t) if t & (FREE | PREV_FREE) == FREE && size_of_tag(t) == size => {
                Ok(Some((s - size, size)))
            }
            _ => Err(MmError::HeapCorrupted),
        }
    }

    /// Maps pages at the top so that the last block becomes a free block of at
    /// least `need` bytes (for [`Contiguity::Physical`], a new physically
    /// contiguous run of `need` bytes). Nothing changes on error.
    pub(super) fn grow(&mut self, need: usize, memory: Contiguity) -> Result<(), MmError> {
        let contiguous = memory == Contiguity::Physical;
        let last = self.last_free()?;
        let have = if contiguous {
            0
        } else {
            last.map_or(0, |(_, s)| s)
        };
        let short = need.saturating_sub(have).max(1);
        // The amortised step (see `grow_step`), except for physically
        // contiguous runs, which are as short as they can be; near `max`,
        // what is left if that is enough.
        let step = if contiguous {
            short
        } else {
            short.max(grow_step(self.len))
        };
        let exact = align_up(
            self.len.checked_add(short).ok_or(MmError::OutOfMemory)?,
            PAGE_SIZE,
        );
        if exact > self.max_len {
            return Err(MmError::OutOfMemory);
        }
        let mut new_len = align_up(self.len.saturating_add(step), PAGE_SIZE).min(self.max_len);
        let at = self.start + self.len;
        if let Err(e) =
            self.backend
                .map(at, (new_len - self.len) / PAGE_SIZE, contiguous, self.flags)
        {
            // The backend may still have the pages the request needs.
            if new_len == exact {
                return Err(e);
            }
            new_len = exact;
            self.backend
                .map(at, (new_len - self.len) / PAGE_SIZE, contiguous, self.flags)?;
        }
        let pages = (new_len - self.len) / PAGE_SIZE;
        let old_sentinel = self.len - SENTINEL;
        self.len = new_len;
        let (off, size) = match last {
            Some((off, size)) => {
                self.unlink(off, size);
                (off, size + (new_len - SENTINEL - old_sentinel))
            }
            None => {
                self.free_blocks += 1;
                (old_sentinel, new_len - SENTINEL - old_sentinel)
            }
        };
        self.write_free(off, size, 0);
        self.insert(off, size);
        self.set_tag(new_len - SENTINEL, PREV_FREE);
        self.free_bytes += pages * PAGE_SIZE;
        Ok(())
    }

    /// Gives whole free pages at the top back to the backend, as far as
    /// `mode` says (see [`Shrink`]).
    pub(super) fn shrink(&mut self, mode: Shrink) {
        let Ok(Some((off, size))) = self.last_free() else {
            return;
        };
        let mut new_len = align_up(off + SENTINEL, PAGE_SIZE);
        let left = new_len - SENTINEL - off;
        if left != 0 && left < MIN_BLOCK {
            new_len += PAGE_SIZE;
        }
        let new_len = new_len.max(self.min_len);
        if new_len >= self.len {
            return;
        }
        let release = self.len - new_len;
        if mode == Shrink::PastThreshold
            && release < shrink_threshold(self.len)
            && off != FIRST_BLOCK
        {
            return;
        }
        self.unlink(off, size);
        self.len = new_len;
        let left = new_len - SENTINEL - off;
        if left == 0 {
            self.free_blocks -= 1;
            self.set_tag(new_len - SENTINEL, 0);
        } else {
            self.write_free(off, left, 0);
            self.insert(off, left);
            self.set_tag(new_len - SENTINEL, PREV_FREE);
        }
        self.free_bytes -= release;
        self.backend
            .unmap(self.start + new_len, release / PAGE_SIZE);
    }

    /// Returns every whole free page at the top of the heap (above its
    /// initial size) to the backend.
    pub fn trim(&mut self) {
        // A damaged quick block stops the merge and stays listed (`validate`
        // reports it); the pages above the merged blocks still go.
        let _ = self.flush_quick();
        self.shrink(Shrink::All);
    }
}
