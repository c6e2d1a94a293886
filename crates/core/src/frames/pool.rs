//! [`FramePool`]: the frame allocator for several CPUs — the global
//! [`FrameAllocator`] behind one lock, with a small per-CPU cache of free
//! frames (a magazine) in front of it, and reference counts changed with
//! atomics, without the lock.
//!
//! - A CPU allocates from its own magazine (one per zone, up to
//!   [`MAGAZINE_FRAMES`] frames); an empty magazine is refilled with
//!   [`MAGAZINE_BATCH`] frames under the global lock.
//! - A frame whose last reference is dropped goes into the releasing CPU's
//!   magazine; a full magazine gives [`MAGAZINE_BATCH`] frames back under
//!   the global lock.
//! - An allocation the global allocator cannot satisfy drains every CPU's
//!   magazines into it and retries, so `OutOfMemory` is never reported while
//!   caches hold frames.
//! - Frames in magazines have reference count 0: they are free for
//!   [`FrameSource::refcount`], for the TLB checker's oracle and in
//!   [`FramePool::stats`] (which counts them as free).
//!
//! Locks: a CPU's magazine lock, then the global lock (never the other way
//! round). The magazine lock is per CPU and uncontended except while
//! [`drain`](FramePool::drain) visits it. Neither lock disables interrupts:
//! the pool is usable from interrupt context only if the kernel disables
//! interrupts around every pool call on that CPU (see `docs/smp.md`).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use spin::Mutex;

use super::{refcount, FrameAllocator, FrameRun, FrameSource, FrameStats, OwnedFrame, Zone};
use crate::addr::Frame;
use crate::error::MmError;
use crate::lockorder::{Held, Level};
use crate::platform::Platform;
use crate::smp::CpuId;
use crate::smp::MAX_CPUS;

/// Frames one magazine (one CPU, one zone) holds at most.
pub const MAGAZINE_FRAMES: usize = 64;
/// Frames moved between a magazine and the global allocator at a time.
pub const MAGAZINE_BATCH: usize = 32;

/// One CPU's free frames, per zone (frame numbers).
struct Magazine {
    frames: [[u32; MAGAZINE_FRAMES]; 3],
    len: [usize; 3],
}

impl Magazine {
    const fn new() -> Self {
        Magazine {
            frames: [[0; MAGAZINE_FRAMES]; 3],
            len: [0; 3],
        }
    }
}

/// A magazine on its own cache line (CPUs don't share lines).
#[repr(align(64))]
struct PerCpu(Mutex<Magazine>);

/// The global frame allocator with per-CPU magazines (see the module
/// documentation). Hand each CPU's code a [`PoolFrames`] (`pool.frames(platform)`),
/// which implements [`FrameSource`].
pub struct FramePool {
    global: Mutex<FrameAllocator>,
    /// The allocator's reference counts and how many there are (fixed at
    /// construction), reached without the lock.
    refs: NonNull<AtomicU16>,
    limit: u32,
    caches: [PerCpu; MAX_CPUS],
    /// Per zone: the global allocator had no frame of it at the last
    /// refill (a hint, so CPUs don't take the global lock on every
    /// allocation for a zone the machine lacks; cleared when frames go back).
    empty: [AtomicBool; 3],
}

// SAFETY: the allocator is `Send` and sits behind a lock; its reference
// counts, which the pool reads and changes without the lock, are atomics
// the allocator owns for as long as the pool lives; the magazines are
// behind locks.
unsafe impl Sync for FramePool {}
// SAFETY: as for `Sync`; moving the pool moves the allocator, which is `Send`.
unsafe impl Send for FramePool {}

impl FramePool {
    /// A pool around `fa` (which may already have frames handed out).
    pub fn new(fa: FrameAllocator) -> Self {
        FramePool {
            refs: fa.refs,
            limit: fa.limit,
            global: Mutex::new(fa),
            caches: [const { PerCpu(Mutex::new(Magazine::new())) }; MAX_CPUS],
            empty: [const { AtomicBool::new(false) }; 3],
        }
    }

