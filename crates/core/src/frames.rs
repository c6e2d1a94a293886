//! Physical frame allocator.

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
