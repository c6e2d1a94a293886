//! Two-level i386 paging: entries, flags and address spaces.

pub mod entry;
pub mod space;

pub use entry::{PageTableEntry, PteFlags};
pub use space::{AddressSpace, Flush};
