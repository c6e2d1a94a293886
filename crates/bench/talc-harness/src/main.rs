//! talc's benchmark method, re-implemented: the random-actions and
//! heap-efficiency benchmarks of talc 5.0.4's harness (`benches/` in talc's
//! repository at its 5.0.4 commit: `src/lib.rs`, `src/bin/random_actions.rs`,
//! `src/bin/heap_efficiency.rs`), which is not part of the published crate.
//! `cargo xtask bench talc` builds and runs this when talc's own programs
//! cannot be fetched (see `xtask/src/talc.rs`); it writes the same CSV files
//! as those programs, so one parser reads either.
//!
//! The method, as talc's harness does it:
//!
//! - One 128 MiB static arena (`1 << 27` bytes, 64-aligned), every 1024th
//!   byte written and read once before the first measurement. Every
//!   allocator is built over the whole arena, put behind a spin lock
//!   (`spinning_top::RawSpinlock`) and used as a `Box<dyn GlobalAlloc>`.
//! - Sizes: `cap` uniform in `16..max`, then the size uniform in `4..cap`
//!   (biased to small). Alignment: `align_of::<usize>() << (tz / 2)` where
//!   `tz` is the number of trailing zeros of a uniform `u16` (75% 8, 19%
//!   16, ...). Both drawn from fastrand's thread-local generator; the
//!   action and index choices from a fresh `fastrand::Rng` per phase.
//! - Random actions (`random-actions`): for each allocator and each max size
//!   (200, 1000, 3000, 10000, 30000), 7 trials, each on a freshly built
//!   allocator, in a freshly spawned thread: a 2 ms warm-up phase, then a
//!   200 ms measured phase. A phase loops, checking the clock every 100
//!   actions; an action is uniform in `0..=6` (`0..=5` with
//!   `--no-realloc`): 6 reallocates a random live block to a size uniform in
//!   `1..3*max`; 0–2, or any action while fewer than 300 blocks are live,
//!   allocates; 3–5 frees a random live block (swap-remove). The score is
//!   the number of successful actions in the measured phase; the reported
//!   score is the sum over the 7 trials divided (integer) by 7. Each phase
//!   frees what is left when it ends.
//! - Heap efficiency (`heap-efficiency`): one allocator instance, 300
//!   rounds; a round repeats an action uniform in `0..=9` — 0–4 allocate
//!   (max size 10000), 5 frees a random live block, 6–9 reallocate a random
//!   live block to a size uniform in `1..100000` — until an allocation or a
//!   reallocation fails, then adds up the live blocks' requested sizes and
//!   frees them all. Efficiency = total live bytes at failure / (300 × 128
//!   MiB), in percent.
//!
//! Allocators: DLmalloc 0.2.7, Talc 5.0.4, RLSF 0.2.1 set up as talc's
//! harness sets them up, and MyOS (`myos_mm::heap::Heap` over the whole
//! arena, integrity checks on as always). talc's "Talc v4", "Galloc" and
//! "Buddy Alloc" are left out.
//!
//! Usage: `talc-harness random-actions [--steady] [--no-realloc] OUT.csv`,
//! `talc-harness heap-efficiency OUT.csv`.
//!
//! `--steady` departs from talc's method in two ways, for a machine shared
//! with other work: the allocators take turns trial by trial instead of one
//! after the other, and a phase lasts 2 ms / 200 ms of the benchmark
//! thread's CPU time instead of elapsed time. Everything else is as above.

use std::alloc::{GlobalAlloc, Layout};
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use myos_mm::heap::{prefetch_block, ArenaBackend, Heap, HeapFlags};
use spinning_top::lock_api::Mutex;
use spinning_top::RawSpinlock;

const ARENA_BYTES: usize = 1 << 27;

#[repr(C, align(64))]
struct Arena([u8; ARENA_BYTES]);

static mut ARENA: Arena = Arena([0; ARENA_BYTES]);

/// The whole arena, for one allocator at a time (the caller drops the
/// previous allocator before building the next one).
fn arena() -> *mut u8 {
    // Only the address is taken (no reference to the `static mut`).
    (&raw mut ARENA).cast()
}

fn prefault_arena() {
    let base = arena();
    for off in (0..ARENA_BYTES).step_by(1024) {
        // SAFETY: in bounds of the arena; volatile so the pages are touched.
        unsafe {
            base.add(off).write_volatile(0xab);
            base.add(off).read_volatile();
        }
    }
}

