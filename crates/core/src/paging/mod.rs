//! Two-level i386 paging: entries, flags and address spaces.

pub mod batch;
pub mod entry;
pub mod heap_backend;
pub mod space;

pub use batch::{BatchOutcome, TlbBatch, BATCH_PAGES};
pub use entry::{PageTableEntry, PteFlags};
pub use heap_backend::{unmap_kernel_pages, PagedHeapBackend};
pub use space::{AddressSpace, Flush, MapError};
