//! [`ZoneBitmap`]: one zone's free-frame index, a three-level bitmap.
//!
//! Its methods are `#[inline]`: they were private to the allocator's module
//! and inlined into its alloc and free paths; the attribute keeps that
//! possible across the module boundary.

use core::ptr::NonNull;

/// One zone's free-frame index: a three-level bitmap (bit set = free), so
/// finding a free frame reads three words whatever the zone's size.
pub(super) struct ZoneBitmap {
    /// First frame number of the zone.
    pub(super) base: u32,
    /// Frames covered (`base..base + len`).
    pub(super) len: u32,
    /// Level 0: one bit per frame.
    pub(super) l0: NonNull<u64>,
    /// Level 1: bit `i` set when `l0[i] != 0`.
    pub(super) l1: NonNull<u64>,
    /// Level 2: bit `i` set when `l1[i] != 0`.
    pub(super) l2: NonNull<u64>,
    /// Free frames in the zone.
    pub(super) free: u32,
}

pub(super) const fn words(bits: u32) -> u32 {
    bits.div_ceil(64)
}

impl ZoneBitmap {
    #[inline]
    pub(super) const fn words_needed(len: u32) -> u32 {
        let n0 = words(len);
        let n1 = words(n0);
        n0 + n1 + words(n1)
    }

    #[inline]
    pub(super) fn n0(&self) -> usize {
        words(self.len) as usize
    }
    #[inline]
    pub(super) fn n1(&self) -> usize {
        words(words(self.len)) as usize
    }
    #[inline]
    pub(super) fn n2(&self) -> usize {
        words(words(words(self.len))) as usize
    }

    #[inline]
    pub(super) fn l0(&self) -> &[u64] {
        // SAFETY: `l0` points at `n0` words of metadata owned by the
        // allocator (set up in `FrameAllocator::new`), borrowed with `self`.
        unsafe { core::slice::from_raw_parts(self.l0.as_ptr(), self.n0()) }
    }

    /// Marks zone-relative frame `i` free.
    #[inline]
    pub(super) fn set_free(&mut self, i: u32) {
        let (w, b) = ((i / 64) as usize, i % 64);
        // SAFETY: `i < len`, so `w < n0`, `w / 64 < n1` and `w / 4096 < n2`;
        // all three arrays are owned by the allocator, which `&mut self` borrows.
        unsafe {
            let l0 = self.l0.as_ptr().add(w);
            let was_empty = *l0 == 0;
            debug_assert!(*l0 & (1 << b) == 0);
            *l0 |= 1 << b;
            if was_empty {
                let l1 = self.l1.as_ptr().add(w / 64);
                let l1_empty = *l1 == 0;
                *l1 |= 1 << (w % 64);
                if l1_empty {
                    *self.l2.as_ptr().add(w / 4096) |= 1 << ((w / 64) % 64);
                }
            }
        }
        self.free += 1;
    }

    /// Marks zone-relative frame `i` used.
    #[inline]
    pub(super) fn set_used(&mut self, i: u32) {
        let (w, b) = ((i / 64) as usize, i % 64);
        // SAFETY: as in `set_free`.
        unsafe {
            let l0 = self.l0.as_ptr().add(w);
            debug_assert!(*l0 & (1 << b) != 0);
            *l0 &= !(1 << b);
            if *l0 == 0 {
                let l1 = self.l1.as_ptr().add(w / 64);
                *l1 &= !(1 << (w % 64));
                if *l1 == 0 {
                    *self.l2.as_ptr().add(w / 4096) &= !(1 << ((w / 64) % 64));
                }
            }
        }
        self.free -= 1;
    }

    #[inline]
    pub(super) fn is_free(&self, i: u32) -> bool {
        self.l0()[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// The lowest free zone-relative frame, found through the summaries.
    #[inline]
    pub(super) fn first_free(&self) -> Option<u32> {
        if self.free == 0 {
            return None;
        }
        // SAFETY: indices come from set summary bits, which only exist for
        // words inside the arrays (see `set_free`).
        unsafe {
            for w2 in 0..self.n2() {
                let s2 = *self.l2.as_ptr().add(w2);
                if s2 != 0 {
                    let w1 = w2 * 64 + s2.trailing_zeros() as usize;
                    let w0 = w1 * 64 + (*self.l1.as_ptr().add(w1)).trailing_zeros() as usize;
                    let bit = (*self.l0.as_ptr().add(w0)).trailing_zeros();
                    return Some(w0 as u32 * 64 + bit);
                }
            }
        }
        None
    }

    /// The lowest free zone-relative frame at or after `from`.
    #[inline]
    pub(super) fn next_free(&self, from: u32) -> Option<u32> {
        if from >= self.len {
            return None;
        }
        let l0 = self.l0();
        let mut w = (from / 64) as usize;
        let first = l0[w] & (!0u64 << (from % 64));
        if first != 0 {
            return Some(w as u32 * 64 + first.trailing_zeros());
        }
        // SAFETY: `l1` has `n1` words, borrowed with `self`.
        let l1 = unsafe { core::slice::from_raw_parts(self.l1.as_ptr(), self.n1()) };
        w += 1;
        while w < l0.len() {
            // Skip runs of empty level-0 words through level 1.
            let s1 = l1[w / 64] & (!0u64 << (w % 64));
            if s1 == 0 {
                w = (w / 64 + 1) * 64;
                continue;
            }
            w = (w / 64) * 64 + s1.trailing_zeros() as usize;
            return Some(w as u32 * 64 + l0[w].trailing_zeros());
        }
        None
    }

    /// The first used frame in `from..to`, if any.
    #[inline]
    pub(super) fn first_used_in(&self, from: u32, to: u32) -> Option<u32> {
        let l0 = self.l0();
        let mut i = from;
        while i < to {
            let w = (i / 64) as usize;
            let lo = i % 64;
            let hi = (to - (w as u32) * 64).min(64);
            let span = if hi - lo == 64 {
                !0u64
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            let used = !l0[w] & span;
            if used != 0 {
                return Some(w as u32 * 64 + used.trailing_zeros());
            }
            i = (w as u32 + 1) * 64;
        }
        None
    }

    /// Lowest zone-relative start of `count` free frames whose absolute frame
    /// number is a multiple of `align`.
    #[inline]
    pub(super) fn find_run(&self, count: u32, align: u32) -> Option<u32> {
        if count > self.free {
            return None;
        }
        let align_rel = |i: u32| -> Option<u32> {
            let abs = (self.base + i).checked_next_multiple_of(align)?;
            Some(abs - self.base)
        };
        let mut start = align_rel(self.next_free(0)?)?;
        loop {
            let end = start.checked_add(count)?;
            if end > self.len {
                return None;
            }
            match self.first_used_in(start, end) {
                None => return Some(start),
                Some(used) => start = align_rel(self.next_free(used + 1)?)?,
            }
        }
    }
}
