//! The C boot description (`struct myos_boot`, `include/myos/boot.h`) and its
//! validation into the memory map the core's frame allocator takes.
//!
//! Pure logic over plain data: the multiboot information is read through a
//! [`PhysRead`], so the host tests exercise every check without hardware.

use core::ffi::c_char;

use myos_mm::frames::{MemoryRegion, RegionKind};
use myos_mm::layout::{DIRECT_ZONE_END, PAGE_SIZE};

/// `MYOS_BOOT_VERSION`: the layout of `struct myos_boot` this library reads.
pub const BOOT_VERSION: u32 = 1;
/// `MYOS_MEM_USABLE`: a map entry of free RAM (every other type is reserved).
pub const MEM_USABLE: u32 = 1;
/// `MYOS_BOOT_MAX_REGIONS`: most entries a map may have (the library copies
/// the map before it has a heap).
pub const MAX_REGIONS: usize = 64;

/// `struct myos_mem_region`: one entry of the C memory map.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CRegion {
    /// First physical byte.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// `MYOS_MEM_USABLE`, or anything else for reserved.
    pub kind: u32,
}

/// A console writer or panic hook from C: `void f(const char *s, uint32_t len)`.
pub type CWrite = extern "C" fn(*const c_char, u32);

/// `struct myos_boot`: what a C kernel tells `myos_init`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Boot {
    /// `MYOS_BOOT_VERSION`.
    pub version: u32,
    /// The memory map, or NULL to read it from `multiboot_info`.
    pub map: *const CRegion,
    /// Entries of `map`.
    pub map_len: u32,
    /// Physical address of the multiboot (v1) information, used when `map`
    /// is NULL (0: none).
    pub multiboot_info: u32,
    /// Physical range `[start, end)` of the kernel image, `.bss` included.
    pub kernel_phys_start: u32,
    /// End of the kernel image (exclusive).
    pub kernel_phys_end: u32,
    /// Console writer for `console_write`/`kprintf` (may be NULL).
    pub console_write: Option<CWrite>,
    /// Called with a message when the library panics (may be NULL: the
    /// message goes to the console and the CPU halts). Must not return.
    pub panic: Option<CWrite>,
}

// The C layouts (`include/myos/boot.h` asserts the same sizes for i386).
#[cfg(target_arch = "x86")]
const _: () = assert!(size_of::<CRegion>() == 20 && size_of::<Boot>() == 32);

/// Why `myos_init` refused (the `MYOS_BOOT_E*` codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum BootError {
    /// `boot` is NULL.
    Null = 1,
    /// `boot->version` is not [`BOOT_VERSION`].
    Version = 2,
    /// No memory map: `map` is NULL and there is no multiboot information
    /// with a memory map (or memory sizes).
    NoMap = 3,
    /// `map_len` is 0, or the map has no usable RAM.
    Empty = 4,
    /// A region of length 0, or one that wraps around.
    Region = 5,
    /// A usable region of the C map not on page boundaries.
    Unaligned = 6,
    /// Two regions of the C map overlap.
    Overlap = 7,
    /// More than [`MAX_REGIONS`] regions.
    TooBig = 8,
    /// The kernel image range is empty, not inside usable RAM, or beyond the
    /// direct map.
    Kernel = 9,
    /// `myos_init` already succeeded (or is running).
    Already = 10,
    /// Too little RAM to build the memory manager.
    NoMemory = 11,
    /// The CPU is not set up as the library needs (paging off, or this code
    /// not running in the higher half).
    Cpu = 12,
}

impl BootError {
    /// The `MYOS_BOOT_E*` value.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// A description for `myos_boot_strerror`.
    pub fn describe(code: i32) -> &'static core::ffi::CStr {
        match code {
            0 => c"success",
            1 => c"boot description is NULL",
            2 => c"boot description has an unknown version",
            3 => c"no memory map (map is NULL and no multiboot memory information)",
            4 => c"memory map is empty or has no usable RAM",
            5 => c"a memory region has length 0 or wraps around",
            6 => c"a usable memory region is not page-aligned",
            7 => c"two memory regions overlap",
            8 => c"memory map has too many regions",
            9 => c"kernel image range is empty, outside usable RAM or beyond the direct map",
            10 => c"myos_init was already called",
            11 => c"too little RAM for the memory manager",
            12 => c"paging is off or the kernel does not run in the higher half",
            _ => c"unknown myos_init error",
        }
    }
}

