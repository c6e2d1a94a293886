//! Reading the multiboot v1 information: the memory map, the command line
//! and the boot modules, turned into the core's [`MemoryRegion`]s.
//!
//! Everything is read through the direct map with bounds checks; a malformed
//! structure yields fewer regions or an empty command line, never a crash.
//! Every firmware entry becomes a region, RAM above 4 GiB included: the
//! frame allocator takes it in PAE mode and leaves it out in classic mode.

use core::fmt;

use myos_mm::frames::{MemoryRegion, RegionKind};
use myos_mm::layout::{phys_to_direct, KERNEL_LOAD_PHYS, PHYS_END};
use myos_mm::PhysAddr;

use crate::platform::Paging;

/// The magic value the boot loader leaves in `eax`.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// Info flag: `mem_lower`/`mem_upper` are valid.
const INFO_MEMORY: u32 = 1 << 0;
/// Info flag: `cmdline` is valid.
const INFO_CMDLINE: u32 = 1 << 2;
/// Info flag: `mods_count`/`mods_addr` are valid.
const INFO_MODS: u32 = 1 << 3;
/// Info flag: `mmap_length`/`mmap_addr` are valid.
const INFO_MEM_MAP: u32 = 1 << 6;

/// Byte offsets of the fields of the information structure.
mod off {
    pub const FLAGS: u32 = 0;
    pub const MEM_LOWER: u32 = 4;
    pub const MEM_UPPER: u32 = 8;
    pub const CMDLINE: u32 = 16;
    pub const MODS_COUNT: u32 = 20;
    pub const MODS_ADDR: u32 = 24;
    pub const MMAP_LENGTH: u32 = 44;
    pub const MMAP_ADDR: u32 = 48;
    /// Size of the part of the structure we read.
    pub const INFO_SIZE: u32 = 52;
    /// Size of one module entry (start, end, string, reserved).
    pub const MODULE_SIZE: u32 = 16;
}

/// Memory-map entry type of usable RAM.
const MMAP_TYPE_AVAILABLE: u32 = 1;
/// Smallest valid `size` field of a memory-map entry (base, length, type).
const MMAP_ENTRY_MIN_SIZE: u32 = 20;
/// Most regions kept (the firmware's entries plus our reservations).
pub const MAX_REGIONS: usize = 64;
/// Most modules reserved.
const MAX_MODULES: u32 = 16;
/// Longest command line kept.
pub const CMDLINE_MAX: usize = 256;

/// Reads a `u32` at physical address `phys`, if it lies in the direct map.
fn read_u32(phys: u32) -> Option<u32> {
    if !phys.is_multiple_of(4) {
        return read_unaligned_u32(phys);
    }
    let last = phys.checked_add(3)?;
    phys_to_direct(last)?;
    let va = phys_to_direct(phys)?;
    // SAFETY: the direct map covers `phys..phys + 4` (both ends checked) and
    // reading firmware-provided memory has no side effect.
    Some(unsafe { (va as *const u32).read_volatile() })
}

fn read_unaligned_u32(phys: u32) -> Option<u32> {
    let mut bytes = [0u8; 4];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = read_u8(phys.checked_add(i as u32)?)?;
    }
    Some(u32::from_le_bytes(bytes))
}

fn read_u8(phys: u32) -> Option<u8> {
    let va = phys_to_direct(phys)?;
    // SAFETY: the direct map covers `phys`; the read has no side effect.
    Some(unsafe { (va as *const u8).read_volatile() })
}

fn read_u64(phys: u32) -> Option<u64> {
    let lo = read_u32(phys)?;
    let hi = read_u32(phys.checked_add(4)?)?;
    Some(u64::from(lo) | (u64::from(hi) << 32))
}

/// One entry of the firmware memory map, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirmwareEntry {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// Multiboot type (1 = available RAM).
    pub kind: u32,
}

impl FirmwareEntry {
    /// A readable name for the entry's type.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            MMAP_TYPE_AVAILABLE => "available",
            2 => "reserved",
            3 => "ACPI reclaimable",
            4 => "ACPI NVS",
            5 => "bad RAM",
            _ => "unknown",
        }
    }
}

/// A range the kernel reserves itself (beyond the firmware's holes).
#[derive(Clone, Copy, Debug)]
pub struct Reservation {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// What lives there.
    pub what: &'static str,
}

/// Most reservations kept for the report.
const MAX_RESERVATIONS: usize = 8;

