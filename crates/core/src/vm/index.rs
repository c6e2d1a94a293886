//! [`BlockMap`]: an ordered map from `u32` keys (page numbers) to spans
//! `key..end` with a value.
//!
//! (Why one file over 600 lines: about 615 lines of code and 165 of unit
//! tests for one data structure. The block layout, the lookup that relies
//! on it and the split/merge rules that keep it are one invariant; apart,
//! each half would have to restate the other.)
//!
//! Built for the question the fault path and every region query start
//! with: which entry contains page `k`?
//!
//! Entries live in sorted blocks of at most [`BLOCK`]; a sorted array holds
//! each block's first key, and a summary holds every [`FAN`]th of those.
//! Each block keeps its keys, the entries' ends and a one-byte summary of
//! each value ([`Span::tag`]) in fixed arrays inline in one
//! cache-line-aligned allocation (unused key slots hold `u32::MAX`), and the
//! values in a dense vector beside them.
//!
//! A lookup is a branch-free binary search over the summary (a few dozen
//! entries for 100,000 regions), a count over one window of `FAN` block
//! minimums, a count over the block's fixed key array (both counts are
//! independent loads the compiler vectorises, not chains of dependent
//! ones), and a compare with the end in the same block: a page in a hole
//! never touches a value, and a hit hands back the key, end and tag without
//! reading the value. That is 9 bytes per entry: 100,000 regions' blocks
//! take about 1 MB, where the values (32-byte regions) take 3.2 MB.
//!
//! Lookups are O(log n). Insertion and removal move at most one block's
//! entries, plus the block arrays (and the summary from that point) when a
//! block splits, merges or empties (once per ~`BLOCK / 2` updates):
//! O(BLOCK + n / BLOCK). A full block split by an insert past its last key
//! (or before its first, at the ends of the map) keeps its entries and
//! starts a new block, so ascending or descending inserts leave full blocks.
//!
//! A lookup first tries the block the previous one landed in (a
//! [`Finger`]), so lookups with locality skip the search over the block
//! minimums.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Most entries in one block.
pub(crate) const BLOCK: usize = 64;

/// Below this many blocks lookups don't use the [`Finger`].
const FINGER_MIN_BLOCKS: usize = 16;

/// Block minimums per summary entry (see [`BlockMap::tops`]).
const FAN: usize = 64;

/// Number of values `<= k` in a fixed window of `FAN` sorted values: a
/// count with no data-dependent branch, which the compiler vectorises.
#[inline]
fn count_le_fixed(ks: &[u32; FAN], k: u32) -> usize {
    let mut n = 0u32;
    for &x in ks {
        n += u32::from(x <= k);
    }
    n as usize
}

/// A value that knows where its span ends; the map keeps a copy of the end,
/// and of a one-byte summary of the value, beside the key (checked by
/// [`BlockMap::validate`]).
pub(crate) trait Span {
    /// One past the span's last page.
    fn end(&self) -> u32;

    /// A summary of the value that lookups may need without reading it.
    fn tag(&self) -> u8 {
        0
    }
}

impl Span for u32 {
    fn end(&self) -> u32 {
        *self
    }
}

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

/// One block: `vals.len()` entries, their keys, ends and tags in the first
/// slots of the arrays. Cache-line aligned, keys first: the key array is
/// exactly `BLOCK / 16` lines.
#[derive(Clone)]
#[repr(C, align(64))]
struct Block<V> {
    /// Sorted keys, then `u32::MAX` in every unused slot.
    keys: [u32; BLOCK],
    /// `ends[i]` is `vals[i].end()`.
    ends: [u32; BLOCK],
    /// `tags[i]` is `vals[i].tag()`.
    tags: [u8; BLOCK],
    vals: Vec<V>,
}

impl<V: Span> Block<V> {
    fn new() -> Box<Self> {
        Box::new(Block {
            keys: [u32::MAX; BLOCK],
            ends: [0; BLOCK],
            tags: [0; BLOCK],
            vals: Vec::new(),
        })
    }

