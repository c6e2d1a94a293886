//! The PAE TLB: the classic TLB's model (fully associative, FIFO, filled
//! only by successful walks) with entries that hold a MAXPHYADDR-bit frame,
//! the XD flag, and 2 MiB large pages.

use std::collections::VecDeque;

use super::walk::PaeTranslation;

/// What an entry is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    /// A 4 KiB page: `va >> 12`.
    Small(u32),
    /// A 2 MiB page: `va >> 21`.
    Large(u32),
}

impl Tag {
    fn matches(self, va: u32) -> bool {
        match self {
            Tag::Small(vpn) => vpn == va >> 12,
            Tag::Large(n) => n == va >> 21,
        }
    }
}

/// The TLB of a [`PaeMachine`](super::PaeMachine).
#[derive(Debug)]
pub(crate) struct PaeTlb {
    capacity: usize,
    /// Oldest first.
    entries: VecDeque<(Tag, PaeTranslation)>,
}

impl PaeTlb {
    /// An empty TLB of `capacity` entries (0 disables caching).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: VecDeque::with_capacity(capacity.min(4096)),
        }
    }

    /// The cached translation for `va` (the newest if two match).
    pub(crate) fn lookup(&self, va: u32) -> Option<PaeTranslation> {
        self.entries
            .iter()
            .rev()
            .find(|(t, _)| t.matches(va))
            .map(|&(_, tr)| tr)
    }

    /// Caches `tr` for `va`; true when an older entry was evicted.
    pub(crate) fn insert(&mut self, va: u32, tr: PaeTranslation) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let tag = if tr.large {
            Tag::Large(va >> 21)
        } else {
            Tag::Small(va >> 12)
        };
        self.entries.retain(|(t, _)| *t != tag);
        let evicted = self.entries.len() == self.capacity;
        if evicted {
            self.entries.pop_front();
        }
        self.entries.push_back((tag, tr));
        evicted
    }

    /// `invlpg va`.
    pub(crate) fn invalidate(&mut self, va: u32) {
        self.entries.retain(|(t, _)| !t.matches(va));
    }

    /// A CR3 load: drops non-global entries.
    pub(crate) fn flush_non_global(&mut self) {
        self.entries.retain(|(_, tr)| tr.global);
    }

    /// Drops everything.
    pub(crate) fn flush_everything(&mut self) {
        self.entries.clear();
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
