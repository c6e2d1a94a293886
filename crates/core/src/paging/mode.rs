//! Paging modes: [`Classic`] two-level i386 paging (the default) and
//! [`Pae`] (three levels, 64-bit entries, NX, frames up to 64 GiB).
//!
//! The mode is a type parameter of [`AddressSpace`](super::AddressSpace)
//! (and of the types built on it) with `Classic` as its default, so the
//! classic code is what it was, monomorphised, and a kernel picks the mode
//! at boot by building one set of types or the other.
//!
//! ```text
//!  classic (CR3 -> PD)                  PAE (CR3 -> PDPT)
//!  va: | 10 PD | 10 PT | 12 off |       va: | 2 PDPT | 9 PD | 9 PT | 12 off |
//!  PD: 1024 x u32, PDE = 4 MiB          PDPT: 4 x u64 (one per GiB)
//!  PT: 1024 x u32                       PD:   512 x u64, PDE = 2 MiB
//!                                       PT:   512 x u64, bit 63 = NX
//! ```
//!
//! In PAE mode the four page directories are treated as one "directory"
//! of 2048 entries (index `va >> 21`), so the code that walks, counts and
//! frees user page tables is the same for both modes. The PDPT of a space
//! points at three user directories it owns (allocated with the space, so
//! no PDPT entry ever changes while the space is loaded: the CPU caches
//! them at each CR3 load) and, in PDPTE\[3\], at the kernel space's one
//! kernel directory, which every space shares instead of copying entries.

use super::entry::{Entry, PaeEntry, PageTableEntry};
use crate::addr::{FRAME_COUNT_4G, FRAME_COUNT_MAX};
use crate::layout::{KERNEL_BASE, PAGE_SHIFT, PAGE_SIZE};

/// A paging mode: the entry format and the shape of the tables. Sealed:
/// [`Classic`] and [`Pae`] are the two.
pub trait PagingMode:
    Copy + core::fmt::Debug + Default + Send + Sync + 'static + sealed::Sealed
{
    /// The entry of every level (a PDPT entry too, in PAE mode).
    type Entry: Entry;
    /// A short name for messages and benchmarks.
    const NAME: &'static str;
    /// Entries per page table or page directory (1024, or 512).
    const ENTRIES: usize = PAGE_SIZE / core::mem::size_of::<Self::Entry>();
    /// log2 of the bytes one directory entry maps (22: 4 MiB; 21: 2 MiB):
    /// the span of one page table, and the size of a large page.
    const DIR_SHIFT: u32;
    /// Directory entries over the whole 4 GiB (1024, or 4 x 512).
    const DIR_ENTRIES: usize = 1 << (32 - Self::DIR_SHIFT);
    /// First directory index of the kernel half.
    const KERNEL_DIR_INDEX: usize = (KERNEL_BASE >> Self::DIR_SHIFT) as usize;
    /// The mode has a page-directory-pointer table (CR3 points at it).
    const PDPT: bool;
    /// Entries can refuse instruction fetches (NX): pages mapped without
    /// `PROT_EXEC` get it, and a fetch from them is a protection fault.
    const NX: bool;
    /// One past the highest frame number an entry can hold.
    const FRAME_LIMIT: u32;

    /// Index of the directory entry mapping `va` (over all directories).
    #[inline]
    fn dir_index(va: u32) -> usize {
        (va >> Self::DIR_SHIFT) as usize
    }

    /// Index, within its page table, of the entry mapping `va`.
    #[inline]
    fn table_index(va: u32) -> usize {
        ((va >> PAGE_SHIFT) as usize) & (Self::ENTRIES - 1)
    }

    /// Bytes one directory entry maps.
    #[inline]
    fn table_span() -> u32 {
        1 << Self::DIR_SHIFT
    }
}

/// Classic two-level i386 paging: 32-bit entries, 4 MiB large pages,
/// frames below 4 GiB, no NX. The default mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Classic;

/// PAE paging: a 4-entry PDPT, 64-bit entries, 2 MiB large pages, NX (the
/// kernel enables EFER.NXE; a CPU without NX keeps classic paging), frames
/// up to 64 GiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pae;

impl PagingMode for Classic {
    type Entry = PageTableEntry;
    const NAME: &'static str = "classic";
    const DIR_SHIFT: u32 = 22;
    const PDPT: bool = false;
    const NX: bool = false;
    const FRAME_LIMIT: u32 = FRAME_COUNT_4G;
}

impl PagingMode for Pae {
    type Entry = PaeEntry;
    const NAME: &'static str = "pae";
    const DIR_SHIFT: u32 = 21;
    const PDPT: bool = true;
    const NX: bool = true;
    const FRAME_LIMIT: u32 = FRAME_COUNT_MAX;
}

/// Entries in the PAE page-directory-pointer table.
pub(crate) const PDPT_ENTRIES: usize = 4;
/// Directory entries per PAE page directory (one GiB).
pub(crate) const PAE_PD_ENTRIES: usize = 512;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Classic {}
    impl Sealed for super::Pae {}
}

const _: () = assert!(Classic::ENTRIES == 1024 && Classic::DIR_ENTRIES == 1024);
const _: () = assert!(Classic::KERNEL_DIR_INDEX == 768);
const _: () = assert!(Pae::ENTRIES == 512 && Pae::DIR_ENTRIES == PDPT_ENTRIES * PAE_PD_ENTRIES);
const _: () = assert!(Pae::KERNEL_DIR_INDEX == 3 * PAE_PD_ENTRIES);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_split_the_address_as_the_mmu_does() {
        let va = 0xC010_2345;
        assert_eq!(Classic::dir_index(va), 0x300);
        assert_eq!(Classic::table_index(va), 0x102);
        // PAE: PDPT 3, PD 0, PT 0x102.
        assert_eq!(Pae::dir_index(va), 3 * 512);
        assert_eq!(Pae::table_index(va), 0x102);
        let va = 0x7FE0_1000; // PDPT 1, PD 511, PT 1
        assert_eq!(Pae::dir_index(va), 512 + 511);
        assert_eq!(Pae::table_index(va), 1);
        assert_eq!(Classic::table_span(), 4 << 20);
        assert_eq!(Pae::table_span(), 2 << 20);
    }
}
