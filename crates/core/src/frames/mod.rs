//! Physical frame allocator.
//!
//! - `mod.rs`: [`FrameAllocator`], zones, reference counts, [`FrameSource`];
//! - `owned.rs`: [`OwnedFrame`] and [`FrameRun`], owned frame references, and
//!   the `unsafe` ways to make one from a frame number;
//! - `bitmap.rs`: the three-level free bitmap of one zone;
//! - `memory_map.rs`: [`MemoryRegion`] and what the allocator reads from the
//!   memory map.

mod bitmap;
mod memory_map;
mod owned;
mod pool;
#[doc(hidden)]
pub mod refcount;

pub use memory_map::{MemoryRegion, RegionKind};
pub use owned::{FrameRun, OwnedFrame};
pub use pool::{FramePool, PoolFrames, MAGAZINE_BATCH, MAGAZINE_FRAMES};

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, Ordering};

use crate::addr::{Frame, PhysAddr, FRAME_COUNT_MAX};
use crate::error::MmError;
use crate::layout::{DIRECT_ZONE_END, LOW_ZONE_END, PAGE_SHIFT, PAGE_SIZE, PHYS_END};
use crate::platform::Platform;
use bitmap::{words, ZoneBitmap};
use memory_map::{find_metadata_home, inner_frames, touches_reserved};

/// A physical memory zone. As an allocation request, a zone means "this zone
/// or a lower one", tried from the named zone downwards (as Linux's
/// `GFP_HIGHMEM` / `GFP_KERNEL` / `GFP_DMA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Zone {
    /// Below 16 MiB: reachable by ISA DMA.
    Low = 0,
    /// Below 768 MiB: reachable through the kernel's direct map. Page tables
    /// and anything the kernel dereferences directly come from here.
    Direct = 1,
    /// Anywhere, above the direct map first (user pages, page cache).
    High = 2,
}

impl Zone {
    /// All zones, lowest first.
    pub const ALL: [Zone; 3] = [Zone::Low, Zone::Direct, Zone::High];

    /// The zone a frame belongs to.
    pub const fn of(frame: Frame) -> Zone {
        Zone::of_number(frame.number())
    }

    /// The zone of frame number `f`.
    #[inline]
    const fn of_number(f: u32) -> Zone {
        if f < (LOW_ZONE_END >> PAGE_SHIFT) as u32 {
            Zone::Low
        } else if f < (DIRECT_ZONE_END >> PAGE_SHIFT) as u32 {
            Zone::Direct
        } else {
            Zone::High
        }
    }

    /// First and one-past-last frame number of the zone.
    const fn frame_bounds(self) -> (u32, u32) {
        const LOW: u32 = (LOW_ZONE_END >> PAGE_SHIFT) as u32;
        const DIRECT: u32 = (DIRECT_ZONE_END >> PAGE_SHIFT) as u32;
        match self {
            Zone::Low => (0, LOW),
            Zone::Direct => (LOW, DIRECT),
            Zone::High => (DIRECT, FRAME_COUNT_MAX),
        }
    }
}

/// Frame counts, in frames. `total == free + used + metadata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FrameStats {
    /// Usable RAM frames the allocator manages (memory-map holes and reserved
    /// ranges excluded).
    pub total: u32,
    /// Frames ready to be handed out.
    pub free: u32,
    /// Frames handed out (reference count at least 1).
    pub used: u32,
    /// Frames holding the allocator's own metadata.
    pub metadata: u32,
    /// Free frames per zone (`Zone as usize` indexes it).
    pub free_per_zone: [u32; 3],
}

