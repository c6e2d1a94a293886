//! Every address constant of the memory manager, in one place.
//!
//! ```text
//!  virtual                                        physical
//!  0xFFFF_FFFF +---------------------------+
//!              | reserved                  |
//!  0xFFC0_0000 +---------------------------+
//!              | kmap window (high frames) |
//!  0xFF80_0000 +---------------------------+
//!              | kernel stacks (guarded)   |
//!  0xFE80_0000 +---------------------------+
//!              | kernel heap (create_heap, |
//!              |  grows up to its max)     |
//!  0xF000_0000 +---------------------------+
//!              | direct map of physical    | ---> 0x0000_0000 .. 0x3000_0000 (768 MiB)
//!              | 0..768 MiB (kernel image  |
//!              | at 0xC010_0000 = 1 MiB)   |
//!  0xC000_0000 +---------------------------+ <- KERNEL_BASE: PDEs 768..1023 are
//!              | user stack (grows down)   |    shared by every address space
//!              | mmap area                 |
//!              | program                   |
//!  0x0040_0000 +---------------------------+ <- mmap never places a region below
//!              | NULL guard (4 MiB)        |
//!  0x0000_0000 +---------------------------+
//! ```
//!
//! Physical zones: `low` (below 16 MiB, ISA DMA reach), `direct` (below 768
//! MiB, reachable through the direct map; page tables live here) and `high`
//! (the rest, reached through the kmap window).
//!
//! Build-time choices (for kernels that need another split of the kernel
//! half; the figures above are the defaults). Each is read by `option_env!`
//! when this crate is compiled, so cargo rebuilds when it changes, and is
//! checked by the assertions at the end of this file (a bad value is a
//! compile error):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MYOS_DIRECT_MAP_MB` | `768` | size of the direct map in MiB (multiple of 4; it must end at or below the heap window) |
//! | `MYOS_HEAP_START` | `0xF0000000` | first address of the heap window (4 MiB aligned) |
//! | `MYOS_HEAP_END` | `0xFF800000` | end of the heap window; the 4 MiB kmap window follows it, and the top 16 MiB of the window are the reference kernel's kernel stacks |
//!
//! The kernel base (`0xC000_0000`, page-directory index 768) is fixed.

/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;
/// Size of a page and of a frame: 4 KiB.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// Entries in a page directory or page table.
pub const ENTRIES: usize = 1024;
/// Bytes mapped by one page-directory entry (one page table): 4 MiB.
pub const TABLE_SPAN: u32 = (ENTRIES * PAGE_SIZE) as u32;

/// Lowest address that `mmap` ever hands out (catches NULL and small offsets).
pub const USER_MMAP_MIN: u32 = 0x0040_0000;
/// End of user space (exclusive); the kernel half starts here.
pub const USER_END: u32 = 0xC000_0000;
/// First kernel virtual address.
pub const KERNEL_BASE: u32 = 0xC000_0000;
/// First page-directory index of the kernel half.
pub const KERNEL_PD_INDEX: usize = (KERNEL_BASE >> 22) as usize;

/// A number given at build time (decimal, or hex with `0x`; `_` allowed),
/// or `default` when the variable is unset. A malformed value stops the
/// build (a panic in const evaluation).
const fn build_option(value: Option<&str>, default: u32) -> u32 {
    let Some(s) = value else {
        return default;
    };
    let b = s.as_bytes();
    let (mut i, radix) = if b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        (2, 16)
    } else {
        (0, 10)
    };
    let mut v: u64 = 0;
    let mut digits = 0;
    while i < b.len() {
        let d = match b[i] {
            b'0'..=b'9' => (b[i] - b'0') as u64,
            b'a'..=b'f' if radix == 16 => (b[i] - b'a' + 10) as u64,
            b'A'..=b'F' if radix == 16 => (b[i] - b'A' + 10) as u64,
            b'_' => {
                i += 1;
                continue;
            }
            _ => panic!("layout: a MYOS_* layout variable is not a number"),
        };
        v = v * radix + d;
        assert!(
            v <= u32::MAX as u64,
            "layout: a MYOS_* layout variable exceeds 32 bits"
        );
        digits += 1;
        i += 1;
    }
    assert!(digits > 0, "layout: a MYOS_* layout variable is empty");
    v as u32
}

/// Size of the direct map of physical memory: 768 MiB unless
/// `MYOS_DIRECT_MAP_MB` says otherwise.
pub const DIRECT_MAP_SIZE: u32 = build_option(option_env!("MYOS_DIRECT_MAP_MB"), 768) << 20;
/// Start of the direct map (physical 0 maps here).
pub const DIRECT_MAP_START: u32 = KERNEL_BASE;
/// End of the direct map (exclusive).
pub const DIRECT_MAP_END: u32 = DIRECT_MAP_START + DIRECT_MAP_SIZE;
/// Physical address of the kernel image (1 MiB), linked at `KERNEL_BASE + 1 MiB`.
pub const KERNEL_LOAD_PHYS: u32 = 0x0010_0000;

