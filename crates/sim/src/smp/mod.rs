//! N simulated CPUs sharing one RAM, TLB shootdowns between them, and a
//! checker of TLB coherence.
//!
//! [`SmpMachine`] is RAM and a memory map shared by `n` CPUs. Each CPU has
//! its own CR3, CR0.WP, CR4.PSE and CR4.PGE, its own TLB (the model of the
//! one-CPU [`SimMachine`](crate::SimMachine)) and its own paging-structure
//! cache of page-directory entries (see [`cpu`] for exactly what is cached
//! and what drops it). A [`CpuHandle`] is one CPU: it implements
//! [`Platform`] (`cpu_id`, and `flush`/`flush_all`/`set_root` on its own
//! CPU only; `shootdown` posts a request to each target and waits for every
//! acknowledgement, serving requests addressed to itself meanwhile), and it
//! makes accesses that use its own TLB and PDE cache and fault as the
//! one-CPU machine does.
//!
//! Requests are delivered when a CPU "takes an interrupt":
//! - when the test says so: [`CpuHandle::service_ipis`];
//! - before each access the CPU makes, unless turned off with
//!   [`CpuHandle::set_auto_service`];
//! - while it waits: for its own shootdown's acknowledgements, or for the
//!   machine lock ([`CpuHandle::exclusive`]);
//! - in [`Delivery::Deterministic`] mode, also by the initiator of a
//!   shootdown on the targets' behalf when it waits (everything happens on
//!   one host thread, so nobody else would). A test that wants to act in
//!   the window between the request and its delivery posts with
//!   [`CpuHandle::post_shootdown`], steps the other CPUs, then
//!   [`CpuHandle::complete_shootdown`].
//!
//! In [`Delivery::Threaded`] mode each host thread acts as one CPU and the
//! targets must reach one of their delivery points (a worker loop that makes
//! accesses does).
//!
//! [`check`](SmpMachine::check) ([`checker`]) compares every CPU's TLB and
//! PDE cache with a fresh walk of its CR3 and with the frame allocator.

pub mod checker;
pub mod cpu;
pub mod mailbox;
pub mod world;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use myos_mm::frames::{MemoryRegion, RegionKind};
use myos_mm::layout::PAGE_SIZE;
use myos_mm::smp::{CpuId, CpuSet, Invalidate, MAX_CPUS};
use myos_mm::{Frame, Page, PhysAddr, Platform};

use crate::error::SimError;
use crate::fault::{Access, Mode, PageFault};
use crate::ram::Ram;
use crate::{pc_memory_map, DEFAULT_TLB_ENTRIES};

pub use checker::{Cached, Violation, ViolationKind, Walked};
use cpu::CpuState;
pub use cpu::CpuStats;
use mailbox::Mailboxes;

/// How shootdown requests reach their targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// One host thread drives every CPU: a CPU waiting for
    /// acknowledgements delivers its requests to the targets itself (as if
    /// each took the interrupt at that moment), so a shootdown never hangs.
    Deterministic,
    /// Each CPU is a host thread: targets serve requests at their own
    /// delivery points, and the initiator blocks until they have.
    Threaded,
}

/// How to build an [`SmpMachine`].
#[derive(Clone, Debug)]
pub struct SmpConfig {
    ram_bytes: u64,
    cpus: usize,
    map: Option<Vec<MemoryRegion>>,
    tlb_entries: usize,
    delivery: Delivery,
    wp: bool,
    pse: bool,
    pge: bool,
}