/// The operations paging and address spaces need from a frame allocator.
///
/// [`FrameAllocator`] implements it; so does `&spin::Mutex<FrameAllocator>`
/// (each call takes the lock briefly, so a kernel can let the heap and the
/// address spaces allocate frames under their own locks), and a failing
/// wrapper used for out-of-memory injection.
///
/// References are values: [`alloc`](Self::alloc) and [`share`](Self::share)
/// hand out an [`OwnedFrame`], [`release`](Self::release) takes one back.
pub trait FrameSource {
    /// One frame from `zone` or below, with reference count 1: the
    /// caller's.
    fn alloc(&mut self, zone: Zone) -> Result<OwnedFrame, MmError>;
    /// `count` physically contiguous frames, the first aligned to
    /// `2^align_log2` frames, each with reference count 1.
    fn alloc_contiguous(
        &mut self,
        count: u32,
        align_log2: u32,
        zone: Zone,
    ) -> Result<FrameRun, MmError>;
    /// Adds a reference to an allocated frame and hands it out.
    fn share(&mut self, frame: Frame) -> Result<OwnedFrame, MmError>;
    /// Drops a reference; returns `true` when that was the last one and the
    /// frame went back to the pool. Fails (and nothing changes) for a frame
    /// that is free (`FrameNotAllocated`), reserved (`FrameReserved`) or
    /// not managed (`OutOfRange`).
    fn release(&mut self, frame: OwnedFrame) -> Result<bool, MmError>;
    /// The frame's reference count (0 for a free frame).
    fn refcount(&self, frame: Frame) -> Result<u16, MmError>;
}

pub use refcount::MAX_REFCOUNT;
use refcount::RESERVED;

/// The physical frame allocator.
///
/// Built from the memory map; its metadata lives in RAM it takes from the
/// map itself (like Linux's `mem_map`): a 16-bit reference count per frame
/// and a three-level free bitmap per zone, about 2.13 bytes per frame.
/// Single-frame allocation and free are O(1) in the size of RAM; contiguous
/// runs are found by a word-at-a-time scan.
///
/// A frame's reference count is 0 while free, 1..=[`MAX_REFCOUNT`] while
/// allocated (one per owner: each mapping of a shared or copy-on-write frame
/// holds one) and a reserved marker for frames never handed out. Frame 0 is an
/// ordinary frame.
pub struct FrameAllocator {
    /// One reference count per frame below `limit` (atomics: a
    /// [`FramePool`] changes them without the allocator's lock).
    refs: NonNull<AtomicU16>,
    /// One past the highest frame number with metadata.
    limit: u32,
    zones: [ZoneBitmap; 3],
    /// Usable frames, the metadata frames included.
    total: u32,
    metadata: (Frame, u32),
    /// Out-of-memory injection: fail every allocation once this reaches 0.
    fail_after: Option<u32>,
}

// SAFETY: the allocator exclusively owns its metadata frames; moving it to
// another thread moves that ownership (no thread-local state is involved).
unsafe impl Send for FrameAllocator {}

impl FrameAllocator {
    /// Builds the allocator from a memory map, placing its metadata in usable
    /// RAM below the direct-map limit (above 16 MiB when possible, to keep
    /// ISA-DMA memory free). RAM at or above 4 GiB is left out (classic
    /// paging can't map it); [`new_below`](Self::new_below) takes more.
    ///
    /// A frame is usable when a [`RegionKind::Usable`] region covers it
    /// whole and no [`RegionKind::Reserved`] region touches it. Fails with
    /// `OutOfMemory` when the map has no room for the metadata and with
    /// `InvalidArgument` for a region whose end is before its start.
    ///
    /// # Safety
    ///
    /// The usable regions must be RAM that nobody else uses, and the
    /// allocator must not outlive `platform` (it keeps pointers obtained from
    /// [`Platform::frame_ptr`]).
    pub unsafe fn new<P: Platform + ?Sized>(
        platform: &P,
        map: &[MemoryRegion],
    ) -> Result<Self, MmError> {
        // SAFETY: forwarded (the caller's contract).
        unsafe { Self::new_below(platform, map, PHYS_END) }
    }

