//! The bad-input matrix (`docs/reliability.md`): one test per row that no
//! other test already covers. Each test feeds one public function of the
//! core one kind of bad input and checks the exact error, and that nothing
//! changed (frame counts, heap statistics, regions). Rows covered elsewhere
//! name their test in the document.

mod vm_support;

use myos_abi::errno::{EBADF, EFAULT, EINVAL, ENOMEM};
use myos_abi::*;
use myos_mm::addr::{FRAME_COUNT_4G, FRAME_COUNT_MAX};
use myos_mm::frames::{FrameAllocator, FrameSource, MemoryRegion, RegionKind, Zone};
use myos_mm::heap::{ArenaBackend, Heap, HeapFlags};
use myos_mm::layout::{HEAP_START, KERNEL_BASE, KMAP_END, PAGE_SIZE, USER_END, USER_MMAP_MIN};
use myos_mm::paging::{AddressSpace, PteFlags};
use myos_mm::system::System;
use myos_mm::vm::*;
use myos_mm::{Frame, MmError, OwnedFrame, Page, PhysAddr, VirtAddr};
use myos_sim::SimMachine;
use vm_support::*;

/// These tests track frame references by number (the paging rule's
/// bookkeeping is what they check): the owned value of a reference the test
/// took, or of an entry's reference it got back by number.
fn owned(f: Frame) -> OwnedFrame {
    // SAFETY: see above.
    unsafe { OwnedFrame::from_raw(f) }
}

const RW: u32 = PROT_READ | PROT_WRITE;
const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const NULL: VirtAddr = VirtAddr::new(0);
const RW_USER: PteFlags = PteFlags::WRITABLE.union(PteFlags::USER);

fn va(a: u32) -> VirtAddr {
    VirtAddr::new(a)
}

fn page(a: u32) -> Page {
    Page::from_start(va(a)).unwrap()
}

fn frame(n: u32) -> Frame {
    Frame::from_number(n).unwrap()
}

// ------------------------------------------------------------ addresses

#[test]
fn addr_frame_from_number_past_64gib_and_page_past_4gib_are_out_of_range() {
    // Frames reach 64 GiB (PAE's 36-bit physical addresses); pages 4 GiB.
    assert_eq!(
        Frame::from_number(FRAME_COUNT_MAX),
        Err(MmError::OutOfRange)
    );
    assert_eq!(Frame::from_number(u32::MAX), Err(MmError::OutOfRange));
    assert_eq!(Page::from_number(FRAME_COUNT_4G), Err(MmError::OutOfRange));
    assert_eq!(PhysAddr::try_from_u64(1 << 36), Err(MmError::OutOfRange));
    assert_eq!(PhysAddr::try_from_u64(u64::MAX), Err(MmError::OutOfRange));
    assert_eq!(
        PhysAddr::try_from_u64(1 << 32).map(|a| a.frame()),
        Frame::from_number(FRAME_COUNT_4G)
    );
}

#[test]
fn addr_arithmetic_wrapping_past_the_end_is_none() {
    assert_eq!(va(0xFFFF_F000).checked_add(0x1000), None);
    assert_eq!(va(0xFFFF_FFFF).checked_align_up(4096), None);
    assert_eq!(frame(FRAME_COUNT_MAX - 1).checked_add(1), None);
    assert_eq!(page(0xFFFF_F000).checked_add(1), None);
}

// ----------------------------------------------------------------- frames

fn usable(start: u64, end: u64) -> MemoryRegion {
    MemoryRegion {
        start,
        end,
        kind: RegionKind::Usable,
    }
}

/// Regression test (finding F2): RAM reported at or above 4 GiB (multiboot
/// maps of big machines do) sized the allocator's metadata for 2^20 frames
/// (545 frames, 13% of this machine) and the kernel's direct map for
/// 768 MiB. It is ignored now.
#[test]
fn frames_new_ignores_ram_above_4gib() {
    let m = SimMachine::new(16 * MIB).unwrap();
    let low = [usable(0, 16 * MIB)];
    let map = [usable(0, 16 * MIB), usable(1 << 32, 1 << 33)];
    // SAFETY: the allocators are dropped before the machine, one at a time.
    let plain = unsafe { FrameAllocator::new(&m, &low) }.unwrap().stats();
    // SAFETY: as above.
    let fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
    assert_eq!(fa.stats(), plain, "the region above 4 GiB changed nothing");
    assert_eq!(fa.stats().total, (16 * MIB / 4096) as u32);
    assert!(fa.frame_limit() <= (16 * MIB / 4096) as u32);
    fa.validate().unwrap();
    // The system built from such a map direct-maps only the RAM below 4 GiB.
    let raw = Box::into_raw(Box::new(SimMachine::new(16 * MIB).unwrap()));
    // SAFETY: `raw` comes from `Box::into_raw` and stays valid until the
    // `Box::from_raw` at the end of the test, after the last use of `m`.
    let m: &'static SimMachine = unsafe { &*raw };
    {
        // SAFETY: the machine lives until the end of the test, so it
        // outlives the system; nothing else uses its RAM.
        let sys = unsafe { System::new(m, &map) }.unwrap();
        {
            let k = sys.kernel_space().lock();
            assert_eq!(
                k.translate(m, va(KERNEL_BASE + 0x1000)),
                Some(PhysAddr::new(0x1000))
            );
            assert_eq!(k.translate(m, va(KERNEL_BASE + (32 << 20))), None);
        }
    }
    // SAFETY: `raw` came from `Box::into_raw` above; the references made
    // from it (`m`, and the system's, now out of scope) are not used again.
    drop(unsafe { Box::from_raw(raw) });
}

