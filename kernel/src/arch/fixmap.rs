//! The fixmap: fixed kernel virtual pages in the reserved top 4 MiB
//! (`0xFFC0_0000..`, above the core's kmap window) for device registers and
//! firmware tables that lie outside the direct map.
//!
//! ```text
//!  0xFFC0_0000  local APIC registers (uncached)
//!  0xFFC0_1000  I/O APIC registers (uncached)
//!  0xFFC1_0000  ACPI window: 64 pages for firmware tables above the direct map
//! ```
//!
//! Its page table is a page of the kernel image (`.bss`), installed in the
//! kernel address space's directory (entry 1023) by [`init`] before any
//! user address space exists; user spaces copy the kernel half when they
//! are created, so every space shares it. Entries are global.

use core::sync::atomic::{AtomicU32, Ordering};

use myos_mm::layout::{phys_to_direct, ENTRIES, KERNEL_BASE, KMAP_END, PAGE_SIZE, TABLE_SPAN};
use myos_mm::paging::entry::FRAME_MASK;
use myos_mm::paging::PteFlags;

use super::tlb::invlpg;

/// First address of the fixmap (the top 4 MiB, one page table).
pub const FIXMAP_START: u32 = 0xFFC0_0000;
/// The fixmap's page of the local APIC registers.
pub const LAPIC_VA: u32 = FIXMAP_START;
/// The fixmap's page of the I/O APIC registers.
pub const IOAPIC_VA: u32 = FIXMAP_START + PAGE_SIZE as u32;
/// First page of the ACPI window.
pub const ACPI_WINDOW_VA: u32 = FIXMAP_START + 16 * PAGE_SIZE as u32;
/// Pages of the ACPI window.
pub const ACPI_WINDOW_PAGES: usize = 64;

/// Page-directory index of the fixmap.
const FIXMAP_PD_INDEX: usize = (FIXMAP_START / TABLE_SPAN) as usize;

const _: () = assert!(FIXMAP_START >= KMAP_END && FIXMAP_START.is_multiple_of(TABLE_SPAN));
const _: () = assert!(FIXMAP_PD_INDEX == ENTRIES - 1);
const _: () = assert!(LAPIC_VA < IOAPIC_VA && IOAPIC_VA < ACPI_WINDOW_VA);
const _: () =
    assert!((ACPI_WINDOW_VA - FIXMAP_START) as usize / PAGE_SIZE + ACPI_WINDOW_PAGES <= ENTRIES);

/// The fixmap's page table.
#[repr(C, align(4096))]
struct Table([AtomicU32; ENTRIES]);

/// The page table (in the kernel image, so in the direct map).
static TABLE: Table = Table([const { AtomicU32::new(0) }; ENTRIES]);

/// Installs the fixmap's page table in the kernel directory `kernel_dir`
/// (physical address). Call before any user address space is created.
pub fn init(kernel_dir: u32) {
    let table_phys = (&TABLE as *const Table as u32) - KERNEL_BASE;
    let dir = phys_to_direct(kernel_dir & FRAME_MASK)
        .unwrap_or_else(|| panic!("kernel page directory outside the direct map"));
    let pde = table_phys | (PteFlags::PRESENT | PteFlags::WRITABLE).bits();
    // SAFETY: `dir` is the kernel space's live page directory in the direct
    // map; entry 1023 (the reserved top 4 MiB) belongs to no one else.
    unsafe { (dir as *mut u32).add(FIXMAP_PD_INDEX).write_volatile(pde) };
}

/// Maps the page of `va` (a fixmap address) to physical `phys`, uncached
/// when `uncached` (device registers), and flushes it here. Entries are
/// global; the fixmap is changed only during SMP initialisation, before the
/// other CPUs use it, or by the CPU that owns a slot (the ACPI window during
/// discovery).
pub fn map(va: u32, phys: u32, uncached: bool) {
    let mut flags = PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::GLOBAL;
    if uncached {
        flags |= PteFlags::NO_CACHE | PteFlags::WRITE_THROUGH;
    }
    TABLE.0[slot(va)].store((phys & FRAME_MASK) | flags.bits(), Ordering::SeqCst);
    invlpg(va);
}

/// Unmaps the page of `va` (a fixmap address) and flushes it here.
pub fn unmap(va: u32) {
    TABLE.0[slot(va)].store(0, Ordering::SeqCst);
    invlpg(va);
}

/// The page-table index of a fixmap address.
fn slot(va: u32) -> usize {
    assert!(va >= FIXMAP_START, "{va:#x} is not a fixmap address");
    ((va - FIXMAP_START) as usize) / PAGE_SIZE
}
