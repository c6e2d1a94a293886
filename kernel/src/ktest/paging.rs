//! Paging with the real MMU and TLB: map, write, translate, unmap; remap;
//! read-only protection; a user address space's life; a high frame seen
//! through the MMU and the kmap window alike.

use myos_mm::frames::{FrameSource, Zone};
use myos_mm::layout::{PAGE_SIZE, PHYS_END};
use myos_mm::paging::{AddressSpace, Entry, PteFlags};
use myos_mm::vm::{MapRequest, MapSource, Prot};
use myos_mm::{Page, Platform, VirtAddr};

use super::support::{
    check, map_fresh, read_stamp, stamp, unmap_release, TestResult, TEST_VA, TEST_VA2,
};
use crate::arch::cpu::UserAccess;
use crate::mm::{self, with_kernel_space, Mm};
use crate::platform::Paging;
use crate::println;
use crate::process::UserSpace;

pub(super) fn map_write_translate_unmap(mm: &Mm) -> TestResult {
    with_kernel_space!(mm, |kernel| {
        let mut space = kernel.lock();
        let frame = map_fresh(mm, &mut space, TEST_VA, PteFlags::WRITABLE, Zone::Direct)?;
        let ptr = TEST_VA as *mut u32;
        // SAFETY: TEST_VA was just mapped writable to a frame we own.
        unsafe { ptr.add(5).write_volatile(0xDEAD_BEEF) };
        let mut b = [0u8; 4];
        mm.platform().read_frame(frame, 20, &mut b);
        let translated = space.translate(mm.platform(), VirtAddr::new(TEST_VA + 20));
        check!(
            u32::from_le_bytes(b) == 0xDEAD_BEEF,
            "write through the mapping did not reach the frame"
        );
        check!(
            translated.map(|p| p.as_u32()) == Some(frame.start().as_u32() + 20),
            "translate disagrees with the MMU"
        );
        unmap_release(mm, &mut space, TEST_VA)?;
        check!(
            space
                .translate(mm.platform(), VirtAddr::new(TEST_VA))
                .is_none(),
            "still mapped after unmap"
        );
        check!(
            space.user_table_count(mm.platform()) == 0,
            "empty page table not freed"
        );
        Ok(())
    })
}

pub(super) fn remap_shows_new_data(mm: &Mm) -> TestResult {
    with_kernel_space!(mm, |kernel| {
        let mut space = kernel.lock();
        let a = map_fresh(mm, &mut space, TEST_VA, PteFlags::WRITABLE, Zone::Direct)?;
        stamp(mm, a, 0x1111_1111);
        // SAFETY: TEST_VA is mapped to `a`; reading it fills the TLB.
        let first = unsafe { (TEST_VA as *const u32).read_volatile() };
        let b = mm
            .frames()
            .lock()
            .alloc(Zone::High)
            .map_err(|_| "out of frames")?;
        stamp(mm, b.frame(), 0x2222_2222);
        let page = Page::from_start(VirtAddr::new(TEST_VA)).map_err(|_| "misaligned")?;
        let (old, flush) = space
            .remap(mm.platform(), &mut mm.frames(), page, b, PteFlags::WRITABLE)
            .map_err(|_| "remap failed")?;
        flush.flush(mm.platform());
        // SAFETY: TEST_VA is now mapped to `b`.
        let second = unsafe { (TEST_VA as *const u32).read_volatile() };
        if let Some(old) = old {
            let _ = mm.frames().lock().release(old);
        }
        unmap_release(mm, &mut space, TEST_VA)?;
        check!(first == 0x1111_1111, "first mapping read wrong data");
        check!(
            second == 0x2222_2222,
            "stale TLB entry: remapped page shows the old frame"
        );
        Ok(())
    })
}

pub(super) fn protect_read_only(mm: &Mm) -> TestResult {
    with_kernel_space!(mm, |kernel| {
        let mut space = kernel.lock();
        map_fresh(mm, &mut space, TEST_VA, PteFlags::WRITABLE, Zone::Direct)?;
        let page = Page::from_start(VirtAddr::new(TEST_VA)).map_err(|_| "misaligned")?;
        space
            .protect(mm.platform(), page, PteFlags::empty())
            .map_err(|_| "protect failed")?
            .flush(mm.platform());
        let entry = space.entry(mm.platform(), page).ok_or("entry vanished")?;
        check!(
            !entry.flags().contains(PteFlags::WRITABLE),
            "protect left the page writable"
        );
        check!(entry.is_present(), "protect unmapped the page");
        unmap_release(mm, &mut space, TEST_VA)
    })
}

pub(super) fn user_space_lifecycle(mm: &Mm) -> TestResult {
    let before = mm::frame_stats();
    with_kernel_space!(mm, |kernel| {
        let kernel = kernel.lock();
        let mut user = AddressSpace::new_user(mm.platform(), &mut mm.frames(), &kernel)
            .map_err(|_| "new_user failed")?;
        let flags = PteFlags::WRITABLE | PteFlags::USER;
        let a = map_fresh(mm, &mut user, TEST_VA, flags, Zone::High)?;
        map_fresh(mm, &mut user, TEST_VA2, flags, Zone::Direct)?;
        user.activate(mm.platform());
        {
            // User pages: ring 0 writes them only inside a user-access window
            // (SMAP).
            let _window = UserAccess::begin();
            // SAFETY: both pages are mapped writable in the active space.
            unsafe {
                (TEST_VA as *mut u32).write_volatile(0x5EED);
                (TEST_VA2 as *mut u32).write_volatile(0xF00D);
            }
        }
        kernel.activate(mm.platform());
        let seen = read_stamp(mm, a);
        let tables = user.user_table_count(mm.platform());
        user.destroy(mm.platform(), &mut mm.frames());
        let after = mm::frame_stats();
        check!(
            seen == 0x5EED,
            "write in the user space did not reach its frame"
        );
        check!(tables == 2, "expected two user page tables");
        check!(
            after.free == before.free,
            "destroy did not give every frame back"
        );
        Ok(())
    })
}