/// Runs `body` on a frame allocator over a fresh machine with `ram` bytes.
fn with_frames(ram: u64, body: impl FnOnce(&mut FrameAllocator)) {
    let m = SimMachine::new(ram).unwrap();
    let map = m.memory_map().to_vec();
    // SAFETY: the allocator is dropped (at the end of this function) before
    // the machine it manages.
    let mut fa = unsafe { FrameAllocator::new(&m, &map) }.unwrap();
    body(&mut fa);
}

#[test]
fn frames_alloc_contiguous_huge_count_is_out_of_memory() {
    with_frames(16 * MIB, |fa| {
        let before = fa.stats();
        for count in [FRAME_COUNT_4G, u32::MAX] {
            for align in [0, 20] {
                for zone in Zone::ALL {
                    assert_eq!(
                        fa.alloc_contiguous(count, align, zone)
                            .map(|r| r.into_raw().0),
                        Err(MmError::OutOfMemory),
                        "{count:#x} frames, 2^{align} alignment, {zone:?}"
                    );
                }
            }
        }
        assert_eq!(fa.stats(), before);
        fa.validate().unwrap();
    });
}

#[test]
fn frames_share_refcount_of_foreign_or_reserved_frames_are_refused() {
    with_frames(16 * MIB, |fa| {
        let before = fa.stats();
        // Past RAM, and the last frame of the 32-bit space.
        for f in [frame(16 * 256), frame(FRAME_COUNT_4G - 1)] {
            assert_eq!(
                fa.share(f).map(OwnedFrame::into_raw),
                Err(MmError::OutOfRange)
            );
            assert_eq!(fa.refcount(f), Err(MmError::OutOfRange));
            assert_eq!(fa.release(owned(f)), Err(MmError::OutOfRange));
            assert!(!fa.manages(f));
        }
        // The BIOS hole (0xA0000..0x100000) and the allocator's own metadata.
        let (meta, _) = fa.metadata_frames();
        for f in [frame(0xA0), meta] {
            assert_eq!(
                fa.share(f).map(OwnedFrame::into_raw),
                Err(MmError::FrameReserved)
            );
            assert_eq!(fa.refcount(f), Err(MmError::FrameReserved));
            assert_eq!(
                fa.claim(f).map(OwnedFrame::into_raw),
                Err(MmError::FrameReserved)
            );
        }
        assert_eq!(fa.stats(), before);
        fa.validate().unwrap();
    });
}

#[test]
fn frames_exhausted_then_every_zone_is_out_of_memory_and_recovers() {
    with_frames(4 * MIB, |fa| {
        let mut got = Vec::new();
        while let Ok(f) = fa.alloc(Zone::High).map(OwnedFrame::into_raw) {
            got.push(f);
        }
        for zone in Zone::ALL {
            assert_eq!(
                fa.alloc(zone).map(OwnedFrame::into_raw),
                Err(MmError::OutOfMemory)
            );
            assert_eq!(
                fa.alloc_contiguous(1, 0, zone).map(|r| r.into_raw().0),
                Err(MmError::OutOfMemory)
            );
        }
        assert_eq!(fa.stats().free, 0);
        for f in got {
            assert_eq!(fa.release(owned(f)), Ok(true));
        }
        fa.validate().unwrap();
    });
}

// ----------------------------------------------------------------- paging

/// Runs `body` on a fresh user page directory of a 32 MiB machine, with
/// the machine and its frame allocator; then destroys the space and checks
/// that every frame came back.
fn with_user_space(body: impl FnOnce(&SimMachine, &mut FrameAllocator, &mut AddressSpace)) {
    let w = World::new(32 * MIB);
    let kernel = w.kernel.as_ref().unwrap();
    let mut us = AddressSpace::new_user(&w.m, &mut *w.fa.lock(), kernel).unwrap();
    body(&w.m, &mut w.fa.lock(), &mut us);
    us.destroy(&w.m, &mut *w.fa.lock());
    w.finish();
}

#[test]
fn paging_map_remap_in_the_direct_map_is_fixed_mapping() {
    with_user_space(|m, fa, us| {
        let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
        let before = fa.stats();
        for a in [KERNEL_BASE, KERNEL_BASE + 0x1234_5000, HEAP_START - 0x1000] {
            assert_eq!(
                us.map(m, &mut *fa, page(a), owned(f), RW_USER)
                    .map_err(|e| e.error)
                    .err(),
                Some(MmError::FixedMapping),
                "{a:#x}"
            );
            assert_eq!(
                us.remap(m, &mut *fa, page(a), owned(f), RW_USER)
                    .map(|(o, fl)| (o.map(OwnedFrame::into_raw), fl))
                    .map_err(|e| e.error)
                    .err(),
                Some(MmError::FixedMapping)
            );
        }
        assert_eq!(fa.stats(), before);
        // The direct map still translates as before.
        assert_eq!(
            us.translate(m, va(KERNEL_BASE + 0x5000)),
            Some(PhysAddr::new(0x5000))
        );
        fa.release(owned(f)).unwrap();
    });
}