    /// [`new`](Self::new) for the RAM below physical address `phys_end`
    /// (at most `2^PHYS_BITS`, 64 GiB): with PAE, `1 << 36` makes frames
    /// above 4 GiB allocatable (zone `High`). Metadata is sized by the
    /// highest usable frame (a hole costs as much as RAM: about 2.13 bytes
    /// per frame) and must still fit, contiguous, in RAM below the
    /// direct-map limit. Fails with `InvalidArgument` for a `phys_end`
    /// above 64 GiB, otherwise as `new`.
    ///
    /// # Safety
    ///
    /// As [`new`](Self::new); the platform's frame data methods
    /// ([`Platform::zero_frame`] and the others) must reach every usable
    /// frame below `phys_end`.
    pub unsafe fn new_below<P: Platform + ?Sized>(
        platform: &P,
        map: &[MemoryRegion],
        phys_end: u64,
    ) -> Result<Self, MmError> {
        if map.iter().any(|r| r.end < r.start) || phys_end > PhysAddr::MAX + 1 {
            return Err(MmError::InvalidArgument);
        }
        // RAM at or above `phys_end` is unreachable (without PAE: 4 GiB): it
        // must not size the metadata (a map reporting it once cost 2 MiB of
        // metadata).
        let limit = map
            .iter()
            .filter(|r| r.kind == RegionKind::Usable && r.start < phys_end)
            .map(|r| (r.end.min(phys_end) >> PAGE_SHIFT) as u32)
            .max()
            .unwrap_or(0);
        let zone_len = |z: Zone| {
            let (lo, hi) = z.frame_bounds();
            hi.min(limit).saturating_sub(lo)
        };
        let ref_words = (limit as usize * 2).div_ceil(8);
        let bitmap_words: usize = Zone::ALL
            .iter()
            .map(|&z| ZoneBitmap::words_needed(zone_len(z)) as usize)
            .sum();
        let meta_bytes = (ref_words + bitmap_words) * 8;
        let meta_frames = meta_bytes.div_ceil(PAGE_SIZE) as u32;
        if meta_frames == 0 {
            return Err(MmError::OutOfMemory);
        }
        let meta = find_metadata_home(map, meta_frames).ok_or(MmError::OutOfMemory)?;
        let base = platform.frame_ptr(meta).cast::<u64>();
        // SAFETY: `meta..meta + meta_frames` is usable RAM below the direct
        // limit (checked by `find_metadata_home`), so the platform contract
        // makes it one valid, writable, contiguous range that nobody else uses.
        unsafe { base.as_ptr().write_bytes(0, meta_bytes / 8) };

        let refs = base.cast::<AtomicU16>();
        let mut next = ref_words;
        let mut carve = |len: u32| {
            let n0 = words(len) as usize;
            let n1 = words(words(len)) as usize;
            // SAFETY: the words carved here are within the `meta_bytes`
            // region computed above (the sum of `words_needed`).
            let (l0, l1, l2) = unsafe {
                (
                    base.add(next),
                    base.add(next + n0),
                    base.add(next + n0 + n1),
                )
            };
            next += ZoneBitmap::words_needed(len) as usize;
            (l0, l1, l2)
        };
        let mut zone = |z: Zone| {
            let len = zone_len(z);
            let (l0, l1, l2) = carve(len);
            ZoneBitmap {
                base: z.frame_bounds().0,
                len,
                l0,
                l1,
                l2,
                free: 0,
            }
        };
        let zones = [zone(Zone::Low), zone(Zone::Direct), zone(Zone::High)];
        let mut fa = FrameAllocator {
            refs,
            limit,
            zones,
            total: 0,
            metadata: (meta, meta_frames),
            fail_after: None,
        };

        // Everything starts reserved (`RESERVED` is all ones: one fill);
        // usable frames are then freed, unless a reserved region or the
        // metadata covers them.
        const _: () = assert!(RESERVED == u16::MAX);
        // SAFETY: the first `limit` counters lie in the metadata region
        // (`ref_words` covers them), which nothing else references yet.
        unsafe {
            refs.cast::<u8>()
                .as_ptr()
                .write_bytes(0xFF, limit as usize * 2)
        };
        for r in map.iter().filter(|r| r.kind == RegionKind::Usable) {
            let (lo, hi) = inner_frames(r, phys_end);
            for f in lo..hi {
                if fa.get_ref(f) == RESERVED && !touches_reserved(map, f) {
                    fa.set_ref(f, 0);
                    fa.total += 1;
                }
            }
        }
        for f in meta.number()..meta.number() + meta_frames {
            fa.set_ref(f, RESERVED);
        }
        // Only frames inside usable regions can be free (the loop skips
        // the holes, which can be most of `0..limit` with RAM above 4 GiB).
        for r in map.iter().filter(|r| r.kind == RegionKind::Usable) {
            let (lo, hi) = inner_frames(r, phys_end);
            for f in lo..hi {
                let (z, i) = fa.locate(f);
                if fa.get_ref(f) == 0 && !fa.zones[z].is_free(i) {
                    fa.zones[z].set_free(i);
                }
            }
        }
        Ok(fa)
    }