type Boxed = Box<dyn GlobalAlloc + Sync>;

struct Contender {
    name: &'static str,
    /// Builds the allocator over the whole arena.
    ///
    /// # Safety
    /// No other allocator over the arena may be alive.
    build: unsafe fn() -> Boxed,
}

const CONTENDERS: &[Contender] = &[
    Contender {
        name: "DLmalloc",
        build: dlmalloc_over_arena,
    },
    Contender {
        name: "Talc",
        build: talc_over_arena,
    },
    Contender {
        name: "RLSF",
        build: rlsf_over_arena,
    },
    Contender {
        name: "MyOS",
        build: myos_over_arena,
    },
];

// ---- MyOS: our heap behind the same lock as the others ----

struct LockedMyos(Mutex<RawSpinlock, Heap<ArenaBackend<'static>>>);

unsafe fn myos_over_arena() -> Boxed {
    // SAFETY: the caller guarantees exclusive use of the arena.
    let mem = unsafe { std::slice::from_raw_parts_mut(arena(), ARENA_BYTES) };
    let backend = ArenaBackend::new(mem);
    let (start, end) = (backend.start(), backend.end());
    let heap = Heap::new(backend, start, end, end, HeapFlags::KERNEL).expect("myos heap");
    Box::new(LockedMyos(Mutex::new(heap)))
}

// SAFETY: every call goes to `Heap` under the lock; its blocks are distinct,
// live, as large and as aligned as asked.
unsafe impl GlobalAlloc for LockedMyos {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.0.lock();
        match heap.alloc(layout.size(), layout.align()) {
            Ok(p) => p.as_ptr(),
            Err(_) => ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // As `LockedHeap` does: the block's headers start loading while the
        // lock is taken.
        prefetch_block(p, layout.size());
        let mut heap = self.0.lock();
        let p = NonNull::new(p).expect("dealloc of null");
        // A refused free would be a harness bug: stop rather than measure it.
        heap.free(p).expect("myos free refused");
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        prefetch_block(p, layout.size());
        let mut heap = self.0.lock();
        let p = NonNull::new(p).expect("realloc of null");
        match heap.realloc(p, new_size, layout.align()) {
            Ok(q) => q.as_ptr(),
            Err(_) => ptr::null_mut(),
        }
    }
}

// ---- Talc 5.0.4: its own lock type over a claimed arena ----

unsafe fn talc_over_arena() -> Boxed {
    use talc::source::Manual;
    use talc::TalcLock;
    let t: TalcLock<RawSpinlock, _> = TalcLock::new(Manual);
    // SAFETY: the caller guarantees exclusive use of the arena.
    unsafe { t.lock().claim(arena(), ARENA_BYTES) }.expect("talc claim");
    Box::new(t)
}

// ---- RLSF 0.2.1: the same parameters as talc's harness ----

type Tlsf =
    rlsf::Tlsf<'static, usize, usize, { usize::BITS as usize - 12 }, { usize::BITS as usize }>;

struct LockedRlsf(Mutex<RawSpinlock, Tlsf>);

unsafe fn rlsf_over_arena() -> Boxed {
    let mut tlsf = Tlsf::new();
    // SAFETY: the caller guarantees exclusive use of the arena; any byte
    // pattern is a valid `MaybeUninit<u8>`.
    let mem =
        unsafe { std::slice::from_raw_parts_mut(arena().cast::<MaybeUninit<u8>>(), ARENA_BYTES) };
    tlsf.insert_free_block(mem);
    Box::new(LockedRlsf(Mutex::new(tlsf)))
}

// SAFETY: forwards to rlsf under the lock.
unsafe impl GlobalAlloc for LockedRlsf {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: `p` came from this allocator with this alignment.
        unsafe {
            self.0
                .lock()
                .deallocate(NonNull::new_unchecked(p), layout.align())
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `p` came from this allocator; the new layout keeps the
        // alignment, and `GlobalAlloc` callers keep `new_size` valid.
        unsafe {
            let new = Layout::from_size_align_unchecked(new_size, layout.align());
            self.0
                .lock()
                .reallocate(NonNull::new_unchecked(p), new)
                .map_or(ptr::null_mut(), NonNull::as_ptr)
        }
    }
}

// ---- DLmalloc 0.2.7: its system allocator replaced by the arena, once ----

struct ArenaOnce(std::sync::atomic::AtomicBool);

// SAFETY: hands out the arena at most once, never anything else.
unsafe impl dlmalloc::Allocator for ArenaOnce {
    fn alloc(&self, _size: usize) -> (*mut u8, usize, u32) {
        if self.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
            (arena(), ARENA_BYTES, 1)
        } else {
            (ptr::null_mut(), 0, 0)
        }
    }
    fn remap(&self, _: *mut u8, _: usize, _: usize, _: bool) -> *mut u8 {
        ptr::null_mut()
    }
    fn free_part(&self, _: *mut u8, _: usize, _: usize) -> bool {
        false
    }
    fn free(&self, _: *mut u8, _: usize) -> bool {
        true
    }
    fn can_release_part(&self, _: u32) -> bool {
        false
    }
    fn allocates_zeros(&self) -> bool {
        false
    }
    fn page_size(&self) -> usize {
        4096
    }
}

