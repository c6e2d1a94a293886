//! Reference models of the heap and of address spaces, with the invariant
//! checks the core's property tests (`crates/core/tests/heap_prop.rs`,
//! `vm_prop.rs`, `crates/sim/tests/smp_prop.rs`) and the fuzz targets
//! (`fuzz/src/heap.rs`, `vm.rs`, `vm_smp.rs`) share.
//!
//! Each user generates its own operations (proptest strategies, `arbitrary`
//! enums); the model records what the operations must have done and checks
//! the core against it, panicking on the first disagreement (proptest
//! catches the panic and shrinks the input).

pub mod heap;
pub mod smp;
pub mod vm;