    #[inline]
    fn refs(&self) -> &[AtomicU16] {
        // SAFETY: `refs` points at `limit` counters owned by the allocator
        // (zeroed metadata RAM is a valid `AtomicU16` array), which live as
        // long as it does.
        unsafe { core::slice::from_raw_parts(self.refs.as_ptr(), self.limit as usize) }
    }

    fn set_ref(&self, f: u32, n: u16) {
        self.refs()[f as usize].store(n, Ordering::Release);
    }

    fn get_ref(&self, f: u32) -> u16 {
        self.refs()[f as usize].load(Ordering::Acquire)
    }

    /// Zone index and zone-relative index of frame number `f` (< limit).
    fn locate(&self, f: u32) -> (usize, u32) {
        let z = Zone::of_number(f) as usize;
        (z, f - self.zones[z].base)
    }

    /// Counts of total, free and used frames.
    pub fn stats(&self) -> FrameStats {
        let free_per_zone = [self.zones[0].free, self.zones[1].free, self.zones[2].free];
        let free = free_per_zone.iter().sum::<u32>();
        FrameStats {
            total: self.total,
            free,
            used: self.total - free - self.metadata.1,
            metadata: self.metadata.1,
            free_per_zone,
        }
    }

    /// Bytes of RAM holding the allocator's metadata (reference counts and
    /// bitmaps for every frame number below [`frame_limit`](Self::frame_limit)).
    pub fn metadata_bytes(&self) -> usize {
        self.metadata.1 as usize * PAGE_SIZE
    }

    /// One past the highest frame number the allocator knows.
    pub fn frame_limit(&self) -> u32 {
        self.limit
    }

    /// The frames holding the allocator's metadata (first frame, count).
    pub fn metadata_frames(&self) -> (Frame, u32) {
        self.metadata
    }

    /// Makes every allocation fail with `OutOfMemory` after `n` more
    /// successful ones (`None` turns injection off). For out-of-memory tests.
    pub fn fail_after(&mut self, n: Option<u32>) {
        self.fail_after = n;
    }

