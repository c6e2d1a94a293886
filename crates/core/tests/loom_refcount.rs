//! Model checks (loom) of what lets the core run on several CPUs without the
//! frame allocator's lock: the atomic reference counts
//! (`myos_mm::frames::refcount`, the code the allocator and the per-CPU
//! pool run), and the order "shoot down, then free" that `TlbBatch`
//! follows.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p myos-mm --release --test loom_refcount
//! ```
//!
//! Without `--cfg loom` the file compiles to nothing.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use loom::sync::Arc;
use loom::thread;
use myos_mm::frames::refcount::{self, Counter};

struct Count(AtomicU16);

impl Counter for Count {
    fn get(&self) -> u16 {
        self.0.load(Ordering::Acquire)
    }
    fn swap_if(&self, current: u16, new: u16) -> Result<u16, u16> {
        self.0
            .compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Acquire)
    }
}

/// A frame: its count and its bytes (one word).
struct FrameModel {
    count: Count,
    data: UnsafeCell<u32>,
}

#[test]
fn two_owners_dropping_at_once_free_exactly_once_and_see_each_other_s_writes() {
    loom::model(|| {
        let f = Arc::new(FrameModel {
            count: Count(AtomicU16::new(2)),
            data: UnsafeCell::new(0),
        });
        let handles: Vec<_> = (0..2u32)
            .map(|i| {
                let f = Arc::clone(&f);
                thread::spawn(move || {
                    // Each owner drops its reference (neither writes in
                    // place: the count is 2).
                    let last = refcount::release(&f.count).unwrap();
                    if last {
                        // The freeing CPU reuses the frame: the other
                        // owner's accesses must all happen before (loom
                        // reports a data race otherwise).
                        // SAFETY: loom's cell pointer is valid; loom itself
                        // reports an access that races another.
                        f.data.with_mut(|p| unsafe { *p = 100 + i });
                    }
                    last
                })
            })
            .collect();
        let lasts: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(lasts.iter().filter(|&&l| l).count(), 1);
        assert_eq!(refcount::get(&f.count), Ok(0));
    });
}

#[test]
fn an_owner_writing_then_dropping_happens_before_the_free() {
    loom::model(|| {
        let f = Arc::new(FrameModel {
            count: Count(AtomicU16::new(2)),
            data: UnsafeCell::new(0),
        });
        let g = Arc::clone(&f);
        let t = thread::spawn(move || {
            // This owner writes, then drops its reference.
            // SAFETY: as above (loom checks the exclusivity).
            g.data.with_mut(|p| unsafe { *p = 7 });
            refcount::release(&g.count).unwrap()
        });
        let mine = refcount::release(&f.count).unwrap();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs);
        if mine {
            // Freed here: the other owner's write is visible, not racing.
            // SAFETY: as above.
            assert_eq!(f.data.with(|p| unsafe { *p }), 7);
        }
    });
}

#[test]
fn share_and_release_by_two_owners_keep_the_count() {
    loom::model(|| {
        let f = Arc::new(Count(AtomicU16::new(2)));
        let g = Arc::clone(&f);
        // One owner shares its frame (fork) while the other drops its own.
        let t = thread::spawn(move || refcount::share(&*g).unwrap());
        assert_eq!(refcount::release(&*f), Ok(false));
        t.join().unwrap();
        assert_eq!(refcount::get(&*f), Ok(2));
    });
}

/// The initiator unmaps a page another CPU still caches, then either waits
/// for that CPU's acknowledgement before freeing (the protocol) or frees
/// first (the bug). The target reads through its stale entry until it
/// takes the request. Loom reports the bug as a data race between the
/// stale read and the new owner's write.
fn unmap_with_shootdown(free_before_ack: bool) {
    loom::model(move || {
        let frame = Arc::new(FrameModel {
            count: Count(AtomicU16::new(1)),
            data: UnsafeCell::new(1),
        });
        let request = Arc::new(AtomicBool::new(false));
        let ack = Arc::new(AtomicBool::new(false));
        let (f2, req2, ack2) = (Arc::clone(&frame), Arc::clone(&request), Arc::clone(&ack));
        let target = thread::spawn(move || {
            // The target CPU: one access through its cached translation,
            // unless the request arrived first; then it serves the request
            // (drops the entry) and acknowledges.
            if !req2.load(Ordering::Acquire) {
                // SAFETY: as above: this read racing the new owner's write
                // is exactly what loom reports in the broken order.
                let _ = f2.data.with(|p| unsafe { *p });
            }
            while !req2.load(Ordering::Acquire) {
                thread::yield_now();
            }
            ack2.store(true, Ordering::Release);
        });
        // The initiator: the entry is cleared (not modelled: the target's
        // cached copy is what matters), the request posted.
        request.store(true, Ordering::Release);
        let free = |frame: &FrameModel| {
            if refcount::release(&frame.count).unwrap() {
                // Reused by a new owner at once.
                // SAFETY: as above.
                frame.data.with_mut(|p| unsafe { *p = 0xDEAD });
            }
        };
        if free_before_ack {
            free(&frame);
        }
        while !ack.load(Ordering::Acquire) {
            thread::yield_now();
        }
        if !free_before_ack {
            free(&frame);
        }
        target.join().unwrap();
    });
}

#[test]
fn freeing_after_the_acknowledgement_never_races_a_stale_access() {
    unmap_with_shootdown(false);
}

#[test]
#[should_panic]
fn freeing_before_the_acknowledgement_is_caught_as_a_race() {
    unmap_with_shootdown(true);
}
