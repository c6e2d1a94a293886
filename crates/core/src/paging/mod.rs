//! i386 paging, classic two-level or PAE: entries, flags and address spaces.
//!
//! - `mode.rs`: `PagingMode`, `Classic` and `Pae` (entry width, table
//!   shape, large-page size, NX);
//! - `entry.rs`: `PageTableEntry`, `PaeEntry`, the `Entry` trait, `PteFlags`
//!   and `PageAttrs`;
//! - `table.rs`: a page-table frame and the references it holds;
//! - `space.rs`: `AddressSpace` and its operations;
//! - `cpus.rs`: `SpaceCpus`, the CPUs that may cache a space, reached
//!   without the space's lock;
//! - `outcome.rs`: `Flush` tokens and `MapError`;
//! - `batch.rs`: `TlbBatch`, one shootdown per narrowing operation;
//! - `heap_backend.rs`: the kernel heap's pages and kernel-half unmaps.

pub mod batch;
mod cpus;
pub mod entry;
pub mod heap_backend;
pub mod mode;
mod outcome;
pub mod space;
mod table;

pub use batch::{BatchOutcome, TlbBatch, BATCH_PAGES};
pub use cpus::SpaceCpus;
pub use entry::{Entry, PaeEntry, PageAttrs, PageTableEntry, PteFlags};
pub use heap_backend::{unmap_kernel_pages, AnyModeHeapBackend, PagedHeapBackend};
pub use mode::{Classic, Pae, PagingMode};
pub use space::{AddressSpace, Flush, MapError};
pub use table::{read_entry, write_entry};
