//! Typed addresses: [`PhysAddr`], [`VirtAddr`], [`Frame`] and [`Page`].
//!
//! No bare `u32` crosses the core's API: a physical address can't be passed
//! where a virtual one is expected, and the page-aligned types can only be
//! built from aligned addresses (checked constructors return `Result`).

use core::fmt;

use crate::error::MmError;
use crate::layout::{PAGE_SHIFT, PAGE_SIZE};

/// A physical address: 32 bits in classic paging, up to [`PHYS_BITS`]
/// (36) bits in PAE mode, where RAM above 4 GiB is reachable.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(u64);

/// A 32-bit virtual address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(u32);

/// A 4 KiB physical frame, identified by its number (`address >> 12`):
/// below [`FRAME_COUNT_MAX`] (64 GiB, what PAE with a 36-bit MAXPHYADDR
/// reaches). Classic paging maps only frames below [`FRAME_COUNT_4G`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Frame(u32);

/// A 4 KiB virtual page, identified by its number (`address >> 12`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Page(u32);

/// Number of 4 KiB frames (and pages) in the 32-bit address space.
pub const FRAME_COUNT_4G: u32 = 1 << (32 - PAGE_SHIFT);

/// Width of the widest physical address the core handles: 36 bits (64
/// GiB), the MAXPHYADDR of the first PAE CPUs and the architectural
/// minimum of every later one. RAM above it is left out of the allocator.
pub const PHYS_BITS: u32 = 36;

/// Number of 4 KiB frames below `2^PHYS_BITS`: one past the largest frame
/// number.
pub const FRAME_COUNT_MAX: u32 = 1 << (PHYS_BITS - PAGE_SHIFT);