struct LockedDlmalloc(Mutex<RawSpinlock, dlmalloc::Dlmalloc<ArenaOnce>>);

unsafe fn dlmalloc_over_arena() -> Boxed {
    let once = ArenaOnce(std::sync::atomic::AtomicBool::new(true));
    Box::new(LockedDlmalloc(Mutex::new(
        dlmalloc::Dlmalloc::new_with_allocator(once),
    )))
}

// SAFETY: forwards to dlmalloc under the lock.
unsafe impl GlobalAlloc for LockedDlmalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { self.0.lock().malloc(layout.size(), layout.align()) }
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: `p` came from this allocator with this layout.
        unsafe { self.0.lock().free(p, layout.size(), layout.align()) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `p` came from this allocator with this layout.
        unsafe {
            self.0
                .lock()
                .realloc(p, layout.size(), layout.align(), new_size)
        }
    }
}

// ---- the workload ----

/// Size in `4..cap`, `cap` in `16..max`.
fn draw_size(max: usize) -> usize {
    let cap = fastrand::usize(16..max);
    fastrand::usize(4..cap)
}

/// `usize` alignment shifted by half the trailing zeros of a random `u16`.
fn draw_align() -> usize {
    let tz = fastrand::u16(..).trailing_zeros();
    std::mem::align_of::<usize>() << (tz / 2)
}

/// A live block; freed when dropped.
struct Block<'a> {
    ptr: NonNull<u8>,
    layout: Layout,
    heap: &'a dyn GlobalAlloc,
}

