//! Page-table and page-directory entries.
//!
//! [`PageTableEntry`] is one 32-bit i386 entry, [`PaeEntry`] one 64-bit PAE
//! entry; both implement [`Entry`], through which the paging code of either
//! [`PagingMode`](super::PagingMode) reads and writes them, with
//! [`PageAttrs`] (the flags plus no-execute) as what a mapping asks for.
//!
//! [`PageTableEntry`] Its bit layout is the C API's
//! `page_t` (`include/myos/memory.h`): the spec's fields `present`, `rw`,
//! `user`, `accessed`, `dirty`, `unused` and `frame`, in that order, each at
//! the bit where the i386 MMU reads it. (The layout the spec descends from,
//! James Molloy's tutorial, packs `accessed` and `dirty` into bits 3 and 4,
//! which the MMU reads as write-through and cache-disable; see
//! `docs/decisions.md`.)

use bitflags::bitflags;

use crate::addr::{Frame, PhysAddr};
use crate::layout::PAGE_SHIFT;

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
    ///
    /// Only frames below 4 GiB fit; the paging code refuses others before
    /// it builds an entry (a higher frame would lose its top bits).
    pub const fn new(frame: Frame, flags: PteFlags) -> Self {
        Self((frame.number() << PAGE_SHIFT) | flags.bits())
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

/// What a mapping asks of its entry: the flag bits, and whether
/// instruction fetches are refused (the NX/XD bit, which only PAE entries
/// have: classic entries ignore `no_exec`).
///
/// Every call that takes a `PageAttrs` also takes [`PteFlags`] alone
/// (`From`): executable, as classic paging always is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageAttrs {
    /// The flag bits (bits 0..11 in either entry format).
    pub flags: PteFlags,
    /// Refuse instruction fetches through this entry (PAE's bit 63).
    pub no_exec: bool,
}

impl PageAttrs {
    /// `flags`, executable.
    pub const fn new(flags: PteFlags) -> Self {
        PageAttrs {
            flags,
            no_exec: false,
        }
    }

    /// The same attributes with no-execute set to `no_exec`.
    pub const fn with_no_exec(self, no_exec: bool) -> Self {
        PageAttrs { no_exec, ..self }
    }
}

impl From<PteFlags> for PageAttrs {
    fn from(flags: PteFlags) -> Self {
        PageAttrs::new(flags)
    }
}

/// A paging-structure entry of either format, as the mode-generic paging
/// code sees it. Implemented by [`PageTableEntry`] (classic, 32 bits) and
/// [`PaeEntry`] (PAE, 64 bits); sealed.
pub trait Entry: Copy + Eq + core::fmt::Debug + Send + Sync + 'static + sealed::Sealed {
    /// The not-present, all-zero entry.
    const EMPTY: Self;
    /// An entry mapping `frame` with `attrs` (a classic entry drops
    /// `no_exec`). The frame must be one the format can hold (below
    /// 4 GiB for classic entries; the paging code checks first).
    fn map_to(frame: Frame, attrs: PageAttrs) -> Self;
    /// The frame the entry points at (meaningful when present).
    fn frame(self) -> Frame;
    /// The flag bits 0..11.
    fn flags(self) -> PteFlags;
    /// True when instruction fetches through the entry fault (always false
    /// for classic entries).
    fn no_exec(self) -> bool;
    /// The flags and no-execute bit.
    #[inline]
    fn attrs(self) -> PageAttrs {
        PageAttrs {
            flags: self.flags(),
            no_exec: self.no_exec(),
        }
    }
    /// True when the P bit is set.
    fn is_present(self) -> bool;
    /// True when the entry is all zero.
    fn is_unused(self) -> bool;
    /// The same frame with new attributes.
    fn with_attrs(self, attrs: PageAttrs) -> Self;
    /// The raw value, widened to 64 bits.
    fn raw64(self) -> u64;
    /// An entry from a raw value (a classic entry keeps the low 32 bits).
    fn from_raw64(raw: u64) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::PageTableEntry {}
    impl Sealed for super::PaeEntry {}
}

impl Entry for PageTableEntry {
    const EMPTY: Self = Self(0);
    #[inline]
    fn map_to(frame: Frame, attrs: PageAttrs) -> Self {
        Self::new(frame, attrs.flags)
    }
    #[inline]
    fn frame(self) -> Frame {
        PageTableEntry::frame(self)
    }
    #[inline]
    fn flags(self) -> PteFlags {
        PageTableEntry::flags(self)
    }
    #[inline]
    fn no_exec(self) -> bool {
        false
    }
    #[inline]
    fn is_present(self) -> bool {
        PageTableEntry::is_present(self)
    }
    #[inline]
    fn is_unused(self) -> bool {
        PageTableEntry::is_unused(self)
    }
    #[inline]
    fn with_attrs(self, attrs: PageAttrs) -> Self {
        self.with_flags(attrs.flags)
    }
    #[inline]
    fn raw64(self) -> u64 {
        u64::from(self.0)
    }
    #[inline]
    fn from_raw64(raw: u64) -> Self {
        Self(raw as u32)
    }
}