    fn take_budget(&mut self) -> Result<(), MmError> {
        match &mut self.fail_after {
            Some(0) => Err(MmError::OutOfMemory),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn zone_order(zone: Zone) -> &'static [usize] {
        match zone {
            Zone::High => &[2, 1, 0],
            Zone::Direct => &[1, 0],
            Zone::Low => &[0],
        }
    }

    /// The lowest free frame at or above `first`, with reference count 1:
    /// a placement preference on top of the zones. With PAE a kernel gives
    /// user pages frames above 4 GiB first (`first` = frame
    /// [`FRAME_COUNT_4G`](crate::addr::FRAME_COUNT_4G)), since only they can
    /// use them, and falls back to [`alloc`](FrameSource::alloc) when this
    /// fails with `OutOfMemory` (no free frame at or above `first`).
    pub fn alloc_at_or_above(&mut self, first: Frame) -> Result<OwnedFrame, MmError> {
        let first = first.number();
        for z in 0..self.zones.len() {
            let zone = &self.zones[z];
            if zone.base + zone.len <= first {
                continue;
            }
            if let Some(i) = zone.next_free(first.saturating_sub(zone.base)) {
                return self.hand_out(z, i);
            }
        }
        Err(MmError::OutOfMemory)
    }

    /// Hands out free frame `i` of zone `z` with reference count 1 (after
    /// the failure-injection budget allows it).
    #[inline]
    fn hand_out(&mut self, z: usize, i: u32) -> Result<OwnedFrame, MmError> {
        self.take_budget()?;
        self.zones[z].set_used(i);
        let f = self.zones[z].base + i;
        self.set_ref(f, 1);
        // SAFETY: the frame was free and now has reference count 1: that one
        // reference is handed out here and nowhere else.
        Ok(unsafe { OwnedFrame::from_raw(Frame::nth(f)) })
    }

    /// Claims a specific free frame (e.g. one a C caller names by address);
    /// its one reference is the caller's.
    pub fn claim(&mut self, frame: Frame) -> Result<OwnedFrame, MmError> {
        match self.refcount(frame)? {
            0 => {
                self.take_budget()?;
                let (z, i) = self.locate(frame.number());
                self.zones[z].set_used(i);
                self.set_ref(frame.number(), 1);
                // SAFETY: the frame was free and now has reference count 1,
                // handed out here only.
                Ok(unsafe { OwnedFrame::from_raw(frame) })
            }
            _ => Err(MmError::FrameInUse),
        }
    }

    /// Checks every invariant: each counter agrees with its free bit, every
    /// summary bit with the words below it, and the free counts with the
    /// bitmaps. For tests and debugging; O(frames).
    pub fn validate(&self) -> Result<(), &'static str> {
        let mut free = 0;
        for f in 0..self.limit {
            let (z, i) = self.locate(f);
            let bit = self.zones[z].is_free(i);
            if bit != (self.get_ref(f) == 0) {
                return Err("free bit disagrees with reference count");
            }
            free += bit as u32;
        }
        for zone in &self.zones {
            // SAFETY: `l1`/`l2` hold `n1`/`n2` words owned by the allocator.
            let (l1, l2) = unsafe {
                (
                    core::slice::from_raw_parts(zone.l1.as_ptr(), zone.n1()),
                    core::slice::from_raw_parts(zone.l2.as_ptr(), zone.n2()),
                )
            };
            for (w, &word) in zone.l0().iter().enumerate() {
                if (l1[w / 64] >> (w % 64)) & 1 != (word != 0) as u64 {
                    return Err("level-1 summary out of date");
                }
            }
            for (w, &word) in l1.iter().enumerate() {
                if (l2[w / 64] >> (w % 64)) & 1 != (word != 0) as u64 {
                    return Err("level-2 summary out of date");
                }
            }
            let counted: u32 = zone.l0().iter().map(|w| w.count_ones()).sum();
            if counted != zone.free {
                return Err("zone free count out of date");
            }
        }
        if free != self.stats().free {
            return Err("free count out of date");
        }
        Ok(())
    }

    /// The reference count of `frame` (`OutOfRange` past the metadata).
    #[inline]
    fn counter(&self, frame: Frame) -> Result<&AtomicU16, MmError> {
        self.refs()
            .get(frame.number() as usize)
            .ok_or(MmError::OutOfRange)
    }

    /// Marks a frame whose count just reached 0 free in its zone's bitmap.
    #[inline]
    fn put_free(&mut self, frame: Frame) {
        debug_assert_eq!(self.get_ref(frame.number()), 0);
        let (z, i) = self.locate(frame.number());
        self.zones[z].set_free(i);
    }

    /// Takes up to `out.len()` free frames of zone `z` exactly (no
    /// fallback) for a per-CPU cache: they leave the bitmap, their counts
    /// stay 0 (free, as the rest of the system sees them). Returns how many.
    fn take_free(&mut self, z: usize, out: &mut [u32]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(i) = self.zones[z].first_free() else {
                break;
            };
            self.zones[z].set_used(i);
            out[n] = self.zones[z].base + i;
            n += 1;
        }
        n
    }

    /// True when the allocator manages `frame` (usable RAM, not metadata).
    pub fn manages(&self, frame: Frame) -> bool {
        frame.number() < self.limit && self.get_ref(frame.number()) != RESERVED
    }
}

