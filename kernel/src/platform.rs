//! The kernel's implementation of the core's [`Platform`] trait: the direct
//! map for frames below 768 MiB, a kmap window for the frames above (up to
//! 64 GiB in PAE mode, whose kmap entries are 64-bit), CR3 and `invlpg`;
//! and the paging mode the kernel booted in ([`paging`]). Apart from the boot code that first turns paging on (`boot.rs`)
//! and the flushes a CPU runs for another's shootdown or for the fixmap
//! (`arch/tlb.rs`), this module is the only place with paging instructions.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use myos_mm::layout::{phys_to_direct, DIRECT_ZONE_END, ENTRIES, KMAP_END, KMAP_START, PAGE_SIZE};
use myos_mm::paging::entry::{FRAME_MASK, PAE_ADDR_MASK};
use myos_mm::paging::{PaeEntry, PageTableEntry, PteFlags};
use myos_mm::smp::{CpuId, CpuSet, Invalidate};
use myos_mm::{Frame, Page, PhysAddr, Platform};

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

/// The paging mode the kernel runs in, chosen at boot (`paging=pae` on a
/// CPU with PAE and NX, classic otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// Two-level paging, 32-bit entries (the spec's mode).
    Classic,
    /// PAE: PDPT, 64-bit entries with NX, RAM above 4 GiB.
    Pae,
}

impl Paging {
    /// The boot log's words for the mode.
    pub fn describe(self) -> &'static str {
        match self {
            Paging::Classic => "classic",
            Paging::Pae => "PAE, NX on",
        }
    }
}

/// CR4.PAE (and EFER.NXE) are on: set once by `boot::enter_pae`, before
/// the memory manager exists, never cleared.
static PAE_ON: AtomicBool = AtomicBool::new(false);

/// The paging mode the kernel runs in.
pub fn paging() -> Paging {
    if PAE_ON.load(Ordering::Relaxed) {
        Paging::Pae
    } else {
        Paging::Classic
    }
}

/// Records that the CPU now runs in PAE mode (`boot::enter_pae`).
pub fn set_pae_on() {
    PAE_ON.store(true, Ordering::SeqCst);
}

/// Low 5 bits of CR3 in PAE mode that are not part of the PDPT's address.
const PAE_CR3_MASK: u32 = !0x1F;

/// Reads entry `index` of the table at physical `table` (entries of
/// `size` bytes: 4, or 8 in PAE mode), low half first, as a 64-bit value.
/// `None` when the table is not in the direct map.
fn read_entry(table: u64, index: usize, size: usize) -> Option<u64> {
    let va = phys_to_direct(u32::try_from(table).ok()?)? as usize + index * size;
    let p = va as *const u32;
    // SAFETY: `table` is a live paging structure in the direct map (CR3 or
    // an entry of one) and `index` is below its entry count; reads have no
    // side effect. The low half is read first: the MMU changes only A and
    // D there, and the core writes the high half only with P clear.
    unsafe {
        let lo = p.read_volatile();
        let hi = if size == 8 {
            p.add(1).read_volatile()
        } else {
            0
        };
        Some(u64::from(lo) | (u64::from(hi) << 32))
    }
}

/// What the loaded directory holds for an address.
enum DirEntry {
    /// Nothing (directory entry, or in PAE mode PDPT entry, not present).
    Absent,
    /// A large page (direct map).
    Large,
    /// A page table at this physical address.
    Table(u64),
}

/// The directory entry covering `va` in the loaded address space, found
/// by walking the paging structures in software (classic: CR3 → PD; PAE:
/// CR3 → PDPT → PD).
fn dir_entry(va: u32) -> DirEntry {
    let present = PteFlags::PRESENT.bits() as u64;
    let huge = PteFlags::HUGE.bits() as u64;
    let pde = match paging() {
        Paging::Classic => read_entry(u64::from(read_cr3() & FRAME_MASK), (va >> 22) as usize, 4),
        Paging::Pae => read_entry(u64::from(read_cr3() & PAE_CR3_MASK), (va >> 30) as usize, 8)
            .filter(|e| e & present != 0)
            .and_then(|pdpte| read_entry(pdpte & PAE_ADDR_MASK, ((va >> 21) & 511) as usize, 8)),
    };
    match pde {
        Some(e) if e & present == 0 => DirEntry::Absent,
        Some(e) if e & huge != 0 => DirEntry::Large,
        Some(e) => DirEntry::Table(e & PAE_ADDR_MASK),
        None => DirEntry::Absent,
    }
}

/// Bytes per page-table entry in the running mode.
fn entry_size() -> usize {
    match paging() {
        Paging::Classic => 4,
        Paging::Pae => 8,
    }
}

/// Index of `va`'s entry in its page table in the running mode.
fn table_index(va: u32) -> usize {
    match paging() {
        Paging::Classic => ((va >> 12) & 1023) as usize,
        Paging::Pae => ((va >> 12) & 511) as usize,
    }
}

/// True when `va` is mapped in the loaded address space, found by walking
/// the page tables in software (for the oops backtrace, which must not
/// fault).
pub fn is_mapped(va: u32) -> bool {
    match dir_entry(va) {
        DirEntry::Absent => false,
        DirEntry::Large => true,
        DirEntry::Table(t) => read_entry(t, table_index(va), entry_size())
            .is_some_and(|e| e & PteFlags::PRESENT.bits() as u64 != 0),
    }
}

