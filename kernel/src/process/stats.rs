//! What the processes' memory use is measured by: fault service times by
//! kind, the low-water mark of free frames while processes run, and the
//! sum of fault counts per process family.

use myos_mm::vm::{FaultKind, FaultStats};

use crate::mm;
use crate::sync::Mutex;

/// Samples kept per fault kind.
const CYCLE_SAMPLES: usize = 64;

/// The first [`CYCLE_SAMPLES`] service times (TSC cycles) of one fault kind.
#[derive(Clone, Copy, Debug)]
pub struct CycleSamples {
    samples: [u64; CYCLE_SAMPLES],
    len: usize,
}

impl CycleSamples {
    const fn new() -> Self {
        Self {
            samples: [0; CYCLE_SAMPLES],
            len: 0,
        }
    }
    fn push(&mut self, cycles: u64) {
        if self.len < CYCLE_SAMPLES {
            self.samples[self.len] = cycles;
            self.len += 1;
        }
    }
    /// The median sample (0 when there is none).
    pub fn median(&self) -> u64 {
        let mut s = self.samples;
        let s = &mut s[..self.len];
        s.sort_unstable();
        s.get(s.len() / 2).copied().unwrap_or(0)
    }
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// Service times of resolved faults, by kind (for the demo's report).
#[derive(Clone, Copy, Debug)]
pub struct FaultCycles {
    /// Demand-zero faults.
    pub demand_zero: CycleSamples,
    /// Copy-on-write faults that copied a page.
    pub cow_copy: CycleSamples,
    /// File page-ins.
    pub file_page: CycleSamples,
}

impl FaultCycles {
    pub(super) fn record(&mut self, kind: FaultKind, cycles: u64) {
        match kind {
            FaultKind::DemandZero => self.demand_zero.push(cycles),
            FaultKind::CopyOnWrite => self.cow_copy.push(cycles),
            FaultKind::FilePage => self.file_page.push(cycles),
            _ => {}
        }
    }
}

/// Fault service cycles since boot.
pub(super) static FAULT_CYCLES: Mutex<FaultCycles> = Mutex::new(FaultCycles {
    demand_zero: CycleSamples::new(),
    cow_copy: CycleSamples::new(),
    file_page: CycleSamples::new(),
});

/// Fault service cycles since boot.
pub fn fault_cycles() -> FaultCycles {
    *FAULT_CYCLES.lock()
}

/// What the processes used at their peak since the last [`take_low_water`].
#[derive(Clone, Copy, Debug)]
pub struct LowWater {
    /// The fewest free frames (all zones).
    pub free: u32,
    /// The fewest free frames of the high zone.
    pub high_free: u32,
    /// The most frames above 4 GiB user spaces held (PAE mode).
    pub above_4g: u32,
}

/// The low-water mark since the last [`take_low_water`].
static LOW_WATER: Mutex<Option<LowWater>> = Mutex::new(None);

/// Records the current free-frame counts into the low-water mark.
pub(super) fn sample_low_water() {
    use myos_mm::frames::Zone;
    let stats = mm::frame_stats();
    let now = LowWater {
        free: stats.free,
        high_free: stats.free_per_zone[Zone::High as usize],
        above_4g: mm::user_frames_above_4g(),
    };
    let mut lw = LOW_WATER.lock();
    *lw = Some(match *lw {
        Some(w) => LowWater {
            free: w.free.min(now.free),
            high_free: w.high_free.min(now.high_free),
            above_4g: w.above_4g.max(now.above_4g),
        },
        None => now,
    });
}

/// The low-water mark since the last call, and resets it.
pub fn take_low_water() -> Option<LowWater> {
    LOW_WATER.lock().take()
}

/// Adds `b` to `a`.
pub fn add_fault_stats(a: &mut FaultStats, b: &FaultStats) {
    a.demand_zero += b.demand_zero;
    a.shared_anon += b.shared_anon;
    a.file_page += b.file_page;
    a.cow_copy += b.cow_copy;
    a.cow_reuse += b.cow_reuse;
    a.write_notify += b.write_notify;
    a.stack_growth += b.stack_growth;
    a.spurious += b.spurious;
    a.sigsegv += b.sigsegv;
    a.sigbus += b.sigbus;
    a.out_of_memory += b.out_of_memory;
    a.kernel_bug += b.kernel_bug;
}
