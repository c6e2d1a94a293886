//! Property test on four CPUs: random sequences of the N-CPU run
//! ([`myos_sim::model::smp`], shared with the `vm_smp` fuzz target) —
//! several processes (fork, copy-on-write between parent and child, each
//! loaded on different CPUs, threads sharing a space), private and shared
//! anonymous and file mappings, `mprotect`, `munmap` past the full-flush
//! threshold, several CPUs faulting on one page (with and without an unmap
//! in between), heap pages grown and shrunk — checked by the TLB-coherence
//! checker after every operation and against the page model, with every
//! frame back at the end.
//!
//! Operations name a small window (64 pages, one page table) or a page the
//! process has mapped, so they meet each other often.

use myos_sim::model::smp::{run, Backing, Limits, Op, RunStats};
use proptest::prelude::*;

fn cpu() -> impl Strategy<Value = u8> {
    0u8..4
}

/// A window page (0..64) or, half the time, a mapped page.
fn page() -> impl Strategy<Value = u16> {
    prop_oneof![0u16..64, 0x8000u16..0x8040]
}

fn backing() -> impl Strategy<Value = Backing> {
    prop_oneof![
        2 => Just(Backing::Private),
        1 => Just(Backing::Shared),
        2 => (0u8..3, 0u8..10, any::<bool>()).prop_map(|(file, offset, shared)| Backing::File {
            file,
            offset,
            shared,
        }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (cpu(), 0u16..64, 0u8..48, 0u8..4, backing()).prop_map(
            |(cpu, page, len, prot, backing)| Op::Map { cpu, page, len, prot, backing }
        ),
        2 => (cpu(), page(), prop_oneof![0u16..8, 32u16..64]).prop_map(
            |(cpu, page, len)| Op::Unmap { cpu, page, len }
        ),
        2 => (cpu(), page(), 0u16..48, 0u8..4).prop_map(
            |(cpu, page, len, prot)| Op::Protect { cpu, page, len, prot }
        ),
        3 => (cpu(), page(), any::<u32>()).prop_map(
            |(cpu, page, value)| Op::Write { cpu, page, value }
        ),
        2 => (cpu(), page(), 32u8..48, any::<u32>()).prop_map(
            |(cpu, page, len, value)| Op::Fill { cpu, page, len, value }
        ),
        2 => (cpu(), page()).prop_map(|(cpu, page)| Op::Read { cpu, page }),
        2 => (cpu(), page()).prop_map(|(cpu, page)| Op::RawRead { cpu, page }),
        2 => (cpu(), page(), any::<u32>()).prop_map(
            |(cpu, page, value)| Op::RawWrite { cpu, page, value }
        ),
        3 => (cpu(), 0u8..3).prop_map(|(cpu, p)| Op::Load { cpu, p }),
        1 => cpu().prop_map(|cpu| Op::Unload { cpu }),
        1 => (cpu(), 0u8..3).prop_map(|(cpu, p)| Op::Fork { cpu, p }),
        1 => (0u8..2).prop_map(|p| Op::Exit { p }),
        2 => (0u8..3, any::<u8>(), page(), any::<u8>(), any::<u32>(), any::<bool>()).prop_map(
            |(p, cpus, page, writes, value, unmap)| Op::Race { p, cpus, page, writes, value, unmap }
        ),
        1 => (cpu(), 0u8..16, 0u8..8).prop_map(|(cpu, slot, len)| Op::HeapMap { cpu, slot, len }),
        1 => (cpu(), 0u8..16, 0u8..8).prop_map(|(cpu, slot, len)| Op::HeapUnmap { cpu, slot, len }),
        1 => (cpu(), 0u8..16).prop_map(|(cpu, slot)| Op::HeapRead { cpu, slot }),
        1 => (cpu(), 0u8..16, any::<u32>()).prop_map(
            |(cpu, slot, value)| Op::HeapWrite { cpu, slot, value }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn four_cpus_stay_coherent_and_match_the_model(ops in prop::collection::vec(op(), 1..120)) {
        run(&ops, Limits::default());
    }
}

/// A fixed sequence through every kind of operation: what the random ones
/// are expected to reach, each at least once.
#[test]
fn a_fixed_sequence_reaches_every_kind_of_operation() {
    use Op::*;
    let ops = [
        Map {
            cpu: 0,
            page: 0,
            len: 47,
            prot: 2,
            backing: Backing::Private,
        },
        Fill {
            cpu: 0,
            page: 0,
            len: 47,
            value: 100,
        },
        Map {
            cpu: 0,
            page: 50,
            len: 3,
            prot: 2,
            backing: Backing::Shared,
        },
        Map {
            cpu: 0,
            page: 54,
            len: 4,
            prot: 2,
            backing: Backing::File {
                file: 0,
                offset: 2,
                shared: true,
            },
        },
        Map {
            cpu: 0,
            page: 59,
            len: 4,
            prot: 1,
            backing: Backing::File {
                file: 2,
                offset: 3,
                shared: false,
            },
        },
        Write {
            cpu: 0,
            page: 50,
            value: 7,
        },
        Write {
            cpu: 0,
            page: 54,
            value: 8,
        },
        Load { cpu: 1, p: 0 },
        RawRead { cpu: 1, page: 5 },
        Fork { cpu: 1, p: 0 },
        Load { cpu: 2, p: 1 },
        Load { cpu: 3, p: 1 },
        // Copy-on-write on the child's CPUs (CPU 3 holds the shared frame
        // when CPU 2 copies it), the parent keeps its values.
        Read { cpu: 3, page: 5 },
        Write {
            cpu: 2,
            page: 5,
            value: 55,
        },
        Race {
            p: 1,
            cpus: 0b1100,
            page: 6,
            writes: 0b1100,
            value: 66,
            unmap: false,
        },
        Read { cpu: 0, page: 5 },
        // The shared pages are shared with the child.
        Write {
            cpu: 3,
            page: 50,
            value: 9,
        },
        Read { cpu: 1, page: 50 },
        Write {
            cpu: 2,
            page: 55,
            value: 10,
        },
        Read { cpu: 0, page: 55 },
        // Several CPUs first-touching one page, then with an unmap between.
        Map {
            cpu: 0,
            page: 48,
            len: 1,
            prot: 2,
            backing: Backing::Private,
        },
        Race {
            p: 0,
            cpus: 0b0011,
            page: 49,
            writes: 0b01,
            value: 1,
            unmap: false,
        },
        Race {
            p: 0,
            cpus: 0b0011,
            page: 48,
            writes: 0b10,
            value: 2,
            unmap: true,
        },
        // CPU 0 holds a writable entry (its copy), CPU 1 takes it away.
        Write {
            cpu: 0,
            page: 3,
            value: 33,
        },
        Protect {
            cpu: 1,
            page: 0,
            len: 20,
            prot: 1,
        },
        RawWrite {
            cpu: 0,
            page: 3,
            value: 1,
        },
        Unmap {
            cpu: 1,
            page: 0,
            len: 47,
        },
        // The only page of the second page table: unmapping it frees the
        // table CPU 1's PDE cache points to.
        Map {
            cpu: 0,
            page: 1100,
            len: 0,
            prot: 2,
            backing: Backing::Private,
        },
        Write {
            cpu: 0,
            page: 1100,
            value: 5,
        },
        Read { cpu: 1, page: 1100 },
        Unmap {
            cpu: 0,
            page: 1100,
            len: 0,
        },
        HeapMap {
            cpu: 0,
            slot: 0,
            len: 3,
        },
        HeapRead { cpu: 1, slot: 1 },
        HeapRead { cpu: 2, slot: 2 },
        HeapUnmap {
            cpu: 3,
            slot: 0,
            len: 7,
        },
        HeapRead { cpu: 1, slot: 1 },
        HeapWrite {
            cpu: 2,
            slot: 2,
            value: 3,
        },
        Exit { p: 0 },
        Unload { cpu: 1 },
    ];
    let s: RunStats = run(&ops, Limits::default());
    assert_eq!(s.forks, 1);
    assert!(s.cow >= 2, "{s:?}");
    assert_eq!(s.races, 3, "{s:?}");
    assert!(s.race_spurious >= 1, "{s:?}");
    assert_eq!(s.big_remote_unmaps, 1, "{s:?}");
    assert!(s.shootdowns.full_flushes >= 1, "{s:?}");
    assert_eq!(s.heap_remote_unmaps, 1, "{s:?}");
    assert_eq!(s.shared_maps, 2, "{s:?}");
}
