//! [`BlockMap`]: an ordered map from `u32` keys (page numbers) built for
//! predecessor lookups, the operation the fault path and every region query
//! start with.
//!
//! Keys live in sorted blocks of at most [`BLOCK`] entries, and a separate
//! sorted array holds each block's first key. A lookup is two branch-free
//! binary searches — over the block minimums (a few KiB even for 100,000
//! regions, so it stays in L1) and within one block's keys (four cache
//! lines) — and one access to the value: O(log n) with about two cache
//! misses, where a `BTreeMap` with region-sized values misses at every one of
//! its five or six levels. Insertion and removal move at most one block's
//! entries, plus the block-minimum array when a block splits, merges or
//! empties (once per ~`BLOCK / 2` updates): O(BLOCK + n / BLOCK).
//!
//! A lookup first tries the block the previous one landed in (a
//! [`Finger`]), so lookups with locality skip the search over the block
//! minimums; a block that splits keeps only the capacity it uses, so the
//! values stay dense (fewer pages and cache lines for random lookups).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Most entries in one block.
pub(crate) const BLOCK: usize = 64;

/// Below this many blocks lookups don't use the [`Finger`].
const FINGER_MIN_BLOCKS: usize = 16;

/// Number of keys `<= k` in the sorted slice `ks` (branch-free binary search).
#[inline]
fn count_le(ks: &[u32], k: u32) -> usize {
    let mut lo = 0usize;
    let mut len = ks.len();
    while len > 0 {
        let half = len / 2;
        let mid = lo + half;
        let le = ks[mid] <= k;
        lo = if le { mid + 1 } else { lo };
        len = if le { len - half - 1 } else { half };
    }
    lo
}

/// Number of keys `< k` in the sorted slice `ks`.
#[inline]
fn count_lt(ks: &[u32], k: u32) -> usize {
    match k.checked_sub(1) {
        Some(k1) => count_le(ks, k1),
        None => 0,
    }
}

#[derive(Clone)]
struct Block<V> {
    keys: Vec<u32>,
    vals: Vec<V>,
}

/// The block the last lookup landed in (a finger): lookups with locality —
/// consecutive faults, scans in address order — skip the search over the
/// block minimums. Only a hint: it is checked against `mins` before use, so
/// a stale index (blocks split, merged or removed since) is harmless.
struct Finger(AtomicU32);

impl Clone for Finger {
    fn clone(&self) -> Self {
        Finger(AtomicU32::new(self.0.load(Relaxed)))
    }
}

/// An ordered map `u32 -> V` (see the module documentation).
#[derive(Clone)]
pub(crate) struct BlockMap<V> {
    /// First key of each block, sorted.
    mins: Vec<u32>,
    /// Non-empty blocks, in key order.
    blocks: Vec<Block<V>>,
    len: usize,
    finger: Finger,
}

/// A position: block and index within it.
type Pos = (usize, usize);

