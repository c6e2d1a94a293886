//! The benchmark's parameters: page and arena sizes, efficiency rounds,
//! timed repeats.

/// Page size: arena alignment, page-aligned requests.
pub(crate) const PAGE: usize = 4096;
/// Arena of every allocator in the timed workloads.
pub(crate) const ARENA: usize = 32 << 20;
/// `growth`: the heap's initial size.
pub(crate) const GROWTH_START: usize = 64 << 10;
/// `growth`: its arena, which the heap grows into.
pub(crate) const GROWTH_MAX: usize = 16 << 20;
/// `efficiency`: the arena of each round.
pub(crate) const EFF_ARENA: usize = 4 << 20;
/// `efficiency`: rounds averaged.
pub(crate) const EFF_ROUNDS: usize = 40;
/// Timed runs of a trace; the best one counts.
pub(crate) const TIMED_REPEATS: usize = 3;