impl SmpConfig {
    /// `cpus` CPUs (1..=[`MAX_CPUS`]) and `ram_bytes` of RAM with the PC
    /// memory map, [`DEFAULT_TLB_ENTRIES`] TLB entries per CPU,
    /// [`Delivery::Deterministic`], CR0.WP, CR4.PSE and CR4.PGE on.
    pub fn new(ram_bytes: u64, cpus: usize) -> Self {
        Self {
            ram_bytes,
            cpus,
            map: None,
            tlb_entries: DEFAULT_TLB_ENTRIES,
            delivery: Delivery::Deterministic,
            wp: true,
            pse: true,
            pge: true,
        }
    }
    /// Uses `map` instead of the PC memory map.
    pub fn memory_map(mut self, map: &[MemoryRegion]) -> Self {
        self.map = Some(map.to_vec());
        self
    }
    /// TLB capacity of each CPU (0: no TLB).
    pub fn tlb_entries(mut self, n: usize) -> Self {
        self.tlb_entries = n;
        self
    }
    /// How requests are delivered.
    pub fn delivery(mut self, d: Delivery) -> Self {
        self.delivery = d;
        self
    }
    /// Initial CR0.WP, CR4.PSE, CR4.PGE of every CPU.
    pub fn control_bits(mut self, wp: bool, pse: bool, pge: bool) -> Self {
        (self.wp, self.pse, self.pge) = (wp, pse, pge);
        self
    }
    /// Builds the machine. Fails as [`SimConfig::build`](crate::SimConfig::build)
    /// does for the RAM, and with [`SimError::BadCpuCount`] for a CPU count
    /// of 0 or above [`MAX_CPUS`].
    pub fn build(self) -> Result<Arc<SmpMachine>, SimError> {
        if self.cpus == 0 || self.cpus > MAX_CPUS {
            return Err(SimError::BadCpuCount(self.cpus));
        }
        // The same checks as the one-CPU builder's.
        let bytes = self.ram_bytes;
        if bytes == 0 {
            return Err(SimError::ZeroRam);
        }
        if bytes > crate::MAX_RAM {
            return Err(SimError::RamTooLarge(bytes));
        }
        if !bytes.is_multiple_of(PAGE_SIZE as u64) {
            return Err(SimError::RamNotPageMultiple(bytes));
        }
        let map = self.map.unwrap_or_else(|| pc_memory_map(bytes));
        for r in &map {
            if r.start >= r.end {
                return Err(SimError::EmptyRegion(*r));
            }
            if r.kind == RegionKind::Usable && r.end > bytes {
                return Err(SimError::UsableOutsideRam(*r));
            }
        }
        let ram = Ram::new(bytes)?;
        let cpus = (0..self.cpus)
            .map(|_| CpuSlot {
                state: Mutex::new(CpuState::new(self.tlb_entries, self.wp, self.pse, self.pge)),
                auto_service: AtomicBool::new(true),
                received: AtomicU64::new(0),
            })
            .collect();
        Ok(Arc::new(SmpMachine {
            ram,
            map,
            cpus,
            mailboxes: Mailboxes::new(self.cpus),
            delivery: self.delivery,
            bus: BusLock::default(),
            counters: Counters::default(),
            checked: AtomicBool::new(false),
            check_at_shootdown: AtomicBool::new(false),
            drop_shootdowns: AtomicBool::new(false),
            oracle: Mutex::new(None),
            violations: Mutex::new(Vec::new()),
        }))
    }
}

/// A shootdown request as it sits in a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `invlpg` each of these addresses.
    Pages(Vec<u32>),
    /// A CR3 reload (non-global entries and the PDE cache).
    AllNonGlobal,
    /// Everything, global entries too.
    Everything,
}

impl From<Invalidate<'_>> for Request {
    fn from(what: Invalidate<'_>) -> Self {
        match what {
            Invalidate::Pages(p) => Request::Pages(p.iter().map(|p| p.start().as_u32()).collect()),
            Invalidate::AllNonGlobal => Request::AllNonGlobal,
            Invalidate::Everything => Request::Everything,
        }
    }
}

