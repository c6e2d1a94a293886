//! Frames and paging on a `Platform` of your own: the two pieces a kernel
//! ports first, without the heap or the address-space (vm) layer.
//!
//! `MockPlatform` below is what a kernel's `Platform` does, over a `Vec` of
//! page-sized frames instead of RAM: `frame_ptr` is the "direct map" (frame
//! `n` is element `n`), CR3 is a cell, and a small TLB caches what a
//! software walk of the page tables found until `invlpg` (`flush`), a full
//! flush or a CR3 load drops it, as the hardware does. The example builds a
//! frame allocator from a memory map, maps, translates and unmaps pages
//! through `AddressSpace`, checks that every `Flush` token reaches the TLB,
//! and that every frame is back at the end.
//!
//! ```sh
//! cargo run -p myos-mm --example frames_paging
//! ```

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::HashMap;
use std::ptr::NonNull;

use myos_mm::frames::{FrameAllocator, FrameSource, MemoryRegion, RegionKind, Zone};
use myos_mm::layout::{HEAP_START, PAGE_SIZE};
use myos_mm::paging::{AddressSpace, PteFlags};
use myos_mm::{Frame, Page, PhysAddr, Platform, VirtAddr};

/// RAM of the mock machine: 8 MiB.
const RAM_BYTES: usize = 8 << 20;

/// One frame of RAM, page-aligned (page tables are read as `u32`s and the
/// frame allocator's metadata as `u64`s).
#[repr(C, align(4096))]
struct FrameBuf([u8; PAGE_SIZE]);

/// A machine with RAM, CR3 and a TLB. Single-threaded (`Cell`/`RefCell`),
/// which the core allows: `Platform` has no `Sync` bound.
struct MockPlatform {
    /// Frame `n` is `ram[n]`: consecutive frames at consecutive addresses.
    ram: Vec<UnsafeCell<FrameBuf>>,
    cr3: Cell<u32>,
    /// Cached translations: virtual page number to physical frame number.
    tlb: RefCell<HashMap<u32, u32>>,
    /// Pages invalidated with `flush` (`invlpg`), in order.
    invlpg: RefCell<Vec<u32>>,
    /// Full flushes (`flush_all` and CR3 loads).
    full_flushes: Cell<u32>,
}

impl MockPlatform {
    fn new(bytes: usize) -> Self {
        let ram = (0..bytes / PAGE_SIZE)
            .map(|_| UnsafeCell::new(FrameBuf([0; PAGE_SIZE])))
            .collect();
        MockPlatform {
            ram,
            cr3: Cell::new(0),
            tlb: RefCell::new(HashMap::new()),
            invlpg: RefCell::new(Vec::new()),
            full_flushes: Cell::new(0),
        }
    }

    /// Reads a 32-bit little-endian word of physical memory.
    fn read_phys_u32(&self, pa: u32) -> u32 {
        let mut b = [0u8; 4];
        let frame = PhysAddr::new(pa).frame();
        self.read_frame(frame, pa as usize % PAGE_SIZE, &mut b);
        u32::from_le_bytes(b)
    }

    /// The MMU: translates `va` through the TLB, or walks the two-level
    /// tables from CR3 (4 KiB and 4 MiB entries) and caches the result. Its
    /// bit positions are the i386's, written here independently of the core.
    fn access(&self, va: u32) -> Option<u32> {
        const P: u32 = 1;
        const PS: u32 = 1 << 7;
        if let Some(frame) = self.tlb.borrow().get(&(va >> 12)) {
            return Some(frame << 12 | (va & 0xFFF));
        }
        let pde = self.read_phys_u32((self.cr3.get() & !0xFFF) + (va >> 22) * 4);
        let pa = if pde & P == 0 {
            return None;
        } else if pde & PS != 0 {
            (pde & 0xFFC0_0000) | (va & 0x003F_FFFF)
        } else {
            let pte = self.read_phys_u32((pde & !0xFFF) + ((va >> 12) & 0x3FF) * 4);
            if pte & P == 0 {
                return None;
            }
            (pte & !0xFFF) | (va & 0xFFF)
        };
        self.tlb.borrow_mut().insert(va >> 12, pa >> 12);
        Some(pa)
    }
}

