//! Several CPUs: CPU numbers, sets of CPUs, and what a TLB shootdown asks
//! of the other CPUs.
//!
//! The core never sends an interrupt itself: it tells the [`Platform`](crate::Platform)
//! which CPUs must drop which translations
//! ([`Platform::shootdown`](crate::Platform::shootdown)), and the platform
//! (the kernel's LAPIC IPIs, or the simulator's message queues) delivers
//! the request and waits until every target has acknowledged it. Frames and
//! page tables whose translations were removed are released only after
//! that wait (see `docs/smp.md`).

use core::sync::atomic::{AtomicU32, Ordering};

use crate::addr::Page;

/// The most CPUs the memory manager supports (one bit each in a [`CpuSet`]).
pub const MAX_CPUS: usize = 32;

/// A CPU's number: 0 for the boot CPU, then in the order the platform
/// brought the others up (dense, below [`MAX_CPUS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuId(u8);

impl CpuId {
    /// The boot CPU.
    pub const BOOT: CpuId = CpuId(0);

    /// CPU number `n`, or `None` when `n` is not below [`MAX_CPUS`].
    pub const fn new(n: usize) -> Option<CpuId> {
        if n < MAX_CPUS {
            Some(CpuId(n as u8))
        } else {
            None
        }
    }

    /// The number, below [`MAX_CPUS`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of CPUs (a bit per [`CpuId`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CpuSet(u32);

impl CpuSet {
    /// No CPU.
    pub const EMPTY: CpuSet = CpuSet(0);

    /// The set holding only `cpu`.
    pub const fn only(cpu: CpuId) -> CpuSet {
        CpuSet(1 << cpu.0)
    }

    /// The first `n` CPUs (all of them when `n >= MAX_CPUS`).
    pub const fn first(n: usize) -> CpuSet {
        if n >= MAX_CPUS {
            CpuSet(u32::MAX)
        } else {
            CpuSet((1u32 << n) - 1)
        }
    }

    /// The set from its bits (bit `i` is CPU `i`).
    pub const fn from_bits(bits: u32) -> CpuSet {
        CpuSet(bits)
    }

    /// The bits (bit `i` is CPU `i`).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether `cpu` is in the set.
    pub const fn contains(self, cpu: CpuId) -> bool {
        self.0 & (1 << cpu.0) != 0
    }

    /// The set with `cpu` added.
    #[must_use]
    pub const fn with(self, cpu: CpuId) -> CpuSet {
        CpuSet(self.0 | 1 << cpu.0)
    }

    /// The set with `cpu` removed.
    #[must_use]
    pub const fn without(self, cpu: CpuId) -> CpuSet {
        CpuSet(self.0 & !(1 << cpu.0))
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many CPUs the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The CPUs of the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = CpuId> {
        (0..MAX_CPUS as u8)
            .filter(move |i| self.0 & (1 << i) != 0)
            .map(CpuId)
    }
}

/// A [`CpuSet`] that CPUs update concurrently: the CPUs that may hold
/// translations of one address space (a CPU adds itself when it loads the
/// space; it leaves when it loads another space and its TLB can no longer
/// hold non-global entries of this one).
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct AtomicCpuSet(AtomicU32);

impl AtomicCpuSet {
    /// An empty set.
    pub const fn new() -> AtomicCpuSet {
        AtomicCpuSet(AtomicU32::new(0))
    }

    /// The set stored in the `u32` at `ptr` (memory no Rust reference
    /// covers, such as a word of a frame reached through the platform).
    ///
    /// # Safety
    ///
    /// `ptr` must be valid, aligned to 4 and live for `'a`, and every
    /// access to that word during `'a` must be atomic.
    pub(crate) unsafe fn from_ptr<'a>(ptr: *mut u32) -> &'a AtomicCpuSet {
        // SAFETY: the caller's contract is `AtomicU32::from_ptr`'s;
        // `AtomicCpuSet` is a transparent wrapper of `AtomicU32`.
        unsafe { &*(AtomicU32::from_ptr(ptr) as *const AtomicU32 as *const AtomicCpuSet) }
    }

    /// Adds `cpu`. `SeqCst` so that a CPU which adds itself and then walks
    /// the tables cannot be missed by a shootdown that changed the tables
    /// before reading the set.
    pub fn insert(&self, cpu: CpuId) {
        self.0.fetch_or(1 << cpu.0, Ordering::SeqCst);
    }

    /// Removes `cpu`.
    pub fn remove(&self, cpu: CpuId) {
        self.0.fetch_and(!(1 << cpu.0), Ordering::SeqCst);
    }

    /// The set now.
    pub fn load(&self) -> CpuSet {
        CpuSet(self.0.load(Ordering::SeqCst))
    }
}

/// What the targets of a shootdown must drop from their TLBs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidate<'a> {
    /// These pages (`invlpg` each).
    Pages(&'a [Page]),
    /// Every non-global entry (a CR3 reload).
    AllNonGlobal,
    /// Every entry, global ones included (kernel-half changes).
    Everything,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_add_remove_and_count() {
        let a = CpuId::new(0).unwrap();
        let b = CpuId::new(5).unwrap();
        let s = CpuSet::EMPTY.with(a).with(b);
        assert!(s.contains(a) && s.contains(b) && s.len() == 2);
        assert_eq!(s.without(a), CpuSet::only(b));
        assert_eq!(s.iter().collect::<alloc::vec::Vec<_>>(), [a, b]);
        assert_eq!(CpuSet::first(3).bits(), 0b111);
        assert_eq!(CpuSet::first(MAX_CPUS).len(), MAX_CPUS);
        assert!(CpuId::new(MAX_CPUS).is_none());
    }

    #[test]
    fn atomic_sets_follow_inserts_and_removes() {
        let s = AtomicCpuSet::new();
        let c = CpuId::new(3).unwrap();
        s.insert(c);
        s.insert(CpuId::BOOT);
        assert_eq!(s.load().bits(), 0b1001);
        s.remove(c);
        assert_eq!(s.load(), CpuSet::only(CpuId::BOOT));
    }
}
