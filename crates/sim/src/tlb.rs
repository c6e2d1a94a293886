//! The TLB model: a small, fully associative cache of successful translations.
//!
//! - Entries are tagged by the 4 KiB virtual page number, or for a 4 MiB page
//!   by the 4 MiB region (page-directory index): one entry covers the whole
//!   large page, and `invlpg` of any address inside it drops it.
//! - Replacement is FIFO: when full, the oldest inserted entry is evicted.
//!   Refilling a tag replaces its entry and makes it the newest.
//! - Only successful walks fill it; faults never create entries.
//! - If both a 4 KiB and a 4 MiB entry match (the tables changed between two
//!   fills without a flush; undefined on hardware) the newer one wins.
//! - Page-directory entries are not cached separately here (no
//!   paging-structure cache): a miss of [`SimMachine`](crate::SimMachine)
//!   always walks from CR3. The N-CPU machine (`smp`) adds a PDE cache per
//!   CPU next to this TLB.

use std::collections::VecDeque;

use crate::mmu::Translation;

/// What a TLB entry is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    /// A 4 KiB page: its virtual page number (`va >> 12`).
    Small(u32),
    /// A 4 MiB page: its directory index (`va >> 22`).
    Large(u32),
}

impl Tag {
    fn matches(self, va: u32) -> bool {
        match self {
            Tag::Small(vpn) => vpn == va >> 12,
            Tag::Large(pdi) => pdi == va >> 22,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    tag: Tag,
    tr: Translation,
}

/// The TLB.
#[derive(Debug)]
pub(crate) struct Tlb {
    capacity: usize,
    /// Oldest first.
    entries: VecDeque<Entry>,
}

impl Tlb {
    /// An empty TLB holding at most `capacity` entries (0 disables caching).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: VecDeque::with_capacity(capacity.min(4096)),
        }
    }

    /// The cached translation for `va`, if any.
    pub(crate) fn lookup(&self, va: u32) -> Option<Translation> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.tag.matches(va))
            .map(|e| e.tr)
    }

    /// Caches `tr` for `va`; returns true when an older entry was evicted to
    /// make room.
    pub(crate) fn insert(&mut self, va: u32, tr: Translation) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let tag = if tr.large {
            Tag::Large(va >> 22)
        } else {
            Tag::Small(va >> 12)
        };
        self.entries.retain(|e| e.tag != tag);
        let evicted = self.entries.len() == self.capacity;
        if evicted {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry { tag, tr });
        evicted
    }

    /// `invlpg va`: drops every entry that translates `va`, global or not.
    pub(crate) fn invalidate(&mut self, va: u32) {
        self.entries.retain(|e| !e.tag.matches(va));
    }

    /// What a CR3 load does: drops every non-global entry.
    pub(crate) fn flush_non_global(&mut self) {
        self.entries.retain(|e| e.tr.global);
    }

    /// Drops every entry, global ones too (what toggling CR4.PGE does).
    pub(crate) fn flush_everything(&mut self) {
        self.entries.clear();
    }

    /// Number of cached entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Capacity in entries.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Every entry, oldest first: the first virtual address it covers (the
    /// 4 KiB page, or the 4 MiB region of a large entry) and its translation.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (u32, Translation)> + '_ {
        self.entries.iter().map(|e| match e.tag {
            Tag::Small(vpn) => (vpn << 12, e.tr),
            Tag::Large(pdi) => (pdi << 22, e.tr),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmu::Rights;

    fn tr(base: u32, large: bool, global: bool) -> Translation {
        Translation {
            base,
            large,
            rights: Rights {
                user: true,
                writable: true,
            },
            dirty: false,
            global,
        }
    }

    #[test]
    fn fifo_eviction_and_refill() {
        let mut t = Tlb::new(2);
        assert!(!t.insert(0x1000, tr(0xA000, false, false)));
        assert!(!t.insert(0x2000, tr(0xB000, false, false)));
        // Refilling 0x1000 makes it the newest; 0x2000 is now the oldest.
        assert!(!t.insert(0x1234, tr(0xC000, false, false)));
        assert!(t.insert(0x3000, tr(0xD000, false, false)));
        assert_eq!(t.lookup(0x2000), None);
        assert_eq!(t.lookup(0x1FFF).unwrap().base, 0xC000);
        assert_eq!(t.lookup(0x3FFF).unwrap().base, 0xD000);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn large_entries_cover_4mib_and_invlpg_anywhere_drops_them() {
        let mut t = Tlb::new(4);
        t.insert(0x0040_0000, tr(0x0080_0000, true, true));
        assert!(t.lookup(0x007F_FFFF).is_some());
        assert!(t.lookup(0x0080_0000).is_none());
        t.invalidate(0x0061_2345);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn flushes() {
        let mut t = Tlb::new(4);
        t.insert(0x1000, tr(0, false, true));
        t.insert(0x2000, tr(0, false, false));
        t.flush_non_global();
        assert!(t.lookup(0x1000).is_some() && t.lookup(0x2000).is_none());
        t.flush_everything();
        assert_eq!(t.len(), 0);
        let mut off = Tlb::new(0);
        assert!(!off.insert(0x1000, tr(0, false, false)));
        assert_eq!((off.len(), off.capacity()), (0, 0));
    }
}