// SAFETY: every frame of `ram` is valid for reads and writes of PAGE_SIZE
// bytes for as long as the platform lives (the Vec never reallocates), frames
// are consecutive in memory (one Vec), the whole RAM is "direct-mapped"
// (8 MiB < 768 MiB), and nothing but the core writes to frames it allocated.
unsafe impl Platform for MockPlatform {
    fn frame_ptr(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        let cell = &self.ram[frame.number() as usize];
        NonNull::new(cell.get().cast()).expect("a Vec element is never null")
    }

    fn root(&self) -> Frame {
        PhysAddr::new(self.cr3.get()).frame()
    }

    unsafe fn set_root(&self, root: Frame) {
        // A CR3 load drops every (non-global) cached translation.
        self.cr3.set(root.start().as_u32());
        self.flush_all();
    }

    fn flush(&self, page: Page) {
        self.tlb.borrow_mut().remove(&page.number());
        self.invlpg.borrow_mut().push(page.start().as_u32());
    }

    fn flush_all(&self) {
        self.tlb.borrow_mut().clear();
        self.full_flushes.set(self.full_flushes.get() + 1);
    }
}

fn page(va: u32) -> Page {
    Page::from_start(VirtAddr::new(va)).expect("page-aligned")
}

fn main() {
    let platform = MockPlatform::new(RAM_BYTES);

    // The memory map the boot loader handed over, with what the kernel
    // occupies marked reserved: a PC's low RAM and BIOS hole, and the
    // kernel image at 1 MiB.
    let map = [
        MemoryRegion {
            start: 0,
            end: 0x9_F000,
            kind: RegionKind::Usable,
        },
        MemoryRegion {
            start: 0x9_F000,
            end: 0x10_0000,
            kind: RegionKind::Reserved,
        },
        MemoryRegion {
            start: 0x10_0000,
            end: RAM_BYTES as u64,
            kind: RegionKind::Usable,
        },
        MemoryRegion {
            start: 0x10_0000,
            end: 0x20_0000,
            kind: RegionKind::Reserved,
        },
    ];
    // SAFETY: the usable regions are RAM of `platform` that nothing else
    // uses, and `fa` is dropped before `platform`.
    let mut fa = unsafe { FrameAllocator::new(&platform, &map) }.expect("frame allocator");
    let boot = fa.stats();
    println!(
        "frames: {} usable, {} free, {} of allocator metadata",
        boot.total, boot.free, boot.metadata
    );
    assert_eq!(
        boot.total,
        (0x9F000 + RAM_BYTES - 0x20_0000) as u32 / PAGE_SIZE as u32
    );
    assert_eq!(boot.used, 0);

    // Frames alone: allocate, share, release. Each reference is an
    // `OwnedFrame` value: not `Copy`, consumed by `release` (or `map`).
    let f = fa.alloc(Zone::High).expect("a frame");
    assert!(
        f.start().as_u32() >= 0x20_0000 || f.start().as_u32() < 0x9_F000,
        "not reserved"
    );
    let second = fa.share(f.frame()).expect("second reference");
    assert_eq!(fa.refcount(f.frame()), Ok(2));
    assert_eq!((fa.release(f), fa.release(second)), (Ok(false), Ok(true)));
    let run = fa
        .alloc_contiguous(16, 4, Zone::Low)
        .expect("16 aligned frames");
    assert!(run.first().number().is_multiple_of(16));
    for f in run.into_frames() {
        fa.release(f).unwrap();
    }
    assert_eq!(fa.stats(), boot, "frames alone: back at baseline");

    // The kernel space (direct map, shared heap and kmap tables), then a
    // user space that shares its kernel half; load the user space.
    let kernel = AddressSpace::new_kernel(&platform, &mut fa, PhysAddr::new(RAM_BYTES as u32))
        .expect("kernel space");
    let mut user = AddressSpace::new_user(&platform, &mut fa, &kernel).expect("user space");
    user.activate(&platform);
    let with_spaces = fa.stats();
    println!(
        "kernel and user spaces built: {} frames of page tables",
        with_spaces.used
    );

    // A user page: the mapping consumes the frame's reference (the plain
    // number stays for the checks below).
    let va = 0x0804_8000;
    let owned = fa.alloc(Zone::High).expect("a frame");
    let frame = owned.frame();
    let flags = PteFlags::WRITABLE | PteFlags::USER;
    user.map(&platform, &mut fa, page(va), owned, flags)
        .expect("map")
        .flush(&platform);
    let pa = user.translate(&platform, VirtAddr::new(va + 0x123));
    assert_eq!(pa, Some(PhysAddr::new(frame.start().as_u32() + 0x123)));
    assert_eq!(
        platform.access(va + 0x123),
        pa.map(PhysAddr::as_u32),
        "the MMU agrees"
    );
    println!(
        "mapped {va:#x} -> {:?}; translate and the MMU walk agree",
        frame
    );

    // A kernel page in the heap window: its table is preallocated (no frame
    // taken for it) and shared by every space.
    let kowned = fa.alloc(Zone::Direct).expect("a frame");
    let kframe = kowned.frame();
    user.map(
        &platform,
        &mut fa,
        page(HEAP_START),
        kowned,
        PteFlags::WRITABLE,
    )
    .expect("map in the heap window")
    .flush(&platform);
    assert_eq!(platform.access(HEAP_START), Some(kframe.start().as_u32()));
    assert_eq!(
        kernel.translate(&platform, VirtAddr::new(HEAP_START)),
        Some(kframe.start())
    );
    assert_eq!(
        fa.stats().used,
        with_spaces.used + 3,
        "two data frames and the user page table; none for the heap window"
    );

    // Unmap: the frame's reference comes back to the caller, and the Flush
    // token is owed to the TLB (`#[must_use]` guards against forgetting
    // it). Here the page is the last of its page table, so `unmap` frees
    // the table too: another CPU's paging-structure cache could still point
    // into it, so `unmap` first flushes this CPU (and shoots the space's
    // other CPUs down) — the stale entry is gone already, and the token's
    // `invlpg` is a harmless second one. (A page whose table survives stays
    // stale until the token is honoured.)
    let before = platform.invlpg.borrow().len();
    let (back, flush) = user.unmap(&platform, &mut fa, page(va)).expect("unmap");
    assert_eq!(back, frame);
    assert_eq!(user.translate(&platform, VirtAddr::new(va)), None);
    assert_eq!(
        platform.invlpg.borrow()[before..],
        [va],
        "unmap flushed before freeing the table"
    );
    assert_eq!(
        platform.access(va),
        None,
        "no stale entry into a freed table"
    );
    flush.flush(&platform);
    assert_eq!(
        platform.invlpg.borrow()[before..],
        [va, va],
        "the token's invlpg"
    );
    assert_eq!(fa.release(back), Ok(true), "the frame is free again");
    println!("unmapped {va:#x}: its page table freed after the flush");

    let (kback, flush) = user
        .unmap(&platform, &mut fa, page(HEAP_START))
        .expect("unmap");
    flush.flush(&platform);
    assert_eq!(platform.access(HEAP_START), None);
    fa.release(kback).unwrap();
    // The user page table emptied and was freed with its last entry.
    assert_eq!(
        fa.stats(),
        with_spaces,
        "page table freed with its last entry"
    );

    // Tear down: load the kernel space, free the user space, then the
    // kernel space (no other space may exist any more).
    kernel.activate(&platform);
    user.destroy(&platform, &mut fa);
    // Load a frame that is no directory (a reserved one: frame 0 is an
    // ordinary frame and may be the kernel's directory) before destroying it.
    platform.cr3.set(0x9_F000);
    // SAFETY: the only other address space is destroyed and the kernel
    // space is not loaded.
    unsafe { kernel.destroy_kernel(&platform, &mut fa) };
    let end = fa.stats();
    assert_eq!(end, boot, "every frame back at baseline");
    fa.validate().expect("allocator consistent");
    println!(
        "destroyed both spaces: {} free of {} (baseline); {} invlpg, {} full flushes",
        end.free,
        end.total,
        platform.invlpg.borrow().len(),
        platform.full_flushes.get()
    );
}
