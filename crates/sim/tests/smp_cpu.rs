//! The N-CPU machine's per-CPU caches on hand-written page tables: the
//! PDE cache is used until `invlpg`, a fault or a CR3 load drops it, and
//! each CPU's caches are its own.

use myos_sim::smp::{SmpMachine, ViolationKind};
use myos_sim::Mode;

const P: u32 = 0x001;
const RW: u32 = 0x002;
const US: u32 = 0x004;
const G: u32 = 0x100;
const PD: u32 = 0x0010_0000;
const PT0: u32 = 0x0010_1000;
const PT1: u32 = 0x0010_2000;
const DATA: u32 = 0x0020_0000;
const U: Mode = Mode::User;

fn machine(cpus: usize) -> std::sync::Arc<SmpMachine> {
    let m = SmpMachine::new(16 << 20, cpus).unwrap();
    let w = |a: u32, v: u32| m.write_phys_u32(u64::from(a), v).unwrap();
    w(PD, PT0 | P | RW | US);
    for i in 1..4 {
        w(PT0 + 4 * i, (DATA + i * 0x1000) | P | RW | US);
        w(PT1 + 4 * i, (DATA + 0x10_0000 + i * 0x1000) | P | RW | US);
    }
    for n in 0..cpus {
        m.cpu(n).set_cr3(PD);
    }
    m
}

#[test]
fn a_cached_pde_is_used_until_invlpg_of_its_region() {
    let m = machine(1);
    let c = m.cpu(0);
    c.read_u32(0x1000, U).unwrap();
    assert_eq!(
        c.pde_cache_peek(0x1000).map(|e| e & !0x60),
        Some(PT0 | P | RW | US)
    );
    // The directory now points elsewhere; no invalidation.
    m.write_phys_u32(u64::from(PD), PT1 | P | RW | US).unwrap();
    // A page not in the TLB is still walked through the cached PDE.
    assert_eq!(
        c.translate(0x2000, myos_sim::Access::Read, U),
        Ok(DATA + 0x2000)
    );
    assert!(c.stats().pde_cache_hits >= 1);
    let v = m.check_with(&|_| false).unwrap_err();
    assert!(v
        .iter()
        .any(|x| x.kind == ViolationKind::StalePde && x.va == 0));
    // `invlpg` of an address of the region drops the cached PDE (and that
    // page's TLB entry only).
    c.invlpg(0x3000);
    assert_eq!(c.pde_cache_peek(0x1000), None);
    assert_eq!(c.tlb_peek(0x2000), Some(DATA + 0x2000));
    c.invlpg(0x2000);
    c.invlpg(0x1000);
    assert_eq!(
        c.translate(0x2000, myos_sim::Access::Read, U),
        Ok(DATA + 0x10_2000)
    );
    assert_eq!(m.check_with(&|_| false), Ok(()));
}

#[test]
fn a_cr3_load_drops_the_pde_cache_and_non_global_entries_only() {
    let m = machine(1);
    m.write_phys_u32(u64::from(PT0 + 4), (DATA + 0x1000) | P | RW | US | G)
        .unwrap();
    let c = m.cpu(0);
    c.read_u32(0x1000, U).unwrap();
    c.read_u32(0x2000, U).unwrap();
    assert!(c.pde_cache_peek(0).is_some());
    c.set_cr3(PD);
    assert_eq!(c.pde_cache_peek(0), None);
    assert_eq!(c.tlb_peek(0x1000), Some(DATA + 0x1000), "global survives");
    assert_eq!(c.tlb_peek(0x2000), None);
    // Toggling PGE drops the global one too.
    c.set_pge(false);
    assert_eq!(c.tlb_peek(0x1000), None);
}

#[test]
fn a_page_fault_drops_the_cached_pde_of_its_address() {
    let m = machine(1);
    let c = m.cpu(0);
    c.read_u32(0x1000, U).unwrap();
    assert!(c.pde_cache_peek(0).is_some());
    // PTE 5 is not present.
    assert!(c.read_u32(0x5000, U).is_err());
    assert_eq!(c.pde_cache_peek(0), None);
}

#[test]
fn each_cpu_has_its_own_caches_and_flushes_only_itself() {
    let m = machine(2);
    let (c0, c1) = (m.cpu(0), m.cpu(1));
    c0.read_u32(0x1000, U).unwrap();
    c1.read_u32(0x1000, U).unwrap();
    c0.invlpg(0x1000);
    assert_eq!(c0.tlb_peek(0x1000), None);
    assert_eq!(c1.tlb_peek(0x1000), Some(DATA + 0x1000));
    // Narrowing the PDE: CPU 1's cached PDE and TLB entry now give more.
    m.write_phys_u32(u64::from(PD), PT0 | P | US).unwrap();
    let v = m.check_with(&|_| false).unwrap_err();
    let kinds: Vec<_> = v.iter().map(|x| (x.cpu.index(), x.kind)).collect();
    assert!(kinds.contains(&(1, ViolationKind::PdeMoreRights)), "{v:#?}");
    assert!(kinds.contains(&(1, ViolationKind::MoreRights)), "{v:#?}");
    assert!(kinds.iter().all(|&(cpu, _)| cpu == 1), "{v:#?}");
    // A frame the oracle calls free is reported for CPU 1's entry.
    let v = m
        .check_with(&|f| f.start().as_u32() == DATA + 0x1000)
        .unwrap_err();
    assert!(v.iter().any(|x| x.kind == ViolationKind::FreeFrame));
    c1.invlpg(0x1000);
    assert_eq!(m.check_with(&|_| false), Ok(()));
}

#[test]
fn everything_reaches_global_entries_and_all_non_global_does_not() {
    use myos_mm::smp::{CpuId, CpuSet, Invalidate};
    use myos_mm::Platform;
    let m = machine(2);
    m.write_phys_u32(u64::from(PT0 + 4), (DATA + 0x1000) | P | RW | US | G)
        .unwrap();
    let (c0, c1) = (m.cpu(0), m.cpu(1));
    let one = CpuSet::only(CpuId::new(1).unwrap());
    c1.read_u32(0x1000, U).unwrap();
    c1.read_u32(0x2000, U).unwrap();
    c0.shootdown(one, Invalidate::AllNonGlobal);
    assert_eq!(c1.tlb_peek(0x1000), Some(DATA + 0x1000));
    assert_eq!(c1.tlb_peek(0x2000), None);
    assert_eq!(c1.pde_cache_peek(0), None);
    c0.shootdown(one, Invalidate::Everything);
    assert_eq!(c1.tlb_peek(0x1000), None);
    let s = m.shootdown_stats();
    assert_eq!(
        (s.ipis_sent, s.full_flushes, s.requests_per_cpu[1]),
        (2, 2, 2)
    );
}