pub(super) fn high_frame_through_mmu(mm: &Mm) -> TestResult {
    with_kernel_space!(mm, |kernel| {
        let mut space = kernel.lock();
        let frame = map_fresh(mm, &mut space, TEST_VA, PteFlags::WRITABLE, Zone::High)?;
        // SAFETY: TEST_VA maps `frame`, writable.
        unsafe { (TEST_VA as *mut u32).add(100).write_volatile(0xC0FF_EE00) };
        let mut b = [0u8; 4];
        mm.platform().read_frame(frame, 400, &mut b);
        unmap_release(mm, &mut space, TEST_VA)?;
        check!(
            u32::from_le_bytes(b) == 0xC0FF_EE00,
            "MMU write and kmap read disagree"
        );
        Ok(())
    })
}

/// A process's address space (the kernel's `UserSpace`) gets its pages
/// from above 4 GiB in PAE mode when there is RAM there (from below
/// otherwise): pages faulted in by `copy_to_user` are read back through
/// kmap, then through the MMU with the space loaded (ring 0, inside a
/// user-access window), written through the MMU and read back through
/// kmap again; dropping the space gives every frame back.
pub(super) fn user_pages_above_4g(mm: &Mm) -> TestResult {
    const PAGES: u32 = 64;
    let before = mm::frame_stats();
    let held_before = mm::user_frames_above_4g();
    let mut vm = UserSpace::new().map_err(|_| "cannot create a user space")?;
    let base = vm
        .map(&MapRequest {
            addr: Some(VirtAddr::new(TEST_VA)),
            length: PAGES * PAGE_SIZE as u32,
            prot: Prot::READ | Prot::WRITE,
            shared: false,
            fixed: true,
            source: MapSource::Anonymous,
        })
        .map_err(|_| "mmap failed")?
        .as_u32();
    let va = |i: u32| base + i * PAGE_SIZE as u32;
    let word = |i: u32| 0xA0A0_0000 | i;
    let mut frames = alloc::vec::Vec::new();
    for i in 0..PAGES {
        vm.copy_to_user(VirtAddr::new(va(i)), &word(i).to_le_bytes())
            .map_err(|_| "copy_to_user failed")?;
        let phys = vm
            .translate(VirtAddr::new(va(i)))
            .ok_or("page not mapped")?;
        frames.push(phys.frame());
    }
    let above = frames
        .iter()
        .filter(|f| f.start().as_u64() >= PHYS_END)
        .count() as u32;
    let held = mm::user_frames_above_4g().saturating_sub(held_before);
    let kmap_ok = frames
        .iter()
        .enumerate()
        .all(|(i, &f)| read_stamp(mm, f) == word(i as u32));
    // Through the MMU, as the process would see them.
    let cpus = vm.cpus();
    // SAFETY: `vm` lives until after the kernel's directory is loaded again
    // below; no thread runs on this CPU (the tests run in the kernel).
    unsafe { cpus.activate(mm.platform()) };
    let mmu_ok = {
        let _window = UserAccess::begin();
        (0..PAGES).all(|i| {
            // SAFETY: the page is mapped readable and writable in the loaded space.
            unsafe {
                let p = va(i) as *mut u32;
                let seen = p.read_volatile();
                p.add(1).write_volatile(!word(i));
                seen == word(i)
            }
        })
    };
    // SAFETY: the kernel's directory maps the kernel half this code runs in.
    unsafe { mm.platform().set_root(mm.kernel_root()) };
    // SAFETY: the space is no longer loaded here.
    unsafe { cpus.leave(mm.platform()) };
    let back_ok = frames.iter().enumerate().all(|(i, &f)| {
        let mut b = [0u8; 4];
        mm.platform().read_frame(f, 4, &mut b);
        u32::from_le_bytes(b) == !word(i as u32)
    });
    drop(vm);
    let after = mm::frame_stats();
    let expect_above = mm.paging() == Paging::Pae && mm::ram_end() > PHYS_END;
    println!(
        "    {PAGES} user pages: {above} above 4 GiB (expected {})",
        if expect_above { "all" } else { "none" }
    );
    check!(kmap_ok, "a page's contents differ through kmap");
    check!(mmu_ok, "a page's contents differ through the MMU");
    check!(back_ok, "an MMU write did not reach the frame");
    check!(
        above == if expect_above { PAGES } else { 0 },
        "user pages are not where the paging mode puts them"
    );
    check!(
        held == above,
        "the above-4-GiB count disagrees with the page tables"
    );
    check!(
        mm::user_frames_above_4g() == held_before,
        "frames above 4 GiB still counted after the space went"
    );
    check!(
        after.free == before.free,
        "dropping the space did not give every frame back"
    );
    Ok(())
}
