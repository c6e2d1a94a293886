//! Page-table and page-directory entries.
//!
//! [`PageTableEntry`] is one 32-bit i386 entry. Its bit layout is the C API's
//! `page_t` (`include/myos/memory.h`): the spec's fields `present`, `rw`,
//! `user`, `accessed`, `dirty`, `unused` and `frame`, in that order, each at
//! the bit where the i386 MMU reads it. (The layout the spec descends from,
//! James Molloy's tutorial, packs `accessed` and `dirty` into bits 3 and 4,
//! which the MMU reads as write-through and cache-disable; see
//! `docs/decisions.md`.)

use bitflags::bitflags;

use crate::addr::{Frame, PhysAddr};

bitflags! {
    /// Flag bits of an i386 page-table or page-directory entry.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct PteFlags: u32 {
        /// P (bit 0): the entry maps something; clear means any access faults.
        const PRESENT = 1 << 0;
        /// R/W (bit 1): writes allowed (for supervisor too only while CR0.WP is set).
        const WRITABLE = 1 << 1;
        /// U/S (bit 2): ring-3 code may access; clear means supervisor only.
        const USER = 1 << 2;
        /// PWT (bit 3): write-through caching.
        const WRITE_THROUGH = 1 << 3;
        /// PCD (bit 4): caching disabled (memory-mapped I/O).
        const NO_CACHE = 1 << 4;
        /// A (bit 5): set by the MMU on any access through this entry.
        const ACCESSED = 1 << 5;
        /// D (bit 6): set by the MMU on a write through this (last-level) entry.
        const DIRTY = 1 << 6;
        /// PS (bit 7) in a directory entry: maps a 4 MiB page (needs CR4.PSE);
        /// must be zero in a page-table entry here (PAT is not used).
        const HUGE = 1 << 7;
        /// G (bit 8): the translation survives CR3 loads (needs CR4.PGE).
        const GLOBAL = 1 << 8;
        /// Bit 9, ignored by the MMU, free for the OS (unused by the core).
        const AVAIL0 = 1 << 9;
        /// Bit 10, ignored by the MMU, free for the OS (unused by the core).
        const AVAIL1 = 1 << 10;
        /// Bit 11, ignored by the MMU, free for the OS (unused by the core).
        const AVAIL2 = 1 << 11;
    }
}

/// Mask of the frame-address bits (31..12) of an entry.
pub const FRAME_MASK: u32 = 0xFFFF_F000;

/// One entry of a page table (or page directory): a frame number and flags.
///
/// Layout-compatible with the C API's `page_t`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct PageTableEntry(u32);

impl PageTableEntry {
    /// The all-zero, not-present entry.
    pub const EMPTY: Self = Self(0);

    /// An entry mapping `frame` with `flags`.
    #[inline]
    pub const fn new(frame: Frame, flags: PteFlags) -> Self {
        Self(frame.start().as_u32() | flags.bits())
    }
    /// The raw 32-bit value (as the MMU sees it).
    #[inline]
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// An entry from its raw value.
    #[inline]
    pub const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }
    /// The flag bits (including any the MMU set, such as A and D).
    #[inline]
    pub const fn flags(self) -> PteFlags {
        PteFlags::from_bits_retain(self.0 & !FRAME_MASK)
    }
    /// The frame this entry points at (meaningful when present).
    #[inline]
    pub const fn frame(self) -> Frame {
        PhysAddr::new(self.0 & FRAME_MASK).frame()
    }
    /// True when the P bit is set.
    #[inline]
    pub const fn is_present(self) -> bool {
        self.0 & PteFlags::PRESENT.bits() != 0
    }
    /// True when the entry is all zero.
    #[inline]
    pub const fn is_unused(self) -> bool {
        self.0 == 0
    }
    /// The same frame with new flags.
    #[inline]
    pub const fn with_flags(self, flags: PteFlags) -> Self {
        Self((self.0 & FRAME_MASK) | flags.bits())
    }
}

impl core::fmt::Debug for PageTableEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PageTableEntry")
            .field("frame", &self.frame())
            .field("flags", &self.flags())
            .finish()
    }
}

const _: () = assert!(core::mem::size_of::<PageTableEntry>() == 4);

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins every bit of the entry to the i386 meaning and to the C `page_t`
    /// field order: present, rw, user, (pwt, pcd), accessed, dirty, unused, frame.
    #[test]
    fn every_bit_is_pinned() {
        let pins: [(PteFlags, u32); 12] = [
            (PteFlags::PRESENT, 0),
            (PteFlags::WRITABLE, 1),
            (PteFlags::USER, 2),
            (PteFlags::WRITE_THROUGH, 3),
            (PteFlags::NO_CACHE, 4),
            (PteFlags::ACCESSED, 5),
            (PteFlags::DIRTY, 6),
            (PteFlags::HUGE, 7),
            (PteFlags::GLOBAL, 8),
            (PteFlags::AVAIL0, 9),
            (PteFlags::AVAIL1, 10),
            (PteFlags::AVAIL2, 11),
        ];
        for (flag, bit) in pins {
            assert_eq!(flag.bits(), 1 << bit, "{flag:?}");
            assert_eq!(
                PageTableEntry::new(Frame::from_number(0).unwrap(), flag).raw(),
                1 << bit
            );
        }
        assert_eq!(PteFlags::all().bits(), 0xFFF);
        let e = PageTableEntry::new(Frame::from_number(0xABCDE).unwrap(), PteFlags::PRESENT);
        assert_eq!(e.raw(), 0xABCD_E001);
        assert_eq!(e.frame().number(), 0xABCDE);
        assert_eq!(e.flags(), PteFlags::PRESENT);
        let top = PageTableEntry::new(Frame::from_number(0xFFFFF).unwrap(), PteFlags::empty());
        assert_eq!(top.raw(), FRAME_MASK);
        assert!(!top.is_present() && !top.is_unused());
    }
}
