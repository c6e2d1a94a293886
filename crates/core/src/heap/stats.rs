//! Statistics: `get_free_memory`, `get_used_memory`, `get_heap_stats`
//! (exact counters, plus fixed-size sums over the quick lists).

use super::quick::QUICK_CLASSES;
use super::tag::size_of_tag;
use super::{Heap, HeapBackend, GRANULE, NIL};

/// Statistics of a heap, all exact (see the module docs for "free" and
/// "used"). `free_bytes + used_bytes == heap_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Sum of the sizes of the free blocks, headers included.
    pub free_bytes: usize,
    /// Mapped bytes that are not free: allocated blocks in full, plus the
    /// 8-byte pad in front of the first block and the 8-byte end sentinel.
    pub used_bytes: usize,
    /// Mapped bytes (`top - start`).
    pub heap_bytes: usize,
    /// Blocks, allocated and free (the sentinel is not counted).
    pub total_blocks: usize,
    /// Free blocks.
    pub free_blocks: usize,
    /// Size of the largest free block, header included (0 if none); the
    /// largest request it can serve is 8 bytes less.
    pub largest_free: usize,
}

impl<B: HeapBackend> Heap<B> {
    /// Free bytes (`get_free_memory`), O(1).
    pub fn free_bytes(&self) -> usize {
        self.free_bytes + self.quick_bytes()
    }

    /// Used bytes (`get_used_memory`), O(1).
    pub fn used_bytes(&self) -> usize {
        self.len - self.free_bytes()
    }

    /// All statistics (`get_heap_stats`): O(1) (fixed-size sums over the
    /// quick lists) except `largest_free`, which also scans the highest
    /// non-empty free list.
    pub fn stats(&self) -> HeapStats {
        let free_bytes = self.free_bytes();
        HeapStats {
            free_bytes,
            used_bytes: self.len - free_bytes,
            heap_bytes: self.len,
            total_blocks: self.live_blocks + self.free_blocks + self.quick_blocks(),
            free_blocks: self.free_blocks + self.quick_blocks(),
            largest_free: self.largest_free(),
        }
    }

    pub(super) fn largest_free(&self) -> usize {
        let quick = (0..QUICK_CLASSES)
            .rev()
            .find(|&c| self.quick_len[c] != 0)
            .map_or(0, |c| c * GRANULE);
        let quick = if self.top_block == NIL {
            quick
        } else {
            quick.max(size_of_tag(self.read_word(self.top_block as usize)))
        };
        if self.bin_summary == 0 {
            return quick;
        }
        let w = 31 - self.bin_summary.leading_zeros() as usize;
        let b = w * 64 + 63 - self.bin_bitmap[w].leading_zeros() as usize;
        let mut cur = self.bin_heads[b];
        let mut best = 0;
        while cur != NIL {
            best = best.max(size_of_tag(self.read_word(cur as usize)));
            cur = self.read_word(cur as usize + 8);
        }
        best.max(quick)
    }
}
