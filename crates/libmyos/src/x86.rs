//! The hardware layer for a foreign kernel: the core's [`Platform`] on the
//! real i386 MMU (the direct map at `KERNEL_BASE`, CR3, `invlpg`, a kmap
//! window for frames above the direct map) and the bring-up `myos_init`
//! runs once the boot description is valid.

use core::ptr::NonNull;

use myos_capi::Plat;
use myos_mm::frames::FrameAllocator;
use myos_mm::heap::{Heap, HeapFlags, LockedHeap};
use myos_mm::layout::{
    phys_to_direct, DIRECT_ZONE_END, ENTRIES, HEAP_START, KERNEL_BASE, KERNEL_PD_INDEX, KMAP_END,
    KMAP_START, PAGE_SIZE, TABLE_SPAN,
};
use myos_mm::paging::entry::FRAME_MASK;
use myos_mm::paging::{PageTableEntry, PagedHeapBackend, PteFlags};
use myos_mm::system::System;
use myos_mm::{Frame, MmError, Page, PhysAddr, Platform, VirtAddr};
use spin::{Mutex, Once};

use crate::boot::{Boot, BootError, CWrite, PhysRead, Regions};

/// The machine: stateless, every method goes to the hardware.
pub struct X86;

/// The one machine.
pub static PLATFORM: X86 = X86;

/// The kernel heap's backend: frames mapped into the kernel heap window.
pub type Backend = PagedHeapBackend<'static, Plat, &'static Mutex<FrameAllocator>>;

/// The kernel heap: the global allocator and `kmalloc`'s heap.
#[cfg_attr(not(test), global_allocator)]
pub static HEAP: LockedHeap<Backend> = LockedHeap::empty();

/// Bytes of the kernel heap mapped by `myos_init`.
const HEAP_INITIAL: usize = 16 * PAGE_SIZE;

static SYSTEM: Once<System<Plat>> = Once::new();
static CONSOLE: Once<CWrite> = Once::new();
static PANIC_HOOK: Once<CWrite> = Once::new();
static KMAP_LOCK: Mutex<()> = Mutex::new(());

const CR0_PG: u32 = 1 << 31;
const CR0_WP: u32 = 1 << 16;
const CR4_PSE: u32 = 1 << 4;
const CR4_PGE: u32 = 1 << 7;