impl<V> BlockMap<V> {
    /// An empty map.
    pub(crate) const fn new() -> Self {
        BlockMap {
            mins: Vec::new(),
            blocks: Vec::new(),
            len: 0,
            finger: Finger(AtomicU32::new(0)),
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn at(&self, (b, i): Pos) -> (u32, &V) {
        let blk = &self.blocks[b];
        (blk.keys[i], &blk.vals[i])
    }

    /// Position of the last key `<= k`.
    fn pos_le(&self, k: u32) -> Option<Pos> {
        // With few blocks the search is a few steps and the finger, often
        // right at random, would only add mispredicted branches.
        let f = self.finger.0.load(Relaxed) as usize;
        let hit = self.mins.len() > FINGER_MIN_BLOCKS
            && self.mins.get(f).is_some_and(|&m| m <= k)
            && self.mins.get(f + 1).is_none_or(|&m| k < m);
        let b = if hit {
            f
        } else {
            let b = count_le(&self.mins, k).checked_sub(1)?;
            self.finger.0.store(b as u32, Relaxed);
            b
        };
        let i = count_le(&self.blocks[b].keys, k);
        debug_assert!(i > 0);
        Some((b, i - 1))
    }

    /// Position of the first key `>= k`.
    fn pos_ge(&self, k: u32) -> Option<Pos> {
        let b = count_lt(&self.mins, k);
        if let Some(prev) = b.checked_sub(1) {
            let keys = &self.blocks[prev].keys;
            let i = count_lt(keys, k);
            if i < keys.len() {
                return Some((prev, i));
            }
        }
        (b < self.blocks.len()).then_some((b, 0))
    }

    /// The entry with the greatest key `<= k`.
    pub(crate) fn pred_le(&self, k: u32) -> Option<(u32, &V)> {
        self.pos_le(k).map(|p| self.at(p))
    }

    /// The entry with the greatest key `< k`.
    pub(crate) fn pred_lt(&self, k: u32) -> Option<(u32, &V)> {
        self.pred_le(k.checked_sub(1)?)
    }

    /// The entry with the smallest key `>= k`.
    pub(crate) fn succ_ge(&self, k: u32) -> Option<(u32, &V)> {
        self.pos_ge(k).map(|p| self.at(p))
    }

    /// The entry with the smallest key `> k`.
    pub(crate) fn succ_gt(&self, k: u32) -> Option<(u32, &V)> {
        self.succ_ge(k.checked_add(1)?)
    }

    /// The value at key `k`.
    pub(crate) fn get(&self, k: u32) -> Option<&V> {
        match self.pred_le(k) {
            Some((key, v)) if key == k => Some(v),
            _ => None,
        }
    }

    /// The value at key `k`, mutably.
    pub(crate) fn get_mut(&mut self, k: u32) -> Option<&mut V> {
        let (b, i) = self.pos_le(k)?;
        let blk = &mut self.blocks[b];
        if blk.keys[i] == k {
            Some(&mut blk.vals[i])
        } else {
            None
        }
    }

    /// Inserts `v` at `k`; returns the value it replaced.
    pub(crate) fn insert(&mut self, k: u32, v: V) -> Option<V> {
        if self.blocks.is_empty() {
            self.mins.push(k);
            self.blocks.push(Block {
                keys: alloc::vec![k],
                vals: alloc::vec![v],
            });
            self.len = 1;
            return None;
        }
        let b = count_le(&self.mins, k).saturating_sub(1);
        let blk = &mut self.blocks[b];
        let i = count_lt(&blk.keys, k);
        if blk.keys.get(i) == Some(&k) {
            return Some(core::mem::replace(&mut blk.vals[i], v));
        }
        blk.keys.insert(i, k);
        blk.vals.insert(i, v);
        self.len += 1;
        if i == 0 {
            self.mins[b] = k;
        }
        if blk.keys.len() > BLOCK {
            let keys = blk.keys.split_off(BLOCK / 2);
            let vals = blk.vals.split_off(BLOCK / 2);
            blk.keys.shrink_to_fit();
            blk.vals.shrink_to_fit();
            self.mins.insert(b + 1, keys[0]);
            self.blocks.insert(b + 1, Block { keys, vals });
        }
        None
    }

    /// Removes the entry at `k`.
    pub(crate) fn remove(&mut self, k: u32) -> Option<V> {
        let (b, i) = self.pos_le(k)?;
        if self.blocks[b].keys[i] != k {
            return None;
        }
        let blk = &mut self.blocks[b];
        blk.keys.remove(i);
        let v = blk.vals.remove(i);
        self.len -= 1;
        if blk.keys.is_empty() {
            self.blocks.remove(b);
            self.mins.remove(b);
            return Some(v);
        }
        if i == 0 {
            self.mins[b] = blk.keys[0];
        }
        // Keep blocks from thinning out: merge a small one into a neighbour.
        let n = blk.keys.len();
        if n < BLOCK / 4 {
            if b > 0 && self.blocks[b - 1].keys.len() + n <= BLOCK {
                self.merge_into_prev(b);
            } else if b + 1 < self.blocks.len() && self.blocks[b + 1].keys.len() + n <= BLOCK {
                self.merge_into_prev(b + 1);
            }
        }
        Some(v)
    }

    /// Appends block `b` to block `b - 1` and drops it.
    fn merge_into_prev(&mut self, b: usize) {
        let Block { mut keys, mut vals } = self.blocks.remove(b);
        self.mins.remove(b);
        let prev = &mut self.blocks[b - 1];
        prev.keys.append(&mut keys);
        prev.vals.append(&mut vals);
    }

    /// Entries with keys in `lo..hi`, in order.
    pub(crate) fn range(&self, lo: u32, hi: u32) -> Range<'_, V> {
        let pos = self.pos_ge(lo).unwrap_or((self.blocks.len(), 0));
        Range { map: self, pos, hi }
    }

    /// All entries, in order (keys are page numbers, never `u32::MAX`).
    pub(crate) fn iter(&self) -> Range<'_, V> {
        debug_assert!(self.mins.last().is_none_or(|_| self
            .blocks
            .last()
            .is_some_and(|b| b.keys.last() != Some(&u32::MAX))));
        Range {
            map: self,
            pos: (0, 0),
            hi: u32::MAX,
        }
    }

    /// Removes and returns every entry, in order.
    pub(crate) fn take_all(&mut self) -> Vec<(u32, V)> {
        self.mins.clear();
        self.len = 0;
        let mut out = Vec::new();
        for blk in core::mem::take(&mut self.blocks) {
            out.extend(blk.keys.into_iter().zip(blk.vals));
        }
        out
    }