    /// The handle a CPU allocates through (`platform.cpu_id()` picks the
    /// magazine).
    pub fn frames<'a, P: Platform + ?Sized>(&'a self, platform: &'a P) -> PoolFrames<'a, P> {
        PoolFrames {
            pool: self,
            platform,
        }
    }

    /// The global allocator, locked (e.g. for `claim`, `fail_after`). Its
    /// own counts do not include the frames in magazines: use
    /// [`stats`](Self::stats). Don't `share` or `release` through it while
    /// other CPUs use the pool: the allocator's own counter updates assume
    /// its lock excludes every other writer, and the pool's don't take it.
    pub fn global(&self) -> spin::MutexGuard<'_, FrameAllocator> {
        self.global.lock()
    }

    /// Frame counts, frames in magazines counted as free. Exact when no
    /// CPU is allocating or freeing at the same time (the magazines are
    /// visited one by one, then the global allocator).
    pub fn stats(&self) -> FrameStats {
        let cached = self.cached_per_zone();
        let mut s = self.global.lock().stats();
        for (z, &c) in cached.iter().enumerate() {
            s.free_per_zone[z] += c;
            s.free += c;
            s.used -= c;
        }
        s
    }

    /// Frames sitting in magazines now.
    pub fn cached(&self) -> u32 {
        self.cached_per_zone().iter().sum()
    }

    fn cached_per_zone(&self) -> [u32; 3] {
        let mut c = [0u32; 3];
        for cpu in &self.caches {
            let m = cpu.0.lock();
            for (z, n) in c.iter_mut().enumerate() {
                *n += m.len[z] as u32;
            }
        }
        c
    }

    /// Gives every magazine's frames back to the global allocator; returns
    /// how many. Takes each CPU's magazine lock in turn (then the global
    /// lock): the caller must not hold its own.
    pub fn drain(&self) -> usize {
        let mut moved = 0;
        for cpu in &self.caches {
            let mut m = cpu.0.lock();
            if m.len.iter().all(|&n| n == 0) {
                continue;
            }
            let mut g = self.global.lock();
            for z in 0..3 {
                let n = m.len[z];
                for &f in &m.frames[z][..n] {
                    g.put_free(frame(f));
                }
                if n > 0 {
                    self.refilled(z);
                }
                m.len[z] = 0;
                moved += n;
            }
        }
        moved
    }

    /// Drains the magazines, then checks the global allocator's invariants
    /// (see [`FrameAllocator::validate`]). For tests.
    pub fn validate(&self) -> Result<(), &'static str> {
        self.drain();
        self.global.lock().validate()
    }

    /// Takes the pool apart (after a [`drain`](Self::drain)).
    pub fn into_inner(self) -> FrameAllocator {
        self.drain();
        self.global.into_inner()
    }

    fn alloc_on(&self, id: CpuId, zone: Zone) -> Result<OwnedFrame, MmError> {
        let cpu = id.index();
        {
            let mut m = self.caches[cpu].0.lock();
            let _mag = Held::new(id, Level::Magazine);
            for &z in FrameAllocator::zone_order(zone) {
                if m.len[z] == 0 && !self.empty[z].load(Ordering::Relaxed) {
                    let mut batch = [0u32; MAGAZINE_BATCH];
                    let n = {
                        let mut g = self.global.lock();
                        let _g = Held::new(id, Level::Frames);
                        g.take_free(z, &mut batch)
                    };
                    m.frames[z][..n].copy_from_slice(&batch[..n]);
                    m.len[z] = n;
                    if n == 0 {
                        self.empty[z].store(true, Ordering::Relaxed);
                    }
                }
                if m.len[z] > 0 {
                    m.len[z] -= 1;
                    let f = m.frames[z][m.len[z]];
                    return Ok(self.hand_out(f));
                }
            }
        }
        // Nothing left in this zone or below, here or globally: the other
        // CPUs' magazines may hold some.
        self.drain();
        self.global.lock().alloc(zone)
    }

    /// Frames of zone `z` went back to the global allocator.
    fn refilled(&self, z: usize) {
        if self.empty[z].load(Ordering::Relaxed) {
            self.empty[z].store(false, Ordering::Relaxed);
        }
    }

    /// A cached frame (count 0) becomes the caller's one reference.
    fn hand_out(&self, f: u32) -> OwnedFrame {
        let r = self
            .counter(frame(f))
            .map(|c| c.store(1, Ordering::Release));
        debug_assert!(r.is_ok());
        // SAFETY: the frame was free (in this CPU's magazine, count 0) and
        // now has count 1: that one reference is handed out here only.
        unsafe { OwnedFrame::from_raw(frame(f)) }
    }

    fn release_on(&self, id: CpuId, owned: OwnedFrame) -> Result<bool, MmError> {
        let cpu = id.index();
        let f = owned.frame();
        let last = refcount::release(self.counter(f)?)?;
        if !last {
            return Ok(false);
        }
        let z = Zone::of(f) as usize;
        let mut m = self.caches[cpu].0.lock();
        let _mag = Held::new(id, Level::Magazine);
        if m.len[z] == MAGAZINE_FRAMES {
            let mut g = self.global.lock();
            let _g = Held::new(id, Level::Frames);
            let keep = MAGAZINE_FRAMES - MAGAZINE_BATCH;
            for &old in &m.frames[z][keep..] {
                g.put_free(frame(old));
            }
            self.refilled(z);
            m.len[z] = keep;
        }
        let n = m.len[z];
        m.frames[z][n] = f.number();
        m.len[z] = n + 1;
        Ok(true)
    }

    /// The reference count of `f`, reached without the allocator's lock.
    fn counter(&self, f: Frame) -> Result<&AtomicU16, MmError> {
        if f.number() >= self.limit {
            return Err(MmError::OutOfRange);
        }
        // SAFETY: `refs` points at `limit` atomic counters owned by the
        // allocator the pool owns; they never move (the metadata stays where
        // `FrameAllocator::new` put it) and live as long as the pool, which
        // `self` borrows. The index is in bounds (checked above).
        Ok(unsafe { &*self.refs.as_ptr().add(f.number() as usize) })
    }
}