#[test]
fn paging_classic_map_remap_of_a_frame_above_4gib_is_out_of_range() {
    with_user_space(|m, fa, us| {
        let before = fa.stats();
        let high = frame(FRAME_COUNT_4G);
        let e = us
            .map(m, &mut *fa, page(0x4000_0000), owned(high), RW_USER)
            .unwrap_err();
        assert_eq!(e.error, MmError::OutOfRange);
        assert_eq!(e.frame.into_raw(), high, "the frame is handed back");
        let e = us
            .remap(m, &mut *fa, page(0x4000_0000), owned(high), RW_USER)
            .map(|(o, fl)| (o.map(OwnedFrame::into_raw), fl))
            .unwrap_err();
        assert_eq!((e.error, e.frame.into_raw()), (MmError::OutOfRange, high));
        // Nothing was mapped, no table was made.
        assert_eq!(us.translate(m, va(0x4000_0000)), None);
        assert_eq!(us.user_table_count(m), 0);
        assert_eq!(fa.stats(), before);
    });
}

#[test]
fn frames_new_below_past_64gib_is_invalid_argument() {
    let m = SimMachine::new(16 * MIB).unwrap();
    let map = m.memory_map().to_vec();
    // SAFETY: the call fails before it touches the machine's RAM.
    let r = unsafe { FrameAllocator::new_below(&m, &map, (1 << 36) + 4096) };
    assert_eq!(r.err(), Some(MmError::InvalidArgument));
}

#[test]
fn paging_unmap_protect_get_page_in_the_direct_map_are_fixed_mapping() {
    with_user_space(|m, fa, us| {
        let before = fa.stats();
        let p = page(KERNEL_BASE + 0x10_0000);
        assert_eq!(
            us.unmap(m, &mut *fa, p)
                .map(|(f, fl)| (f.into_raw(), fl))
                .err(),
            Some(MmError::FixedMapping)
        );
        assert_eq!(
            us.protect(m, p, PteFlags::empty()).err(),
            Some(MmError::FixedMapping)
        );
        for make in [false, true] {
            assert_eq!(
                us.get_page(m, &mut *fa, p.start(), make).err(),
                Some(MmError::FixedMapping)
            );
        }
        assert_eq!(us.entry(m, p), None, "no page-table entry for a 4 MiB page");
        assert_eq!(fa.stats(), before);
    });
}

#[test]
fn paging_remap_unmap_protect_in_the_top_4mib_are_refused() {
    with_user_space(|m, fa, us| {
        let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
        let before = fa.stats();
        for a in [KMAP_END, 0xFFFF_F000] {
            assert_eq!(
                us.remap(m, &mut *fa, page(a), owned(f), RW_USER)
                    .map(|(o, fl)| (o.map(OwnedFrame::into_raw), fl))
                    .map_err(|e| e.error)
                    .err(),
                Some(MmError::OutOfRange)
            );
            assert_eq!(
                us.unmap(m, &mut *fa, page(a))
                    .map(|(f, fl)| (f.into_raw(), fl))
                    .err(),
                Some(MmError::NotMapped)
            );
            assert_eq!(
                us.protect(m, page(a), RW_USER).err(),
                Some(MmError::NotMapped)
            );
            assert_eq!(us.translate(m, va(a + 0xFFF)), None);
        }
        assert_eq!(fa.stats(), before);
        fa.release(owned(f)).unwrap();
    });
}

#[test]
fn paging_translate_of_never_mapped_addresses_is_none() {
    with_user_space(|m, _, us| {
        for a in [
            0,
            0x1000,
            USER_MMAP_MIN,
            USER_END - 1,
            HEAP_START,
            KMAP_END,
            u32::MAX,
        ] {
            assert_eq!(us.translate(m, va(a)), None, "{a:#x}");
        }
        // Direct-map addresses past RAM (32 MiB here) are not mapped either.
        assert_eq!(us.translate(m, va(KERNEL_BASE + (64 << 20))), None);
    });
}

#[test]
fn paging_new_user_without_frames_is_out_of_memory() {
    let w = World::new(16 * MIB);
    for budget in 0..2 {
        let mut fa = w.fa.lock();
        let before = fa.stats();
        fa.fail_after(Some(budget));
        let r = AddressSpace::new_user(&w.m, &mut *fa, w.kernel.as_ref().unwrap());
        assert_eq!(r.err(), Some(MmError::OutOfMemory), "budget {budget}");
        fa.fail_after(None);
        assert_eq!(fa.stats(), before);
    }
    w.finish();
}

