//! The region tree of an address space, with an index of free gaps.
//!
//! Regions are kept in a [`BlockMap`] keyed by their first page number, which
//! keeps each region's end and a one-byte [`tag`] (protection, shared, stack,
//! file-backed) beside its start: a lookup in a hole reads no region record,
//! and neither does [`VmSpace::region_at`](super::VmSpace::region_at) on a
//! region that no file backs. Regions never overlap. Free space is indexed twice — by start (another
//! `BlockMap`, to test a hint and to find a gap's neighbours) and by
//! (length, start) (a `BTreeSet`, to find the smallest gap that fits) — so
//! lookup and placement are O(log n) in the number of regions (Linux gets
//! the same from its augmented VMA tree).
//!
//! All numbers here are page numbers; a region is `start..end`.

use alloc::collections::BTreeSet;

use super::index::{BlockMap, Hit, Span};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::num::NonZeroU32;

use super::object::VmObject;
use super::{Prot, STACK_GUARD_GAP};
use crate::layout::{PAGE_SHIFT, USER_END, USER_MMAP_MIN};

/// First page `mmap` may use.
pub(crate) const MIN_PAGE: u32 = USER_MMAP_MIN >> PAGE_SHIFT;
/// One past the last user page.
pub(crate) const END_PAGE: u32 = USER_END >> PAGE_SHIFT;
/// The stack guard gap in pages.
pub(crate) const GUARD_PAGES: u32 = STACK_GUARD_GAP >> PAGE_SHIFT;

/// What backs a region's pages.
#[derive(Clone)]
pub(crate) enum Backing {
    /// Private anonymous memory: demand-zero pages owned by the page tables.
    Anonymous,
    /// A shared anonymous object or a file's page cache.
    Object {
        /// The object.
        object: Arc<VmObject>,
        /// Page index within the object of the region's first page.
        offset: u32,
        /// The file was opened for writing (a shared mapping may become
        /// writable); always true for anonymous objects.
        may_write: bool,
    },
}

/// One region (VMA).
#[derive(Clone)]
pub(crate) struct Region {
    /// One past the last page.
    pub end: u32,
    /// Protection.
    pub prot: Prot,
    /// Shared (writes visible to other mappings) or private (copy-on-write).
    pub shared: bool,
    /// What backs it.
    pub backing: Backing,
    /// For a growable stack: the lowest page it may grow down to (never page
    /// 0, so the option costs no space: a region is 32 bytes, two to a cache
    /// line).
    pub stack_limit: Option<NonZeroU32>,
}

/// The bits of a region's index tag ([`Span::tag`]).
pub(crate) mod tag {
    /// The protection's bits ([`Prot`](crate::vm::Prot) fits in them).
    pub(crate) const PROT: u8 = 0b111;
    /// A shared region.
    pub(crate) const SHARED: u8 = 1 << 3;
    /// A growable stack.
    pub(crate) const STACK: u8 = 1 << 4;
    /// A file backs the region.
    pub(crate) const FILE: u8 = 1 << 5;
}

const _: () = assert!(Prot::all().bits() <= tag::PROT as u32);

impl Span for Region {
    fn end(&self) -> u32 {
        self.end
    }

    fn tag(&self) -> u8 {
        let file = matches!(&self.backing, Backing::Object { object, .. } if object.is_file());
        // `as u8` keeps all of the protection's bits (asserted above).
        (self.prot.bits() as u8)
            | if self.shared { tag::SHARED } else { 0 }
            | if self.stack_limit.is_some() {
                tag::STACK
            } else {
                0
            }
            | if file { tag::FILE } else { 0 }
    }
}

impl Region {
    /// The object and the object page index of page `page` (whose region
    /// starts at `start`), for object-backed regions.
    pub(crate) fn object_index(&self, start: u32, page: u32) -> Option<(&Arc<VmObject>, u32)> {
        match &self.backing {
            Backing::Object { object, offset, .. } => Some((object, offset + (page - start))),
            Backing::Anonymous => None,
        }
    }

    /// The region's part from `at` on (for a split at `at`, `start < at < end`).
    fn tail(&self, start: u32, at: u32) -> Region {
        let mut r = self.clone();
        if let Backing::Object { offset, .. } = &mut r.backing {
            *offset += at - start;
        }
        r
    }