    fn len(&self) -> usize {
        self.vals.len()
    }

    /// Number of keys `<= k`: a count over the whole fixed array, with no
    /// data-dependent branch (unused slots hold `u32::MAX`, counted only when
    /// `k` is `u32::MAX`, hence the `min`).
    #[inline]
    fn count_le(&self, k: u32) -> usize {
        let mut n = 0u32;
        for &x in &self.keys {
            n += u32::from(x <= k);
        }
        (n as usize).min(self.len())
    }

    /// Number of keys `< k`.
    #[inline]
    fn count_lt(&self, k: u32) -> usize {
        match k.checked_sub(1) {
            Some(k1) => self.count_le(k1),
            None => 0,
        }
    }

    /// Copies the end and tag of the value in slot `i` (after it changed).
    fn resync(&mut self, i: usize) {
        self.ends[i] = self.vals[i].end();
        self.tags[i] = self.vals[i].tag();
    }

    /// Inserts an entry at slot `i` (the block has room).
    fn insert_at(&mut self, i: usize, k: u32, v: V) {
        let n = self.len();
        debug_assert!(n < BLOCK && i <= n);
        self.keys.copy_within(i..n, i + 1);
        self.ends.copy_within(i..n, i + 1);
        self.tags.copy_within(i..n, i + 1);
        self.keys[i] = k;
        self.ends[i] = v.end();
        self.tags[i] = v.tag();
        self.vals.insert(i, v);
    }

    /// Removes the entry at slot `i`.
    fn remove_at(&mut self, i: usize) -> V {
        let n = self.len();
        self.keys.copy_within(i + 1..n, i);
        self.ends.copy_within(i + 1..n, i);
        self.tags.copy_within(i + 1..n, i);
        self.keys[n - 1] = u32::MAX;
        self.vals.remove(i)
    }

    /// Moves the entries from slot `at` on into a new block.
    fn split_off(&mut self, at: usize) -> Box<Self> {
        let n = self.len();
        let mut new = Block::new();
        new.keys[..n - at].copy_from_slice(&self.keys[at..n]);
        new.ends[..n - at].copy_from_slice(&self.ends[at..n]);
        new.tags[..n - at].copy_from_slice(&self.tags[at..n]);
        self.keys[at..n].fill(u32::MAX);
        new.vals = self.vals.split_off(at);
        // Keep only the capacity in use: values stay dense.
        self.vals.shrink_to_fit();
        new
    }

    /// Appends every entry of `other` (which fits).
    fn append(&mut self, mut other: Box<Self>) {
        let (n, m) = (self.len(), other.len());
        debug_assert!(n + m <= BLOCK);
        self.keys[n..n + m].copy_from_slice(&other.keys[..m]);
        self.ends[n..n + m].copy_from_slice(&other.ends[..m]);
        self.tags[n..n + m].copy_from_slice(&other.tags[..m]);
        self.vals.append(&mut other.vals);
    }
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

/// An ordered map `u32 -> V` of spans `key..V::end()` (see the module
/// documentation).
#[derive(Clone)]
pub(crate) struct BlockMap<V> {
    /// First key of each block, sorted.
    mins: Vec<u32>,
    /// `mins[FAN * t]` for each `t`: a lookup among many blocks searches
    /// this (a few dozen entries for 100,000 regions), then counts within
    /// one full window of `FAN` minimums, instead of a long chain of
    /// dependent binary-search steps over all of them.
    tops: Vec<u32>,
    /// Non-empty blocks, in key order. Boxed on purpose: a block is over
    /// 500 bytes, and a split or merge then moves pointers, not blocks.
    #[allow(clippy::vec_box)]
    blocks: Vec<Box<Block<V>>>,
    len: usize,
    finger: Finger,
}

/// An entry found by [`BlockMap::find`]: what the index holds about it,
/// and the value itself.
pub(crate) struct Hit<'a, V> {
    /// Its key (the span's start).
    pub key: u32,
    /// The span's end.
    pub end: u32,
    /// The value's [`Span::tag`].
    pub tag: u8,
    /// The value.
    pub val: &'a V,
}

