//! Size classes and the free lists: which list a block size belongs to
//! ([`bin_of`]), the two-level bitmap of non-empty lists, linking and
//! unlinking free blocks, and finding a free block that fits (a listed
//! block, or the top block).

use super::tag::{corrupted, header_ok, size_of_tag, tag_of_header, FREE};
use super::{Heap, HeapBackend, GRANULE, NIL, SENTINEL};
use crate::error::MmError;

/// Blocks below this size have exact lists, one per 16-byte step.
const SMALL_LIMIT: usize = 256;
/// Number of exact lists.
const SMALL_BINS: usize = SMALL_LIMIT / GRANULE;
/// Above [`SMALL_LIMIT`], each power of two (TLSF's *first level*) is cut
/// into `2^SL_BITS` lists (the *second level*).
const SL_BITS: u32 = 4;
/// Lists per power of two.
const SL_COUNT: usize = 1 << SL_BITS;
/// The first level of the smallest block above the exact lists (`log2`).
const FL_MIN: u32 = SMALL_LIMIT.trailing_zeros();
/// Number of free lists.
pub(super) const BINS: usize = SMALL_BINS + (32 - FL_MIN as usize) * SL_COUNT;
/// 64-bit words of the bitmap of non-empty lists.
pub(super) const BITMAP_WORDS: usize = BINS.div_ceil(64);
/// Entries of the list heads: one per bitmap bit, so that a list index
/// found in the bitmap needs no bounds check (the entries from [`BINS`] on
/// stay empty).
pub(super) const BIN_SLOTS: usize = BITMAP_WORDS * 64;

const _: () = assert!(SMALL_LIMIT.is_power_of_two() && BINS == 400 && BITMAP_WORDS <= 32);

/// The free list that holds blocks of `size` bytes (`MIN_BLOCK <= size < 2^32`).
#[inline(always)]
pub(super) const fn bin_of(size: usize) -> usize {
    if size < SMALL_LIMIT {
        size / GRANULE
    } else {
        let fl = usize::BITS - 1 - size.leading_zeros();
        let sl = (size >> (fl - SL_BITS)) & (SL_COUNT - 1);
        SMALL_BINS + (fl - FL_MIN) as usize * SL_COUNT + sl
    }
}

impl<B: HeapBackend> Heap<B> {
    /// Lists the free block `[off, off + size)`, or makes it the top block
    /// if it ends at the sentinel.
    #[inline(always)]
    pub(super) fn insert(&mut self, off: usize, size: usize) {
        if off + size == self.len - SENTINEL {
            self.top_block = off as u32;
            return;
        }
        self.insert_listed(off, size);
    }

    /// Lists the free block `[off, off + size)`, which does not end at the
    /// sentinel.
    #[inline(always)]
    pub(super) fn insert_listed(&mut self, off: usize, size: usize) {
        let b = bin_of(size);
        let head = self.bin_heads[b];
        self.write_word(off + 8, head);
        self.write_word(off + 12, NIL);
        if head != NIL {
            self.write_word(head as usize + 12, off as u32);
        } else {
            self.bin_bitmap[b / 64] |= 1 << (b % 64);
            self.bin_summary |= 1 << (b / 64);
        }
        self.bin_heads[b] = off as u32;
    }

    /// Takes the free block `[off, off + size)` out of its list (or
    /// clears the top block if it is that).
    #[inline(always)]
    pub(super) fn unlink(&mut self, off: usize, size: usize) {
        if off as u32 == self.top_block {
            self.top_block = NIL;
            return;
        }
        self.unlink_listed(off, size);
    }

    /// Takes the listed free block `[off, off + size)` (not the top block:
    /// e.g. a free predecessor, which a block follows) out of its list.
    #[inline(always)]
    pub(super) fn unlink_listed(&mut self, off: usize, size: usize) {
        let next = self.read_word(off + 8);
        let prev = self.read_word(off + 12);
        if prev != NIL {
            self.write_word(prev as usize + 8, next);
        } else {
            let b = bin_of(size);
            self.bin_heads[b] = next;
            if next == NIL {
                self.bin_bitmap[b / 64] &= !(1 << (b % 64));
                if self.bin_bitmap[b / 64] == 0 {
                    self.bin_summary &= !(1 << (b / 64));
                }
            }
        }
        if next != NIL {
            self.write_word(next as usize + 12, prev);
        }
    }

    /// The first non-empty list at index `b` or above.
    #[inline(always)]
    pub(super) fn first_bin_from(&self, b: usize) -> Option<usize> {
        let w = b / 64;
        if w >= BITMAP_WORDS {
            return None;
        }
        let bits = self.bin_bitmap[w] & (u64::MAX << (b % 64));
        if bits != 0 {
            return Some(w * 64 + bits.trailing_zeros() as usize);
        }
        let rest = self.bin_summary & (u32::MAX << (w + 1));
        if rest == 0 {
            return None;
        }
        let w = rest.trailing_zeros() as usize;
        Some(w * 64 + self.bin_bitmap[w].trailing_zeros() as usize)
    }

    /// A free block of at least `need` bytes (`need < 2^32`), not unlinked.
    #[inline(always)]
    pub(super) fn find_free(&self, need: usize) -> Result<Option<(usize, usize)>, MmError> {
        match self.find_listed(need)? {
            Some((off, size, _)) => Ok(Some((off, size))),
            None => self.top_block_fit(need),
        }
    }

    /// The top block if it has at least `need` bytes (its header checked).
    #[inline(always)]
    pub(super) fn top_block_fit(&self, need: usize) -> Result<Option<(usize, usize)>, MmError> {
        if self.top_block == NIL {
            return Ok(None);
        }
        let off = self.top_block as usize;
        let size = self.checked_free_size(off)?;
        Ok((size >= need).then_some((off, size)))
    }

    /// As [`Self::find_free`] among the listed blocks only (not the top block),
    /// with the list the block heads: `(off, size, bin)`.
    /// The header of a block read here is checked (it may have been
    /// clobbered by an overflow of the block before it).
    #[inline(always)]
    pub(super) fn find_listed(
        &self,
        need: usize,
    ) -> Result<Option<(usize, usize, usize)>, MmError> {
        let b = bin_of(need);
        let head = self.bin_heads[b];
        if head != NIL {
            let size = self.checked_free_size(head as usize)?;
            if size >= need {
                return Ok(Some((head as usize, size, b)));
            }
        }
        let Some(b) = self.first_bin_from(b + 1) else {
            return Ok(None);
        };
        let off = self.bin_heads[b] as usize;
        Ok(Some((off, self.checked_free_size(off)?, b)))
    }

    /// The size of the listed free block at `off`, after checking its header.
    #[inline(always)]
    pub(super) fn checked_free_size(&self, off: usize) -> Result<usize, MmError> {
        let hdr = self.read_header(off);
        let tag = tag_of_header(hdr);
        if !header_ok(hdr, off, self.check_key) || tag & FREE == 0 {
            return Err(corrupted());
        }
        Ok(size_of_tag(tag))
    }

    /// Unlinks the block at `off`, the head of list `b`.
    #[inline(always)]
    pub(super) fn pop_head(&mut self, b: usize, off: usize) {
        let next = self.read_word(off + 8);
        self.bin_heads[b] = next;
        if next == NIL {
            self.bin_bitmap[b / 64] &= !(1 << (b % 64));
            if self.bin_bitmap[b / 64] == 0 {
                self.bin_summary &= !(1 << (b / 64));
            }
        } else {
            self.write_word(next as usize + 12, NIL);
        }
    }
}