    /// True when `next` (starting at `self_end`) continues this region
    /// seamlessly, so the two can be one region.
    fn mergeable(&self, start: u32, next: &Region) -> bool {
        if self.prot != next.prot
            || self.shared != next.shared
            || self.stack_limit != next.stack_limit
        {
            return false;
        }
        match (&self.backing, &next.backing) {
            (Backing::Anonymous, Backing::Anonymous) => true,
            (
                Backing::Object {
                    object: a,
                    offset: ao,
                    may_write: aw,
                },
                Backing::Object {
                    object: b,
                    offset: bo,
                    may_write: bw,
                },
            ) => Arc::ptr_eq(a, b) && aw == bw && ao + (self.end - start) == *bo,
            _ => false,
        }
    }

    /// Where the free space below this region ends, given that the region
    /// before it ends at `prev_end`: a stack reserves its growth range and
    /// the guard gap below it.
    fn reserved_start(&self, start: u32, prev_end: u32) -> u32 {
        match self.stack_limit {
            Some(limit) => limit
                .get()
                .saturating_sub(GUARD_PAGES)
                .max(prev_end)
                .min(start),
            None => start,
        }
    }
}

/// The regions of one address space and the free gaps between them.
#[derive(Clone)]
pub(crate) struct RegionTree {
    regions: BlockMap<Region>,
    /// Free gaps: start -> end.
    gaps: BlockMap<u32>,
    /// Free gaps by (length, start).
    by_len: BTreeSet<(u32, u32)>,
    /// The region [`lookup`](Self::lookup) found last (Linux's `vmacache`):
    /// consecutive faults usually hit the same region. Cleared by every
    /// `&mut self` method, so it only ever copies a region that exists.
    cache: Option<(u32, Region)>,
}

impl RegionTree {
    /// An empty tree: all of `MIN_PAGE..END_PAGE` is free.
    pub(crate) fn new() -> Self {
        let mut t = RegionTree {
            regions: BlockMap::new(),
            gaps: BlockMap::new(),
            by_len: BTreeSet::new(),
            cache: None,
        };
        t.add_gap(MIN_PAGE, END_PAGE);
        t
    }

    /// Number of regions.
    pub(crate) fn len(&self) -> usize {
        self.regions.len()
    }

    /// The region containing `page`: (start, region).
    #[inline]
    pub(crate) fn find(&self, page: u32) -> Option<(u32, &Region)> {
        self.regions.find(page).map(|h| (h.key, h.val))
    }