#[test]
fn paging_map_of_a_huge_flag_or_unknown_bits_in_kernel_half() {
    // HUGE is refused everywhere, also in the kernel half; the OS-available
    // bits (9..11) are kept as given.
    with_user_space(|m, fa, us| {
        let f = fa.alloc(Zone::High).map(OwnedFrame::into_raw).unwrap();
        assert_eq!(
            us.map(
                m,
                &mut *fa,
                page(HEAP_START),
                owned(f),
                PteFlags::HUGE | PteFlags::WRITABLE
            )
            .map_err(|e| e.error)
            .err(),
            Some(MmError::InvalidArgument)
        );
        let avail = PteFlags::AVAIL0 | PteFlags::AVAIL1 | PteFlags::AVAIL2;
        us.map(m, &mut *fa, page(0x40_0000), owned(f), RW_USER | avail)
            .map_err(|e| e.error)
            .unwrap()
            .flush(m);
        assert_eq!(
            us.entry(m, page(0x40_0000)).unwrap().flags(),
            RW_USER | avail | PteFlags::PRESENT
        );
        assert_eq!(
            us.protect(m, page(0x40_0000), PteFlags::HUGE).err(),
            Some(MmError::InvalidArgument)
        );
    });
}

// ------------------------------------------------------------------- heap

/// A page-aligned host buffer for an arena heap.
fn arena(pages: usize) -> Vec<u8> {
    vec![0u8; (pages + 1) * PAGE_SIZE]
}

fn heap(mem: &mut [u8], init: usize, max: usize) -> Heap<ArenaBackend<'_>> {
    let b = ArenaBackend::new(mem);
    let s = b.start();
    Heap::new(
        b,
        s,
        s + init * PAGE_SIZE,
        s + max * PAGE_SIZE,
        HeapFlags::KERNEL,
    )
    .unwrap()
}

#[test]
fn heap_new_with_misaligned_end_or_max_is_misaligned() {
    let mut mem = arena(8);
    for (e, x) in [
        (PAGE_SIZE + 8, 4 * PAGE_SIZE),
        (PAGE_SIZE, 4 * PAGE_SIZE - 1),
    ] {
        let b = ArenaBackend::new(&mut mem);
        let s = b.start();
        assert_eq!(
            Heap::new(b, s, s + e, s + x, HeapFlags::KERNEL).err(),
            Some(MmError::Misaligned)
        );
    }
}

#[test]
fn heap_new_past_the_address_space_is_refused() {
    // `max` wrapping past the top of the address space, or a span above
    // MAX_SPAN: no heap, nothing mapped.
    let mut mem = arena(8);
    let b = ArenaBackend::new(&mut mem);
    let s = b.start();
    let top = usize::MAX & !(PAGE_SIZE - 1);
    assert_eq!(
        Heap::new(b, s, s + PAGE_SIZE, top, HeapFlags::KERNEL).err(),
        Some(MmError::OutOfRange)
    );
    let b = ArenaBackend::new(&mut mem);
    assert_eq!(
        Heap::new(b, top - PAGE_SIZE, top, top, HeapFlags::KERNEL).err(),
        Some(MmError::OutOfRange),
        "the arena refuses a range outside it"
    );
}

#[test]
fn heap_alloc_page_aligned_and_physical_huge_sizes_change_nothing() {
    let mut mem = arena(8);
    let mut h = heap(&mut mem, 1, 8);
    let before = h.stats();
    for size in [usize::MAX, u32::MAX as usize, 0xFFFF_FFF9] {
        assert_eq!(
            h.alloc_page_aligned(size),
            Err(MmError::InvalidArgument),
            "{size:#x}"
        );
        for page_aligned in [false, true] {
            assert_eq!(
                h.alloc_physical(size, page_aligned).err(),
                Some(MmError::InvalidArgument)
            );
        }
    }
    for size in [8 * PAGE_SIZE, 0x7FFF_FFFF] {
        assert_eq!(h.alloc_page_aligned(size), Err(MmError::OutOfMemory));
        assert_eq!(
            h.alloc_physical(size, true).err(),
            Some(MmError::OutOfMemory)
        );
    }
    // A page-aligned request that fits alone but not with its alignment gap.
    assert_eq!(h.alloc(7 * PAGE_SIZE, 1 << 20), Err(MmError::OutOfMemory));
    assert_eq!(h.stats(), before);
    h.validate().unwrap();
}

#[test]
fn heap_free_of_misaligned_or_null_ish_pointers_is_bad_pointer() {
    let mut mem = arena(4);
    let mut h = heap(&mut mem, 1, 4);
    let p = h.alloc(64, 8).unwrap();
    let before = h.stats();
    let base = p.as_ptr();
    for bad in [
        base.wrapping_add(1),
        base.wrapping_add(4),
        base.wrapping_sub(1),
        base.with_addr(8),
        base.with_addr(usize::MAX & !7),
    ] {
        let bad = std::ptr::NonNull::new(bad).unwrap();
        assert_eq!(h.free(bad), Err(MmError::BadPointer), "{bad:?}");
        assert_eq!(h.usable_size(bad), Err(MmError::BadPointer));
    }
    assert_eq!(h.stats(), before);
    h.free(p).unwrap();
    h.validate().unwrap();
}