/// Mask of the address bits (51..12) of a PAE entry.
pub const PAE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// The XD/NX bit (63) of a PAE entry: instruction fetches fault (with
/// EFER.NXE; without it the bit is reserved).
pub const PAE_NO_EXECUTE: u64 = 1 << 63;

/// One 64-bit PAE entry (page-directory-pointer-table, page-directory or
/// page-table entry): address bits 12..51 (the core writes frames below
/// 64 GiB), the flag bits 0..11 of [`PteFlags`] at the same places as a
/// classic entry, and NX at bit 63.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct PaeEntry(u64);

impl PaeEntry {
    /// The all-zero, not-present entry.
    pub const EMPTY: Self = Self(0);

    /// An entry mapping `frame` with `flags`, executable.
    #[inline]
    pub const fn new(frame: Frame, flags: PteFlags) -> Self {
        Self(((frame.number() as u64) << PAGE_SHIFT) | flags.bits() as u64)
    }
    /// The raw 64-bit value (as the MMU sees it).
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }
    /// An entry from its raw value.
    #[inline]
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl Entry for PaeEntry {
    const EMPTY: Self = Self(0);
    #[inline]
    fn map_to(frame: Frame, attrs: PageAttrs) -> Self {
        let nx = if attrs.no_exec { PAE_NO_EXECUTE } else { 0 };
        Self(PaeEntry::new(frame, attrs.flags).0 | nx)
    }
    #[inline]
    fn frame(self) -> Frame {
        // The core writes only frames below 64 GiB; wider address bits
        // (written behind its back) are cut to the frame number's range.
        Frame::of_phys_bits(self.0 & PAE_ADDR_MASK)
    }
    #[inline]
    fn flags(self) -> PteFlags {
        PteFlags::from_bits_retain((self.0 & 0xFFF) as u32)
    }
    #[inline]
    fn no_exec(self) -> bool {
        self.0 & PAE_NO_EXECUTE != 0
    }
    #[inline]
    fn is_present(self) -> bool {
        self.0 & PteFlags::PRESENT.bits() as u64 != 0
    }
    #[inline]
    fn is_unused(self) -> bool {
        self.0 == 0
    }
    #[inline]
    fn with_attrs(self, attrs: PageAttrs) -> Self {
        Self::map_to(Entry::frame(self), attrs)
    }
    #[inline]
    fn raw64(self) -> u64 {
        self.0
    }
    #[inline]
    fn from_raw64(raw: u64) -> Self {
        Self(raw)
    }
}

impl core::fmt::Debug for PaeEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PaeEntry")
            .field("frame", &Entry::frame(*self))
            .field("flags", &Entry::flags(*self))
            .field("no_exec", &Entry::no_exec(*self))
            .finish()
    }
}

const _: () = assert!(core::mem::size_of::<PaeEntry>() == 8);

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

    #[test]
    fn pae_entries_hold_wide_frames_and_nx() {
        let high = Frame::from_number(0xF_FFFF + 0x10_0001).unwrap();
        let attrs = PageAttrs::new(PteFlags::PRESENT | PteFlags::USER).with_no_exec(true);
        let e = PaeEntry::map_to(high, attrs);
        assert_eq!(e.raw(), PAE_NO_EXECUTE | (0x20_0000 << 12) | 0b101);
        assert_eq!(Entry::frame(e), high);
        assert_eq!(e.attrs(), attrs);
        assert!(Entry::is_present(e) && !Entry::is_unused(e));
        let x = e.with_attrs(PageAttrs::new(PteFlags::PRESENT));
        assert!(!x.no_exec());
        assert_eq!(Entry::frame(x), high);
        assert_eq!(x.raw64(), (0x20_0000 << 12) | 1);
        // Address bits beyond 64 GiB (not written by the core) don't make
        // a frame number out of range.
        let wide = PaeEntry::from_raw((1 << 40) | 1);
        assert_eq!(Entry::frame(wide).number(), 0);
        assert!(<PaeEntry as Entry>::EMPTY.is_unused());
    }

    #[test]
    fn classic_entries_ignore_no_exec() {
        let f = Frame::from_number(0x1234).unwrap();
        let attrs = PageAttrs::new(PteFlags::PRESENT).with_no_exec(true);
        let e = PageTableEntry::map_to(f, attrs);
        assert_eq!(e, PageTableEntry::new(f, PteFlags::PRESENT));
        assert!(!Entry::no_exec(e));
        assert_eq!(e.raw64(), 0x0123_4001);
        assert_eq!(
            PageAttrs::from(PteFlags::USER),
            PageAttrs::new(PteFlags::USER)
        );
    }
}