/// Shootdown counters of a machine (for benchmarks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShootdownStats {
    /// `shootdown` calls with at least one target.
    pub shootdowns: u64,
    /// Requests posted (one "IPI" per target per shootdown).
    pub ipis_sent: u64,
    /// Requests received, per CPU.
    pub requests_per_cpu: Vec<u64>,
    /// Pages invalidated by served requests (counted once per target).
    pub pages_invalidated: u64,
    /// Full flushes done by served requests (`AllNonGlobal`, `Everything`).
    pub full_flushes: u64,
    /// `shootdown` calls thrown away by the broken mode
    /// ([`SmpMachine::set_drop_shootdowns`]).
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    shootdowns: AtomicU64,
    ipis_sent: AtomicU64,
    pages_invalidated: AtomicU64,
    full_flushes: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct CpuSlot {
    state: Mutex<CpuState>,
    auto_service: AtomicBool,
    received: AtomicU64,
}

/// The machine lock: serializes every access, walk and checker run with
/// the core's page-table changes (which the test runs inside
/// [`CpuHandle::exclusive`]). A ticket lock (first come, first served, so a
/// CPU that changes mappings in a loop cannot starve the others), re-entrant
/// per host thread; a CPU waiting for it serves its mailbox, as a CPU
/// spinning on a kernel lock takes IPIs.
#[derive(Debug, Default)]
struct BusLock {
    next_ticket: AtomicU64,
    now_serving: AtomicU64,
    /// The owning thread's token, 0 when free.
    owner: AtomicU64,
    /// Nesting depth (touched only by the owner).
    depth: AtomicU32,
}

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);
thread_local! {
    static TOKEN: u64 = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
}

/// Holds the machine lock; releases it when dropped.
struct BusGuard<'a>(&'a BusLock);

impl BusGuard<'_> {
    /// Whether this is the outermost hold (not nested in an exclusive
    /// section of the same thread).
    fn outermost(&self) -> bool {
        self.0.depth.load(Ordering::Relaxed) == 1
    }
}

impl Drop for BusGuard<'_> {
    fn drop(&mut self) {
        let d = self.0.depth.load(Ordering::Relaxed) - 1;
        self.0.depth.store(d, Ordering::Relaxed);
        if d == 0 {
            self.0.owner.store(0, Ordering::Relaxed);
            self.0.now_serving.fetch_add(1, Ordering::Release);
        }
    }
}

impl BusLock {
    fn acquire(&self, mut while_waiting: impl FnMut()) -> BusGuard<'_> {
        let me = TOKEN.with(|t| *t);
        if self.owner.load(Ordering::Relaxed) == me {
            self.depth
                .store(self.depth.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            return BusGuard(self);
        }
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        while self.now_serving.load(Ordering::Acquire) != ticket {
            while_waiting();
            std::thread::yield_now();
        }
        self.owner.store(me, Ordering::Relaxed);
        self.depth.store(1, Ordering::Relaxed);
        BusGuard(self)
    }
}

/// Whether a frame is free in the frame allocator (the checker's oracle).
pub type FreeFrameOracle = Arc<dyn Fn(Frame) -> bool + Send + Sync>;

/// N CPUs sharing one RAM (see the [module docs](self)). Built by
/// [`SmpConfig::build`] as an `Arc`, which every [`CpuHandle`] shares.
pub struct SmpMachine {
    ram: Ram,
    map: Vec<MemoryRegion>,
    cpus: Vec<CpuSlot>,
    mailboxes: Mailboxes<Request>,
    delivery: Delivery,
    bus: BusLock,
    counters: Counters,
    checked: AtomicBool,
    check_at_shootdown: AtomicBool,
    drop_shootdowns: AtomicBool,
    oracle: Mutex<Option<FreeFrameOracle>>,
    violations: Mutex<Vec<Violation>>,
}

