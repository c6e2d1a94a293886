//! The in-kernel test runner: each test by name, pass or fail over the
//! serial console, then the verdict through `isa-debug-exit`.
//!
//! The tests exercise the core on real (emulated) hardware: the frame
//! allocator over the firmware's map (all of it, high memory through the
//! kmap window included), paging with the real MMU and TLB, interrupts.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use myos_mm::frames::{FrameSource, Zone};
use myos_mm::layout::{DIRECT_ZONE_END, HEAP_END, PAGE_SIZE};
use myos_mm::paging::{AddressSpace, PteFlags};
use myos_mm::{Frame, Page, Platform, VirtAddr};

use crate::arch::pit;
use crate::exit::{exit_qemu, ExitCode};
use crate::mm::{self, Mm};
use crate::process::{self, sig, WaitStatus};
use crate::{println, trap};

/// A failed check: what went wrong.
pub type TestResult = Result<(), &'static str>;

/// Fails the test with `msg` unless `cond` holds.
macro_rules! check {
    ($cond:expr, $msg:expr) => {
        if !$cond {
            return Err($msg);
        }
    };
}

/// A kernel-half test address in the user half of the kernel space (no
/// process runs there): mapped supervisor-only, page by page.
const TEST_VA: u32 = 0x1000_0000;
/// A second test address, in another page table.
const TEST_VA2: u32 = 0x2040_0000;

/// One kernel test.
type KernelTest = fn(&Mm) -> TestResult;