#[test]
fn heap_realloc_of_bad_freed_or_huge_requests_keeps_the_block() {
    let mut mem = arena(4);
    let mut h = heap(&mut mem, 1, 4);
    let p = h.alloc(100, 8).unwrap();
    // SAFETY: a live block of 100 bytes.
    unsafe { p.as_ptr().write_bytes(0x5A, 100) };
    let q = h.alloc(100, 8).unwrap();
    h.free(q).unwrap();
    let before = h.stats();
    // SAFETY: inside the live block `p`.
    let interior = unsafe { p.add(16) };
    assert_eq!(h.realloc(interior, 10, 8), Err(MmError::BadPointer));
    assert_eq!(h.realloc(q, 10, 8), Err(MmError::DoubleFree));
    assert_eq!(h.usable_size(q), Err(MmError::DoubleFree));
    assert_eq!(h.realloc(p, usize::MAX, 8), Err(MmError::InvalidArgument));
    assert_eq!(h.realloc(p, 0xFFFF_FFFC, 8), Err(MmError::InvalidArgument));
    assert_eq!(h.realloc(p, 64 * PAGE_SIZE, 8), Err(MmError::OutOfMemory));
    assert_eq!(h.realloc(p, 200, 3), Err(MmError::InvalidArgument));
    assert_eq!(h.stats(), before);
    // SAFETY: `p` is still live with its 100 bytes.
    let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), 100) };
    assert!(
        bytes.iter().all(|&b| b == 0x5A),
        "the old block is untouched"
    );
    h.free(p).unwrap();
    h.validate().unwrap();
}

#[test]
fn heap_alloc_zero_size_and_max_alignment_are_served() {
    // Not errors: a zero-size request gets a unique block, and alignments up
    // to the heap's size work when there is room.
    let mut mem = arena(8);
    let mut h = heap(&mut mem, 1, 8);
    let a = h.alloc(0, 8).unwrap();
    let b = h.alloc(0, 4096).unwrap();
    assert_ne!(a, b);
    assert_eq!(b.as_ptr().addr() % 4096, 0);
    h.free(a).unwrap();
    h.free(b).unwrap();
    assert_eq!(h.free(a), Err(MmError::DoubleFree));
    // `b` needed a second page, which went back when the heap emptied: the
    // pointer is no longer inside the heap at all.
    assert_eq!(h.free(b), Err(MmError::BadPointer));
    h.validate().unwrap();
}

// --------------------------------------------------------------------- vm

