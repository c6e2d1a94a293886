//! Demand-zero and copy-on-write faults, each next to its baseline (zeroing
//! or copying one page), in either paging mode.

use myos_abi::{RawMman, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use myos_mm::frames::{FrameSource, Zone};
use myos_mm::layout::PAGE_SIZE;
use myos_mm::vm::{FaultOutcome, FdTable, PageFault, ERR_PRESENT, ERR_USER, ERR_WRITE};
use myos_mm::{Frame, OwnedFrame, VirtAddr};
use myos_sim::WorldMachine;

use crate::world::{Vm, World};
use crate::{median, time};

const PAGE: u32 = PAGE_SIZE as u32;

/// Pages per timed chunk of the fault benchmarks: short enough (tens of
/// microseconds) that a chunk is rarely preempted on a busy machine.
pub const CHUNK: u32 = 256;

/// Where the faulting region starts.
pub const BASE: VirtAddr = VirtAddr::new(0x1000_0000);

/// Panics unless the fault was resolved.
pub fn resolved(o: FaultOutcome) {
    assert!(matches!(o, FaultOutcome::Resolved(_)), "{o:?}");
}

/// Per-chunk timings of a fault and its baseline, with the order they ran in.
#[derive(Default)]
struct Pairs {
    fault: Vec<f64>,
    base: Vec<f64>,
    /// fault/base ratios of chunks where the baseline ran first / second.
    base_first: Vec<f64>,
    fault_first: Vec<f64>,
}

/// Runs `fault` and `base` (each returns its ns per op), the baseline first
/// when `base_first`; returns (fault, base).
fn paired(base_first: bool, fault: impl FnOnce() -> f64, base: impl FnOnce() -> f64) -> (f64, f64) {
    if base_first {
        let b = base();
        (fault(), b)
    } else {
        let f = fault();
        (f, base())
    }
}

impl Pairs {
    /// Times one chunk and its baseline ([`paired`]) and records them.
    fn time_pair(
        &mut self,
        base_first: bool,
        fault: impl FnOnce() -> f64,
        base: impl FnOnce() -> f64,
    ) {
        let (f, b) = paired(base_first, fault, base);
        self.fault.push(f);
        self.base.push(b);
        if base_first {
            self.base_first.push(f / b);
        } else {
            self.fault_first.push(f / b);
        }
    }

    /// (median fault ns, median baseline ns, ratio): the ratio is the
    /// geometric mean of the two orders' median ratios, so whichever runs
    /// second on warmer caches favours neither.
    fn result(self) -> (f64, f64, f64) {
        let r = (median(self.base_first) * median(self.fault_first)).sqrt();
        (median(self.fault), median(self.base), r)
    }
}

/// One run of [`faults`]: ns per operation (medians over the chunks) and
/// each fault's ratio to its baseline.
#[derive(Clone, Copy, Debug)]
pub struct FaultTimes {
    /// Demand-zero fault.
    pub zero_fault: f64,
    /// Zeroing one page (`Platform::zero_frame`).
    pub zero: f64,
    /// Demand-zero fault / zeroing a page.
    pub zero_ratio: f64,
    /// Copy-on-write fault.
    pub cow_fault: f64,
    /// Copying one page (`Platform::copy_frame`).
    pub copy: f64,
    /// COW fault / copying a page.
    pub cow_ratio: f64,
}

/// Maps `pages` private anonymous read/write pages at [`BASE`].
pub fn map_region<M: WorldMachine>(vm: &mut Vm<'_, M>, fds: &FdTable, pages: u32) {
    let anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    vm.mmap(fds, BASE, pages * PAGE, PROT_READ | PROT_WRITE, anon, -1, 0)
        .expect("mmap");
}

/// Write faults on pages `range` of the region at [`BASE`] (`present`: on
/// pages mapped read-only, as copy-on-write pages are), each resolved.
pub fn fault_pages<M: WorldMachine>(
    vm: &mut Vm<'_, M>,
    range: std::ops::Range<u32>,
    present: bool,
) {
    let code = ERR_USER | ERR_WRITE | if present { ERR_PRESENT } else { 0 };
    for i in range {
        let f = PageFault::new(BASE.as_u32() + i * PAGE, code);
        resolved(vm.handle_fault(f));
    }
}

/// Demand-zero fault vs zeroing a page; COW fault vs copying a page, over
/// `pages` pages (a multiple of [`CHUNK`]) in each of `rounds` rounds after
/// a warm-up round.
///
/// Each chunk of `CHUNK` faults is paired with its baseline on as many
/// frames of the same age (touched once per round), the two in alternating
/// order.
pub fn faults<M: WorldMachine>(w: &World<M>, pages: u32, rounds: usize) -> FaultTimes {
    let fds = FdTable::new();
    let mut vm = w.space();
    vm.activate();
    let alloc = |n: u32| -> Vec<OwnedFrame> {
        let mut fa = &w.fa;
        (0..n)
            .map(|_| fa.alloc(Zone::High).expect("frame"))
            .collect()
    };
    let free = |frames: Vec<OwnedFrame>| {
        let mut fa = &w.fa;
        for f in frames {
            fa.release(f).expect("release");
        }
    };
    // Demand-zero. The baseline zeroes its own frames, taken for the whole
    // round, so they and the faults' frames were both last touched a round
    // ago (equally cold, as a fault's fresh frame is).
    let mut dz = Pairs::default();
    for round in 0..=rounds {
        let frames = alloc(pages);
        map_region(&mut vm, &fds, pages);
        for c in 0..pages / CHUNK {
            let range = c * CHUNK..(c + 1) * CHUNK;
            let zero = || {
                time(CHUNK, || {
                    for f in &frames[range.start as usize..range.end as usize] {
                        w.m.zero_frame(f.frame());
                    }
                })
            };
            let fault = || time(CHUNK, || fault_pages(&mut vm, range.clone(), false));
            if round > 0 {
                dz.time_pair(c % 2 == 0, fault, zero);
            } else {
                paired(c % 2 == 0, fault, zero);
            }
        }
        vm.munmap(BASE, pages * PAGE).expect("munmap");
        free(frames);
    }
    // COW: the parent has every page touched; a child writes each. The
    // baseline copies the parent's frames into the frames the faults use.
    map_region(&mut vm, &fds, pages);
    fault_pages(&mut vm, 0..pages, false);
    let parent: Vec<Frame> = (0..pages)
        .map(|i| {
            let va = VirtAddr::new(BASE.as_u32() + i * PAGE);
            vm.address_space()
                .translate(&*w.m, va)
                .expect("mapped")
                .frame()
        })
        .collect();
    let mut cow = Pairs::default();
    for round in 0..=rounds {
        let mut child = vm.fork().expect("fork");
        child.activate();
        let dst = alloc(pages);
        for c in 0..pages / CHUNK {
            let range = c * CHUNK..(c + 1) * CHUNK;
            let (lo, hi) = (range.start as usize, range.end as usize);
            let copy = || {
                time(CHUNK, || {
                    for (d, &s) in dst[lo..hi].iter().zip(&parent[lo..hi]) {
                        w.m.copy_frame(d.frame(), s);
                    }
                })
            };
            let fault = || time(CHUNK, || fault_pages(&mut child, range.clone(), true));
            // Whichever runs second finds the source pages in the cache:
            // alternate, and combine both orders (`Pairs::result`).
            if round > 0 {
                cow.time_pair(c % 2 == 0, fault, copy);
            } else {
                paired(c % 2 == 0, fault, copy);
            }
        }
        free(dst);
        vm.activate();
        drop(child);
    }
    drop(vm);
    let (zero_fault, zero, zero_ratio) = dz.result();
    let (cow_fault, copy, cow_ratio) = cow.result();
    FaultTimes {
        zero_fault,
        zero,
        zero_ratio,
        cow_fault,
        copy,
        cow_ratio,
    }
}
