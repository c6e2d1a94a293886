//! Block headers: the tag word (size and flags), its check word, and the
//! raw word access through which every part of the heap reads and writes
//! its own memory.
//!
//! A header is 8 bytes, read and written as one word: `tag` (size |
//! [`FREE`] | [`PREV_FREE`] | [`QUICK`]) and `check = tag ^ offset ^ key`.
//! A free block also ends with a footer (its size), written by
//! [`Heap::write_free`].

use core::ptr::NonNull;

use super::{Heap, HeapBackend};
use crate::error::MmError;

/// Tag flag: the block is free (in a list, or the top block).
pub(super) const FREE: u32 = 1;
/// Tag flag: the block before this one is free (its footer holds its size).
pub(super) const PREV_FREE: u32 = 2;
/// Tag flag: the block is on a quick list (free, but not merged yet).
pub(super) const QUICK: u32 = 4;
/// Every tag flag (the rest of the tag is the block size).
const TAG_FLAGS: u32 = 7;
/// Mixed into every heap's check key (see [`check_key_of`]).
const MAGIC: u32 = 0x6B48_6561;

/// The per-heap key of the check words: mixed from the heap's start so a
/// header copied from another heap fails its check, and never a multiple of
/// 8, so a zeroed header (tag 0, check 0) never passes at any block offset.
#[inline(always)]
pub(super) const fn check_key_of(start: usize) -> u32 {
    (MAGIC ^ (start as u32).wrapping_mul(0x9E37_79B1).rotate_left(16)) | 5
}

/// The 8-byte header of the block at offset `off`, as one native word: the
/// tag in its first 4 bytes, the check word `tag ^ off ^ key` in the next 4
/// (so 32-bit reads at `off` see the tag on either endianness).
#[inline(always)]
pub(super) const fn header_of(off: usize, tag: u32, key: u32) -> u64 {
    let check = tag ^ (off as u32) ^ key;
    if cfg!(target_endian = "little") {
        tag as u64 | (check as u64) << 32
    } else {
        check as u64 | (tag as u64) << 32
    }
}

/// Whether a header word read at offset `off` carries a valid check word:
/// `check ^ tag ^ off == key` (cheaper than rebuilding the word).
#[inline(always)]
pub(super) const fn header_ok(hdr: u64, off: usize, key: u32) -> bool {
    ((hdr >> 32) as u32 ^ hdr as u32 ^ off as u32) == key
}

/// What to XOR into a valid header word to flip_flags the `flags` of its tag: the
/// same bits of the check word flip_flags with them (`check = tag ^ off ^ key`),
/// so the result is the valid header of the new tag, without recomputing
/// the check (on either endianness: the pattern is symmetric).
#[inline(always)]
pub(super) const fn flip_flags(flags: u32) -> u64 {
    flags as u64 | (flags as u64) << 32
}

/// The tag in a header word (see [`header_of`]).
#[inline(always)]
pub(super) const fn tag_of_header(hdr: u64) -> u32 {
    if cfg!(target_endian = "little") {
        hdr as u32
    } else {
        (hdr >> 32) as u32
    }
}

/// The error for a damaged header or link, out of line (error paths only).
#[cold]
#[inline(never)]
pub(super) fn corrupted() -> MmError {
    MmError::HeapCorrupted
}

/// Starts loading the cache line of `p` (any address: a prefetch is only a
/// hint, it never faults and changes nothing), where the target has a
/// prefetch instruction (not under Miri).
#[inline(always)]
pub(super) fn prefetch_line(p: *const u8) {
    let p = p.cast::<i8>();
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `prefetcht0` (SSE, baseline on x86_64) reads nothing
    // architecturally and cannot fault, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p)
    };
    #[cfg(all(target_arch = "x86", target_feature = "sse", not(miri)))]
    // SAFETY: as above (`sse` is enabled for this target).
    unsafe {
        core::arch::x86::_mm_prefetch::<{ core::arch::x86::_MM_HINT_T0 }>(p)
    };
    #[cfg(not(all(
        any(
            target_arch = "x86_64",
            all(target_arch = "x86", target_feature = "sse")
        ),
        not(miri)
    )))]
    let _ = p;
}

/// Size of the block a tag describes.
#[inline(always)]
pub(super) const fn size_of_tag(tag: u32) -> usize {
    (tag & !TAG_FLAGS) as usize
}

impl<B: HeapBackend> Heap<B> {
    /// Reads the word at heap offset `off`.
    ///
    /// Every caller passes a 4-aligned offset with `off + 4 <= len` (block
    /// headers, links and footers of blocks that tile the mapped heap, or
    /// offsets range-checked first); this is the heap's central invariant.
    #[inline(always)]
    pub(super) fn read_word(&self, off: usize) -> u32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: by the invariant above the word lies in the mapped heap,
        // which the backend keeps valid for the heap's exclusive use; `base`
        // is page-aligned so the read is aligned.
        unsafe { self.base.as_ptr().add(off).cast::<u32>().read() }
    }

    /// Writes the word at heap offset `off` (same invariant as [`Self::read_word`]).
    #[inline(always)]
    pub(super) fn write_word(&mut self, off: usize, val: u32) {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: as in `read_word`; `&mut self` gives exclusive access.
        unsafe { self.base.as_ptr().add(off).cast::<u32>().write(val) }
    }

    /// Reads the 8-byte header at heap offset `off` (8-aligned, with
    /// `off + 8 <= len`: the invariant of [`Self::read_word`]).
    #[inline(always)]
    pub(super) fn read_header(&self, off: usize) -> u64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: as in `read_word`; `base` is page-aligned and `off` 8-aligned.
        unsafe { self.base.as_ptr().add(off).cast::<u64>().read() }
    }

    /// Writes the 8-byte header at heap offset `off` (as [`Self::read_header`]).
    #[inline(always)]
    pub(super) fn write_header(&mut self, off: usize, val: u64) {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: as in `read_header`; `&mut self` gives exclusive access.
        unsafe { self.base.as_ptr().add(off).cast::<u64>().write(val) }
    }

    #[inline(always)]
    pub(super) fn ptr_at(&self, off: usize) -> NonNull<u8> {
        // SAFETY: `off <= len` (a payload inside the mapped heap) and `base`
        // is non-null, so the result is a non-null in-bounds pointer.
        unsafe { self.base.add(off) }
    }

    /// Writes a block header with a fresh check word.
    #[inline(always)]
    pub(super) fn set_tag(&mut self, off: usize, tag: u32) {
        self.write_header(off, header_of(off, tag, self.check_key));
    }

    /// Reads the tag at `off` if its check word matches.
    #[inline(always)]
    pub(super) fn checked_tag(&self, off: usize) -> Option<u32> {
        let hdr = self.read_header(off);
        let tag = tag_of_header(hdr);
        header_ok(hdr, off, self.check_key).then_some(tag)
    }

    /// Writes the header and footer of a free block.
    #[inline(always)]
    pub(super) fn write_free(&mut self, off: usize, size: usize, extra: u32) {
        self.set_tag(off, size as u32 | FREE | extra);
        self.write_word(off + size - 4, size as u32);
    }
}