/// What the kernel keeps from the boot information.
pub struct BootInfo {
    reservations: [Reservation; MAX_RESERVATIONS],
    reservations_len: usize,
    /// The firmware's memory map, as reported.
    pub firmware: [FirmwareEntry; MAX_REGIONS],
    /// Number of valid entries in `firmware`.
    pub firmware_len: usize,
    /// The regions handed to the frame allocator: usable RAM and every
    /// reservation (firmware holes, kernel image, boot information, modules).
    pub regions: [MemoryRegion; MAX_REGIONS],
    /// Number of valid entries in `regions`.
    pub regions_len: usize,
    /// The command line (ASCII, truncated to [`CMDLINE_MAX`]).
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
    /// `mem_upper` in KiB (RAM above 1 MiB), when reported.
    pub mem_upper_kib: Option<u32>,
}

impl BootInfo {
    /// The firmware's entries.
    pub fn firmware(&self) -> &[FirmwareEntry] {
        &self.firmware[..self.firmware_len]
    }
    /// The regions for the frame allocator.
    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions[..self.regions_len]
    }
    /// The kernel's own reservations (kernel image, boot information, …).
    pub fn reservations(&self) -> &[Reservation] {
        &self.reservations[..self.reservations_len]
    }
    /// The kernel command line.
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }
    /// The value of `key=value` on the command line, if present; the last
    /// one when the key is given twice (so words appended to a default,
    /// as `cargo xtask run --append` does, override it).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.cmdline()
            .split_ascii_whitespace()
            .rev()
            .find_map(|word| {
                let (k, v) = word.split_once('=')?;
                (k == key).then_some(v)
            })
    }
    /// Whole 4 KiB frames inside the firmware's usable entries, below 4 GiB
    /// (what a 32-bit kernel without PAE can address).
    pub fn usable_frames(&self) -> u64 {
        self.usable_frames_in(0, PHYS_END)
    }

    /// Whole usable frames above 4 GiB (unreachable without PAE).
    pub fn usable_frames_above_4g(&self) -> u64 {
        self.usable_frames_in(PHYS_END, u64::MAX)
    }

    /// Whole usable frames the kernel can address in paging mode `paging`:
    /// below 4 GiB in classic mode, below 64 GiB (36 physical address
    /// bits) with PAE.
    pub fn usable_frames_reachable(&self, paging: Paging) -> u64 {
        match paging {
            Paging::Classic => self.usable_frames(),
            Paging::Pae => self.usable_frames_in(0, PhysAddr::MAX + 1),
        }
    }

    fn usable_frames_in(&self, lo: u64, hi: u64) -> u64 {
        const PAGE: u64 = myos_mm::layout::PAGE_SIZE as u64;
        self.firmware()
            .iter()
            .filter(|e| e.kind == MMAP_TYPE_AVAILABLE)
            .map(|e| {
                let start = e.base.max(lo).div_ceil(PAGE);
                let end = e.base.saturating_add(e.length).min(hi) / PAGE;
                end.saturating_sub(start)
            })
            .sum()
    }
    /// Total usable RAM reported by the firmware, in bytes.
    pub fn usable_bytes(&self) -> u64 {
        self.firmware()
            .iter()
            .filter(|e| e.kind == MMAP_TYPE_AVAILABLE)
            .map(|e| e.length)
            .sum()
    }

    fn push_region(&mut self, start: u64, end: u64, kind: RegionKind) {
        if start >= end || self.regions_len >= MAX_REGIONS {
            return;
        }
        self.regions[self.regions_len] = MemoryRegion { start, end, kind };
        self.regions_len += 1;
    }
}

/// The boot information, kept for the rest of the kernel's life.
static BOOT: spin::Once<BootInfo> = spin::Once::new();

/// Keeps `boot` and returns it for good.
pub fn keep(boot: BootInfo) -> &'static BootInfo {
    BOOT.call_once(|| boot)
}

/// The boot information, once [`keep`] stored it.
pub fn get() -> Option<&'static BootInfo> {
    BOOT.get()
}