impl std::fmt::Debug for SmpMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmpMachine")
            .field("ram_bytes", &self.ram.len())
            .field("cpus", &self.cpus.len())
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SmpMachine {
    /// A machine of `cpus` CPUs and `ram_bytes` of RAM, defaults as
    /// [`SmpConfig::new`].
    pub fn new(ram_bytes: u64, cpus: usize) -> Result<Arc<SmpMachine>, SimError> {
        SmpConfig::new(ram_bytes, cpus).build()
    }

    /// How many CPUs.
    pub fn cpu_count(&self) -> usize {
        self.cpus.len()
    }

    /// Every CPU.
    pub fn all_cpus(&self) -> CpuSet {
        CpuSet::first(self.cpus.len())
    }

    /// RAM size in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.ram.len()
    }

    /// The physical memory map.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.map
    }

    /// How requests are delivered.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// A handle acting as CPU `n`.
    ///
    /// # Panics
    /// When `n` is not below [`cpu_count`](Self::cpu_count).
    pub fn cpu(self: &Arc<Self>, n: usize) -> CpuHandle {
        assert!(n < self.cpus.len(), "CPU {n} of {}", self.cpus.len());
        CpuHandle {
            m: Arc::clone(self),
            id: CpuId::new(n).expect("below MAX_CPUS"),
        }
    }

    fn state(&self, cpu: usize) -> MutexGuard<'_, CpuState> {
        lock(&self.cpus[cpu].state)
    }

    /// CPU `cpu` takes the interrupt: serves every request queued for it.
    fn serve(&self, cpu: usize) -> usize {
        self.mailboxes.service(cpu, |r| self.apply(cpu, r))
    }

    fn apply(&self, cpu: usize, r: &Request) {
        let mut st = self.state(cpu);
        st.stats.requests_served += 1;
        self.cpus[cpu].received.fetch_add(1, Ordering::Relaxed);
        match r {
            Request::Pages(pages) => {
                for &va in pages {
                    st.invlpg(va);
                }
                self.counters
                    .pages_invalidated
                    .fetch_add(pages.len() as u64, Ordering::Relaxed);
            }
            Request::AllNonGlobal => {
                st.flush_non_global();
                st.stats.mmu.flush_alls += 1;
                self.counters.full_flushes.fetch_add(1, Ordering::Relaxed);
            }
            Request::Everything => {
                st.flush_everything();
                st.stats.mmu.flush_alls += 1;
                self.counters.full_flushes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Shootdown counters since the machine was built.
    pub fn shootdown_stats(&self) -> ShootdownStats {
        ShootdownStats {
            shootdowns: self.counters.shootdowns.load(Ordering::Relaxed),
            ipis_sent: self.counters.ipis_sent.load(Ordering::Relaxed),
            requests_per_cpu: self
                .cpus
                .iter()
                .map(|c| c.received.load(Ordering::Relaxed))
                .collect(),
            pages_invalidated: self.counters.pages_invalidated.load(Ordering::Relaxed),
            full_flushes: self.counters.full_flushes.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }

    /// How long a shootdown waits for its acknowledgements before it
    /// panics, naming the CPUs that never served the request
    /// ([`mailbox::ACK_LIMIT`], 10 s, by default): a CPU that stopped taking
    /// interrupts fails the test instead of hanging it.
    #[cfg(not(loom))]
    pub fn set_ack_limit(&self, limit: std::time::Duration) {
        self.mailboxes.set_ack_limit(limit);
    }

    /// A deliberately broken platform, for tests that show the checker
    /// catches a missing shootdown: while on, [`Platform::shootdown`] on
    /// any CPU returns at once without posting anything (counted in
    /// [`ShootdownStats::dropped`]). The core then frees frames and page
    /// tables other CPUs still cache. `post_shootdown` is not affected.
    pub fn set_drop_shootdowns(&self, on: bool) {
        self.drop_shootdowns.store(on, Ordering::SeqCst);
    }

    // ----- the checker -----

    /// Sets the checker's "is this frame free?" oracle (usually the frame
    /// allocator: [`world::SmpWorld`] sets it).
    pub fn set_free_frame_oracle(&self, oracle: FreeFrameOracle) {
        *lock(&self.oracle) = Some(oracle);
    }

    /// Turns checked mode on or off: when on, the checker runs after every
    /// access a CPU makes outside an [`exclusive`](CpuHandle::exclusive)
    /// section (inside one, the core is mid-operation and the tables may
    /// legitimately be ahead of other CPUs' caches), with the oracle (no
    /// oracle, no free-frame checks), and what it finds is kept for
    /// [`take_violations`](Self::take_violations).
    pub fn set_checked(&self, on: bool) {
        self.checked.store(on, Ordering::Relaxed);
    }

    /// Turns the free-frame check at each shootdown on or off. When on,
    /// every [`Platform::shootdown`] with a target runs the checker (under
    /// the machine lock, with the oracle) before it posts its requests, and
    /// keeps for [`take_violations`](Self::take_violations) what it finds
    /// that names a free frame or table: [`FreeFrame`](ViolationKind::FreeFrame),
    /// [`WalkThroughFreeTable`](ViolationKind::WalkThroughFreeTable),
    /// [`PdeFreeTable`](ViolationKind::PdeFreeTable). At that moment the
    /// targets still hold the old translations (that is what the request
    /// is for), so stale entries are expected; but nothing any CPU can reach
    /// may be free yet. A core that frees a frame or a page table before the
    /// remote flush is caught here, although once its operation has ended
    /// every cache is coherent again and the checker run then finds nothing.
    pub fn set_check_at_shootdown(&self, on: bool) {
        self.check_at_shootdown.store(on, Ordering::Relaxed);
    }

    /// The violations checked mode and the check at shootdowns found since
    /// the last call.
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut *lock(&self.violations))
    }

    /// Runs the checker now (under the machine lock) with the oracle set by
    /// [`set_free_frame_oracle`](Self::set_free_frame_oracle): `Ok` when
    /// every CPU's caches are coherent, else every violation found.
    ///
    /// Waiting for the machine lock serves no mailbox: a host thread that
    /// acts as a CPU others may shoot at uses [`CpuHandle::check`].
    pub fn check(&self) -> Result<(), Vec<Violation>> {
        self.check_waiting(|| {})
    }

    fn check_waiting(&self, while_waiting: impl FnMut()) -> Result<(), Vec<Violation>> {
        let oracle = lock(&self.oracle).clone();
        let _g = self.bus.acquire(while_waiting);
        let v = match oracle {
            Some(o) => checker::check(self, &*o),
            None => checker::check(self, &|_| false),
        };
        if v.is_empty() {
            Ok(())
        } else {
            Err(v)
        }
    }

    /// Runs the checker with an explicit oracle (see [`checker::check`]).
    pub fn check_with(&self, is_free: &dyn Fn(Frame) -> bool) -> Result<(), Vec<Violation>> {
        let _g = self.bus.acquire(|| {});
        let v = checker::check(self, is_free);
        if v.is_empty() {
            Ok(())
        } else {
            Err(v)
        }
    }

    /// Checked mode's run, under the machine lock the caller holds.
    fn auto_check(&self) {
        if self.checked.load(Ordering::Relaxed) {
            let oracle = lock(&self.oracle).clone();
            let v = match oracle {
                Some(o) => checker::check(self, &*o),
                None => checker::check(self, &|_| false),
            };
            lock(&self.violations).extend(v);
        }
    }

    // ----- physical access -----

    /// Reads a little-endian `u32` of RAM at physical address `pa` (under
    /// the machine lock).
    pub fn read_phys_u32(&self, pa: u64) -> Result<u32, SimError> {
        let _g = self.bus.acquire(|| {});
        self.ram
            .read_u32(pa)
            .ok_or(SimError::PhysOutOfRange { addr: pa, len: 4 })
    }

    /// Writes a little-endian `u32` of RAM at physical address `pa` (under
    /// the machine lock).
    pub fn write_phys_u32(&self, pa: u64, value: u32) -> Result<(), SimError> {
        let _g = self.bus.acquire(|| {});
        if self.ram.write_u32(pa, value) {
            Ok(())
        } else {
            Err(SimError::PhysOutOfRange { addr: pa, len: 4 })
        }
    }

    fn frame_in_ram(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        let addr = u64::from(frame.start().as_u32());
        assert!(
            self.ram.contains(addr, PAGE_SIZE),
            "core bug: {frame:?} is outside the simulated RAM ({:#x} bytes)",
            self.ram.len()
        );
        // SAFETY: the whole frame lies inside RAM (checked above).
        unsafe { self.ram.ptr(addr) }.cast()
    }
}

/// Shootdown requests posted by [`CpuHandle::post_shootdown`] and not yet
/// waited for: pass to [`CpuHandle::complete_shootdown`].
#[derive(Debug)]
#[must_use = "a posted shootdown must be completed"]
pub struct Posted {
    targets: CpuSet,
}

impl Posted {
    /// The CPUs the requests went to.
    pub fn targets(&self) -> CpuSet {
        self.targets
    }
}

/// One CPU of an [`SmpMachine`]: the [`Platform`] the core runs on when it
/// runs on that CPU, and the CPU's accesses.
///
/// A handle is `Send` (a host thread can act as the CPU) and cheap to
/// clone; all methods take `&self`.
#[derive(Clone)]
pub struct CpuHandle {
    m: Arc<SmpMachine>,
    id: CpuId,
}

impl std::fmt::Debug for CpuHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuHandle").field("id", &self.id).finish()
    }
}

