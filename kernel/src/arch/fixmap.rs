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
//! are created, so every space shares it. Entries are global. In PAE mode
//! the same page is a table of 512 64-bit entries (the first 2 MiB of the
//! top 4 MiB, which holds every fixmap page), installed in entry 510 of the
//! kernel page directory that every space's PDPTE\[3\] points at; the high
//! halves stay 0 (the fixmap maps addresses below 4 GiB).

use core::sync::atomic::{AtomicU32, Ordering};

use myos_mm::layout::{phys_to_direct, ENTRIES, KERNEL_BASE, KMAP_END, PAGE_SIZE, TABLE_SPAN};
use myos_mm::paging::entry::FRAME_MASK;
use myos_mm::paging::{Pae, PagingMode, PteFlags};

use super::tlb::invlpg;
use crate::platform::{paging, Paging};

/// First address of the fixmap (the top 4 MiB, one page table).
pub const FIXMAP_START: u32 = myos_mm::layout::RESERVED_START;
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

/// Directory index of the fixmap in PAE mode, within the kernel page
/// directory (PDPTE\[3\]).
const FIXMAP_PAE_PD_INDEX: usize = ((FIXMAP_START >> Pae::DIR_SHIFT) & 511) as usize;
/// Fixmap pages in PAE mode (one 2 MiB table).
const PAE_SLOTS: usize = 512;

const _: () = assert!(FIXMAP_PAE_PD_INDEX == 510);
const _: () =
    assert!((ACPI_WINDOW_VA - FIXMAP_START) as usize / PAGE_SIZE + ACPI_WINDOW_PAGES <= PAE_SLOTS);

/// Installs the fixmap's page table in the kernel address space whose CR3
/// is `kernel_cr3` (the page directory, or in PAE mode the PDPT). Call
/// before any user address space is created.
pub fn init(kernel_cr3: u32) {
    let table_phys = (&TABLE as *const Table as u32) - KERNEL_BASE;
    let pde = table_phys | (PteFlags::PRESENT | PteFlags::WRITABLE).bits();
    let (dir_phys, index) = match paging() {
        Paging::Classic => (kernel_cr3 & FRAME_MASK, FIXMAP_PD_INDEX),
        Paging::Pae => {
            let pdpt = phys_to_direct(kernel_cr3 & FRAME_MASK)
                .unwrap_or_else(|| panic!("kernel PDPT outside the direct map"));
            // SAFETY: the PDPT is live in the direct map; entry 3 (low half:
            // the kernel directory lies below 4 GiB) exists.
            let pdpte = unsafe { (pdpt as *const u32).add(3 * 2).read_volatile() };
            (pdpte & FRAME_MASK, FIXMAP_PAE_PD_INDEX * 2)
        }
    };
    let dir = phys_to_direct(dir_phys)
        .unwrap_or_else(|| panic!("kernel page directory outside the direct map"));
    // SAFETY: `dir` is the kernel space's live page directory in the direct
    // map; the fixmap's entry (the reserved top 4 MiB) belongs to no one
    // else and is not present, so in PAE mode its high half (0) can be
    // written first and the low half with P after it.
    unsafe {
        if paging() == Paging::Pae {
            (dir as *mut u32).add(index + 1).write_volatile(0);
        }
        (dir as *mut u32).add(index).write_volatile(pde);
    }
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
    // In PAE mode the high half of every entry stays 0.
    TABLE.0[word(slot(va))].store((phys & FRAME_MASK) | flags.bits(), Ordering::SeqCst);
    invlpg(va);
}

/// Index of the 32-bit word holding the low half of slot `slot`'s entry.
fn word(slot: usize) -> usize {
    match paging() {
        Paging::Classic => slot,
        Paging::Pae => slot * 2,
    }
}

/// Unmaps the page of `va` (a fixmap address) and flushes it here.
pub fn unmap(va: u32) {
    TABLE.0[word(slot(va))].store(0, Ordering::SeqCst);
    invlpg(va);
}

/// The page-table index of a fixmap address.
fn slot(va: u32) -> usize {
    assert!(va >= FIXMAP_START, "{va:#x} is not a fixmap address");
    ((va - FIXMAP_START) as usize) / PAGE_SIZE
}