    /// The region containing `page`, with its start, end and [`tag`] as the
    /// index holds them (read without touching the region record).
    #[inline]
    pub(crate) fn find_hit(&self, page: u32) -> Option<Hit<'_, Region>> {
        self.regions.find(page)
    }

    /// A copy of the region containing `page`, through the one-entry cache.
    pub(crate) fn lookup(&mut self, page: u32) -> Option<(u32, Region)> {
        if let Some((s, r)) = &self.cache {
            if *s <= page && page < r.end {
                return Some((*s, r.clone()));
            }
        }
        let (s, r) = self.find(page)?;
        let r = r.clone();
        self.cache = Some((s, r.clone()));
        Some((s, r))
    }

    /// The region starting at `start`.
    pub(crate) fn get(&self, start: u32) -> Option<&Region> {
        self.regions.get(start)
    }

    /// The first region starting above `page`.
    pub(crate) fn next_above(&self, page: u32) -> Option<(u32, &Region)> {
        self.regions.succ_gt(page)
    }

    /// The last region starting below `page`.
    pub(crate) fn prev_below(&self, page: u32) -> Option<(u32, &Region)> {
        self.regions.pred_lt(page)
    }

    /// Regions starting in `lo..hi`, in order.
    pub(crate) fn range(&self, lo: u32, hi: u32) -> impl Iterator<Item = (u32, &Region)> {
        self.regions.range(lo, hi)
    }

    /// All regions in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Region)> {
        self.regions.iter()
    }

    /// Runs `f` on the region starting at `start` and returns its result
    /// (`None` when no region starts there). The index follows a changed end.
    pub(crate) fn update<R>(&mut self, start: u32, f: impl FnOnce(&mut Region) -> R) -> Option<R> {
        self.cache = None;
        self.regions.update(start, f)
    }

    /// True when `lo..hi` is wholly free (not in a region, a stack reserve
    /// or a guard gap).
    pub(crate) fn is_free(&self, lo: u32, hi: u32) -> bool {
        match self.gaps.span_le(lo) {
            Some((_, end)) => hi <= end,
            None => false,
        }
    }

    /// The lowest-addressed among the smallest free gaps of at least `pages`
    /// pages (best fit): its start.
    pub(crate) fn find_free(&self, pages: u32) -> Option<u32> {
        self.by_len
            .range((pages, 0)..)
            .next()
            .map(|&(_, start)| start)
    }

    /// Splits the region straddling `at` (if any) into `..at` and `at..`.
    pub(crate) fn split_at(&mut self, at: u32) {
        self.cache = None;
        let Some((s, r)) = self.find(at) else { return };
        if s == at {
            return;
        }
        let tail = r.tail(s, at);
        self.regions.update(s, |r| r.end = at);
        self.regions.insert(at, tail);
    }

    /// Inserts a region at `start` (the range must hold no region), and
    /// updates the gaps.
    pub(crate) fn insert(&mut self, start: u32, region: Region) {
        self.cache = None;
        let end = region.end;
        debug_assert!(self.range(start, end).next().is_none() && self.find(start).is_none());
        self.regions.insert(start, region);
        self.refresh_gaps(start, end);
    }

    /// Removes every region starting in `lo..hi` (split first so none
    /// straddles the bounds) and returns them; updates the gaps.
    pub(crate) fn remove_range(&mut self, lo: u32, hi: u32) -> Vec<(u32, Region)> {
        self.cache = None;
        let mut out = Vec::new();
        while let Some((s, _)) = self.regions.range(lo, hi).next() {
            if let Some(r) = self.regions.remove(s) {
                out.push((s, r));
            }
        }
        if !out.is_empty() {
            self.refresh_gaps(lo, hi);
        }
        out
    }

    /// Removes every region (for teardown).
    pub(crate) fn take_all(&mut self) -> Vec<(u32, Region)> {
        self.cache = None;
        let all = self.regions.take_all();
        self.gaps.take_all();
        self.by_len.clear();
        self.add_gap(MIN_PAGE, END_PAGE);
        all
    }

    /// Moves the start of the region at `old` down to `new` (stack growth;
    /// `new..old` must be free of regions). The gaps don't change: a stack's
    /// reserve already covers its growth range.
    pub(crate) fn extend_down(&mut self, old: u32, new: u32) {
        self.cache = None;
        if let Some(r) = self.regions.remove(old) {
            self.regions.insert(new, r);
        }
    }

    /// Merges the region at `start` with its neighbours, as far as they
    /// continue it seamlessly (a changed run can be followed by several
    /// equal pieces). Returns the start of the merged region. Regions
    /// absorbed share the survivor's object, so dropping them never drops an
    /// object's last hold.
    pub(crate) fn merge_around(&mut self, start: u32) -> u32 {
        self.cache = None;
        let mut start = start;
        while let Some((ps, prev)) = self.regions.pred_lt(start) {
            let Some(cur) = self.regions.get(start) else {
                break;
            };
            if prev.end != start || !prev.mergeable(ps, cur) {
                break;
            }
            let end = cur.end;
            self.regions.remove(start);
            self.regions.update(ps, |p| p.end = end);
            start = ps;
        }
        while let Some(cur) = self.regions.get(start) {
            let end = cur.end;
            let Some(next) = self.regions.get(end) else {
                break;
            };
            if !cur.mergeable(start, next) {
                break;
            }
            let next_end = next.end;
            self.regions.remove(end);
            self.regions.update(start, |c| c.end = next_end);
        }
        start
    }

    fn add_gap(&mut self, lo: u32, hi: u32) {
        if lo < hi {
            self.gaps.insert(lo, hi);
            self.by_len.insert((hi - lo, lo));
        }
    }

    /// Recomputes the free gaps around `lo..hi` after regions changed there:
    /// from the end of the last region before `lo` to the reserved start of
    /// the first region at or after `hi`. O((k + 1) log n) for k regions in
    /// the window.
    fn refresh_gaps(&mut self, lo: u32, hi: u32) {
        let from = self
            .regions
            .pred_lt(lo)
            .map_or(MIN_PAGE, |(_, r)| r.end.max(MIN_PAGE));
        let right = self.regions.succ_ge(hi).map(|(s, _)| s);
        let to = right.unwrap_or(END_PAGE);
        while let Some((s, &e)) = self.gaps.range(from, to).next() {
            self.gaps.remove(s);
            self.by_len.remove(&(e - s, s));
        }
        // `regions` is only read and `gaps`/`by_len` only written below:
        // disjoint fields, so no intermediate list is needed.
        let (regions, gaps, by_len) = (&self.regions, &mut self.gaps, &mut self.by_len);
        let mut add = |lo: u32, hi: u32| {
            if lo < hi {
                gaps.insert(lo, hi);
                by_len.insert((hi - lo, lo));
            }
        };
        let mut prev_end = from;
        let chain = regions
            .range(lo, to)
            .chain(right.and_then(|s| regions.get(s).map(|r| (s, r))));
        for (s, r) in chain {
            add(prev_end, r.reserved_start(s, prev_end));
            prev_end = prev_end.max(r.end);
        }
        if right.is_none() {
            add(prev_end, END_PAGE);
        }
    }

    /// Checks the regions (ordered, non-empty, non-overlapping, inside user
    /// space) and the gap indexes against a scan of the regions: O(n).
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        self.regions.validate()?;
        self.gaps.validate()?;
        let mut expect = Vec::new();
        let mut prev_end = MIN_PAGE;
        for (s, r) in self.regions.iter() {
            if s >= r.end || s < prev_end || r.end > END_PAGE {
                return Err("regions overlap, are empty or leave user space");
            }
            let gap_end = r.reserved_start(s, prev_end);
            if gap_end > prev_end {
                expect.push((prev_end, gap_end));
            }
            prev_end = r.end;
        }
        if END_PAGE > prev_end {
            expect.push((prev_end, END_PAGE));
        }
        if !self
            .gaps
            .iter()
            .map(|(s, &e)| (s, e))
            .eq(expect.iter().copied())
        {
            return Err("gap index out of date");
        }
        if self.by_len.len() != expect.len()
            || !expect
                .iter()
                .all(|&(s, e)| self.by_len.contains(&(e - s, s)))
        {
            return Err("gap-size index out of date");
        }
        if let Some((s, r)) = &self.cache {
            if self
                .regions
                .get(*s)
                .is_none_or(|x| x.end != r.end || x.prot != r.prot)
            {
                return Err("lookup cache holds a region that no longer exists");
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn check(&self) {
        self.validate().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(end: u32, prot: Prot) -> Region {
        Region {
            end,
            prot,
            shared: false,
            backing: Backing::Anonymous,
            stack_limit: None,
        }
    }

    #[test]
    fn gaps_follow_inserts_splits_and_removals() {
        let mut t = RegionTree::new();
        t.check();
        assert_eq!(t.find_free(10), Some(MIN_PAGE));
        t.insert(MIN_PAGE, anon(MIN_PAGE + 10, Prot::READ));
        t.insert(MIN_PAGE + 20, anon(MIN_PAGE + 25, Prot::READ));
        t.check();
        assert_eq!(
            t.find_free(10),
            Some(MIN_PAGE + 10),
            "best fit: the 10-page hole"
        );
        assert_eq!(t.find_free(11), Some(MIN_PAGE + 25));
        assert!(t.is_free(MIN_PAGE + 10, MIN_PAGE + 20));
        assert!(!t.is_free(MIN_PAGE + 10, MIN_PAGE + 21));
        t.split_at(MIN_PAGE + 5);
        assert_eq!(t.len(), 3);
        t.split_at(MIN_PAGE + 22);
        let gone = t.remove_range(MIN_PAGE + 5, MIN_PAGE + 22);
        assert_eq!(gone.len(), 2);
        t.check();
        assert!(t.find(MIN_PAGE + 21).is_none());
        assert!(t.find(MIN_PAGE + 22).is_some());
        assert!(t.find(MIN_PAGE + 4).is_some());
    }

    #[test]
    fn merge_joins_seamless_neighbours_only() {
        let mut t = RegionTree::new();
        t.insert(MIN_PAGE, anon(MIN_PAGE + 4, Prot::READ));
        t.insert(MIN_PAGE + 4, anon(MIN_PAGE + 8, Prot::READ));
        t.insert(MIN_PAGE + 8, anon(MIN_PAGE + 12, Prot::WRITE));
        assert_eq!(t.merge_around(MIN_PAGE + 4), MIN_PAGE);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(MIN_PAGE).unwrap().end, MIN_PAGE + 8);
        t.check();
    }

    #[test]
    fn region_is_half_a_cache_line() {
        assert!(core::mem::size_of::<Region>() <= 32);
    }

    #[test]
    fn stack_reserve_is_not_free() {
        let mut t = RegionTree::new();
        let top = END_PAGE;
        let limit = top - 256;
        t.insert(
            top - 4,
            Region {
                stack_limit: NonZeroU32::new(limit),
                ..anon(top, Prot::READ | Prot::WRITE)
            },
        );
        t.check();
        assert!(!t.is_free(limit - 1, limit));
        assert!(t.is_free(limit - GUARD_PAGES - 1, limit - GUARD_PAGES));
        t.extend_down(top - 4, top - 10);
        t.check();
    }
}