/// A position: block and index within it.
type Pos = (usize, usize);

impl<V: Span> BlockMap<V> {
    /// An empty map.
    pub(crate) const fn new() -> Self {
        BlockMap {
            mins: Vec::new(),
            tops: Vec::new(),
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

    /// The last block whose minimum is `<= k`, by search.
    #[inline]
    fn block_le(&self, k: u32) -> Option<usize> {
        if self.mins.len() <= FAN {
            return count_le(&self.mins, k).checked_sub(1);
        }
        let t = count_le(&self.tops, k).checked_sub(1)?;
        let lo = t * FAN;
        match self.mins.get(lo..lo + FAN) {
            Some(w) => {
                let w: &[u32; FAN] = w.try_into().ok()?;
                Some(lo + count_le_fixed(w, k) - 1)
            }
            // The last, partial window.
            None => Some(lo + count_le(&self.mins[lo..], k) - 1),
        }
    }

    /// Brings `tops` up to date with `mins` from block `b` on.
    fn sync_tops(&mut self, b: usize) {
        let n = self.mins.len().div_ceil(FAN);
        self.tops.truncate(n);
        for t in b / FAN..n {
            let m = self.mins[t * FAN];
            match self.tops.get_mut(t) {
                Some(x) => *x = m,
                None => self.tops.push(m),
            }
        }
    }

    /// Sets block `b`'s minimum.
    fn set_min(&mut self, b: usize, k: u32) {
        self.mins[b] = k;
        if b.is_multiple_of(FAN) {
            self.tops[b / FAN] = k;
        }
    }

    /// Inserts block `blk` at index `b`.
    fn insert_block(&mut self, b: usize, blk: Box<Block<V>>) {
        self.mins.insert(b, blk.keys[0]);
        self.blocks.insert(b, blk);
        self.sync_tops(b);
    }

    /// Removes block `b`.
    fn remove_block(&mut self, b: usize) -> Box<Block<V>> {
        self.mins.remove(b);
        self.sync_tops(b);
        self.blocks.remove(b)
    }

    /// Position of the last key `<= k`.
    #[inline]
    fn pos_le(&self, k: u32) -> Option<Pos> {
        let b = self.block_of(k)?;
        let i = self.blocks[b].count_le(k);
        debug_assert!(i > 0);
        Some((b, i - 1))
    }

    /// Position of the first key `>= k`.
    fn pos_ge(&self, k: u32) -> Option<Pos> {
        let b = count_lt(&self.mins, k);
        if let Some(prev) = b.checked_sub(1) {
            let blk = &self.blocks[prev];
            let i = blk.count_lt(k);
            if i < blk.len() {
                return Some((prev, i));
            }
        }
        (b < self.blocks.len()).then_some((b, 0))
    }

    /// Block whose key range holds `k` (its minimum `<= k`), through the
    /// finger when it is right.
    #[inline]
    fn block_of(&self, k: u32) -> Option<usize> {
        // With few blocks the search is a few steps and the finger, often
        // right at random, would only add mispredicted branches.
        let f = self.finger.0.load(Relaxed) as usize;
        let hit = self.mins.len() > FINGER_MIN_BLOCKS
            && self.mins.get(f).is_some_and(|&m| m <= k)
            && self.mins.get(f + 1).is_none_or(|&m| k < m);
        if hit {
            return Some(f);
        }
        let b = self.block_le(k)?;
        self.finger.0.store(b as u32, Relaxed);
        Some(b)
    }

    /// The entry whose span contains `k` (key `<= k <` end). A `k` outside
    /// every span reads no value: the ends are kept beside the keys; nor
    /// does a `k` inside one, unless the caller reads [`Hit::val`].
    #[inline]
    pub(crate) fn find(&self, k: u32) -> Option<Hit<'_, V>> {
        let (b, i) = self.pos_le(k)?;
        let blk = &self.blocks[b];
        (k < blk.ends[i]).then(|| Hit {
            key: blk.keys[i],
            end: blk.ends[i],
            tag: blk.tags[i],
            val: &blk.vals[i],
        })
    }

    /// The span (key, end) with the greatest key `<= k`, without reading
    /// its value.
    pub(crate) fn span_le(&self, k: u32) -> Option<(u32, u32)> {
        let (b, i) = self.pos_le(k)?;
        let blk = &self.blocks[b];
        Some((blk.keys[i], blk.ends[i]))
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

    /// Runs `f` on the value at key `k` (which may change its end) and
    /// returns its result; `None` when there is no such key.
    pub(crate) fn update<R>(&mut self, k: u32, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let (b, i) = self.pos_le(k)?;
        let blk = &mut self.blocks[b];
        if blk.keys[i] != k {
            return None;
        }
        let r = f(&mut blk.vals[i]);
        blk.resync(i);
        Some(r)
    }

    /// Inserts `v` at `k`; returns the value it replaced.
    pub(crate) fn insert(&mut self, k: u32, v: V) -> Option<V> {
        if self.blocks.is_empty() {
            let mut blk = Block::new();
            blk.insert_at(0, k, v);
            self.insert_block(0, blk);
            self.len = 1;
            return None;
        }
        let b = self.block_le(k).unwrap_or(0);
        let last = b + 1 == self.blocks.len();
        let blk = &mut self.blocks[b];
        let i = blk.count_lt(k);
        if i < blk.len() && blk.keys[i] == k {
            let old = core::mem::replace(&mut blk.vals[i], v);
            blk.resync(i);
            return Some(old);
        }
        self.len += 1;
        if blk.len() < BLOCK {
            blk.insert_at(i, k, v);
            let m = blk.keys[0];
            self.set_min(b, m);
            return None;
        }
        // A full block. At either end of the map, start a new block and keep
        // this one full (ascending or descending inserts then fill blocks);
        // elsewhere split it in halves.
        if (i == BLOCK && last) || i == 0 {
            let mut new = Block::new();
            new.insert_at(0, k, v);
            self.insert_block(if i == 0 { b } else { b + 1 }, new);
            return None;
        }
        let mut tail = blk.split_off(BLOCK / 2);
        if i <= BLOCK / 2 {
            blk.insert_at(i, k, v);
        } else {
            tail.insert_at(i - BLOCK / 2, k, v);
        }
        let m = blk.keys[0];
        self.set_min(b, m);
        self.insert_block(b + 1, tail);
        None
    }

    /// Removes the entry at `k`.
    pub(crate) fn remove(&mut self, k: u32) -> Option<V> {
        let (b, i) = self.pos_le(k)?;
        if self.blocks[b].keys[i] != k {
            return None;
        }
        let blk = &mut self.blocks[b];
        let v = blk.remove_at(i);
        self.len -= 1;
        let n = blk.len();
        if n == 0 {
            self.remove_block(b);
            return Some(v);
        }
        let m = blk.keys[0];
        self.set_min(b, m);
        // Keep blocks from thinning out: merge a small one into a neighbour.
        if n < BLOCK / 4 {
            if b > 0 && self.blocks[b - 1].len() + n <= BLOCK {
                self.merge_into_prev(b);
            } else if b + 1 < self.blocks.len() && self.blocks[b + 1].len() + n <= BLOCK {
                self.merge_into_prev(b + 1);
            }
        }
        Some(v)
    }

    /// Appends block `b` to block `b - 1` and drops it.
    fn merge_into_prev(&mut self, b: usize) {
        let blk = self.remove_block(b);
        self.blocks[b - 1].append(blk);
    }

    /// Entries with keys in `lo..hi`, in order.
    pub(crate) fn range(&self, lo: u32, hi: u32) -> Range<'_, V> {
        let pos = self.pos_ge(lo).unwrap_or((self.blocks.len(), 0));
        Range { map: self, pos, hi }
    }

    /// All entries, in order (keys are page numbers, never `u32::MAX`).
    pub(crate) fn iter(&self) -> Range<'_, V> {
        debug_assert!(self
            .blocks
            .last()
            .is_none_or(|b| b.keys[b.len() - 1] != u32::MAX));
        Range {
            map: self,
            pos: (0, 0),
            hi: u32::MAX,
        }
    }

