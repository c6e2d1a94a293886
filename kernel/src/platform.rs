//! The kernel's implementation of the core's [`Platform`] trait: the direct
//! map for frames below 768 MiB, a kmap window for the frames above, CR3 and
//! `invlpg`. Apart from the boot code that first turns paging on (`boot.rs`)
//! and the flushes a CPU runs for another's shootdown or for the fixmap
//! (`arch/tlb.rs`), this module is the only place with paging instructions.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use myos_mm::layout::{phys_to_direct, DIRECT_ZONE_END, ENTRIES, KMAP_END, KMAP_START, PAGE_SIZE};
use myos_mm::paging::entry::FRAME_MASK;
use myos_mm::paging::{PageTableEntry, PteFlags};
use myos_mm::smp::{CpuId, CpuSet, Invalidate};
use myos_mm::{Frame, Page, PhysAddr, Platform, VirtAddr};

use crate::arch::regs::cr4;
use crate::sync::Mutex;

/// Serializes use of the kmap slots.
static KMAP_LOCK: Mutex<()> = Mutex::new(());

const _: () = assert!(KMAP_END - KMAP_START == (ENTRIES * PAGE_SIZE) as u32);

/// Slot of the kmap window used for the first frame of an operation.
const KMAP_SLOT_A: usize = 0;
/// Slot used for the second frame (the source of a copy).
const KMAP_SLOT_B: usize = 1;

/// The kernel's machine: stateless, every method goes to the hardware.
#[derive(Debug, Default, Clone, Copy)]
pub struct X86Platform;

/// Reads CR2, the linear address of the last page fault.
pub fn fault_address() -> u32 {
    let cr2: u32;
    // SAFETY: reading CR2 has no side effect.
    unsafe {
        core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags))
    };
    cr2
}

/// Reads CR3.
pub fn read_cr3() -> u32 {
    let cr3: u32;
    // SAFETY: reading CR3 has no side effect.
    unsafe {
        core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags))
    };
    cr3
}

/// Sets CR4.PGE so global pages (the direct map) survive CR3 loads.
pub fn enable_global_pages() {
    // SAFETY: setting PGE only changes which TLB entries a CR3 load keeps;
    // the kernel half is identical in every address space.
    unsafe {
        core::arch::asm!(
            "mov {0}, cr4", "or {0}, {pge}", "mov cr4, {0}",
            out(reg) _, pge = const cr4::PGE, options(nostack, preserves_flags),
        );
    }
}

/// True when `va` is mapped in the loaded address space, found by walking
/// the page tables in software (for the oops backtrace, which must not
/// fault).
pub fn is_mapped(va: u32) -> bool {
    let va = VirtAddr::new(va);
    let Some(pd) = phys_to_direct(read_cr3() & FRAME_MASK) else {
        return false;
    };
    // SAFETY: CR3 holds a live page directory in the direct map; index < 1024.
    let pde = unsafe {
        (pd as *const PageTableEntry)
            .add(va.pd_index())
            .read_volatile()
    };
    if !pde.is_present() {
        return false;
    }
    if pde.flags().contains(PteFlags::HUGE) {
        return true;
    }
    let Some(table) = phys_to_direct(pde.frame().start().as_u32()) else {
        return false;
    };
    // SAFETY: page tables live in the direct map; index < 1024.
    let pte = unsafe {
        (table as *const PageTableEntry)
            .add(va.pt_index())
            .read_volatile()
    };
    pte.is_present()
}

/// Set by the boot option `shootdown=off`: the core's shootdowns are
/// dropped, so other CPUs keep stale translations (the stress tests then
/// show what the shootdowns prevent). Never set otherwise.
static SHOOTDOWNS_OFF: AtomicBool = AtomicBool::new(false);

/// Drops every shootdown the core asks for from now on (`shootdown=off`,
/// a deliberately broken mode for tests).
pub fn drop_shootdowns() {
    SHOOTDOWNS_OFF.store(true, Ordering::Relaxed);
}

