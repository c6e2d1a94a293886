//! CPU discovery from the ACPI MADT, parsed by the `acpi` crate (without
//! its `alloc` features, which need nightly): the RSDP found in the BIOS
//! areas, the MADT found through the RSDT/XSDT, and from its entries the
//! local APIC address, every enabled local APIC id and the I/O APIC.
//!
//! Tables in the direct map are read there; tables above it (the top of
//! RAM when there is more than 768 MiB) through the fixmap's ACPI window,
//! a bump allocator of pages that is reset when the last mapping goes.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use myos_mm::layout::{phys_to_direct, PAGE_SIZE};
use myos_mm::smp::MAX_CPUS;

use super::fixmap::{self, ACPI_WINDOW_PAGES, ACPI_WINDOW_VA};

/// MADT local APIC flag: the processor is enabled.
const LAPIC_ENABLED: u32 = 1 << 0;
/// MADT local APIC flag: the processor can be brought online.
const LAPIC_ONLINE_CAPABLE: u32 = 1 << 1;

/// What the MADT says about the machine's interrupt controllers.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    /// Physical address of the local APICs' registers.
    pub lapic_phys: u32,
    /// Local APIC ids of the usable processors, in MADT order.
    pub apic_ids: [u8; MAX_CPUS],
    /// Number of valid entries in `apic_ids`.
    pub cpus: usize,
    /// Physical address of the (first) I/O APIC, if any.
    pub ioapic_phys: Option<u32>,
    /// Processors the MADT lists beyond [`MAX_CPUS`] (ignored).
    pub ignored: usize,
}

/// Pages of the ACPI window in use.
static WINDOW_NEXT: AtomicUsize = AtomicUsize::new(0);
/// Live mappings in the ACPI window.
static WINDOW_LIVE: AtomicUsize = AtomicUsize::new(0);

/// The `acpi` crate's access to physical memory: the direct map, or the
/// fixmap's ACPI window for tables above it. Used by the boot CPU only,
/// during SMP initialisation.
#[derive(Clone, Copy, Debug)]
struct Handler;

impl AcpiHandler for Handler {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let end = phys.saturating_add(size);
        let direct = phys_to_direct(phys as u32)
            .filter(|_| end <= u32::MAX as usize && phys_to_direct((end - 1) as u32).is_some());
        let (va, mapped) = match direct {
            Some(va) => (va as usize, size),
            None => {
                let first = phys & !(PAGE_SIZE - 1);
                let pages = (end - first).div_ceil(PAGE_SIZE);
                let start = WINDOW_NEXT.fetch_add(pages, Ordering::SeqCst);
                assert!(
                    start + pages <= ACPI_WINDOW_PAGES,
                    "ACPI table of {size} bytes does not fit the fixmap window"
                );
                WINDOW_LIVE.fetch_add(1, Ordering::SeqCst);
                let base = ACPI_WINDOW_VA as usize + start * PAGE_SIZE;
                for i in 0..pages {
                    fixmap::map(
                        (base + i * PAGE_SIZE) as u32,
                        (first + i * PAGE_SIZE) as u32,
                        false,
                    );
                }
                (base + (phys - first), pages * PAGE_SIZE)
            }
        };
        let ptr = NonNull::new(va as *mut T).unwrap_or_else(|| panic!("ACPI mapping at 0"));
        // SAFETY: `ptr` maps `size` bytes at `phys` (direct map or the
        // window just mapped), and `Handler` unmaps it on drop.
        unsafe { PhysicalMapping::new(phys, ptr, size, mapped, *self) }
    }

    fn unmap_physical_region<T>(region: &PhysicalMapping<Self, T>) {
        let va = region.virtual_start().as_ptr() as usize;
        if va < ACPI_WINDOW_VA as usize {
            return;
        }
        let first = va & !(PAGE_SIZE - 1);
        for i in 0..region.mapped_length() / PAGE_SIZE {
            fixmap::unmap((first + i * PAGE_SIZE) as u32);
        }
        if WINDOW_LIVE.fetch_sub(1, Ordering::SeqCst) == 1 {
            WINDOW_NEXT.store(0, Ordering::SeqCst);
        }
    }
}

/// Reads the MADT. An error when the firmware has no ACPI tables or no
/// MADT (the kernel then runs on the boot CPU alone).
pub fn discover() -> Result<Machine, acpi::AcpiError> {
    // SAFETY: this is a BIOS machine (multiboot from QEMU's firmware), so the
    // RSDP search areas (EBDA, 0xE0000..0xFFFFF) are readable memory.
    let tables = unsafe { AcpiTables::search_for_rsdp_bios(Handler)? };
    let madt = tables.find_table::<Madt>()?;
    let mut m = Machine {
        lapic_phys: madt.get().local_apic_address,
        apic_ids: [0; MAX_CPUS],
        cpus: 0,
        ioapic_phys: None,
        ignored: 0,
    };
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => {
                let flags = e.flags;
                if flags & (LAPIC_ENABLED | LAPIC_ONLINE_CAPABLE) == 0 {
                    continue;
                }
                if m.cpus < MAX_CPUS {
                    m.apic_ids[m.cpus] = e.apic_id;
                    m.cpus += 1;
                } else {
                    m.ignored += 1;
                }
            }
            MadtEntry::IoApic(e) if m.ioapic_phys.is_none() => {
                m.ioapic_phys = Some(e.io_apic_address);
            }
            MadtEntry::LocalApicAddressOverride(e) => {
                let addr = e.local_apic_address;
                if let Ok(a) = u32::try_from(addr) {
                    m.lapic_phys = a;
                }
            }
            _ => {}
        }
    }
    Ok(m)
}
