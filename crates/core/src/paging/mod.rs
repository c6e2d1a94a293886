//! Two-level i386 paging: entries, flags and address spaces.

pub mod entry;

pub use entry::{PageTableEntry, PteFlags};