/// Invalidates the TLB entry of one virtual address.
fn invlpg(addr: u32) {
    // SAFETY: `invlpg` only drops a cached translation.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

/// A pointer to the kmap window's page-table entry for `slot`, found by
/// walking the loaded page directory. The kernel address space preallocates
/// that table and every address space shares it, so it is the same table
/// whichever space is loaded.
fn kmap_entry(slot: usize) -> *mut PageTableEntry {
    let window = VirtAddr::new(KMAP_START);
    let pd = phys_to_direct(read_cr3() & FRAME_MASK)
        .unwrap_or_else(|| panic!("page directory outside the direct map"));
    // SAFETY: CR3 holds a live page directory in the direct map; the index is < 1024.
    let pde = unsafe {
        (pd as *const PageTableEntry)
            .add(window.pd_index())
            .read_volatile()
    };
    if !pde.is_present() || pde.flags().contains(PteFlags::HUGE) {
        panic!("kmap window used before the kernel address space exists");
    }
    let table = phys_to_direct(pde.frame().start().as_u32())
        .unwrap_or_else(|| panic!("kmap page table outside the direct map"));
    // SAFETY: `slot < ENTRIES` (callers use fixed slots), within the table.
    unsafe { (table as *mut PageTableEntry).add(slot) }
}

/// Maps `frame` at kmap slot `slot` and returns the slot's address.
/// The caller holds `KMAP_LOCK`.
fn kmap_slot(slot: usize, frame: Frame) -> u32 {
    let entry = PageTableEntry::new(frame, PteFlags::PRESENT | PteFlags::WRITABLE);
    // SAFETY: the kmap table is the platform's to use, under KMAP_LOCK.
    unsafe { kmap_entry(slot).write_volatile(entry) };
    let va = KMAP_START + (slot * PAGE_SIZE) as u32;
    invlpg(va);
    va
}

/// Unmaps kmap slot `slot`.
fn kunmap_slot(slot: usize) {
    // SAFETY: as in `kmap_slot`.
    unsafe { kmap_entry(slot).write_volatile(PageTableEntry::EMPTY) };
    invlpg(KMAP_START + (slot * PAGE_SIZE) as u32);
}

/// True when `frame` is reached through the direct map.
fn is_direct(frame: Frame) -> bool {
    u64::from(frame.start().as_u32()) < DIRECT_ZONE_END
}

/// Runs `f` with a kernel pointer to `frame` (direct map or a kmap slot).
fn with_frame<R>(frame: Frame, slot: usize, f: impl FnOnce(*mut u8) -> R) -> R {
    if let Some(va) = phys_to_direct(frame.start().as_u32()) {
        return f(va as *mut u8);
    }
    let va = kmap_slot(slot, frame);
    let r = f(va as *mut u8);
    kunmap_slot(slot);
    r
}

// SAFETY: the direct map covers physical 0..768 MiB at KERNEL_BASE with
// 4 MiB pages in every address space (the kernel half is shared), so
// `frame_ptr` is valid and consecutive for every direct frame; the data
// methods reach every other frame through the kmap window, whose slots are
// used under `KMAP_LOCK` and unmapped (and flushed) after use; the kernel
// never touches frames the core allocated except on the core's behalf.
unsafe impl Platform for X86Platform {
    fn frame_ptr(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        let va = phys_to_direct(frame.start().as_u32())
            .unwrap_or_else(|| panic!("frame_ptr({frame:?}): frame above the direct map"));
        NonNull::new(va as *mut [u8; PAGE_SIZE]).unwrap_or_else(|| panic!("direct map at 0"))
    }

    fn root(&self) -> Frame {
        PhysAddr::new(read_cr3()).frame()
    }

    unsafe fn set_root(&self, root: Frame) {
        // SAFETY: the caller guarantees `root` is a page directory whose
        // kernel half maps the running code.
        unsafe {
            core::arch::asm!("mov cr3, {}", in(reg) root.start().as_u32(), options(nostack, preserves_flags));
        }
    }

    fn flush(&self, page: Page) {
        invlpg(page.start().as_u32());
    }

    fn flush_all(&self) {
        // SAFETY: reloading CR3 with its own value only flushes the TLB.
        unsafe {
            core::arch::asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags));
        }
    }

    fn cpu_id(&self) -> CpuId {
        crate::smp::cpu_id()
    }

    fn online_cpus(&self) -> CpuSet {
        crate::smp::online()
    }

    fn shootdown(&self, targets: CpuSet, what: Invalidate<'_>) {
        if !SHOOTDOWNS_OFF.load(Ordering::Relaxed) {
            crate::smp::shootdown(targets, what)
        }
    }

    fn zero_frame(&self, frame: Frame) {
        let _guard = (!is_direct(frame)).then(|| KMAP_LOCK.lock());
        with_frame(frame, KMAP_SLOT_A, |p| {
            // SAFETY: `p` maps the whole frame, which the core owns.
            unsafe { p.write_bytes(0, PAGE_SIZE) }
        });
    }

    fn copy_frame(&self, dst: Frame, src: Frame) {
        if dst == src {
            return;
        }
        let _guard = (!is_direct(dst) || !is_direct(src)).then(|| KMAP_LOCK.lock());
        with_frame(dst, KMAP_SLOT_A, |d| {
            with_frame(src, KMAP_SLOT_B, |s| {
                // SAFETY: both pointers map whole, distinct frames.
                unsafe { core::ptr::copy_nonoverlapping(s, d, PAGE_SIZE) }
            })
        });
    }

    fn read_frame(&self, frame: Frame, offset: usize, buf: &mut [u8]) {
        assert!(offset <= PAGE_SIZE && buf.len() <= PAGE_SIZE - offset);
        let _guard = (!is_direct(frame)).then(|| KMAP_LOCK.lock());
        with_frame(frame, KMAP_SLOT_A, |p| {
            // SAFETY: the range lies within the mapped frame (checked above).
            unsafe { core::ptr::copy_nonoverlapping(p.add(offset), buf.as_mut_ptr(), buf.len()) }
        });
    }

    fn write_frame(&self, frame: Frame, offset: usize, buf: &[u8]) {
        assert!(offset <= PAGE_SIZE && buf.len() <= PAGE_SIZE - offset);
        let _guard = (!is_direct(frame)).then(|| KMAP_LOCK.lock());
        with_frame(frame, KMAP_SLOT_A, |p| {
            // SAFETY: the range lies within the mapped frame (checked above).
            unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), p.add(offset), buf.len()) }
        });
    }
}
