//! The physical memory map the allocator is built from ([`MemoryRegion`],
//! [`RegionKind`]) and the questions it asks of it: which frames a usable
//! region holds, whether a frame touches a reserved range, and where the
//! allocator's own metadata can live.

use crate::addr::Frame;
use crate::layout::{DIRECT_ZONE_END, LOW_ZONE_END, PAGE_SHIFT, PAGE_SIZE, PHYS_END};

/// What a range of physical memory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// RAM the allocator may hand out.
    Usable,
    /// Not to be handed out: firmware, the kernel image, boot modules, MMIO.
    /// A reserved range wins over any usable range it overlaps.
    Reserved,
}

/// One entry of the physical memory map (byte addresses, `end` exclusive; 64
/// bits so that a map reaching 4 GiB, or reporting RAM above it, is expressible).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Usable or reserved.
    pub kind: RegionKind,
}

/// Frames wholly inside a usable region (start rounded up, end down),
/// below physical address `phys_end`.
pub(super) fn inner_frames(r: &MemoryRegion, phys_end: u64) -> (u32, u32) {
    let lo = r.start.min(phys_end).div_ceil(PAGE_SIZE as u64) as u32;
    let hi = (r.end.min(phys_end) >> PAGE_SHIFT) as u32;
    (lo, hi.max(lo))
}

/// True when a reserved region touches frame number `f`.
pub(super) fn touches_reserved(map: &[MemoryRegion], f: u32) -> bool {
    let (lo, hi) = ((f as u64) << PAGE_SHIFT, ((f as u64) + 1) << PAGE_SHIFT);
    map.iter()
        .any(|r| r.kind == RegionKind::Reserved && r.start < hi && r.end > lo)
}

/// The lowest run of `count` usable frames below the direct-map limit,
/// preferring one above the low zone, then one above 1 MiB.
pub(super) fn find_metadata_home(map: &[MemoryRegion], count: u32) -> Option<Frame> {
    let direct_end = (DIRECT_ZONE_END >> PAGE_SHIFT) as u32;
    let low_end = (LOW_ZONE_END >> PAGE_SHIFT) as u32;
    let search = |floor: u32| {
        map.iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .find_map(|r| {
                let (lo, hi) = inner_frames(r, PHYS_END);
                let (mut start, hi) = (lo.max(floor), hi.min(direct_end));
                while start.checked_add(count)? <= hi {
                    match (start..start + count)
                        .rev()
                        .find(|&f| touches_reserved(map, f))
                    {
                        None => return Frame::from_number(start).ok(),
                        Some(f) => start = f + 1,
                    }
                }
                None
            })
    };
    // Above the ISA-DMA zone if possible, else above the first megabyte
    // (where real-mode leftovers and the BIOS data live), else anywhere.
    search(low_end)
        .or_else(|| search(0x100))
        .or_else(|| search(0))
}