/// Start of the kernel heap range (`0xF000_0000` unless `MYOS_HEAP_START`
/// says otherwise).
pub const HEAP_START: u32 = build_option(option_env!("MYOS_HEAP_START"), 0xF000_0000);
/// End of the kernel heap range (exclusive): the largest `max` a heap can
/// have (`0xFF80_0000` unless `MYOS_HEAP_END` says otherwise).
pub const HEAP_END: u32 = build_option(option_env!("MYOS_HEAP_END"), 0xFF80_0000);
/// Start of the per-process kernel stacks (each with a guard page below it),
/// the top 16 MiB of the heap range; the kernel heap's `max` stops here.
pub const KSTACK_START: u32 = HEAP_END - (16 << 20);
/// End of the kernel-stack area (exclusive).
pub const KSTACK_END: u32 = HEAP_END;
/// The largest `max` of the kernel heap (`init_kheap`).
pub const KERNEL_HEAP_MAX: u32 = KSTACK_START;

/// Start of the temporary-mapping window for frames above the direct map
/// (right above the heap window).
pub const KMAP_START: u32 = HEAP_END;
/// End of the kmap window (exclusive).
pub const KMAP_END: u32 = KMAP_START + TABLE_SPAN;
/// Start of the top 4 MiB, reserved for the platform (a kernel's fixmap:
/// device registers such as the local APIC and I/O APIC). The core keeps
/// no mapping there and refuses to make one (`get_page`, `map`): a page
/// table the kernel installed there is not the core's to hand out.
pub const RESERVED_START: u32 = 0xFFC0_0000;
/// Number of kmap slots (one page each).
pub const KMAP_SLOTS: usize = ((KMAP_END - KMAP_START) as usize) / PAGE_SIZE;

/// End of the `low` physical zone (exclusive): 16 MiB, the ISA DMA limit.
pub const LOW_ZONE_END: u64 = 16 << 20;
/// End of the `direct` physical zone (exclusive): what the direct map reaches.
pub const DIRECT_ZONE_END: u64 = DIRECT_MAP_SIZE as u64;
/// End of physical memory without PAE.
pub const PHYS_END: u64 = 1 << 32;

/// Translates a direct-mapped physical address to its kernel virtual address.
pub const fn phys_to_direct(phys: u32) -> Option<u32> {
    if (phys as u64) < DIRECT_ZONE_END {
        Some(phys + DIRECT_MAP_START)
    } else {
        None
    }
}

/// True when `va` lies in the direct map (which is mapped with fixed 4 MiB
/// pages and cannot be remapped page by page).
pub const fn is_direct_map(va: u32) -> bool {
    va >= DIRECT_MAP_START && va < DIRECT_MAP_END
}

const _: () = assert!(PAGE_SIZE == 4096);
const _: () = assert!(KERNEL_BASE.is_multiple_of(TABLE_SPAN));
const _: () = assert!(KERNEL_PD_INDEX == 768);
const _: () = assert!(USER_MMAP_MIN.is_multiple_of(TABLE_SPAN) && USER_MMAP_MIN < USER_END);
const _: () = assert!(DIRECT_MAP_SIZE.is_multiple_of(TABLE_SPAN) && HEAP_START >= KERNEL_BASE);
const _: () = assert!(DIRECT_MAP_SIZE <= HEAP_START - KERNEL_BASE && DIRECT_MAP_END <= HEAP_START);
const _: () = assert!(HEAP_START < HEAP_END && HEAP_END - HEAP_START >= 32 << 20);
const _: () = assert!(KMAP_END <= RESERVED_START);
const _: () = assert!(HEAP_START.is_multiple_of(TABLE_SPAN) && HEAP_END.is_multiple_of(TABLE_SPAN));
const _: () = assert!(HEAP_END == KMAP_START && KMAP_END > KMAP_START);
const _: () = assert!(KSTACK_START > HEAP_START && KSTACK_START.is_multiple_of(TABLE_SPAN));
const _: () = assert!(KMAP_START.is_multiple_of(TABLE_SPAN) && KMAP_END - KMAP_START == TABLE_SPAN);
const _: () = assert!(DIRECT_ZONE_END == DIRECT_MAP_SIZE as u64 && LOW_ZONE_END < DIRECT_ZONE_END);
const _: () = assert!(KERNEL_LOAD_PHYS as u64 + (1 << 20) <= LOW_ZONE_END);
