//! Two-level i386 paging: entries, flags and address spaces.

pub mod entry;
pub mod heap_backend;
pub mod space;

pub use entry::{PageTableEntry, PteFlags};
pub use heap_backend::PagedHeapBackend;
pub use space::{AddressSpace, Flush, MapError};
