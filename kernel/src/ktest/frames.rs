//! The frame allocator over the firmware's map: boot reservations kept
//! out, sharing and release, contiguous runs, every frame of RAM accounted
//! for, high memory through the kmap window.

use alloc::vec::Vec;

use myos_mm::frames::{FrameSource, Zone};
use myos_mm::layout::{DIRECT_ZONE_END, PAGE_SIZE, PHYS_END};
use myos_mm::{Frame, OwnedFrame, Platform};

use super::support::{check, read_stamp, stamp, TestResult};
use crate::mm::{self, Mm};
use crate::platform::Paging;
use crate::println;

/// Every usable frame of the firmware map is either managed by the frame
/// allocator or touched by a reservation (kernel image, boot data), and no
/// reserved frame is managed.
pub(super) fn boot_reserved_areas_respected(mm: &Mm) -> TestResult {
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
    let usable = boot.usable_frames_reachable(mm.paging());
    check!(
        usable == managed + kept,
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
    println!("    {usable} usable frames = {managed} managed + {kept} reserved");
    Ok(())
}

pub(super) fn alloc_share_release(mm: &Mm) -> TestResult {
    let mut fa = mm.frames().lock();
    let f = fa.alloc(Zone::Direct).map_err(|_| "alloc failed")?;
    let n = f.frame();
    check!(fa.refcount(n) == Ok(1), "fresh frame refcount is not 1");
    let second = fa.share(n).map_err(|_| "share failed")?;
    check!(fa.refcount(n) == Ok(2), "shared frame refcount is not 2");
    check!(fa.release(f) == Ok(false), "first release freed the frame");
    check!(
        fa.release(second) == Ok(true),
        "last release did not free the frame"
    );
    // SAFETY: a forged reference on purpose (nobody holds one any more):
    // the allocator must refuse it, and the frame is free, so nothing else
    // is affected.
    let forged = unsafe { OwnedFrame::from_raw(n) };
    check!(fa.release(forged).is_err(), "double free was not reported");
    check!(fa.validate().is_ok(), "allocator invariants broken");
    Ok(())
}

pub(super) fn contiguous_aligned(mm: &Mm) -> TestResult {
    const COUNT: u32 = 16;
    const ALIGN_LOG2: u32 = 4;
    let mut fa = mm.frames().lock();
    let run = fa
        .alloc_contiguous(COUNT, ALIGN_LOG2, Zone::Low)
        .map_err(|_| "no DMA run")?;
    let first = run.first();
    check!(
        first.number() % (1 << ALIGN_LOG2) == 0,
        "run is not aligned"
    );
    check!(
        first.start().as_u64() < myos_mm::layout::LOW_ZONE_END,
        "run is not in the low zone"
    );
    check!(run.len() == COUNT, "run has the wrong length");
    for f in run.into_frames() {
        check!(fa.release(f) == Ok(true), "run frame was not allocated");
    }
    Ok(())
}

/// Allocates every free frame (writing each one, so RAM above the direct map
/// is really used), chains them through their first word, then frees them.
pub(super) fn all_ram_accounted(mm: &Mm) -> TestResult {
    let start = mm::frame_stats();
    const END: u32 = u32::MAX;
    let mut head = END;
    let mut count = 0u32;
    let mut high = 0u32;
    let mut above_4g = 0u32;
    loop {
        let f = match mm.frames().lock().alloc(Zone::High) {
            Ok(f) => f,
            Err(_) => break,
        };
        if f.start().as_u64() >= DIRECT_ZONE_END {
            high += 1;
        }
        if f.start().as_u64() >= PHYS_END {
            above_4g += 1;
        }
        stamp(mm, f.frame(), head);
        head = f.number();
        // The chain keeps the reference (by number) until the loop below.
        let _ = f.into_raw();
        count += 1;
    }
    let exhausted = mm::frame_stats();
    let mut freed = 0u32;
    let mut chain_ok = true;
    while head != END {
        let f = Frame::from_number(head).map_err(|_| "chain corrupted")?;
        let next = read_stamp(mm, f);
        // SAFETY: each chained frame is one allocated above, whose
        // reference the chain holds; a corrupted chain names a frame twice
        // at worst, which the allocator refuses (and the test reports).
        let owned = unsafe { OwnedFrame::from_raw(f) };
        if mm.frames().lock().release(owned) != Ok(true) {
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
    let expect_above_4g = mm.paging() == Paging::Pae && mm::ram_end() > PHYS_END;
    check!(
        (above_4g > 0) == expect_above_4g,
        "use of RAM above 4 GiB does not match the paging mode and RAM size"
    );
    check!(
        mm::frame_stats().free == start.free,
        "frames missing after the chain was freed"
    );
    println!(
        "    {count} frames ({} MiB) allocated, written and freed; {high} above the direct map, {above_4g} above 4 GiB",
        count / 256
    );
    Ok(())
}

pub(super) fn high_memory_through_kmap(mm: &Mm) -> TestResult {
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
    let (hi, lo) = (high.frame(), direct.frame());
    p.zero_frame(hi);
    p.write_frame(hi, PAGE_SIZE - pattern.len(), &pattern);
    p.copy_frame(lo, hi);
    let mut back = [0u8; 64];
    p.read_frame(lo, PAGE_SIZE - back.len(), &mut back);
    let mut head = [0xFFu8; 16];
    p.read_frame(hi, 0, &mut head);
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