/// Every test, by name.
const TESTS: &[(&str, KernelTest)] = &[
    (
        "boot::reserved_areas_respected",
        boot_reserved_areas_respected,
    ),
    ("frames::alloc_share_release", frames_alloc_share_release),
    ("frames::contiguous_aligned", frames_contiguous_aligned),
    ("frames::all_ram_accounted", frames_all_ram_accounted),
    (
        "frames::high_memory_through_kmap",
        frames_high_memory_through_kmap,
    ),
    (
        "paging::map_write_translate_unmap",
        paging_map_write_translate_unmap,
    ),
    ("paging::remap_shows_new_data", paging_remap_shows_new_data),
    ("paging::protect_read_only", paging_protect_read_only),
    ("paging::user_space_lifecycle", paging_user_space_lifecycle),
    (
        "paging::high_frame_through_mmu",
        paging_high_frame_through_mmu,
    ),
    ("heap::box_vec_btreemap", heap_box_vec_btreemap),
    ("heap::grows_and_gives_back", heap_grows_and_gives_back),
    ("heap::bad_free_refused", heap_bad_free_refused),
    ("interrupts::timer_ticks", interrupts_timer_ticks),
    ("user::demand_paging", |_| {
        user_program("demand", WaitStatus::exited(0))
    }),
    ("user::fork_cow", |_| {
        user_program("cow", WaitStatus::exited(0))
    }),
    ("user::shared_anon_across_fork", |_| {
        user_program("shared", WaitStatus::exited(0))
    }),
    ("user::file_mappings", |_| {
        user_program("files", WaitStatus::exited(0))
    }),
    ("user::fork_of_fork_orphan", |_| {
        user_program("forktree", WaitStatus::exited(0))
    }),
    ("user::preemption", |_| {
        user_program("preempt", WaitStatus::exited(0))
    }),
    ("user::fpu_state_per_process", |_| {
        user_program("fpu", WaitStatus::exited(0))
    }),
    ("user::stack_growth", |_| {
        user_program("stack", WaitStatus::exited(0))
    }),
    ("user::bad_syscall_arguments", |_| {
        user_program("badcalls", WaitStatus::exited(0))
    }),
    ("user::mprotect_read_only_then_writable", |_| {
        user_program("mprotect", WaitStatus::exited(0))
    }),
    ("user::sigbus_past_end_of_file", |_| {
        user_program("sigbus", WaitStatus::signaled(sig::SIGBUS))
    }),
    ("user::privileged_instruction_sigsegv", |_| {
        user_program("privileged", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("user::invalid_instruction_sigill", |_| {
        user_program("badinsn", WaitStatus::signaled(sig::SIGILL))
    }),
    (
        "user::out_of_memory_kills_only_the_process",
        user_out_of_memory,
    ),
    ("misbehaving::wild_addresses", |_| {
        user_program("wild", WaitStatus::exited(0))
    }),
    ("misbehaving::stack_overflow", |_| {
        user_program("stackbomb", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("misbehaving::munmap_own_stack", |_| {
        user_program("unmapstack", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("misbehaving::huge_and_overlapping_mmaps", |_| {
        user_program("mmapstorm", WaitStatus::exited(0))
    }),
    ("misbehaving::random_system_calls", |_| {
        user_program("sysfuzz", WaitStatus::exited(0))
    }),
    ("misbehaving::fork_bomb", |_| {
        user_program("forkbomb", WaitStatus::exited(0))
    }),
    ("user::segv_write_read_only", |_| {
        user_program("segv_readonly", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("user::segv_null", |_| {
        user_program("segv_null", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("user::segv_after_munmap", |_| {
        user_program("segv_unmapped", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("user::segv_kernel_address", |_| {
        user_program("segv_kernel", WaitStatus::signaled(sig::SIGSEGV))
    }),
    (
        "interrupts::breakpoint_recovers",
        interrupts_breakpoint_recovers,
    ),
];

/// Runs every test and exits QEMU with the verdict.
pub fn run_all(mm: &Mm) -> ! {
    crate::demo::init_processes();
    println!("running {} kernel tests", TESTS.len());
    mm::heap_trim();
    let (suite_frames, suite_heap) = (mm::frame_stats(), mm::heap_stats());
    let mut failed = 0;
    for (name, test) in TESTS {
        mm::heap_trim();
        let heap_before = mm::heap_stats();
        let before = mm::frame_stats();
        let mut result = test(mm);
        mm::heap_trim();
        let after = mm::frame_stats();
        if result.is_ok() && (after.free != before.free || after.used != before.used) {
            result = Err("frames leaked (free/used counts differ from before the test)");
        }
        if result.is_ok() && mm::heap_stats().used_bytes != heap_before.used_bytes {
            result = Err("heap bytes leaked");
        }
        match result {
            Ok(()) => println!("test {name} ... ok"),
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED: {why}");
            }
        }
    }
    mm::heap_trim();
    let (end_frames, end_heap) = (mm::frame_stats(), mm::heap_stats());
    let back = end_frames.free == suite_frames.free && end_heap.used_bytes == suite_heap.used_bytes;
    println!(
        "whole suite: free frames {} -> {}, heap in use {} -> {} bytes ({})",
        suite_frames.free,
        end_frames.free,
        suite_heap.used_bytes,
        end_heap.used_bytes,
        if back { "back to baseline" } else { "LEAK" }
    );
    if !back {
        failed += 1;
    }
    let (deepest, size) = process::kstack_high_water();
    println!("process kernel stacks: deepest use {deepest} of {size} bytes");
    if failed == 0 {
        println!("test result: ok. {} passed; 0 failed", TESTS.len());
        exit_qemu(ExitCode::Success)
    } else {
        println!(
            "test result: FAILED. {} passed; {failed} failed",
            TESTS.len() - failed
        );
        exit_qemu(ExitCode::Failure)
    }
}

/// Writes `value` into the first word of `frame`.
fn stamp(mm: &Mm, frame: Frame, value: u32) {
    mm.platform().write_frame(frame, 0, &value.to_le_bytes());
}

/// Reads the first word of `frame`.
fn read_stamp(mm: &Mm, frame: Frame) -> u32 {
    let mut b = [0u8; 4];
    mm.platform().read_frame(frame, 0, &mut b);
    u32::from_le_bytes(b)
}

/// Every usable frame of the firmware map is either managed by the frame
/// allocator or touched by a reservation (kernel image, boot data), and no
/// reserved frame is managed.
fn boot_reserved_areas_respected(mm: &Mm) -> TestResult {
    use myos_mm::frames::RegionKind;
    const PAGE: u64 = PAGE_SIZE as u64;
    let boot = crate::multiboot::get().ok_or("no boot information")?;
    let regions = boot.regions();
    let usable: Vec<(u64, u64)> = regions
        .iter()
        .filter(|r| r.kind == RegionKind::Usable)
        .map(|r| (r.start.div_ceil(PAGE), r.end / PAGE))
        .collect();
    let reserved: Vec<(u64, u64)> = regions
        .iter()
        .filter(|r| r.kind == RegionKind::Reserved)
        .map(|r| (r.start / PAGE, r.end.div_ceil(PAGE)))
        .collect();
    let fa = mm.frames().lock();
    let mut kept = 0u64;
    for (i, &(lo, hi)) in reserved.iter().enumerate() {
        for &(ulo, uhi) in &usable {
            for f in lo.max(ulo)..hi.min(uhi) {
                let earlier = reserved[..i].iter().any(|&(a, b)| (a..b).contains(&f));
                if earlier {
                    continue;
                }
                kept += 1;
                let frame = Frame::from_number(f as u32).map_err(|_| "frame out of range")?;
                check!(
                    !fa.manages(frame),
                    "a reserved frame is managed by the allocator"
                );
            }
        }
    }
    let managed = u64::from(fa.stats().total);
    check!(
        boot.usable_frames() == managed + kept,
        "usable frames != managed + reserved"
    );
    let (image_start, image_end) = crate::layout::kernel_image_phys();
    for f in u64::from(image_start) / PAGE..u64::from(image_end).div_ceil(PAGE) {
        let frame = Frame::from_number(f as u32).map_err(|_| "frame out of range")?;
        check!(
            !fa.manages(frame),
            "a kernel-image frame is managed by the allocator"
        );
    }
    println!(
        "    {} usable frames = {managed} managed + {kept} reserved",
        boot.usable_frames()
    );
    Ok(())
}

fn frames_alloc_share_release(mm: &Mm) -> TestResult {
    let mut fa = mm.frames().lock();
    let f = fa.alloc(Zone::Direct).map_err(|_| "alloc failed")?;
    check!(fa.refcount(f) == Ok(1), "fresh frame refcount is not 1");
    fa.share(f).map_err(|_| "share failed")?;
    check!(fa.refcount(f) == Ok(2), "shared frame refcount is not 2");
    check!(fa.release(f) == Ok(false), "first release freed the frame");
    check!(
        fa.release(f) == Ok(true),
        "last release did not free the frame"
    );
    check!(fa.release(f).is_err(), "double free was not reported");
    check!(fa.validate().is_ok(), "allocator invariants broken");
    Ok(())
}

fn frames_contiguous_aligned(mm: &Mm) -> TestResult {
    const COUNT: u32 = 16;
    const ALIGN_LOG2: u32 = 4;
    let mut fa = mm.frames().lock();
    let first = fa
        .alloc_contiguous(COUNT, ALIGN_LOG2, Zone::Low)
        .map_err(|_| "no DMA run")?;
    check!(
        first.number() % (1 << ALIGN_LOG2) == 0,
        "run is not aligned"
    );
    check!(
        u64::from(first.start().as_u32()) < myos_mm::layout::LOW_ZONE_END,
        "run is not in the low zone"
    );
    for i in 0..COUNT {
        let f = first.checked_add(i).ok_or("run overflows")?;
        check!(fa.release(f) == Ok(true), "run frame was not allocated");
    }
    Ok(())
}

/// Allocates every free frame (writing each one, so RAM above the direct map
/// is really used), chains them through their first word, then frees them.
fn frames_all_ram_accounted(mm: &Mm) -> TestResult {
    let start = mm::frame_stats();
    const END: u32 = u32::MAX;
    let mut head = END;
    let mut count = 0u32;
    let mut high = 0u32;
    loop {
        let f = match mm.frames().lock().alloc(Zone::High) {
            Ok(f) => f,
            Err(_) => break,
        };
        if u64::from(f.start().as_u32()) >= DIRECT_ZONE_END {
            high += 1;
        }
        stamp(mm, f, head);
        head = f.number();
        count += 1;
    }
    let exhausted = mm::frame_stats();
    let mut freed = 0u32;
    let mut chain_ok = true;
    while head != END {
        let f = Frame::from_number(head).map_err(|_| "chain corrupted")?;
        let next = read_stamp(mm, f);
        if mm.frames().lock().release(f) != Ok(true) {
            chain_ok = false;
        }
        head = next;
        freed += 1;
        if freed > count {
            return Err("chain longer than the allocations");
        }
    }
    check!(
        count == start.free,
        "allocated a different number of frames than were free"
    );
    check!(exhausted.free == 0, "frames left free after exhaustion");
    check!(
        chain_ok && freed == count,
        "frame contents did not survive (chain broken)"
    );
    let expect_high = mm::ram_end() > DIRECT_ZONE_END;
    check!(
        (high > 0) == expect_high,
        "high memory use does not match the RAM size"
    );
    println!(
        "    {count} frames ({} MiB) allocated, written and freed; {high} above the direct map",
        count / 256
    );
    Ok(())
}

fn frames_high_memory_through_kmap(mm: &Mm) -> TestResult {
    let high = match mm.frames().lock().alloc(Zone::High) {
        Ok(f) => f,
        Err(_) => return Err("no frame"),
    };
    let direct = match mm.frames().lock().alloc(Zone::Direct) {
        Ok(f) => f,
        Err(_) => return Err("no direct frame"),
    };
    let p = mm.platform();
    let pattern = [0xA5u8; 64];
    p.zero_frame(high);
    p.write_frame(high, PAGE_SIZE - pattern.len(), &pattern);
    p.copy_frame(direct, high);
    let mut back = [0u8; 64];
    p.read_frame(direct, PAGE_SIZE - back.len(), &mut back);
    let mut head = [0xFFu8; 16];
    p.read_frame(high, 0, &mut head);
    let mut fa = mm.frames().lock();
    let _ = fa.release(high);
    let _ = fa.release(direct);
    check!(
        back == pattern,
        "copy from a (possibly high) frame lost data"
    );
    check!(head == [0u8; 16], "zeroed frame is not zero");
    Ok(())
}

/// Maps a fresh frame at `va` in the kernel space with `flags`.
fn map_fresh(
    mm: &Mm,
    space: &mut AddressSpace,
    va: u32,
    flags: PteFlags,
    zone: Zone,
) -> Result<Frame, &'static str> {
    let frame = mm
        .frames()
        .lock()
        .alloc(zone)
        .map_err(|_| "out of frames")?;
    mm.platform().zero_frame(frame);
    let page = Page::from_start(VirtAddr::new(va)).map_err(|_| "misaligned")?;
    space
        .map(mm.platform(), &mut mm.frames(), page, frame, flags)
        .map_err(|_| "map failed")?
        .flush(mm.platform());
    Ok(frame)
}

/// Unmaps `va` in `space` and releases its frame.
fn unmap_release(mm: &Mm, space: &mut AddressSpace, va: u32) -> TestResult {
    let page = Page::from_start(VirtAddr::new(va)).map_err(|_| "misaligned")?;
    let (frame, flush) = space
        .unmap(mm.platform(), &mut mm.frames(), page)
        .map_err(|_| "unmap failed")?;
    flush.flush(mm.platform());
    mm.frames()
        .lock()
        .release(frame)
        .map_err(|_| "release failed")?;
    Ok(())
}

fn paging_map_write_translate_unmap(mm: &Mm) -> TestResult {
    let mut space = mm.kernel_space().lock();
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
}

fn paging_remap_shows_new_data(mm: &Mm) -> TestResult {
    let mut space = mm.kernel_space().lock();
    let a = map_fresh(mm, &mut space, TEST_VA, PteFlags::WRITABLE, Zone::Direct)?;
    stamp(mm, a, 0x1111_1111);
    // SAFETY: TEST_VA is mapped to `a`; reading it fills the TLB.
    let first = unsafe { (TEST_VA as *const u32).read_volatile() };
    let b = mm
        .frames()
        .lock()
        .alloc(Zone::High)
        .map_err(|_| "out of frames")?;
    stamp(mm, b, 0x2222_2222);
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
}

fn paging_protect_read_only(mm: &Mm) -> TestResult {
    let mut space = mm.kernel_space().lock();
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
}

fn paging_user_space_lifecycle(mm: &Mm) -> TestResult {
    let before = mm::frame_stats();
    let kernel = mm.kernel_space().lock();
    let mut user = AddressSpace::new_user(mm.platform(), &mut mm.frames(), &kernel)
        .map_err(|_| "new_user failed")?;
    let flags = PteFlags::WRITABLE | PteFlags::USER;
    let a = map_fresh(mm, &mut user, TEST_VA, flags, Zone::High)?;
    map_fresh(mm, &mut user, TEST_VA2, flags, Zone::Direct)?;
    user.activate(mm.platform());
    // SAFETY: both pages are mapped writable in the active space.
    unsafe {
        (TEST_VA as *mut u32).write_volatile(0x5EED);
        (TEST_VA2 as *mut u32).write_volatile(0xF00D);
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
}

fn paging_high_frame_through_mmu(mm: &Mm) -> TestResult {
    let mut space = mm.kernel_space().lock();
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
}

fn heap_box_vec_btreemap(_mm: &Mm) -> TestResult {
    let before = mm::heap_stats();
    {
        let b = Box::new(0x1234_5678u32);
        let mut v: Vec<u64> = (0..1000).collect();
        v.push(*b as u64);
        let mut map = BTreeMap::new();
        for i in 0..200u32 {
            map.insert(i, alloc::format!("value {i}"));
        }
        check!(
            v.iter().sum::<u64>() == 499_500 + 0x1234_5678,
            "vector contents wrong"
        );
        check!(
            map.get(&150).map(|s| s.as_str()) == Some("value 150"),
            "map contents wrong"
        );
    }
    check!(mm::heap_validate().is_ok(), "heap metadata corrupted");
    check!(
        mm::heap_stats().used_bytes == before.used_bytes,
        "heap bytes leaked"
    );
    Ok(())
}

fn heap_grows_and_gives_back(_mm: &Mm) -> TestResult {
    const BIG: usize = 4 << 20;
    let before = mm::heap_stats();
    let frames_before = mm::frame_stats();
    let mut v: Vec<u8> = Vec::new();
    check!(v.try_reserve_exact(BIG).is_ok(), "4 MiB allocation failed");
    v.resize(BIG, 0x5A);
    let grown = mm::heap_stats();
    let frames_grown = mm::frame_stats();
    check!(
        v.iter().step_by(4096).all(|&b| b == 0x5A),
        "heap memory lost data"
    );

    drop(v);
    mm::heap_trim();
    let after = mm::heap_stats();
    check!(
        grown.heap_bytes >= BIG && grown.heap_bytes > before.heap_bytes,
        "heap did not grow"
    );
    let grown_pages = (grown.heap_bytes - before.heap_bytes) / PAGE_SIZE;
    check!(
        (frames_before.free - frames_grown.free) as usize == grown_pages,
        "heap growth and frames taken disagree"
    );
    check!(
        after.heap_bytes + BIG / 2 <= grown.heap_bytes,
        "heap did not shrink"
    );
    Ok(())
}

fn heap_bad_free_refused(_mm: &Mm) -> TestResult {
    let b = Box::new([7u8; 64]);
    let p = Box::into_raw(b);
    let ptr = core::ptr::NonNull::new(p.cast::<u8>()).ok_or("null box")?;
    let inner = ptr.as_ptr().wrapping_add(8);
    let second = mm::with_heap(|h| {
        let first = h.free(ptr);
        let second = h.free(ptr);
        let bad = core::ptr::NonNull::new(inner).map(|q| h.free(q));
        (first, second, bad)
    });
    let (first, second, bad) = second.ok_or("no heap")?;
    check!(first.is_ok(), "first free refused");
    check!(second.is_err(), "double free not reported");
    check!(
        matches!(bad, Some(Err(_))),
        "free of an interior pointer not refused"
    );
    Ok(())
}

/// Runs the user program `name` to completion (its children too) and
/// checks how it ended.
fn user_program(name: &'static str, expect: WaitStatus) -> TestResult {
    let pid = process::spawn(name).map_err(|_| "cannot start the program")?;
    process::run_until_idle();
    let result = process::family_result(pid).ok_or("no result")?;
    process::clear_results();
    if result.status != expect {
        println!("    {name}: {} (expected {expect})", result.status);
        return Err("unexpected exit status");
    }
    Ok(())
}

/// Most RAM the out-of-memory test runs with (it touches every frame).
const OOM_TEST_MAX_RAM: u64 = 256 << 20;

fn user_out_of_memory(_mm: &Mm) -> TestResult {
    if mm::ram_end() > OOM_TEST_MAX_RAM {
        println!(
            "    skipped: more than {} MiB of RAM",
            OOM_TEST_MAX_RAM >> 20
        );
        return Ok(());
    }
    user_program("oom", WaitStatus::signaled(sig::SIGKILL))
}

fn interrupts_timer_ticks(_mm: &Mm) -> TestResult {
    const WAIT_TICKS: u32 = 3;
    let start = pit::ticks();
    while pit::ticks().wrapping_sub(start) < WAIT_TICKS {
        // SAFETY: enabling interrupts only to halt until the next one; the
        // handlers are installed and the kernel holds no lock here.
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
    Ok(())
}

fn interrupts_breakpoint_recovers(_mm: &Mm) -> TestResult {
    let before = trap::BREAKPOINTS.load(Ordering::SeqCst);
    // SAFETY: `int3` traps to the breakpoint handler, which counts and returns.
    unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
    check!(
        trap::BREAKPOINTS.load(Ordering::SeqCst) == before + 1,
        "breakpoint handler did not run once"
    );
    Ok(())
}

/// `test=oops`: a deliberate write to an unmapped kernel address. Must end in
/// an oops and a failing exit status.
pub fn deliberate_oops() -> ! {
    let target = HEAP_END - PAGE_SIZE as u32;
    println!("writing to unmapped kernel address {target:#010x} on purpose");
    // SAFETY: not safe at all, on purpose: the write page-faults in kernel
    // mode and the oops handler stops the machine.
    unsafe { (target as *mut u32).write_volatile(0xBAD) };
    println!("BUG: the write did not fault");
    exit_qemu(ExitCode::Failure)
}

/// Stack of the overflow test: mapped page by page at this address of the
/// kernel space's (otherwise empty) user half, the page below left unmapped.
const OVERFLOW_STACK_TOP: u32 = 0x3000_0000;
/// Pages of that stack.
const OVERFLOW_STACK_PAGES: u32 = 4;

/// `test=stack-overflow`: unbounded recursion on a stack with a guard page.
/// Must end in the double-fault task's report and a failing exit status.
pub fn deliberate_stack_overflow(mm: &Mm) -> ! {
    {
        let mut space = mm.kernel_space().lock();
        for i in 1..=OVERFLOW_STACK_PAGES {
            let va = OVERFLOW_STACK_TOP - i * PAGE_SIZE as u32;
            if map_fresh(mm, &mut space, va, PteFlags::WRITABLE, Zone::Direct).is_err() {
                println!("cannot map the test stack");
                exit_qemu(ExitCode::Failure)
            }
        }
    }
    println!(
        "recursing without bound on a {} KiB stack with a guard page",
        OVERFLOW_STACK_PAGES * 4
    );
    // SAFETY: switches to the freshly mapped stack and recurses until the
    // guard page faults; the double-fault task takes over and never returns.
    unsafe {
        core::arch::asm!(
            "mov esp, {top}",
            "xor ebp, ebp",
            "sub esp, 12",
            "push 0",
            "call {recurse}",
            top = in(reg) OVERFLOW_STACK_TOP,
            recurse = sym process::recurse,
            options(noreturn),
        )
    }
}

/// `test=kstack-overflow`: a process asks the kernel (through a system call
/// only this boot enables) to recurse on its kernel stack. The guard page
/// below the stack turns the overflow into a double fault, whose task must
/// report it and stop QEMU with a failure status.
pub fn deliberate_process_kstack_overflow() -> ! {
    crate::demo::init_processes();
    process::enable_kernel_stack_overflow_test();
    println!("a process makes the kernel overflow its kernel stack on purpose");
    if process::spawn("kstack_overflow").is_err() {
        println!("cannot start kstack_overflow");
        exit_qemu(ExitCode::Failure)
    }
    process::run_until_idle();
    println!("BUG: the kernel stack overflow was not caught");
    exit_qemu(ExitCode::Failure)
}
