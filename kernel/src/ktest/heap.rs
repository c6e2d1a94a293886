//! The kernel heap as the global allocator: collections, growth and giving
//! memory back, a bad free refused.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use myos_mm::layout::PAGE_SIZE;

use super::support::{check, TestResult};
use crate::mm::{self, Mm};

pub(super) fn box_vec_btreemap(_mm: &Mm) -> TestResult {
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

pub(super) fn grows_and_gives_back(_mm: &Mm) -> TestResult {
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

pub(super) fn bad_free_refused(_mm: &Mm) -> TestResult {
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