impl CpuHandle {
    /// The CPU.
    pub fn id(&self) -> CpuId {
        self.id
    }

    /// The machine.
    pub fn machine(&self) -> &Arc<SmpMachine> {
        &self.m
    }

    fn n(&self) -> usize {
        self.id.index()
    }

    fn state(&self) -> MutexGuard<'_, CpuState> {
        self.m.state(self.n())
    }

    fn bus(&self) -> BusGuard<'_> {
        self.m.bus.acquire(|| {
            self.m.serve(self.n());
        })
    }

    /// Runs `f` holding the machine lock, so no other CPU accesses memory
    /// or walks meanwhile; waiting for the lock serves this CPU's mailbox.
    /// In threaded mode, run every core operation that changes page tables
    /// inside it (the core writes entries through plain pointers).
    pub fn exclusive<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.bus();
        f()
    }

    // ----- interrupts -----

    /// Takes the interrupt now: serves every request queued for this CPU.
    /// Returns how many.
    pub fn service_ipis(&self) -> usize {
        self.m.serve(self.n())
    }

    /// Requests queued for this CPU.
    pub fn queued_ipis(&self) -> usize {
        self.m.mailboxes.queued(self.n())
    }

    /// Whether the CPU serves its mailbox before each access (default on).
    pub fn set_auto_service(&self, on: bool) {
        self.m.cpus[self.n()]
            .auto_service
            .store(on, Ordering::Relaxed);
    }

    /// Posts `what` to every CPU of `targets` (never this one) without
    /// waiting: the first half of [`Platform::shootdown`], for tests that
    /// act between the request and its delivery.
    ///
    /// # Panics
    /// When `targets` holds this CPU or a CPU the machine does not have.
    pub fn post_shootdown(&self, targets: CpuSet, what: Invalidate<'_>) -> Posted {
        let list: Vec<usize> = targets.iter().map(CpuId::index).collect();
        if !list.is_empty() {
            self.m.mailboxes.post(self.n(), &list, &Request::from(what));
            self.m.counters.shootdowns.fetch_add(1, Ordering::Relaxed);
            self.m
                .counters
                .ipis_sent
                .fetch_add(list.len() as u64, Ordering::Relaxed);
        }
        Posted { targets }
    }

    /// Waits until every target of `posted` acknowledged, serving this CPU's
    /// own mailbox meanwhile. In deterministic mode the targets that have
    /// not taken their interrupt yet take it now.
    pub fn complete_shootdown(&self, posted: Posted) {
        if self.m.delivery == Delivery::Deterministic {
            for t in posted.targets.iter() {
                self.m.serve(t.index());
            }
        }
        let me = self.n();
        self.m.mailboxes.wait(me, |r| self.m.apply(me, r));
    }

    // ----- registers and local TLB control -----

    /// CR3.
    pub fn cr3(&self) -> u32 {
        self.state().regs.cr3
    }

    /// Loads CR3: drops the non-global TLB entries and the PDE cache.
    pub fn set_cr3(&self, value: u32) {
        self.state().load_cr3(value);
    }

    /// Sets CR0.WP (applied at each access; no flush).
    pub fn set_wp(&self, on: bool) {
        self.state().regs.wp = on;
    }

    /// Sets CR4.PGE; a change drops everything cached.
    pub fn set_pge(&self, on: bool) {
        let mut st = self.state();
        if st.regs.pge != on {
            st.regs.pge = on;
            st.flush_everything();
        }
    }

    /// Sets CR4.PSE; a change drops everything cached.
    pub fn set_pse(&self, on: bool) {
        let mut st = self.state();
        if st.regs.pse != on {
            st.regs.pse = on;
            st.flush_everything();
        }
    }

    /// `invlpg va` on this CPU: its TLB entry and the cached PDE of its
    /// 4 MiB region.
    pub fn invlpg(&self, va: u32) {
        self.state().invlpg(va);
    }

    /// Whether the TLB holds a translation for `va`, and to which physical
    /// address.
    pub fn tlb_peek(&self, va: u32) -> Option<u32> {
        self.state().tlb.lookup(va).map(|t| t.phys(va))
    }

    /// The cached PDE of `va`'s 4 MiB region, if any.
    pub fn pde_cache_peek(&self, va: u32) -> Option<u32> {
        self.state().pde.get(&(va >> 22)).copied()
    }

    /// This CPU's counters.
    pub fn stats(&self) -> CpuStats {
        self.state().stats
    }

    // ----- accesses -----

    fn access<T>(
        &self,
        f: impl FnOnce(&mut CpuState, &Ram) -> Result<T, PageFault>,
    ) -> Result<T, PageFault> {
        let g = self.bus();
        if self.m.cpus[self.n()].auto_service.load(Ordering::Relaxed) {
            self.m.serve(self.n());
        }
        let r = f(&mut self.state(), &self.m.ram);
        if g.outermost() {
            self.m.auto_check();
        }
        r
    }

    /// Runs the checker (as [`SmpMachine::check`]), serving this CPU's
    /// mailbox while it waits for the machine lock.
    pub fn check(&self) -> Result<(), Vec<Violation>> {
        self.m.check_waiting(|| {
            self.m.serve(self.n());
        })
    }

    /// Translates `va` for one access (TLB, PDE cache, walk), as
    /// [`SimMachine::translate`](crate::SimMachine::translate).
    pub fn translate(&self, va: u32, access: Access, mode: Mode) -> Result<u32, PageFault> {
        self.access(|st, ram| st.translate(ram, va, access, mode))
    }

    fn read_small<const N: usize>(
        &self,
        va: u32,
        access: Access,
        mode: Mode,
    ) -> Result<[u8; N], PageFault> {
        self.access(|st, ram| {
            let pieces = st.translate_small(ram, va, N as u32, access, mode)?;
            let mut out = [0u8; N];
            let mut at = 0usize;
            for (pa, n) in pieces {
                let n = n as usize;
                if !ram.read(u64::from(pa), &mut out[at..at + n]) {
                    out[at..at + n].fill(0xFF);
                    st.stats.mmu.unbacked_accesses += 1;
                }
                at += n;
            }
            Ok(out)
        })
    }

    fn write_small(&self, va: u32, data: &[u8], mode: Mode) -> Result<(), PageFault> {
        self.access(|st, ram| {
            let pieces = st.translate_small(ram, va, data.len() as u32, Access::Write, mode)?;
            let mut at = 0usize;
            for (pa, n) in pieces {
                let n = n as usize;
                if !ram.write(u64::from(pa), &data[at..at + n]) {
                    st.stats.mmu.unbacked_accesses += 1;
                }
                at += n;
            }
            Ok(())
        })
    }

    /// Reads one byte.
    pub fn read_u8(&self, va: u32, mode: Mode) -> Result<u8, PageFault> {
        self.read_small::<1>(va, Access::Read, mode).map(|b| b[0])
    }

    /// Reads a little-endian `u32` (both pages translated first, as the
    /// one-CPU machine does).
    pub fn read_u32(&self, va: u32, mode: Mode) -> Result<u32, PageFault> {
        self.read_small::<4>(va, Access::Read, mode)
            .map(u32::from_le_bytes)
    }

    /// Writes one byte.
    pub fn write_u8(&self, va: u32, value: u8, mode: Mode) -> Result<(), PageFault> {
        self.write_small(va, &[value], mode)
    }

    /// Writes a little-endian `u32`, all or nothing.
    pub fn write_u32(&self, va: u32, value: u32, mode: Mode) -> Result<(), PageFault> {
        self.write_small(va, &value.to_le_bytes(), mode)
    }

    /// Fetches one instruction byte.
    pub fn fetch(&self, va: u32, mode: Mode) -> Result<u8, PageFault> {
        self.read_small::<1>(va, Access::Fetch, mode).map(|b| b[0])
    }
}

