//! Typed addresses: [`PhysAddr`], [`VirtAddr`], [`Frame`] and [`Page`].
//!
//! No bare `u32` crosses the core's API: a physical address can't be passed
//! where a virtual one is expected, and the page-aligned types can only be
//! built from aligned addresses (checked constructors return `Result`).

use core::fmt;

use crate::error::MmError;
use crate::layout::{PAGE_SHIFT, PAGE_SIZE};

/// A 32-bit physical address (no PAE: physical memory ends at 4 GiB).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(u32);

/// A 32-bit virtual address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(u32);

/// A 4 KiB physical frame, identified by its number (`address >> 12`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Frame(u32);

/// A 4 KiB virtual page, identified by its number (`address >> 12`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Page(u32);

/// Number of 4 KiB frames (and pages) in the 32-bit address space.
pub const FRAME_COUNT_4G: u32 = 1 << (32 - PAGE_SHIFT);

macro_rules! addr_common {
    ($t:ident) => {
        impl $t {
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
            /// True when the address is a multiple of `align` (a power of two).
            #[inline]
            pub const fn is_aligned(self, align: u32) -> bool {
                self.0 & (align - 1) == 0
            }
            /// True when the address is page-aligned.
            #[inline]
            pub const fn is_page_aligned(self) -> bool {
                self.is_aligned(PAGE_SIZE as u32)
            }
            /// Rounds down to a multiple of `align` (a power of two).
            #[inline]
            pub const fn align_down(self, align: u32) -> Self {
                Self(self.0 & !(align - 1))
            }
            /// Rounds up to a multiple of `align` (a power of two); `None` on overflow.
            #[inline]
            pub const fn checked_align_up(self, align: u32) -> Option<Self> {
                match self.0.checked_add(align - 1) {
                    Some(v) => Some(Self(v & !(align - 1))),
                    None => None,
                }
            }
            /// Offset within the 4 KiB page.
            #[inline]
            pub const fn page_offset(self) -> u32 {
                self.0 & (PAGE_SIZE as u32 - 1)
            }
            /// Adds `bytes`; `None` on overflow past 4 GiB.
            #[inline]
            pub const fn checked_add(self, bytes: u32) -> Option<Self> {
                match self.0.checked_add(bytes) {
                    Some(v) => Some(Self(v)),
                    None => None,
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

addr_common!(PhysAddr);
addr_common!(VirtAddr);

impl PhysAddr {
    /// Any 32-bit value is a physical address.
    #[inline]
    pub const fn new(addr: u32) -> Self {
        Self(addr)
    }
    /// A physical address from a 64-bit value (e.g. a multiboot memory-map
    /// entry); fails above 4 GiB.
    pub fn try_from_u64(addr: u64) -> Result<Self, MmError> {
        u32::try_from(addr)
            .map(Self)
            .map_err(|_| MmError::OutOfRange)
    }
    /// The frame containing this address.
    #[inline]
    pub const fn frame(self) -> Frame {
        Frame(self.0 >> PAGE_SHIFT)
    }
}

impl VirtAddr {
    /// Any 32-bit value is a virtual address.
    #[inline]
    pub const fn new(addr: u32) -> Self {
        Self(addr)
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
            Ok(Self(addr.0 >> PAGE_SHIFT))
        } else {
            Err(MmError::Misaligned)
        }
    }
    /// The frame with number `number`; fails for numbers past 4 GiB.
    pub const fn from_number(number: u32) -> Result<Self, MmError> {
        if number < FRAME_COUNT_4G {
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
        PhysAddr(self.0 << PAGE_SHIFT)
    }
    /// The frame `n` frames after this one; `None` past 4 GiB.
    #[inline]
    pub const fn checked_add(self, n: u32) -> Option<Self> {
        match self.0.checked_add(n) {
            Some(v) if v < FRAME_COUNT_4G => Some(Self(v)),
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
        write!(f, "Frame({:#010x})", self.start().as_u32())
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
        assert_eq!(Frame::from_number(FRAME_COUNT_4G), Err(MmError::OutOfRange));
        assert_eq!(Page::from_number(u32::MAX), Err(MmError::OutOfRange));
        assert_eq!(PhysAddr::try_from_u64(1 << 32), Err(MmError::OutOfRange));
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
            Frame::from_number(FRAME_COUNT_4G - 1)
                .unwrap()
                .checked_add(1),
            None
        );
        assert_eq!(Page::from_number(5).unwrap().start().as_u32(), 0x5000);
    }
}