impl<'a> Block<'a> {
    fn alloc(heap: &'a dyn GlobalAlloc, size: usize, align: usize) -> Option<Self> {
        let layout = Layout::from_size_align(size, align).expect("layout");
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { heap.alloc(layout) })?;
        Some(Block { ptr, layout, heap })
    }

    /// `false` (block unchanged) if the allocator refused.
    fn resize(&mut self, size: usize) -> bool {
        // SAFETY: the block is live with this layout; size is non-zero.
        let p = unsafe { self.heap.realloc(self.ptr.as_ptr(), self.layout, size) };
        match NonNull::new(p) {
            Some(p) => {
                self.ptr = p;
                self.layout = Layout::from_size_align(size, self.layout.align()).expect("layout");
                true
            }
            None => false,
        }
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // SAFETY: the block is live with this layout.
        unsafe { self.heap.dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

const RA_MAX_SIZES: [usize; 5] = [200, 1000, 3000, 10000, 30000];
const RA_TRIALS: usize = 7;
const RA_WARMUP: Duration = Duration::from_millis(2);
const RA_MEASURE: Duration = Duration::from_millis(200);
const RA_MIN_LIVE: usize = 300;
const RA_REALLOC_FACTOR: usize = 3;

/// What one action was, for `--breakdown`: allocations and frees by the
/// requested size (below 4072 bytes, the largest request the MyOS heap's
/// quick lists serve, or not), reallocations by what they did.
#[derive(Clone, Copy)]
enum Class {
    AllocSmall,
    AllocLarge,
    FreeSmall,
    FreeLarge,
    Shrink,
    GrowInPlace,
    Move,
}

const CLASSES: usize = 7;
const CLASS_NAMES: [&str; CLASSES] = [
    "alloc < 4 KiB",
    "alloc >= 4 KiB",
    "free < 4 KiB",
    "free >= 4 KiB",
    "realloc, shrunk",
    "realloc, grown in place",
    "realloc, moved",
];
/// Where `--breakdown` splits small from large requests.
const SMALL_REQUEST: usize = 4072;

/// Times the calls of a phase (`--breakdown`) or not (every other mode:
/// [`Untimed`] compiles to nothing, so those loops are talc's).
trait Probe {
    /// Runs `f` (one allocator call) and records its time under `class`.
    fn time<R>(&mut self, f: impl FnOnce() -> R, class: impl FnOnce(&R) -> Class) -> R;
}

struct Untimed;

impl Probe for Untimed {
    #[inline(always)]
    fn time<R>(&mut self, f: impl FnOnce() -> R, _: impl FnOnce(&R) -> Class) -> R {
        f()
    }
}

/// Calls and time-stamp-counter ticks per class.
#[derive(Clone, Copy, Default)]
struct Cycles([(u64, u64); CLASSES]);

impl Probe for Cycles {
    #[inline(always)]
    fn time<R>(&mut self, f: impl FnOnce() -> R, class: impl FnOnce(&R) -> Class) -> R {
        let t = ticks();
        let r = f();
        let dt = ticks().wrapping_sub(t);
        let c = &mut self.0[class(&r) as usize];
        c.0 += 1;
        c.1 += dt;
        r
    }
}

/// The time-stamp counter (x86_64), else nanoseconds.
#[inline(always)]
fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `rdtsc` has no preconditions on x86_64.
    return unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    return START.elapsed().as_nanos() as u64;
}

/// One phase of random actions; returns the successful actions.
fn random_actions_phase<P: Probe>(
    heap: &dyn GlobalAlloc,
    max: usize,
    realloc: bool,
    length: Duration,
    clock: Clock,
    probe: &mut P,
) -> usize {
    let mut rng = fastrand::Rng::new();
    let mut live: Vec<Block<'_>> = Vec::with_capacity(100_000);
    let kinds = if realloc { 7 } else { 6 };
    let (mut done, mut failed_allocs, mut failed_reallocs) = (0usize, 0usize, 0usize);
    let t0 = clock.now();
    while clock.now() - t0 < length {
        for _ in 0..100 {
            let kind = rng.usize(0..kinds);
            if kind == 6 {
                if live.is_empty() {
                    continue;
                }
                let i = rng.usize(0..live.len());
                let size = rng.usize(1..max * RA_REALLOC_FACTOR);
                let b = &mut live[i];
                let (old, old_size) = (b.ptr, b.layout.size());
                let (resized, _) = probe.time(
                    || (b.resize(size), b.ptr),
                    |&(_, new)| match (new == old, size > old_size) {
                        (false, _) => Class::Move,
                        (true, true) => Class::GrowInPlace,
                        (true, false) => Class::Shrink,
                    },
                );
                if resized {
                    done += 1;
                } else {
                    failed_reallocs += 1;
                }
            } else if kind < 3 || live.len() < RA_MIN_LIVE {
                let (size, align) = (draw_size(max), draw_align());
                let block = probe.time(
                    || Block::alloc(heap, size, align),
                    |_| {
                        if size < SMALL_REQUEST {
                            Class::AllocSmall
                        } else {
                            Class::AllocLarge
                        }
                    },
                );
                match block {
                    Some(b) => {
                        live.push(b);
                        done += 1;
                    }
                    None => failed_allocs += 1,
                }
            } else {
                let i = rng.usize(0..live.len());
                let b = live.swap_remove(i);
                let class = if b.layout.size() < SMALL_REQUEST {
                    Class::FreeSmall
                } else {
                    Class::FreeLarge
                };
                probe.time(|| drop(b), |_| class);
                done += 1;
            }
        }
    }
    if failed_allocs > 0 {
        eprintln!("Allocation failure count: {failed_allocs}");
    }
    if failed_reallocs > 0 {
        eprintln!("Reallocation failure count: {failed_reallocs}");
    }
    done
}

/// What a phase's length is measured in.
#[derive(Clone, Copy)]
enum Clock {
    /// Elapsed time, as talc's harness measures.
    Wall,
    /// The benchmark thread's CPU time (`--steady`): time the thread spends
    /// waiting for a CPU that other work holds does not count.
    ThreadCpu,
}

impl Clock {
    fn now(self) -> Duration {
        match self {
            Clock::Wall => START.elapsed(),
            Clock::ThreadCpu => {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `ts` is a valid out-pointer for the call.
                let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
                assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
                Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
            }
        }
    }
}

static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// One trial: a fresh allocator, the warm-up phase and the measured phase
/// in a fresh thread; returns the measured phase's successful actions
/// (`probe` times the measured phase's calls).
fn trial<P: Probe + Send>(
    c: &Contender,
    max: usize,
    realloc: bool,
    clock: Clock,
    probe: &mut P,
) -> usize {
    // SAFETY: the previous allocator was dropped.
    let heap = unsafe { (c.build)() };
    let heap: &(dyn GlobalAlloc + Sync) = heap.as_ref();
    std::thread::scope(|s| {
        s.spawn(|| {
            random_actions_phase(heap, max, realloc, RA_WARMUP, clock, &mut Untimed);
            random_actions_phase(heap, max, realloc, RA_MEASURE, clock, probe)
        })
        .join()
        .expect("benchmark thread")
    })
}

/// The random-actions scores. As talc's harness: allocator by allocator,
/// all trials of a size in a row, phases in elapsed time. `steady`: the
/// allocators take turns trial by trial (so a change in the machine's load
/// falls on all of them alike) and phases run for thread CPU time.
fn random_actions(realloc: bool, steady: bool) -> String {
    prefault_arena();
    let clock = if steady {
        Clock::ThreadCpu
    } else {
        Clock::Wall
    };
    let mut totals = vec![[0usize; RA_MAX_SIZES.len()]; CONTENDERS.len()];
    if steady {
        for (m, max) in chosen_sizes() {
            eprintln!("benchmarking every allocator in turn - max alloc size {max}B ...");
            for _ in 0..RA_TRIALS {
                for (i, c) in chosen_contenders() {
                    totals[i][m] += trial(c, max, realloc, clock, &mut Untimed);
                }
            }
        }
    } else {
        for (i, c) in chosen_contenders() {
            for (m, max) in chosen_sizes() {
                eprintln!("benchmarking {} - max alloc size {max}B ...", c.name);
                for _ in 0..RA_TRIALS {
                    totals[i][m] += trial(c, max, realloc, clock, &mut Untimed);
                }
            }
        }
    }
    let mut csv = String::new();
    for size in RA_MAX_SIZES {
        csv.push_str(&format!(",{size}"));
    }
    for (c, t) in CONTENDERS.iter().zip(&totals) {
        csv.push('\n');
        csv.push_str(c.name);
        for total in t {
            csv.push_str(&format!(",{}", total / RA_TRIALS));
        }
    }
    csv
}

/// The comma-separated names in the environment variable `var`, if set:
/// `TALC_HARNESS_ALLOCATORS` (e.g. `Talc,MyOS`) and `TALC_HARNESS_SIZES`
/// (e.g. `10000,30000`) restrict the random-actions runs to some
/// allocators and max sizes (the others score 0), for a quicker look.
fn selected(var: &str) -> Option<Vec<String>> {
    let v = std::env::var(var).ok()?;
    Some(v.split(',').map(|s| s.trim().to_string()).collect())
}

/// The allocators to run (`TALC_HARNESS_ALLOCATORS`), with their indices.
fn chosen_contenders() -> Vec<(usize, &'static Contender)> {
    let chosen = selected("TALC_HARNESS_ALLOCATORS");
    CONTENDERS
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            chosen
                .as_ref()
                .is_none_or(|n| n.iter().any(|n| n == c.name))
        })
        .collect()
}