/// Set by the boot option `shootdown=off`: the core's shootdowns of user
/// translations are dropped, so other CPUs keep stale ones (the stress
/// tests then show what the shootdowns prevent). Never set otherwise.
static SHOOTDOWNS_OFF: AtomicBool = AtomicBool::new(false);

/// Drops every shootdown of user translations the core asks for from now
/// on (`shootdown=off`, a deliberately broken mode for tests). Those of
/// kernel-half pages (heap, kernel stacks) still go, so the kernel's own
/// mappings stay coherent; a stale user entry can still write into a freed
/// frame that has become a kernel stack, so the kernel may stop on a stack
/// check before every test has reported.
pub fn drop_shootdowns() {
    SHOOTDOWNS_OFF.store(true, Ordering::Relaxed);
}

/// True for a request that only drops user translations.
fn user_only(what: Invalidate<'_>) -> bool {
    match what {
        Invalidate::Pages(pages) => pages
            .iter()
            .all(|p| p.start().as_u32() < myos_mm::layout::KERNEL_BASE),
        Invalidate::AllNonGlobal => true,
        Invalidate::Everything => false,
    }
}

/// Invalidates the TLB entry of one virtual address.
fn invlpg(addr: u32) {
    // SAFETY: `invlpg` only drops a cached translation.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

/// A pointer to the kmap window's page-table entry for `slot` (a 32-bit
/// entry, or the low half of a 64-bit one in PAE mode), found by walking
/// the loaded address space. The kernel address space preallocates that
/// table and every address space shares it, so it is the same table
/// whichever space is loaded.
fn kmap_entry(slot: usize) -> *mut u32 {
    let DirEntry::Table(table) = dir_entry(KMAP_START) else {
        panic!("kmap window used before the kernel address space exists");
    };
    let va = u32::try_from(table)
        .ok()
        .and_then(phys_to_direct)
        .unwrap_or_else(|| panic!("kmap page table outside the direct map"));
    // SAFETY: `slot` is below the table's entry count (callers use fixed
    // slots 0 and 1), so the entry lies within the table.
    unsafe { (va as *mut u8).add(slot * entry_size()) as *mut u32 }
}

/// Maps `frame` at kmap slot `slot` and returns the slot's address.
/// The caller holds `KMAP_LOCK`. The slot's entry is not present before:
/// in PAE mode the high half (frames above 4 GiB) is written first, then
/// the low half with P, so no walk sees half an entry.
fn kmap_slot(slot: usize, frame: Frame) -> u32 {
    let p = kmap_entry(slot);
    let flags = PteFlags::PRESENT | PteFlags::WRITABLE;
    // SAFETY: the kmap table is the platform's to use, under KMAP_LOCK.
    unsafe {
        match paging() {
            Paging::Classic => p.write_volatile(PageTableEntry::new(frame, flags).raw()),
            Paging::Pae => {
                let raw = PaeEntry::new(frame, flags).raw();
                p.add(1).write_volatile((raw >> 32) as u32);
                p.write_volatile(raw as u32);
            }
        }
    }
    let va = KMAP_START + (slot * PAGE_SIZE) as u32;
    invlpg(va);
    va
}

/// Unmaps kmap slot `slot` (low half, with P, first).
fn kunmap_slot(slot: usize) {
    let p = kmap_entry(slot);
    // SAFETY: as in `kmap_slot`.
    unsafe {
        p.write_volatile(0);
        if paging() == Paging::Pae {
            p.add(1).write_volatile(0);
        }
    }
    invlpg(KMAP_START + (slot * PAGE_SIZE) as u32);
}

/// True when `frame` is reached through the direct map.
fn is_direct(frame: Frame) -> bool {
    frame.start().as_u64() < DIRECT_ZONE_END
}

/// The direct-map address of `frame`, when it has one.
fn direct(frame: Frame) -> Option<u32> {
    u32::try_from(frame.start().as_u64())
        .ok()
        .and_then(phys_to_direct)
}

/// Runs `f` with a kernel pointer to `frame` (direct map or a kmap slot).
fn with_frame<R>(frame: Frame, slot: usize, f: impl FnOnce(*mut u8) -> R) -> R {
    if let Some(va) = direct(frame) {
        return f(va as *mut u8);
    }
    let va = kmap_slot(slot, frame);
    let r = f(va as *mut u8);
    kunmap_slot(slot);
    r
}

// SAFETY: the direct map covers physical 0..768 MiB at KERNEL_BASE with
// large pages (4 MiB, or 2 MiB in PAE mode) in every address space (the
// kernel half is shared), so `frame_ptr` is valid and consecutive for
// every direct frame; the data methods reach every other frame (up to
// 64 GiB in PAE mode) through the kmap window, whose slots are
// used under `KMAP_LOCK` and unmapped (and flushed) after use; the kernel
// never touches frames the core allocated except on the core's behalf.
unsafe impl Platform for X86Platform {
    fn frame_ptr(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        let va = direct(frame)
            .unwrap_or_else(|| panic!("frame_ptr({frame:?}): frame above the direct map"));
        NonNull::new(va as *mut [u8; PAGE_SIZE]).unwrap_or_else(|| panic!("direct map at 0"))
    }

    fn root(&self) -> Frame {
        PhysAddr::new(read_cr3() & FRAME_MASK).frame()
    }

    unsafe fn set_root(&self, root: Frame) {
        // SAFETY: the caller guarantees `root` is a page directory (in PAE
        // mode a PDPT, below 4 GiB) whose kernel half maps the running code.
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
        if SHOOTDOWNS_OFF.load(Ordering::Relaxed) && user_only(what) {
            return;
        }
        crate::smp::shootdown(targets, what)
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