fn frame(n: u32) -> Frame {
    Frame::nth(n)
}

/// One CPU's way into a [`FramePool`]: a [`FrameSource`] whose frames
/// come from and go to the magazine of the CPU `platform.cpu_id()` names.
pub struct PoolFrames<'a, P: Platform + ?Sized> {
    pool: &'a FramePool,
    platform: &'a P,
}

impl<P: Platform + ?Sized> Clone for PoolFrames<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Platform + ?Sized> Copy for PoolFrames<'_, P> {}

impl<P: Platform + ?Sized> core::fmt::Debug for PoolFrames<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PoolFrames").finish_non_exhaustive()
    }
}

impl<P: Platform + ?Sized> PoolFrames<'_, P> {
    fn cpu(&self) -> CpuId {
        self.platform.cpu_id()
    }
}

impl<P: Platform + ?Sized> FrameSource for PoolFrames<'_, P> {
    fn alloc(&mut self, zone: Zone) -> Result<OwnedFrame, MmError> {
        self.pool.alloc_on(self.cpu(), zone)
    }

    fn alloc_contiguous(
        &mut self,
        count: u32,
        align_log2: u32,
        zone: Zone,
    ) -> Result<FrameRun, MmError> {
        let r = self
            .pool
            .global
            .lock()
            .alloc_contiguous(count, align_log2, zone);
        match r {
            Err(MmError::OutOfMemory) => {
                self.pool.drain();
                self.pool
                    .global
                    .lock()
                    .alloc_contiguous(count, align_log2, zone)
            }
            r => r,
        }
    }

    fn share(&mut self, frame: Frame) -> Result<OwnedFrame, MmError> {
        refcount::share(self.pool.counter(frame)?)?;
        // SAFETY: the reference just counted is handed out here only.
        Ok(unsafe { OwnedFrame::from_raw(frame) })
    }

    fn release(&mut self, frame: OwnedFrame) -> Result<bool, MmError> {
        self.pool.release_on(self.cpu(), frame)
    }

    fn refcount(&self, frame: Frame) -> Result<u16, MmError> {
        refcount::get(self.pool.counter(frame)?)
    }
}