    /// Removes and returns every entry, in order.
    pub(crate) fn take_all(&mut self) -> Vec<(u32, V)> {
        self.mins.clear();
        self.tops.clear();
        self.len = 0;
        let mut out = Vec::new();
        for blk in core::mem::take(&mut self.blocks) {
            let Block { keys, vals, .. } = *blk;
            out.extend(keys.into_iter().zip(vals));
        }
        out
    }

    /// Checks the structure's invariants: O(n), for tests and debugging.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.mins.len() != self.blocks.len() {
            return Err("block minimums out of step with the blocks");
        }
        if !self
            .tops
            .iter()
            .copied()
            .eq(self.mins.iter().copied().step_by(FAN))
        {
            return Err("summary of the block minimums out of date");
        }
        let mut prev: Option<u32> = None;
        let mut n = 0;
        for (m, blk) in self.mins.iter().zip(&self.blocks) {
            let len = blk.len();
            if len == 0 || len > BLOCK {
                return Err("block empty or overfull");
            }
            if *m != blk.keys[0] {
                return Err("block minimum is not the block's first key");
            }
            if blk.keys[len..].iter().any(|&k| k != u32::MAX) {
                return Err("unused key slot not u32::MAX");
            }
            for (i, &k) in blk.keys[..len].iter().enumerate() {
                if prev.is_some_and(|p| p >= k) {
                    return Err("keys out of order");
                }
                prev = Some(k);
                if blk.ends[i] != blk.vals[i].end() || blk.tags[i] != blk.vals[i].tag() {
                    return Err("stored end or tag differs from the value's");
                }
            }
            n += len;
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

impl<'a, V: Span> Iterator for Range<'a, V> {
    type Item = (u32, &'a V);

    fn next(&mut self) -> Option<(u32, &'a V)> {
        let (b, i) = self.pos;
        let blk = self.map.blocks.get(b)?;
        let k = blk.keys[i];
        if k >= self.hi {
            return None;
        }
        self.pos = if i + 1 < blk.len() {
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
        // Values are span ends: `k..k + len`.
        let mut ours: BlockMap<u32> = BlockMap::new();
        let mut model: BTreeMap<u32, u32> = BTreeMap::new();
        for step in 0..40_000u32 {
            let k = next(3000);
            match next(10) {
                0..=4 => {
                    let end = k + 1 + next(4);
                    assert_eq!(ours.insert(k, end), model.insert(k, end));
                }
                5..=7 => assert_eq!(ours.remove(k), model.remove(&k)),
                _ => {
                    assert_eq!(
                        ours.update(k, |v| *v += 1),
                        model.get_mut(&k).map(|v| *v += 1)
                    );
                }
            }
            if step % 997 == 0 {
                ours.check();
            }
            let q = next(3100);
            let pred = model.range(..=q).next_back().map(|(&k, &v)| (k, v));
            assert_eq!(ours.pred_le(q).map(|(k, v)| (k, *v)), pred);
            assert_eq!(ours.span_le(q), pred);
            assert_eq!(
                ours.find(q).map(|h| (h.key, *h.val)),
                pred.filter(|&(_, e)| q < e)
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
    fn ascending_and_descending_inserts_fill_blocks() {
        let n = 10 * BLOCK as u32;
        let mut up: BlockMap<u32> = BlockMap::new();
        let mut down: BlockMap<u32> = BlockMap::new();
        for k in 0..n {
            up.insert(2 * k, 2 * k + 1);
            down.insert(2 * (n - k), 2 * (n - k) + 1);
        }
        up.check();
        down.check();
        assert_eq!(up.blocks.len(), 10);
        assert_eq!(down.blocks.len(), 10);
        assert_eq!(up.find(2 * 77).map(|h| h.key), Some(2 * 77));
        assert!(up.find(2 * 77 + 1).is_none(), "a hole");
        // A middle insert into a full block splits it in halves.
        up.insert(2 * 70 + 1, 2 * 70 + 2);
        up.check();
        assert_eq!(up.blocks.len(), 11);
        assert_eq!(up.find(2 * 70 + 1).map(|h| h.key), Some(2 * 70 + 1));
    }

    #[test]
    fn many_blocks_use_the_summary() {
        // Enough blocks for several summary windows, then removals that
        // empty and merge blocks everywhere.
        let n = (3 * FAN * BLOCK) as u32;
        let mut m: BlockMap<u32> = BlockMap::new();
        for k in 0..n {
            m.insert(2 * k, 2 * k + 1);
        }
        m.check();
        assert!(m.tops.len() >= 3);
        for k in (0..n).step_by(7) {
            assert_eq!(m.find(2 * k).map(|h| h.key), Some(2 * k));
            assert!(m.find(2 * k + 1).is_none());
        }
        for k in (0..n).filter(|k| k % 5 != 0) {
            assert_eq!(m.remove(2 * k), Some(2 * k + 1));
        }
        m.check();
        for k in 0..n {
            let want = (k % 5 == 0).then_some(2 * k);
            assert_eq!(m.find(2 * k).map(|h| h.key), want);
        }
    }

    #[test]
    fn ends_and_tags_follow_updates() {
        /// A span with a tag.
        struct Sp(u32, u8);
        impl Span for Sp {
            fn end(&self) -> u32 {
                self.0
            }
            fn tag(&self) -> u8 {
                self.1
            }
        }
        let mut m: BlockMap<Sp> = BlockMap::new();
        for k in 0..3 * BLOCK as u32 {
            m.insert(4 * k, Sp(4 * k + 2, k as u8));
        }
        m.check();
        let h = m.find(4 * 70 + 1).unwrap();
        assert_eq!((h.key, h.end, h.tag), (4 * 70, 4 * 70 + 2, 70));
        m.update(4 * 70, |v| *v = Sp(4 * 70 + 3, 7));
        m.check();
        let h = m.find(4 * 70 + 2).unwrap();
        assert_eq!((h.end, h.tag), (4 * 70 + 3, 7));
        assert!(m.insert(4 * 70, Sp(4 * 70 + 1, 9)).is_some());
        m.check();
        assert!(m.find(4 * 70 + 2).is_none());
        assert_eq!(m.find(4 * 70).map(|h| h.tag), Some(9));
    }

    #[test]
    fn edge_keys() {
        let mut m: BlockMap<u32> = BlockMap::new();
        assert_eq!(m.pred_lt(0), None);
        m.insert(0, 1);
        m.insert(u32::MAX - 1, u32::MAX);
        assert_eq!(m.pred_le(0).map(|e| e.0), Some(0));
        assert_eq!(m.pred_lt(0), None);
        assert_eq!(m.succ_gt(0).map(|e| e.0), Some(u32::MAX - 1));
        assert_eq!(m.find(u32::MAX).map(|h| h.key), None);
        assert_eq!(m.find(u32::MAX - 1).map(|h| h.key), Some(u32::MAX - 1));
        assert_eq!(m.pred_le(u32::MAX).map(|e| e.0), Some(u32::MAX - 1));
        assert_eq!(m.iter().count(), 2);
        assert_eq!(count_le(&[], 3), 0);
        assert_eq!(count_lt(&[0, 1], 0), 0);
    }
}