fn read_cr0() -> u32 {
    let v: u32;
    // SAFETY: reading CR0 has no side effect.
    unsafe {
        core::arch::asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

fn read_cr3() -> u32 {
    let v: u32;
    // SAFETY: reading CR3 has no side effect.
    unsafe {
        core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Sets bits of CR0 and CR4.
///
/// # Safety
///
/// The bits must be ones the running code tolerates (WP, PSE, PGE here).
unsafe fn set_control_bits(cr0: u32, cr4: u32) {
    // SAFETY: forwarded to the caller.
    unsafe {
        core::arch::asm!(
            "mov {t}, cr0", "or {t}, {a}", "mov cr0, {t}",
            "mov {t}, cr4", "or {t}, {b}", "mov cr4, {t}",
            t = out(reg) _, a = in(reg) cr0, b = in(reg) cr4,
            options(nostack, preserves_flags),
        );
    }
}

fn invlpg(addr: u32) {
    // SAFETY: `invlpg` only drops a cached translation.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

fn flush_tlb() {
    // SAFETY: reloading CR3 with its own value only flushes the TLB.
    unsafe {
        core::arch::asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags));
    }
}

/// Reads physical memory through the direct map (for the multiboot
/// information, before the library's directory is loaded: the kernel's boot
/// directory must map it at `KERNEL_BASE + phys`).
pub struct DirectMapRead;

impl PhysRead for DirectMapRead {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let end = addr.saturating_add(buf.len() as u64);
        if end > DIRECT_ZONE_END {
            return false;
        }
        let va = KERNEL_BASE as usize + addr as usize;
        // SAFETY: the range lies in the direct map, which the kernel's boot
        // directory maps (a precondition of `myos_init`).
        unsafe { core::ptr::copy_nonoverlapping(va as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }
}

/// Fills the direct-map entries of the loaded (boot) page directory with
/// 4 MiB pages up to `ram_end`, leaving entries the kernel set alone, so
/// the frame allocator can place and reach its metadata before the
/// library's own directory exists.
fn extend_boot_directory(ram_end: u64) {
    let Some(dir) = phys_to_direct(read_cr3() & FRAME_MASK) else {
        return;
    };
    let dir = dir as *mut PageTableEntry;
    let entries = ram_end.min(DIRECT_ZONE_END).div_ceil(u64::from(TABLE_SPAN)) as usize;
    let flags = PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::HUGE;
    for i in 0..entries {
        // SAFETY: CR3 holds the live boot directory, reachable in the direct
        // map (the kernel image holds it, and the image is mapped there);
        // KERNEL_PD_INDEX + i < 1024 since the direct map ends below 4 GiB.
        unsafe {
            let e = dir.add(KERNEL_PD_INDEX + i);
            if !e.read_volatile().is_present() {
                let frame = Frame::from_start(PhysAddr::new(i as u32 * TABLE_SPAN))
                    .unwrap_or_else(|_| unreachable!("4 MiB multiples are frame-aligned"));
                e.write_volatile(PageTableEntry::new(frame, flags));
            }
        }
    }
    flush_tlb();
}

fn console_writer(bytes: &[u8]) {
    if let Some(w) = CONSOLE.get() {
        w(bytes.as_ptr().cast(), bytes.len() as u32);
    }
}

/// Writes to the kernel's console callback (for the panic path).
pub fn console(bytes: &[u8]) {
    console_writer(bytes);
}

/// The kernel's panic hook, if it gave one.
pub fn panic_hook() -> Option<CWrite> {
    PANIC_HOOK.get().copied()
}

/// Everything after validation: the CPU bits, the frame allocator and the
/// kernel directory (loaded), the kernel heap, the C API registration and
/// the C process.
pub fn bring_up(boot: &Boot, regions: &Regions) -> Result<(), BootError> {
    if let Some(w) = boot.console_write {
        CONSOLE.call_once(|| w);
        myos_capi::register_console(console_writer);
    }
    if let Some(p) = boot.panic {
        PANIC_HOOK.call_once(|| p);
    }
    let here = bring_up as fn(&Boot, &Regions) -> Result<(), BootError> as usize as u32;
    if read_cr0() & CR0_PG == 0 || here < KERNEL_BASE {
        return Err(BootError::Cpu);
    }
    // SAFETY: PSE and WP change nothing for the running mappings (the boot
    // directory's 4 MiB entries need PSE, and WP only makes supervisor
    // writes honour read-only pages, which copy-on-write relies on).
    unsafe { set_control_bits(CR0_WP, CR4_PSE) };
    extend_boot_directory(regions.ram_end());
    let platform: &'static Plat = &PLATFORM;
    // SAFETY: `validate` reserved the kernel image and the boot structures;
    // the caller of `myos_init` promises the usable regions are free RAM.
    let system = unsafe { System::new(platform, regions.as_slice()) }.map_err(|e| match e {
        MmError::OutOfMemory => BootError::NoMemory,
        _ => BootError::Empty,
    })?;
    let system: &'static System<Plat> = SYSTEM.call_once(|| system);
    system.kernel_space().lock().activate(platform);
    // SAFETY: the direct map is the same in every address space, so its
    // global entries may survive CR3 loads.
    unsafe { set_control_bits(0, CR4_PGE) };
    myos_capi::register_parts(platform, system.frames(), system.kernel_space())
        .map_err(|_| BootError::Already)?;
    // SAFETY: this is the machine the code runs on and the heap window lies
    // in the kernel half that every address space shares.
    let backend = unsafe { system.heap_backend() };
    let heap = Heap::new(
        backend,
        HEAP_START as usize,
        HEAP_START as usize + HEAP_INITIAL,
        myos_capi::heap::KHEAP_MAX as usize,
        HeapFlags::KERNEL,
    )
    .map_err(|_| BootError::NoMemory)?;
    HEAP.init(heap);
    myos_capi::register_kernel_heap(&HEAP).map_err(|_| BootError::Already)?;
    myos_capi::vm::create_process().map_err(|_| BootError::NoMemory)?;
    Ok(())
}

const _: () = assert!(KMAP_END - KMAP_START == (ENTRIES * PAGE_SIZE) as u32);

/// The kmap window's page-table entry for `slot`, through the loaded
/// directory (the kernel space preallocates that table; every address space
/// shares it).
fn kmap_entry(slot: usize) -> *mut PageTableEntry {
    let window = VirtAddr::new(KMAP_START);
    let pd = phys_to_direct(read_cr3() & FRAME_MASK)
        .unwrap_or_else(|| panic!("page directory outside the direct map"));
    // SAFETY: CR3 holds a live page directory in the direct map; index < 1024.
    let pde = unsafe {
        (pd as *const PageTableEntry)
            .add(window.pd_index())
            .read_volatile()
    };
    if !pde.is_present() || pde.flags().contains(PteFlags::HUGE) {
        panic!("kmap window used before the kernel directory is loaded");
    }
    let table = phys_to_direct(pde.frame().start().as_u32())
        .unwrap_or_else(|| panic!("kmap page table outside the direct map"));
    // SAFETY: `slot` is 0 or 1, within the table.
    unsafe { (table as *mut PageTableEntry).add(slot) }
}

/// Runs `f` with a kernel pointer to `frame`: the direct map, or kmap slot
/// `slot` (the caller holds `KMAP_LOCK` for frames above the direct map).
fn with_frame<R>(frame: Frame, slot: usize, f: impl FnOnce(*mut u8) -> R) -> R {
    if let Some(va) = phys_to_direct(frame.start().as_u32()) {
        return f(va as *mut u8);
    }
    let entry = PageTableEntry::new(frame, PteFlags::PRESENT | PteFlags::WRITABLE);
    let va = KMAP_START + (slot * PAGE_SIZE) as u32;
    // SAFETY: the kmap table is the platform's own, used under KMAP_LOCK.
    unsafe { kmap_entry(slot).write_volatile(entry) };
    invlpg(va);
    let r = f(va as *mut u8);
    // SAFETY: as above.
    unsafe { kmap_entry(slot).write_volatile(PageTableEntry::EMPTY) };
    invlpg(va);
    r
}

fn is_direct(frame: Frame) -> bool {
    u64::from(frame.start().as_u32()) < DIRECT_ZONE_END
}

// SAFETY: `myos_init` makes the direct map cover physical 0..min(RAM, the
// direct map's size) at KERNEL_BASE in the boot directory and in every
// directory the core builds (the kernel half is shared), so `frame_ptr` is
// valid for every direct frame; other frames are reached through the kmap
// window's two slots under KMAP_LOCK, unmapped and flushed after use.
unsafe impl Platform for X86 {
    fn frame_ptr(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        let va = phys_to_direct(frame.start().as_u32())
            .unwrap_or_else(|| panic!("frame_ptr: frame above the direct map"));
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
        flush_tlb();
    }

    fn zero_frame(&self, frame: Frame) {
        let _guard = (!is_direct(frame)).then(|| KMAP_LOCK.lock());
        // SAFETY: `p` maps the whole frame, which the core owns.
        with_frame(frame, 0, |p| unsafe { p.write_bytes(0, PAGE_SIZE) });
    }

    fn copy_frame(&self, dst: Frame, src: Frame) {
        if dst == src {
            return;
        }
        let _guard = (!is_direct(dst) || !is_direct(src)).then(|| KMAP_LOCK.lock());
        with_frame(dst, 0, |d| {
            // SAFETY: both pointers map whole, distinct frames.
            with_frame(src, 1, |s| unsafe {
                core::ptr::copy_nonoverlapping(s, d, PAGE_SIZE)
            })
        });
    }

    fn read_frame(&self, frame: Frame, offset: usize, buf: &mut [u8]) {
        assert!(offset <= PAGE_SIZE && buf.len() <= PAGE_SIZE - offset);
        let _guard = (!is_direct(frame)).then(|| KMAP_LOCK.lock());
        with_frame(frame, 0, |p| {
            // SAFETY: the range lies within the mapped frame (checked above).
            unsafe { core::ptr::copy_nonoverlapping(p.add(offset), buf.as_mut_ptr(), buf.len()) }
        });
    }

    fn write_frame(&self, frame: Frame, offset: usize, buf: &[u8]) {
        assert!(offset <= PAGE_SIZE && buf.len() <= PAGE_SIZE - offset);
        let _guard = (!is_direct(frame)).then(|| KMAP_LOCK.lock());
        with_frame(frame, 0, |p| {
            // SAFETY: the range lies within the mapped frame (checked above).
            unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), p.add(offset), buf.len()) }
        });
    }
}