/// The max sizes to run (`TALC_HARNESS_SIZES`), with their indices.
fn chosen_sizes() -> Vec<(usize, usize)> {
    let sizes = selected("TALC_HARNESS_SIZES");
    RA_MAX_SIZES
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, m)| sizes.as_ref().is_none_or(|s| s.contains(&m.to_string())))
        .collect()
}

/// `--breakdown`: random actions as `--steady` runs them, with every
/// allocator call of the measured phases timed by the time-stamp counter
/// (the timing adds its own cost to each call, the same for every
/// allocator). Reports, per max size, each allocator's mean ticks per
/// call of each [`Class`], the share of actions in it, and the ticks per
/// action in allocator calls (harness work between the calls excluded).
fn random_actions_breakdown(realloc: bool) -> String {
    prefault_arena();
    let contenders = chosen_contenders();
    let mut out = format!(
        "random actions{}: mean time-stamp-counter ticks per allocator call, \
         {RA_TRIALS} trials in turns, phases in thread CPU time\n",
        if realloc { "" } else { " (no realloc)" }
    );
    for (_, max) in chosen_sizes() {
        eprintln!("breakdown - max alloc size {max}B ...");
        let mut cycles = vec![Cycles::default(); contenders.len()];
        for _ in 0..RA_TRIALS {
            for (k, (_, c)) in contenders.iter().enumerate() {
                trial(c, max, realloc, Clock::ThreadCpu, &mut cycles[k]);
            }
        }
        out.push_str(&format!("\n### max size {max}\n\n| class |"));
        for (_, c) in &contenders {
            out.push_str(&format!(" {} |", c.name));
        }
        out.push_str(&format!("\n|---|{}\n", "---:|".repeat(contenders.len())));
        let calls = |c: &Cycles| c.0.iter().map(|x| x.0).sum::<u64>().max(1);
        for (class, name) in CLASS_NAMES.iter().enumerate() {
            out.push_str(&format!("| {name} |"));
            for c in &cycles {
                let (n, t) = c.0[class];
                out.push_str(&format!(
                    " {:.0} ({:.1}%) |",
                    t as f64 / n.max(1) as f64,
                    100.0 * n as f64 / calls(c) as f64
                ));
            }
            out.push('\n');
        }
        out.push_str("| **per action** |");
        for c in &cycles {
            let t: u64 = c.0.iter().map(|x| x.1).sum();
            out.push_str(&format!(" **{:.0}** |", t as f64 / calls(c) as f64));
        }
        out.push('\n');
    }
    out
}