// SAFETY: `frame_ptr` returns, for every frame in RAM, a pointer into the one
// RAM allocation the machine (kept alive by the handle's `Arc`) owns, valid
// for PAGE_SIZE bytes for as long as the machine lives; frame n is at offset
// n * PAGE_SIZE, so consecutive frames have consecutive pointers. The data
// methods reach every RAM frame (`zero_frame` is overridden to drop the
// default's direct-map assertion). The sim hands RAM to no one else.
unsafe impl Platform for CpuHandle {
    fn frame_ptr(&self, frame: Frame) -> NonNull<[u8; PAGE_SIZE]> {
        self.m.frame_in_ram(frame)
    }

    fn root(&self) -> Frame {
        PhysAddr::new(self.cr3()).frame()
    }

    unsafe fn set_root(&self, root: Frame) {
        self.set_cr3(root.start().as_u32());
    }

    fn flush(&self, page: Page) {
        self.invlpg(page.start().as_u32());
    }

    fn flush_all(&self) {
        let mut st = self.state();
        st.flush_non_global();
        st.stats.mmu.flush_alls += 1;
    }

    fn cpu_id(&self) -> CpuId {
        self.id
    }

    fn online_cpus(&self) -> CpuSet {
        self.m.all_cpus()
    }

    fn shootdown(&self, targets: CpuSet, what: Invalidate<'_>) {
        if self.m.drop_shootdowns.load(Ordering::SeqCst) {
            if !targets.is_empty() {
                self.m.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if self.m.check_at_shootdown.load(Ordering::Relaxed) && !targets.is_empty() {
            if let Err(v) = self.check() {
                let freed = v.into_iter().filter(|x| {
                    matches!(
                        x.kind,
                        ViolationKind::FreeFrame
                            | ViolationKind::WalkThroughFreeTable
                            | ViolationKind::PdeFreeTable
                    )
                });
                lock(&self.m.violations).extend(freed);
            }
        }
        let posted = self.post_shootdown(targets, what);
        self.complete_shootdown(posted);
    }

    fn zero_frame(&self, frame: Frame) {
        let p = self.m.frame_in_ram(frame);
        // SAFETY: `p` is valid for PAGE_SIZE bytes of writes (inside RAM).
        unsafe { p.as_ptr().write_bytes(0, 1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_and_machine_are_send_and_sync() {
        assert_send_sync::<SmpMachine>();
        assert_send_sync::<CpuHandle>();
    }

    #[test]
    fn cpu_count_is_checked() {
        assert!(matches!(
            SmpMachine::new(4 << 20, 0),
            Err(SimError::BadCpuCount(0))
        ));
        assert!(SmpMachine::new(4 << 20, MAX_CPUS + 1).is_err());
        assert_eq!(SmpMachine::new(4 << 20, 3).unwrap().cpu_count(), 3);
    }
}