/// Runs `body` on a fresh user space of a 16 MiB machine with an empty
/// descriptor table, then destroys the space and checks that every frame
/// came back.
fn with_vm(body: impl FnOnce(&World, &mut Vm<'_>, &mut FdTable)) {
    let w = World::new(16 * MIB);
    let mut vm = w.space();
    let mut fds = FdTable::new();
    body(&w, &mut vm, &mut fds);
    vm.destroy();
    w.finish();
}

fn errno<T: std::fmt::Debug>(r: Result<T, MmError>) -> i32 {
    r.unwrap_err().errno()
}

#[test]
fn vm_mmap_fd_out_of_range_or_negative_is_ebadf() {
    with_vm(|_, vm, fds| {
        let fs = MemFs::new();
        fs.create("f", b"data");
        let fd = fds.insert(fs.open("f", OpenMode::ReadWrite).unwrap());
        for bad in [fd + 1, 1024, i32::MAX, -2, -4096, i32::MIN] {
            for flags in [MAP_PRIVATE, MAP_SHARED, MAP_PRIVATE | MAP_FIXED] {
                let r = vm.mmap(fds, va(0x1000_0000), PAGE, PROT_READ, flags, bad, 0);
                assert_eq!(r, Err(MmError::BadFileDescriptor), "fd {bad}");
                assert_eq!(errno(r), EBADF);
            }
        }
        assert_eq!(vm.region_count(), 0);
    });
}

#[test]
fn vm_fd_table_get_and_close_of_bad_descriptors_are_ebadf() {
    let fs = MemFs::new();
    fs.create("f", b"x");
    let mut fds = FdTable::new();
    for bad in [-1, -2, 0, 7, i32::MAX, i32::MIN] {
        assert_eq!(fds.get(bad).err(), Some(MmError::BadFileDescriptor));
        assert_eq!(fds.close(bad).err(), Some(MmError::BadFileDescriptor));
    }
    let fd = fds.insert(fs.open("f", OpenMode::ReadOnly).unwrap());
    assert!(fds.close(fd).is_ok());
    assert_eq!(
        fds.close(fd).err(),
        Some(MmError::BadFileDescriptor),
        "closing twice"
    );
    assert!(fds.is_empty());
}

#[test]
fn vm_mmap_file_offset_plus_length_past_4gib_is_einval() {
    with_vm(|w, vm, fds| {
        let fs = MemFs::new();
        fs.create("f", &[1; 8192]);
        let fd = fds.insert(fs.open("f", OpenMode::ReadOnly).unwrap());
        let off = 0xFFFF_F000;
        assert_eq!(
            errno(vm.mmap(fds, NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, off)),
            EINVAL
        );
        // One page at the very last file page is fine (pages past EOF: SIGBUS).
        let a = vm
            .mmap(fds, NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, off)
            .unwrap();
        assert_eq!(
            w.read_u32(vm, a, U),
            Err(FaultOutcome::Signal(Signal::Bus { addr: a }))
        );
    });
}

#[test]
fn vm_mmap_fixed_wrapping_past_4gib_is_out_of_range() {
    with_vm(|_, vm, fds| {
        let cases = [
            (0xFFFF_F000, 2 * PAGE),
            (0xBFFF_F000, 2 * PAGE),
            (0x1000_0000, 0xB000_1000),
            (KERNEL_BASE, PAGE),
        ];
        for (addr, len) in cases {
            let r = vm.mmap(fds, va(addr), len, RW, ANON | MAP_FIXED, -1, 0);
            assert_eq!(r, Err(MmError::OutOfRange), "{addr:#x} + {len:#x}");
            assert_eq!(errno(r), EINVAL);
        }
        assert_eq!(vm.region_count(), 0);
    });
}

#[test]
fn vm_mmap_length_larger_than_user_space_is_enomem() {
    with_vm(|_, vm, fds| {
        for len in [u32::MAX, 0xFFFF_F001, USER_END] {
            let r = vm.mmap(fds, NULL, len, RW, ANON, -1, 0);
            assert_eq!(errno(r), ENOMEM, "{len:#x}");
        }
        assert_eq!(vm.region_count(), 0);
    });
}

#[test]
fn vm_mmap_hint_that_wraps_or_is_unaligned_is_ignored() {
    with_vm(|_, vm, fds| {
        for hint in [0xFFFF_FFFF, 0xFFFF_F000, 0xBFFF_F001, 0x10, USER_END - 1] {
            let a = vm.mmap(fds, va(hint), 2 * PAGE, RW, ANON, -1, 0).unwrap();
            assert!(
                a.as_u32() >= USER_MMAP_MIN && a.as_u32() + 2 * PAGE <= USER_END,
                "hint {hint:#x} gave {a:?}"
            );
            assert!(a.is_page_aligned());
            vm.munmap(a, 2 * PAGE).unwrap();
        }
        // An unaligned hint in a free range is rounded up to the next page.
        let a = vm
            .mmap(fds, va(0x2000_0001), PAGE, RW, ANON, -1, 0)
            .unwrap();
        assert_eq!(a, va(0x2000_1000));
    });
}

#[test]
fn vm_munmap_wrapping_past_4gib_or_past_user_space_is_einval() {
    with_vm(|_, vm, fds| {
        let a = vm.mmap(fds, NULL, PAGE, RW, ANON, -1, 0).unwrap();
        for (addr, len) in [
            (0xFFFF_F000, 2 * PAGE),
            (a.as_u32(), u32::MAX),
            (USER_END, PAGE),
            (KERNEL_BASE, PAGE),
        ] {
            let r = vm.munmap(va(addr), len);
            assert_eq!(r, Err(MmError::OutOfRange), "{addr:#x} + {len:#x}");
            assert_eq!(errno(r), EINVAL);
        }
        assert_eq!(vm.region_count(), 1, "nothing changed");
    });
}

#[test]
fn vm_munmap_of_a_never_mapped_or_already_unmapped_range_is_a_no_op() {
    with_vm(|w, vm, fds| {
        assert_eq!(vm.munmap(va(0x3000_0000), 16 * PAGE), Ok(()));
        assert_eq!(vm.munmap(va(0), PAGE), Ok(()), "below the mmap floor");
        let a = vm.mmap(fds, NULL, 4 * PAGE, RW, ANON, -1, 0).unwrap();
        w.write_u32(vm, a, 7, U).unwrap();
        let used = w.used();
        vm.munmap(a, 4 * PAGE).unwrap();
        assert!(w.used() < used, "the touched page went back");
        assert_eq!(vm.munmap(a, 4 * PAGE), Ok(()), "twice");
        assert_eq!(vm.region_count(), 0);
        assert_eq!(vm.resident_pages(), 0);
    });
}

#[test]
fn vm_mprotect_msync_on_a_destroyed_range_are_enomem() {
    with_vm(|_, vm, fds| {
        let a = vm.mmap(fds, NULL, 2 * PAGE, RW, ANON, -1, 0).unwrap();
        vm.munmap(a, 2 * PAGE).unwrap();
        assert_eq!(vm.mprotect(a, PAGE, PROT_READ), Err(MmError::NoRegion));
        assert_eq!(vm.msync(a, PAGE), Err(MmError::NoRegion));
        assert_eq!(errno(vm.msync(a, PAGE)), ENOMEM);
        // Never mapped at all, and below the mmap floor.
        assert_eq!(vm.mprotect(va(0x1000), PAGE, RW), Err(MmError::NoRegion));
        assert_eq!(vm.region_count(), 0);
    });
}

#[test]
fn vm_mprotect_msync_wrapping_or_zero_length_are_einval() {
    with_vm(|_, vm, fds| {
        let a = vm.mmap(fds, NULL, PAGE, RW, ANON, -1, 0).unwrap();
        for (addr, len) in [
            (0xFFFF_F000, 2 * PAGE),
            (a.as_u32(), u32::MAX),
            (USER_END, PAGE),
        ] {
            assert_eq!(
                vm.mprotect(va(addr), len, PROT_READ),
                Err(MmError::OutOfRange)
            );
            assert_eq!(vm.msync(va(addr), len), Err(MmError::OutOfRange));
        }
        assert_eq!(vm.msync(a, 0), Err(MmError::InvalidArgument));
        assert_eq!(vm.msync(at(a, 12), PAGE), Err(MmError::Misaligned));
        for prot in [0x8, 0x10, 0xFF, u32::MAX] {
            assert_eq!(
                vm.mprotect(a, PAGE, prot),
                Err(MmError::InvalidArgument),
                "{prot:#x}"
            );
        }
        assert_eq!(vm.region_at(a).unwrap().prot, Prot::READ | Prot::WRITE);
    });
}

#[test]
fn vm_prot_from_raw_with_unknown_bits_is_einval() {
    for raw in [0x8, 0x10, 0x8000_0000, u32::MAX, 0x7 | 0x100] {
        assert_eq!(raw::prot(raw), Err(MmError::InvalidArgument), "{raw:#x}");
    }
    assert_eq!(raw::prot(0x7), Ok(Prot::all()));
}

#[test]
fn vm_copy_user_wrapping_past_4gib_or_into_the_kernel_is_efault() {
    with_vm(|_, vm, fds| {
        let a = vm.mmap(fds, NULL, PAGE, RW, ANON, -1, 0).unwrap();
        let data = [0xAB; 32];
        let mut buf = [0u8; 32];
        for dst in [0xFFFF_FFF0, KERNEL_BASE, KERNEL_BASE - 16, HEAP_START] {
            let r = vm.copy_to_user(va(dst), &data);
            assert_eq!(r, Err(MmError::BadAddress), "{dst:#x}");
            assert_eq!(errno(r), EFAULT);
            assert_eq!(
                vm.copy_from_user(va(dst), &mut buf),
                Err(MmError::BadAddress)
            );
        }
        // Crossing from a mapped page into an unmapped one.
        assert_eq!(
            vm.copy_to_user(at(a, PAGE - 16), &data),
            Err(MmError::BadAddress)
        );
        // Into a destroyed range.
        vm.munmap(a, PAGE).unwrap();
        assert_eq!(vm.copy_to_user(a, &data), Err(MmError::BadAddress));
        assert_eq!(vm.copy_from_user(a, &mut buf), Err(MmError::BadAddress));
    });
}

#[test]
fn vm_access_to_a_destroyed_range_is_sigsegv() {
    with_vm(|w, vm, fds| {
        let a = vm.mmap(fds, NULL, 2 * PAGE, RW, ANON, -1, 0).unwrap();
        w.write_u32(vm, a, 1, U).unwrap();
        w.write_u32(vm, at(a, PAGE), 2, U).unwrap();
        vm.munmap(a, 2 * PAGE).unwrap();
        let segv = |addr| {
            FaultOutcome::Signal(Signal::Segv {
                addr,
                cause: SegvCause::NoRegion,
            })
        };
        assert_eq!(w.read_u32(vm, a, U), Err(segv(a)));
        assert_eq!(w.write_u32(vm, at(a, PAGE), 3, U), Err(segv(at(a, PAGE))));
        assert_eq!(w.read_u32(vm, a, S), Err(FaultOutcome::KernelBug));
        assert_eq!(vm.resident_pages(), 0);
    });
}

#[test]
fn vm_handle_fault_with_unknown_error_code_bits_or_any_address() {
    // Garbage in CR2 or the error code never panics: a user fault outside
    // any region is SIGSEGV, a supervisor one a kernel bug, and a reserved
    // bit a kernel bug.
    with_vm(|_, vm, _| {
        for addr in [0, 0xFFF, USER_MMAP_MIN, USER_END - 1, KERNEL_BASE, u32::MAX] {
            for code in [0x4, 0x6, 0x7, 0xC, 0x14, 0xFFFF_FFE4, 0xFFFF_FFF4, u32::MAX] {
                let out = vm.handle_fault(PageFault::new(addr, code));
                let user = code & ERR_USER != 0;
                let reserved = code & ERR_RESERVED != 0;
                match out {
                    FaultOutcome::KernelBug => assert!(reserved || !user, "{addr:#x} {code:#x}"),
                    FaultOutcome::Signal(Signal::Segv { addr: a, .. }) => {
                        assert!(user && !reserved);
                        assert_eq!(a, va(addr));
                    }
                    other => panic!("{addr:#x} {code:#x}: {other:?}"),
                }
            }
            let out = vm.handle_fault(PageFault::new(addr, 0));
            assert_eq!(out, FaultOutcome::KernelBug, "supervisor {addr:#x}");
        }
        assert_eq!(vm.resident_pages(), 0);
    });
}

#[test]
fn vm_map_stack_wrapping_or_overlapping_is_refused() {
    with_vm(|_, vm, fds| {
        assert_eq!(
            vm.map_stack(va(0xFFFF_F000), PAGE, PAGE),
            Err(MmError::OutOfRange)
        );
        assert_eq!(
            vm.map_stack(va(USER_END), PAGE, u32::MAX),
            Err(MmError::OutOfRange)
        );
        assert_eq!(
            vm.map_stack(va(USER_END), u32::MAX, u32::MAX),
            Err(MmError::OutOfRange)
        );
        let a = vm
            .mmap(fds, va(USER_END - PAGE), PAGE, RW, ANON | MAP_FIXED, -1, 0)
            .unwrap();
        assert_eq!(
            vm.map_stack(va(USER_END), 2 * PAGE, 16 * PAGE),
            Err(MmError::AlreadyMapped)
        );
        assert_eq!(vm.region_count(), 1);
        vm.munmap(a, PAGE).unwrap();
    });
}

/// Fills a 16-page heap: a big block, 32 blocks of about 1000 bytes (eight
/// quick-list classes of four), and a small block pinned at the top; frees
/// the 32 (quick-listed) and the pin (merged into the free top at once).
fn heap_with_quick_lists_below_the_top(mem: &mut [u8]) -> (Heap<ArenaBackend<'_>>, usize) {
    let mut h = heap(mem, 1, 16);
    let big = h.alloc(33_000, 8).unwrap();
    let mut small = Vec::new();
    for class in 0..8 {
        for _ in 0..4 {
            small.push(h.alloc(1000 - 8 * class, 8).unwrap());
        }
    }
    let pin = h.alloc(16, 8).unwrap();
    assert_eq!(
        h.stats().heap_bytes,
        16 * PAGE_SIZE,
        "the heap is at its max"
    );
    for p in small {
        h.free(p).unwrap();
    }
    h.free(pin).unwrap();
    h.validate().unwrap();
    (h, big.as_ptr().addr())
}

/// Regression test (finding F3): a request that did not fit until the quick
/// lists were merged was refused with `OutOfMemory` when the merge freed the
/// top: the merge gave the pages back at once, and the request was then
/// looked up in the shrunk heap. It is served now.
#[test]
fn heap_alloc_served_from_room_the_quick_list_merge_makes() {
    let mut mem = arena(16);
    let (mut h, _) = heap_with_quick_lists_below_the_top(&mut mem);
    let before = h.stats();
    assert!(
        before.largest_free < 20_000 && before.free_bytes > 30_000,
        "{before:?}"
    );
    let p = h.alloc(20_000, 8).expect("fits once the free blocks merge");
    h.validate().unwrap();
    h.free(p).unwrap();
    let (mut h2, _) = {
        drop(h);
        heap_with_quick_lists_below_the_top(&mut mem)
    };
    let q = h2
        .alloc_page_aligned(20_000)
        .expect("page-aligned, likewise");
    h2.free(q).unwrap();
    h2.validate().unwrap();
}

/// Regression test (finding F1): a refused request leaves the heap's size,
/// free and used bytes as they were, even when it merged the quick lists
/// (it used to shrink the heap).
#[test]
fn heap_refused_request_after_a_quick_list_merge_changes_nothing() {
    let mut mem = arena(16);
    let (mut h, _) = heap_with_quick_lists_below_the_top(&mut mem);
    let before = h.stats();
    assert_eq!(h.alloc(60_000, 8), Err(MmError::OutOfMemory));
    let after = h.stats();
    assert_eq!(
        (after.heap_bytes, after.free_bytes, after.used_bytes),
        (before.heap_bytes, before.free_bytes, before.used_bytes)
    );
    assert_eq!(
        after.total_blocks - after.free_blocks,
        before.total_blocks - before.free_blocks
    );
    h.validate().unwrap();
    // Nothing lost: the heap still shrinks when the last block goes.
    h.trim();
    assert!(h.stats().heap_bytes < before.heap_bytes);
}

/// Regression test (finding F3, aligned path): a page-aligned request that
/// fits a free block only once the quick lists are merged was refused: after
/// the merge only the pessimistic lookup (size + alignment) was retried.
#[test]
fn heap_aligned_alloc_served_after_the_quick_list_merge() {
    let mut mem = arena(2);
    let mut h = heap(&mut mem, 2, 2);
    let a = h.alloc_physical(3740, false).unwrap().0;
    let b = h.alloc_page_aligned(0).unwrap();
    assert_eq!(b.as_ptr().addr() % PAGE_SIZE, 0);
    h.free(b).unwrap();
    let c = h
        .alloc_page_aligned(2421)
        .expect("a page-aligned block fits once the freed one merges");
    assert_eq!(c.as_ptr().addr() % PAGE_SIZE, 0);
    h.validate().unwrap();
    h.free(c).unwrap();
    h.free(a).unwrap();
    h.validate().unwrap();
}