macro_rules! addr_common {
    ($t:ident, $int:ty) => {
        impl $t {
            /// True when the address is a multiple of `align` (a power of two).
            #[inline]
            pub const fn is_aligned(self, align: u32) -> bool {
                self.0 & (align as $int - 1) == 0
            }
            /// True when the address is page-aligned.
            #[inline]
            pub const fn is_page_aligned(self) -> bool {
                self.is_aligned(PAGE_SIZE as u32)
            }
            /// Rounds down to a multiple of `align` (a power of two).
            #[inline]
            pub const fn align_down(self, align: u32) -> Self {
                Self(self.0 & !(align as $int - 1))
            }
            /// Rounds up to a multiple of `align` (a power of two); `None` on overflow.
            #[inline]
            pub const fn checked_align_up(self, align: u32) -> Option<Self> {
                match self.0.checked_add(align as $int - 1) {
                    Some(v) if v & !(align as $int - 1) <= Self::MAX => {
                        Some(Self(v & !(align as $int - 1)))
                    }
                    _ => None,
                }
            }
            /// Offset within the 4 KiB page.
            #[inline]
            pub const fn page_offset(self) -> u32 {
                (self.0 & (PAGE_SIZE as $int - 1)) as u32
            }
            /// Adds `bytes`; `None` on overflow past the end of the space.
            #[inline]
            pub const fn checked_add(self, bytes: u32) -> Option<Self> {
                match self.0.checked_add(bytes as $int) {
                    Some(v) if v <= Self::MAX => Some(Self(v)),
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({:#010x})"), self.0)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#010x}", self.0)
            }
        }

        impl fmt::LowerHex for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

addr_common!(PhysAddr, u64);
addr_common!(VirtAddr, u32);

impl PhysAddr {
    /// The largest physical address: `2^PHYS_BITS - 1`.
    pub const MAX: u64 = (1 << PHYS_BITS) - 1;

    /// Any 32-bit value is a physical address.
    #[inline]
    pub const fn new(addr: u32) -> Self {
        Self(addr as u64)
    }
    /// A physical address from a 64-bit value (e.g. a multiboot memory-map
    /// entry, or a PAE entry's address field); fails at or above
    /// `2^PHYS_BITS` (64 GiB).
    pub const fn try_from_u64(addr: u64) -> Result<Self, MmError> {
        if addr <= Self::MAX {
            Ok(Self(addr))
        } else {
            Err(MmError::OutOfRange)
        }
    }
    /// The address as a `u64`.
    #[inline]
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    /// The address as a `usize`: exact on 64-bit hosts and, on 32-bit
    /// targets, for addresses below 4 GiB (the heap compares the addresses
    /// of its own pages with it); wider addresses are truncated there.
    #[inline]
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
    /// The address as a `u32`, for addresses known to be below 4 GiB (all
    /// of them in classic mode: the C API's and the classic paging code's
    /// width). Debug builds check it; use [`to_u32`](Self::to_u32) or
    /// [`as_u64`](Self::as_u64) where the address may be higher.
    #[inline]
    pub const fn as_u32(self) -> u32 {
        debug_assert!(self.0 <= u32::MAX as u64, "physical address above 4 GiB");
        self.0 as u32
    }
    /// The address as a `u32` when it is below 4 GiB (what classic paging
    /// and the 32-bit C API can hold); `None` above.
    #[inline]
    pub const fn to_u32(self) -> Option<u32> {
        if self.0 <= u32::MAX as u64 {
            Some(self.0 as u32)
        } else {
            None
        }
    }
    /// The frame containing this address.
    #[inline]
    pub const fn frame(self) -> Frame {
        Frame((self.0 >> PAGE_SHIFT) as u32)
    }
}

impl VirtAddr {
    /// The largest virtual address.
    pub const MAX: u32 = u32::MAX;

    /// Any 32-bit value is a virtual address.
    #[inline]
    pub const fn new(addr: u32) -> Self {
        Self(addr)
    }
    /// The address as a plain integer.
    #[inline]
    pub const fn as_u32(self) -> u32 {
        self.0
    }
    /// The address as a `usize` (for indexing and pointer arithmetic).
    #[inline]
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
    /// The page containing this address.
    #[inline]
    pub const fn page(self) -> Page {
        Page(self.0 >> PAGE_SHIFT)
    }
    /// Index of the page-directory entry that maps this address (bits 31..22).
    #[inline]
    pub const fn pd_index(self) -> usize {
        (self.0 >> 22) as usize
    }
    /// Index of the page-table entry that maps this address (bits 21..12).
    #[inline]
    pub const fn pt_index(self) -> usize {
        ((self.0 >> 12) & 0x3ff) as usize
    }
}

impl Frame {
    /// The frame starting at `addr`; fails unless `addr` is page-aligned.
    pub const fn from_start(addr: PhysAddr) -> Result<Self, MmError> {
        if addr.is_page_aligned() {
            Ok(Self((addr.0 >> PAGE_SHIFT) as u32))
        } else {
            Err(MmError::Misaligned)
        }
    }
    /// The frame with number `number`; fails for numbers past
    /// [`FRAME_COUNT_MAX`] (64 GiB).
    pub const fn from_number(number: u32) -> Result<Self, MmError> {
        if number < FRAME_COUNT_MAX {
            Ok(Self(number))
        } else {
            Err(MmError::OutOfRange)
        }
    }
    /// The frame number (`address >> 12`).
    #[inline]
    pub const fn number(self) -> u32 {
        self.0
    }
    /// The physical address of the frame's first byte.
    #[inline]
    pub const fn start(self) -> PhysAddr {
        PhysAddr((self.0 as u64) << PAGE_SHIFT)
    }
    /// Frame number `number`, known to be below [`FRAME_COUNT_MAX`] (a
    /// number the allocator's metadata covers).
    #[inline]
    pub(crate) const fn nth(number: u32) -> Self {
        debug_assert!(number < FRAME_COUNT_MAX);
        Self(number)
    }
    /// The frame holding physical address `addr`, with the bits at and
    /// above [`PHYS_BITS`] ignored (for address fields of paging entries).
    #[inline]
    pub(crate) const fn of_phys_bits(addr: u64) -> Self {
        Self(((addr & PhysAddr::MAX) >> PAGE_SHIFT) as u32)
    }
    /// True when the frame lies below 4 GiB (classic paging can map it).
    #[inline]
    pub const fn is_below_4g(self) -> bool {
        self.0 < FRAME_COUNT_4G
    }
    /// The frame `n` frames after this one; `None` past [`FRAME_COUNT_MAX`].
    #[inline]
    pub const fn checked_add(self, n: u32) -> Option<Self> {
        match self.0.checked_add(n) {
            Some(v) if v < FRAME_COUNT_MAX => Some(Self(v)),
            _ => None,
        }
    }
}

impl Page {
    /// The page starting at `addr`; fails unless `addr` is page-aligned.
    pub const fn from_start(addr: VirtAddr) -> Result<Self, MmError> {
        if addr.is_page_aligned() {
            Ok(Self(addr.0 >> PAGE_SHIFT))
        } else {
            Err(MmError::Misaligned)
        }
    }
    /// The page with number `number`; fails for numbers past 4 GiB.
    pub const fn from_number(number: u32) -> Result<Self, MmError> {
        if number < FRAME_COUNT_4G {
            Ok(Self(number))
        } else {
            Err(MmError::OutOfRange)
        }
    }
    /// The page number (`address >> 12`).
    #[inline]
    pub const fn number(self) -> u32 {
        self.0
    }
    /// The virtual address of the page's first byte.
    #[inline]
    pub const fn start(self) -> VirtAddr {
        VirtAddr(self.0 << PAGE_SHIFT)
    }
    /// The page `n` pages after this one; `None` past 4 GiB.
    #[inline]
    pub const fn checked_add(self, n: u32) -> Option<Self> {
        match self.0.checked_add(n) {
            Some(v) if v < FRAME_COUNT_4G => Some(Self(v)),
            _ => None,
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({:#010x})", self.start().as_u64())
    }
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Page({:#010x})", self.start().as_u32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_constructors_reject_misaligned_and_out_of_range() {
        assert_eq!(
            Frame::from_start(PhysAddr::new(0x1001)),
            Err(MmError::Misaligned)
        );
        assert_eq!(
            Page::from_start(VirtAddr::new(0xFFF)),
            Err(MmError::Misaligned)
        );
        assert_eq!(
            Frame::from_number(FRAME_COUNT_MAX),
            Err(MmError::OutOfRange)
        );
        assert_eq!(Page::from_number(u32::MAX), Err(MmError::OutOfRange));
        assert_eq!(Page::from_number(FRAME_COUNT_4G), Err(MmError::OutOfRange));
        assert_eq!(PhysAddr::try_from_u64(1 << 36), Err(MmError::OutOfRange));
        assert_eq!(PhysAddr::try_from_u64(u64::MAX), Err(MmError::OutOfRange));
        assert_eq!(Frame::from_start(PhysAddr::new(0)).unwrap().number(), 0);
    }

    #[test]
    fn indices_and_rounding() {
        let va = VirtAddr::new(0xC010_2345);
        assert_eq!(va.pd_index(), 0x300);
        assert_eq!(va.pt_index(), 0x102);
        assert_eq!(va.page_offset(), 0x345);
        assert_eq!(va.align_down(4096).as_u32(), 0xC010_2000);
        assert_eq!(va.checked_align_up(4096).unwrap().as_u32(), 0xC010_3000);
        assert_eq!(VirtAddr::new(0xFFFF_F001).checked_align_up(4096), None);
        assert_eq!(
            Frame::from_number(FRAME_COUNT_MAX - 1)
                .unwrap()
                .checked_add(1),
            None
        );
        assert_eq!(Page::from_number(5).unwrap().start().as_u32(), 0x5000);
    }

    #[test]
    fn frames_above_4g_have_wide_addresses() {
        let f = Frame::from_number(FRAME_COUNT_4G).unwrap();
        assert!(!f.is_below_4g());
        assert!(Frame::from_number(FRAME_COUNT_4G - 1)
            .unwrap()
            .is_below_4g());
        assert_eq!(f.start().as_u64(), 1 << 32);
        assert_eq!(f.start().to_u32(), None);
        assert_eq!(f.start().frame(), f);
        let top = PhysAddr::try_from_u64(PhysAddr::MAX).unwrap();
        assert_eq!(top.frame().number(), FRAME_COUNT_MAX - 1);
        assert_eq!(top.checked_add(1), None);
        assert_eq!(top.page_offset(), 0xFFF);
        assert_eq!(PhysAddr::new(0x1234).to_u32(), Some(0x1234));
        assert_eq!(alloc::format!("{f:?}"), "Frame(0x100000000)");
        assert_eq!(alloc::format!("{}", PhysAddr::new(0x1000)), "0x00001000");
    }
}