/// Reads physical memory (the multiboot information): the direct map on
/// hardware, a buffer in tests. `false` when the range is unreachable.
pub trait PhysRead {
    /// Fills `buf` from physical address `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// A memory map under construction, in a fixed array (no heap yet).
pub struct Regions {
    items: [MemoryRegion; MAX_REGIONS],
    len: usize,
}

impl Regions {
    const fn new() -> Self {
        Self {
            items: [MemoryRegion {
                start: 0,
                end: 0,
                kind: RegionKind::Reserved,
            }; MAX_REGIONS],
            len: 0,
        }
    }

    fn push(&mut self, start: u64, end: u64, kind: RegionKind) -> Result<(), BootError> {
        let slot = self.items.get_mut(self.len).ok_or(BootError::TooBig)?;
        *slot = MemoryRegion { start, end, kind };
        self.len += 1;
        Ok(())
    }

    /// The regions.
    pub fn as_slice(&self) -> &[MemoryRegion] {
        &self.items[..self.len]
    }

    fn usable(&self) -> impl Iterator<Item = &MemoryRegion> {
        self.as_slice()
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
    }

    /// One past the highest usable byte.
    pub fn ram_end(&self) -> u64 {
        self.usable().map(|r| r.end).max().unwrap_or(0)
    }
}

const PAGE: u64 = PAGE_SIZE as u64;

/// Checks `boot` and builds the memory map: the C map (or the multiboot
/// one), the kernel image and the multiboot structures reserved.
///
/// # Safety
///
/// `boot` must be NULL or point to a readable `struct myos_boot` whose
/// `map` (when not NULL) points to `map_len` readable entries.
pub unsafe fn validate(boot: *const Boot, phys: &dyn PhysRead) -> Result<Regions, BootError> {
    if boot.is_null() {
        return Err(BootError::Null);
    }
    // SAFETY: non-NULL, and the caller promises it is readable.
    let b = unsafe { boot.read() };
    if b.version != BOOT_VERSION {
        return Err(BootError::Version);
    }
    let mut regions = Regions::new();
    if b.map.is_null() {
        multiboot_map(b.multiboot_info, phys, &mut regions)?;
    } else {
        if b.map_len == 0 {
            return Err(BootError::Empty);
        }
        if b.map_len as usize > MAX_REGIONS {
            return Err(BootError::TooBig);
        }
        // SAFETY: the caller promises `map_len` readable entries at `map`.
        let map = unsafe { core::slice::from_raw_parts(b.map, b.map_len as usize) };
        c_map(map, &mut regions)?;
    }
    if regions.usable().next().is_none() {
        return Err(BootError::Empty);
    }
    let (ks, ke) = (
        u64::from(b.kernel_phys_start) & !(PAGE - 1),
        u64::from(b.kernel_phys_end).div_ceil(PAGE) * PAGE,
    );
    let inside = regions.usable().any(|r| r.start <= ks && ke <= r.end);
    if b.kernel_phys_end <= b.kernel_phys_start || ke > DIRECT_ZONE_END || !inside {
        return Err(BootError::Kernel);
    }
    regions.push(ks, ke, RegionKind::Reserved)?;
    Ok(regions)
}

/// The C map: every entry checked, copied as it is.
fn c_map(map: &[CRegion], out: &mut Regions) -> Result<(), BootError> {
    let end = |r: &CRegion| r.start.checked_add(r.length);
    for r in map {
        let e = end(r).filter(|_| r.length > 0).ok_or(BootError::Region)?;
        let usable = r.kind == MEM_USABLE;
        if usable && (r.start % PAGE != 0 || r.length % PAGE != 0) {
            return Err(BootError::Unaligned);
        }
        let kind = if usable {
            RegionKind::Usable
        } else {
            RegionKind::Reserved
        };
        out.push(r.start, e, kind)?;
    }
    let all = out.as_slice();
    for (i, a) in all.iter().enumerate() {
        if all[i + 1..]
            .iter()
            .any(|b| a.start < b.end && b.start < a.end)
        {
            return Err(BootError::Overlap);
        }
    }
    Ok(())
}

fn read_u32(phys: &dyn PhysRead, addr: u64) -> Result<u32, BootError> {
    let mut b = [0u8; 4];
    if phys.read(addr, &mut b) {
        Ok(u32::from_le_bytes(b))
    } else {
        Err(BootError::NoMap)
    }
}

fn read_u64(phys: &dyn PhysRead, addr: u64) -> Result<u64, BootError> {
    let mut b = [0u8; 8];
    if phys.read(addr, &mut b) {
        Ok(u64::from_le_bytes(b))
    } else {
        Err(BootError::NoMap)
    }
}

/// Multiboot v1 information flags.
const MB_MEM: u32 = 1 << 0;
const MB_CMDLINE: u32 = 1 << 2;
const MB_MODS: u32 = 1 << 3;
const MB_MMAP: u32 = 1 << 6;
/// Bytes of the multiboot v1 information structure.
const MB_INFO_SIZE: u64 = 88;
/// Longest command line or module string reserved.
const MB_STRING_MAX: u64 = 4096;

/// Reserves `[start, start + len)` rounded out to pages.
fn reserve(out: &mut Regions, start: u64, len: u64) -> Result<(), BootError> {
    let s = start & !(PAGE - 1);
    let e = start.saturating_add(len).div_ceil(PAGE) * PAGE;
    if e > s {
        out.push(s, e, RegionKind::Reserved)?;
    }
    Ok(())
}

/// The length of the NUL-terminated string at `addr` (+1), capped.
fn string_len(phys: &dyn PhysRead, addr: u64) -> u64 {
    let mut b = [0u8; 1];
    (0..MB_STRING_MAX)
        .find(|&i| !phys.read(addr + i, &mut b) || b[0] == 0)
        .map_or(MB_STRING_MAX, |i| i + 1)
}

/// The multiboot v1 memory map (or memory sizes), with the information
/// structure, the map, the command line and the modules reserved. Usable
/// regions are trimmed to whole pages (firmware maps are not page-aligned).
fn multiboot_map(info: u32, phys: &dyn PhysRead, out: &mut Regions) -> Result<(), BootError> {
    if info == 0 {
        return Err(BootError::NoMap);
    }
    let info = u64::from(info);
    let flags = read_u32(phys, info)?;
    let usable = |out: &mut Regions, start: u64, end: u64| {
        let (s, e) = (start.div_ceil(PAGE) * PAGE, end & !(PAGE - 1));
        if e > s {
            out.push(s, e, RegionKind::Usable)
        } else {
            Ok(())
        }
    };
    if flags & MB_MMAP != 0 {
        let len = u64::from(read_u32(phys, info + 44)?);
        let addr = u64::from(read_u32(phys, info + 48)?);
        let mut at = addr;
        while at + 24 <= addr + len {
            let size = u64::from(read_u32(phys, at)?);
            let base = read_u64(phys, at + 4)?;
            let length = read_u64(phys, at + 12)?;
            let kind = read_u32(phys, at + 20)?;
            let end = base.checked_add(length).ok_or(BootError::Region)?;
            if length > 0 {
                if kind == MEM_USABLE {
                    usable(out, base, end)?;
                } else {
                    reserve(out, base, length)?;
                }
            }
            at += size + 4;
        }
        reserve(out, addr, len)?;
    } else if flags & MB_MEM != 0 {
        let lower = u64::from(read_u32(phys, info + 4)?) << 10;
        let upper = u64::from(read_u32(phys, info + 8)?) << 10;
        usable(out, 0, lower)?;
        usable(out, 1 << 20, (1 << 20) + upper)?;
    } else {
        return Err(BootError::NoMap);
    }
    reserve(out, info, MB_INFO_SIZE)?;
    if flags & MB_CMDLINE != 0 {
        let cmd = u64::from(read_u32(phys, info + 16)?);
        reserve(out, cmd, string_len(phys, cmd))?;
    }
    if flags & MB_MODS != 0 {
        let count = u64::from(read_u32(phys, info + 20)?);
        let list = u64::from(read_u32(phys, info + 24)?);
        reserve(out, list, count * 16)?;
        for i in 0..count.min(MAX_REGIONS as u64) {
            let m = list + i * 16;
            let (s, e) = (read_u32(phys, m)?, read_u32(phys, m + 4)?);
            reserve(out, s.into(), u64::from(e.saturating_sub(s)))?;
            let name = u64::from(read_u32(phys, m + 8)?);
            if name != 0 {
                reserve(out, name, string_len(phys, name))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Physical memory as a byte buffer from address 0.
    struct Buf(Vec<u8>);

    impl PhysRead for Buf {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let Ok(a) = usize::try_from(addr) else {
                return false;
            };
            match self.0.get(a..a + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
    }

    const MIB: u64 = 1 << 20;

    fn usable(start: u64, length: u64) -> CRegion {
        CRegion {
            start,
            length,
            kind: MEM_USABLE,
        }
    }

    fn reserved(start: u64, length: u64) -> CRegion {
        CRegion {
            start,
            length,
            kind: 2,
        }
    }

    fn boot(map: &[CRegion]) -> Boot {
        Boot {
            version: BOOT_VERSION,
            map: map.as_ptr(),
            map_len: map.len() as u32,
            multiboot_info: 0,
            kernel_phys_start: 0x10_0000,
            kernel_phys_end: 0x12_3456,
            console_write: None,
            panic: None,
        }
    }

    fn check(b: &Boot) -> Result<Regions, BootError> {
        // SAFETY: `b` and its map are live values of this test.
        unsafe { validate(b, &Buf(Vec::new())) }
    }

    fn pc_map() -> Vec<CRegion> {
        vec![
            usable(0, 0x9F000),
            reserved(0x9F000, 0x61000),
            usable(MIB, 63 * MIB),
        ]
    }

    #[test]
    fn a_good_map_is_copied_with_the_kernel_reserved() {
        let map = pc_map();
        let r = check(&boot(&map)).expect("valid");
        let s = r.as_slice();
        assert_eq!(s.len(), 4);
        assert_eq!(
            (s[0].start, s[0].end, s[0].kind),
            (0, 0x9F000, RegionKind::Usable)
        );
        assert_eq!((s[3].start, s[3].end), (0x10_0000, 0x12_4000));
        assert_eq!(s[3].kind, RegionKind::Reserved);
        assert_eq!(r.ram_end(), 64 * MIB);
    }

    #[test]
    fn null_and_version() {
        // SAFETY: NULL is allowed.
        let r = unsafe { validate(core::ptr::null(), &Buf(Vec::new())) };
        assert_eq!(r.err(), Some(BootError::Null));
        let map = pc_map();
        let mut b = boot(&map);
        b.version = 7;
        assert_eq!(check(&b).err(), Some(BootError::Version));
    }

    #[test]
    fn empty_maps_are_refused() {
        let map = pc_map();
        let mut b = boot(&map);
        b.map_len = 0;
        assert_eq!(check(&b).err(), Some(BootError::Empty));
        let only_reserved = [reserved(0, 64 * MIB)];
        assert_eq!(check(&boot(&only_reserved)).err(), Some(BootError::Empty));
    }

    #[test]
    fn zero_length_and_wrapping_regions_are_refused() {
        let map = [usable(MIB, 63 * MIB), usable(0, 0)];
        assert_eq!(check(&boot(&map)).err(), Some(BootError::Region));
        let map = [usable(MIB, 63 * MIB), reserved(u64::MAX - 10, 100)];
        assert_eq!(check(&boot(&map)).err(), Some(BootError::Region));
    }

    #[test]
    fn unaligned_usable_regions_are_refused() {
        let map = [usable(0, 0x9FC00), usable(MIB, 63 * MIB)];
        assert_eq!(check(&boot(&map)).err(), Some(BootError::Unaligned));
        let map = [usable(MIB + 0x800, 63 * MIB)];
        assert_eq!(check(&boot(&map)).err(), Some(BootError::Unaligned));
        // Reserved regions may be anything.
        let map = [usable(MIB, 63 * MIB), reserved(0x9FC00, 0x400)];
        assert!(check(&boot(&map)).is_ok());
    }

    #[test]
    fn overlapping_regions_are_refused() {
        let map = [usable(0, 32 * MIB), usable(16 * MIB, 32 * MIB)];
        assert_eq!(check(&boot(&map)).err(), Some(BootError::Overlap));
        let map = [usable(0, 64 * MIB), reserved(0xF0000, 0x10000)];
        assert_eq!(check(&boot(&map)).err(), Some(BootError::Overlap));
        // Touching is not overlapping.
        let map = [usable(0, 32 * MIB), usable(32 * MIB, 32 * MIB)];
        assert!(check(&boot(&map)).is_ok());
    }

    #[test]
    fn too_many_regions_are_refused() {
        let map: Vec<CRegion> = (0..=MAX_REGIONS as u64)
            .map(|i| usable(i * 2 * PAGE, PAGE))
            .collect();
        assert_eq!(check(&boot(&map)).err(), Some(BootError::TooBig));
    }

    #[test]
    fn the_kernel_image_must_lie_in_usable_ram_of_the_direct_map() {
        let map = pc_map();
        let mut b = boot(&map);
        b.kernel_phys_end = b.kernel_phys_start;
        assert_eq!(check(&b).err(), Some(BootError::Kernel), "empty");
        let mut b = boot(&map);
        (b.kernel_phys_start, b.kernel_phys_end) = (0x9E000, 0x10_0000);
        assert_eq!(check(&b).err(), Some(BootError::Kernel), "over the hole");
        let mut b = boot(&map);
        (b.kernel_phys_start, b.kernel_phys_end) = (0x800_0000, 0x810_0000);
        assert_eq!(check(&b).err(), Some(BootError::Kernel), "beyond RAM");
        let big = [usable(0, 2048 * MIB)];
        let mut b = boot(&big);
        let past_direct = DIRECT_ZONE_END as u32;
        (b.kernel_phys_start, b.kernel_phys_end) = (past_direct, past_direct + 0x1000);
        assert_eq!(
            check(&b).err(),
            Some(BootError::Kernel),
            "beyond the direct map"
        );
    }

    /// A multiboot information block at 0x1000 with a map at 0x2000 and a
    /// command line at 0x3000.
    fn multiboot(flags: u32, entries: &[(u64, u64, u32)]) -> Buf {
        let mut m = vec![0u8; 0x4000];
        let put = |m: &mut Vec<u8>, at: usize, v: &[u8]| m[at..at + v.len()].copy_from_slice(v);
        put(&mut m, 0x1000, &flags.to_le_bytes());
        put(&mut m, 0x1004, &639u32.to_le_bytes());
        put(&mut m, 0x1008, &(63 * 1024u32).to_le_bytes());
        put(&mut m, 0x1010, &0x3000u32.to_le_bytes());
        put(&mut m, 0x102C, &(entries.len() as u32 * 24).to_le_bytes());
        put(&mut m, 0x1030, &0x2000u32.to_le_bytes());
        for (i, &(base, len, kind)) in entries.iter().enumerate() {
            let at = 0x2000 + i * 24;
            put(&mut m, at, &20u32.to_le_bytes());
            put(&mut m, at + 4, &base.to_le_bytes());
            put(&mut m, at + 12, &len.to_le_bytes());
            put(&mut m, at + 20, &kind.to_le_bytes());
        }
        put(&mut m, 0x3000, b"console=com1\0");
        Buf(m)
    }

    fn mb_boot() -> Boot {
        Boot {
            map: core::ptr::null(),
            map_len: 0,
            multiboot_info: 0x1000,
            ..boot(&[])
        }
    }

    #[test]
    fn the_multiboot_map_is_read_trimmed_and_its_structures_reserved() {
        let phys = multiboot(
            MB_MMAP | MB_CMDLINE,
            &[(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (MIB, 63 * MIB, 1)],
        );
        // SAFETY: a live value.
        let r = unsafe { validate(&mb_boot(), &phys) }.expect("valid");
        let s = r.as_slice();
        assert_eq!((s[0].start, s[0].end), (0, 0x9F000), "trimmed to pages");
        assert_eq!((s[1].start, s[1].end), (0x9F000, 0xA0000), "rounded out");
        let reserved_page = |p: u64| {
            s.iter()
                .any(|x| x.kind == RegionKind::Reserved && x.start <= p && p < x.end)
        };
        assert!(reserved_page(0x1000) && reserved_page(0x2000) && reserved_page(0x3000));
        assert_eq!(r.ram_end(), 64 * MIB);
    }

    #[test]
    fn multiboot_memory_sizes_serve_without_a_map() {
        let phys = multiboot(MB_MEM, &[]);
        // SAFETY: a live value.
        let r = unsafe { validate(&mb_boot(), &phys) }.expect("valid");
        assert_eq!(r.ram_end(), 64 * MIB);
    }

    #[test]
    fn no_map_at_all_is_refused() {
        let mut b = mb_boot();
        b.multiboot_info = 0;
        assert_eq!(check(&b).err(), Some(BootError::NoMap));
        let phys = multiboot(MB_CMDLINE, &[]);
        // SAFETY: a live value.
        let r = unsafe { validate(&mb_boot(), &phys) };
        assert_eq!(r.err(), Some(BootError::NoMap), "neither map nor sizes");
        // SAFETY: a live value; the info lies outside the buffer.
        let r = unsafe { validate(&mb_boot(), &Buf(vec![0; 16])) };
        assert_eq!(r.err(), Some(BootError::NoMap), "unreadable");
    }

    #[test]
    fn every_code_has_a_description() {
        for code in 0..=12 {
            assert_ne!(
                BootError::describe(code).to_bytes(),
                b"unknown myos_init error"
            );
        }
        assert_eq!(BootError::Already.code(), 10);
    }
}