/// Parses the boot information at physical address `info` (as left in `ebx`).
/// `kernel_image` is the physical range of the kernel, reserved in the result.
pub fn parse(magic: u32, info: u32, kernel_image: (u32, u32)) -> Result<BootInfo, &'static str> {
    if magic != BOOTLOADER_MAGIC {
        return Err("not booted by a multiboot loader (bad magic in eax)");
    }
    let empty = MemoryRegion {
        start: 0,
        end: 0,
        kind: RegionKind::Reserved,
    };
    let mut boot = BootInfo {
        reservations: [Reservation {
            start: 0,
            end: 0,
            what: "",
        }; MAX_RESERVATIONS],
        reservations_len: 0,
        firmware: [FirmwareEntry {
            base: 0,
            length: 0,
            kind: 0,
        }; MAX_REGIONS],
        firmware_len: 0,
        regions: [empty; MAX_REGIONS],
        regions_len: 0,
        cmdline: [0; CMDLINE_MAX],
        cmdline_len: 0,
        mem_upper_kib: None,
    };
    let field = |offset: u32| info.checked_add(offset).and_then(read_u32);
    let flags = field(off::FLAGS).ok_or("multiboot information is not in the direct map")?;
    if flags & INFO_MEMORY != 0 {
        boot.mem_upper_kib = field(off::MEM_UPPER);
        let _ = field(off::MEM_LOWER);
    }
    if flags & INFO_MEM_MAP == 0 {
        return Err("the boot loader gave no memory map");
    }
    let mmap_len = field(off::MMAP_LENGTH).unwrap_or(0);
    let mmap_addr = field(off::MMAP_ADDR).unwrap_or(0);
    let mmap_end = mmap_addr.saturating_add(mmap_len);
    let mut entry = mmap_addr;
    while entry < mmap_end && boot.firmware_len < MAX_REGIONS {
        let Some(size) = read_u32(entry) else { break };
        if size < MMAP_ENTRY_MIN_SIZE {
            break;
        }
        let (Some(base), Some(length), Some(kind)) = (
            read_u64(entry + 4),
            read_u64(entry + 12),
            read_u32(entry + 20),
        ) else {
            break;
        };
        boot.firmware[boot.firmware_len] = FirmwareEntry { base, length, kind };
        boot.firmware_len += 1;
        let Some(next) = entry.checked_add(size).and_then(|e| e.checked_add(4)) else {
            break;
        };
        entry = next;
    }
    if boot.firmware_len == 0 {
        return Err("the memory map is empty");
    }
    for i in 0..boot.firmware_len {
        let e = boot.firmware[i];
        let kind = if e.kind == MMAP_TYPE_AVAILABLE {
            RegionKind::Usable
        } else {
            RegionKind::Reserved
        };
        boot.push_region(e.base, e.base.saturating_add(e.length), kind);
    }

    // Reservations: the kernel image, the information structure, the memory
    // map itself, the command line and every module (with its string).
    let reserve = |b: &mut BootInfo, start: u32, len: u32, what: &'static str| {
        let (start, end) = (u64::from(start), u64::from(start) + u64::from(len));
        b.push_region(start, end, RegionKind::Reserved);
        if len > 0 && b.reservations_len < MAX_RESERVATIONS {
            b.reservations[b.reservations_len] = Reservation { start, end, what };
            b.reservations_len += 1;
        }
    };
    let image_len = kernel_image.1.saturating_sub(kernel_image.0);
    reserve(&mut boot, kernel_image.0, image_len, "kernel image");
    debug_assert!(kernel_image.0 == KERNEL_LOAD_PHYS);
    reserve(
        &mut boot,
        crate::arch::smpboot::TRAMPOLINE_PHYS,
        myos_mm::layout::PAGE_SIZE as u32,
        "AP trampoline",
    );
    reserve(&mut boot, info, off::INFO_SIZE, "multiboot information");
    reserve(&mut boot, mmap_addr, mmap_len, "multiboot memory map");
    if flags & INFO_CMDLINE != 0 {
        if let Some(cmdline) = field(off::CMDLINE) {
            let mut len = 0;
            while len < CMDLINE_MAX {
                match cmdline.checked_add(len as u32).and_then(read_u8) {
                    Some(0) | None => break,
                    Some(b) => {
                        boot.cmdline[len] = if b.is_ascii() { b } else { b'?' };
                        len += 1;
                    }
                }
            }
            boot.cmdline_len = len;
            reserve(&mut boot, cmdline, len as u32 + 1, "command line");
        }
    }
    if flags & INFO_MODS != 0 {
        let count = field(off::MODS_COUNT).unwrap_or(0).min(MAX_MODULES);
        let base = field(off::MODS_ADDR).unwrap_or(0);
        reserve(&mut boot, base, count * off::MODULE_SIZE, "module list");
        for i in 0..count {
            let m = base.saturating_add(i * off::MODULE_SIZE);
            if let (Some(start), Some(end)) = (read_u32(m), read_u32(m.saturating_add(4))) {
                reserve(&mut boot, start, end.saturating_sub(start), "boot module");
            }
        }
    }
    Ok(boot)
}

/// A byte count printed with a binary unit (`640 KiB`, `127 MiB`, `3 GiB`).
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u64 = 1 << 10;
        const MIB: u64 = 1 << 20;
        const GIB: u64 = 1 << 30;
        use core::fmt::Write as _;
        let s = self.0;
        let mut buf = crate::text::StackString::<24>::new();
        let _ = if s >= GIB && s.is_multiple_of(GIB) {
            write!(buf, "{} GiB", s / GIB)
        } else if s >= MIB {
            write!(buf, "{}.{} MiB", s / MIB, (s % MIB) * 10 / MIB)
        } else if s >= KIB {
            write!(buf, "{} KiB", s / KIB)
        } else {
            write!(buf, "{s} B")
        };
        f.pad(buf.as_str())
    }
}