    /// Checks the structure's invariants: O(n), for tests and debugging.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.mins.len() != self.blocks.len() {
            return Err("block minimums out of step with the blocks");
        }
        let mut prev: Option<u32> = None;
        let mut n = 0;
        for (m, blk) in self.mins.iter().zip(&self.blocks) {
            if blk.keys.is_empty() || blk.keys.len() > BLOCK || blk.keys.len() != blk.vals.len() {
                return Err("block empty, overfull, or keys and values out of step");
            }
            if *m != blk.keys[0] {
                return Err("block minimum is not the block's first key");
            }
            for &k in &blk.keys {
                if prev.is_some_and(|p| p >= k) {
                    return Err("keys out of order");
                }
                prev = Some(k);
            }
            n += blk.keys.len();
        }
        if n != self.len {
            return Err("entry count out of date");
        }
        Ok(())
    }

    #[cfg(test)]
    fn check(&self) {
        self.validate().unwrap();
    }
}

/// Iterator over a key range of a [`BlockMap`].
pub(crate) struct Range<'a, V> {
    map: &'a BlockMap<V>,
    pos: Pos,
    /// Exclusive upper bound.
    hi: u32,
}

impl<'a, V> Iterator for Range<'a, V> {
    type Item = (u32, &'a V);

    fn next(&mut self) -> Option<(u32, &'a V)> {
        let (b, i) = self.pos;
        let blk = self.map.blocks.get(b)?;
        let k = blk.keys[i];
        if k >= self.hi {
            return None;
        }
        self.pos = if i + 1 < blk.keys.len() {
            (b, i + 1)
        } else {
            (b + 1, 0)
        };
        Some((k, &blk.vals[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    #[test]
    fn agrees_with_btreemap_under_random_updates() {
        let mut rng = 0x1234_5678_u64;
        let mut next = move |m: u32| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((rng >> 33) as u32) % m
        };
        let mut ours: BlockMap<u32> = BlockMap::new();
        let mut model: BTreeMap<u32, u32> = BTreeMap::new();
        for step in 0..40_000u32 {
            let k = next(3000);
            match next(10) {
                0..=4 => assert_eq!(ours.insert(k, step), model.insert(k, step)),
                5..=7 => assert_eq!(ours.remove(k), model.remove(&k)),
                _ => {
                    if let Some(v) = ours.get_mut(k) {
                        *v += 1;
                    }
                    if let Some(v) = model.get_mut(&k) {
                        *v += 1;
                    }
                }
            }
            if step % 997 == 0 {
                ours.check();
            }
            let q = next(3100);
            assert_eq!(
                ours.pred_le(q).map(|(k, v)| (k, *v)),
                model.range(..=q).next_back().map(|(&k, &v)| (k, v))
            );
            assert_eq!(
                ours.pred_lt(q).map(|(k, _)| k),
                model.range(..q).next_back().map(|(&k, _)| k)
            );
            assert_eq!(
                ours.succ_ge(q).map(|(k, _)| k),
                model.range(q..).next().map(|(&k, _)| k)
            );
            assert_eq!(
                ours.succ_gt(q).map(|(k, _)| k),
                model.range(q + 1..).next().map(|(&k, _)| k)
            );
            assert_eq!(ours.get(q), model.get(&q));
            if step % 101 == 0 {
                let hi = q + next(200);
                let a: Vec<u32> = ours.range(q, hi).map(|(k, _)| k).collect();
                let b: Vec<u32> = model.range(q..hi).map(|(&k, _)| k).collect();
                assert_eq!(a, b);
            }
            assert_eq!(ours.len(), model.len());
        }
        ours.check();
        let all: Vec<(u32, u32)> = ours.iter().map(|(k, &v)| (k, v)).collect();
        let want: Vec<(u32, u32)> = model.iter().map(|(&k, &v)| (k, v)).collect();
        assert_eq!(all, want);
        assert_eq!(ours.take_all(), want);
        assert_eq!(ours.len(), 0);
        assert!(ours.pred_le(5).is_none() && ours.succ_ge(0).is_none());
    }

    #[test]
    fn edge_keys() {
        let mut m: BlockMap<()> = BlockMap::new();
        assert_eq!(m.pred_lt(0), None);
        m.insert(0, ());
        m.insert(u32::MAX - 1, ());
        assert_eq!(m.pred_le(0).map(|e| e.0), Some(0));
        assert_eq!(m.pred_lt(0), None);
        assert_eq!(m.succ_gt(0).map(|e| e.0), Some(u32::MAX - 1));
        assert_eq!(m.iter().count(), 2);
        assert_eq!(count_le(&[], 3), 0);
        assert_eq!(count_lt(&[0, 1], 0), 0);
    }
}