const HE_ROUNDS: usize = 300;
const HE_MAX_SIZE: usize = 10_000;
const HE_REALLOC_FACTOR: usize = 10;

/// Live bytes at the first failure, averaged over rounds, as a percentage
/// of the arena.
fn efficiency_of(heap: &dyn GlobalAlloc) -> f64 {
    let mut live: Vec<Block<'_>> = Vec::with_capacity(100_000);
    let mut live_bytes = 0usize;
    for _ in 0..HE_ROUNDS {
        loop {
            match fastrand::usize(0..10) {
                0..=4 => match Block::alloc(heap, draw_size(HE_MAX_SIZE), draw_align()) {
                    Some(b) => live.push(b),
                    None => break,
                },
                5 => {
                    if !live.is_empty() {
                        let i = fastrand::usize(0..live.len());
                        drop(live.swap_remove(i));
                    }
                }
                _ => {
                    if !live.is_empty() {
                        let i = fastrand::usize(0..live.len());
                        let size = fastrand::usize(1..HE_MAX_SIZE * HE_REALLOC_FACTOR);
                        if !live[i].resize(size) {
                            break;
                        }
                    }
                }
            }
        }
        live_bytes += live.iter().map(|b| b.layout.size()).sum::<usize>();
        live.clear();
    }
    live_bytes as f64 / (HE_ROUNDS * ARENA_BYTES) as f64 * 100.0
}

fn heap_efficiency() -> String {
    let names: Vec<&str> = CONTENDERS.iter().map(|c| c.name).collect();
    let mut values = Vec::new();
    for c in CONTENDERS {
        eprintln!("Benchmarking {}...", c.name);
        // SAFETY: the previous allocator was dropped.
        let heap = unsafe { (c.build)() };
        values.push(efficiency_of(heap.as_ref()).to_string());
    }
    format!("{}\n{}", names.join(","), values.join(","))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (csv, out) = match args.as_slice() {
        ["random-actions", out] => (random_actions(true, false), out),
        ["random-actions", "--no-realloc", out] => (random_actions(false, false), out),
        ["random-actions", "--steady", out] => (random_actions(true, true), out),
        ["random-actions", "--steady", "--no-realloc", out] => (random_actions(false, true), out),
        ["random-actions", "--breakdown", out] => (random_actions_breakdown(true), out),
        ["random-actions", "--breakdown", "--no-realloc", out] => {
            (random_actions_breakdown(false), out)
        }
        ["heap-efficiency", out] => (heap_efficiency(), out),
        _ => {
            eprintln!(
                "usage: talc-harness random-actions [--steady | --breakdown] [--no-realloc] OUT\n       \
                 talc-harness heap-efficiency OUT.csv"
            );
            std::process::exit(2);
        }
    };
    std::fs::write(out, csv).unwrap_or_else(|e| panic!("cannot write {out}: {e}"));
}
