//! Two-level i386 paging: entries, flags and address spaces.
//!
//! - `entry.rs`: `PageTableEntry` and `PteFlags`;
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
mod outcome;
pub mod space;
mod table;

pub use batch::{BatchOutcome, TlbBatch, BATCH_PAGES};
pub use cpus::SpaceCpus;
pub use entry::{PageTableEntry, PteFlags};
pub use heap_backend::{unmap_kernel_pages, PagedHeapBackend};
pub use space::{AddressSpace, Flush, MapError};