impl FrameSource for FrameAllocator {
    fn alloc(&mut self, zone: Zone) -> Result<OwnedFrame, MmError> {
        for &z in Self::zone_order(zone) {
            if let Some(i) = self.zones[z].first_free() {
                return self.hand_out(z, i);
            }
        }
        Err(MmError::OutOfMemory)
    }

    fn alloc_contiguous(
        &mut self,
        count: u32,
        align_log2: u32,
        zone: Zone,
    ) -> Result<FrameRun, MmError> {
        if count == 0 || align_log2 > 20 {
            return Err(MmError::InvalidArgument);
        }
        let align = 1u32 << align_log2;
        for &z in Self::zone_order(zone) {
            if let Some(i) = self.zones[z].find_run(count, align) {
                self.take_budget()?;
                let base = self.zones[z].base + i;
                for k in 0..count {
                    self.zones[z].set_used(i + k);
                    self.set_ref(base + k, 1);
                }
                // SAFETY: the frames were free and now have reference
                // count 1 each: those references are handed out here only.
                return Ok(unsafe { FrameRun::from_raw(Frame::nth(base), count) });
            }
        }
        Err(MmError::OutOfMemory)
    }

    #[inline]
    fn share(&mut self, frame: Frame) -> Result<OwnedFrame, MmError> {
        // `&mut self`: no one else changes this allocator's counts (a
        // `FramePool` changes them without the lock, but then only the pool
        // calls the allocator, and never `share`/`release`), so a load and a
        // store do (as cheap as the plain counters they replaced).
        let c = self.counter(frame)?;
        match c.load(Ordering::Relaxed) {
            0 => Err(MmError::FrameNotAllocated),
            RESERVED => Err(MmError::FrameReserved),
            MAX_REFCOUNT => Err(MmError::RefcountOverflow),
            n => {
                c.store(n + 1, Ordering::Relaxed);
                // SAFETY: the reference just counted is handed out here only.
                Ok(unsafe { OwnedFrame::from_raw(frame) })
            }
        }
    }

    #[inline]
    fn release(&mut self, frame: OwnedFrame) -> Result<bool, MmError> {
        let frame = frame.frame();
        let c = self.counter(frame)?;
        match c.load(Ordering::Relaxed) {
            0 => Err(MmError::FrameNotAllocated),
            RESERVED => Err(MmError::FrameReserved),
            1 => {
                c.store(0, Ordering::Relaxed);
                self.put_free(frame);
                Ok(true)
            }
            n => {
                c.store(n - 1, Ordering::Relaxed);
                Ok(false)
            }
        }
    }

    fn refcount(&self, frame: Frame) -> Result<u16, MmError> {
        refcount::get(self.counter(frame)?)
    }
}

impl FrameSource for &spin::Mutex<FrameAllocator> {
    #[inline]
    fn alloc(&mut self, zone: Zone) -> Result<OwnedFrame, MmError> {
        self.lock().alloc(zone)
    }
    #[inline]
    fn alloc_contiguous(
        &mut self,
        count: u32,
        align_log2: u32,
        zone: Zone,
    ) -> Result<FrameRun, MmError> {
        self.lock().alloc_contiguous(count, align_log2, zone)
    }
    #[inline]
    fn share(&mut self, frame: Frame) -> Result<OwnedFrame, MmError> {
        self.lock().share(frame)
    }
    #[inline]
    fn release(&mut self, frame: OwnedFrame) -> Result<bool, MmError> {
        self.lock().release(frame)
    }
    #[inline]
    fn refcount(&self, frame: Frame) -> Result<u16, MmError> {
        self.lock().refcount(frame)
    }
}
