//! Several CPUs: every application processor answers calls and takes its
//! timer; shootdowns to every other CPU, many times, each acknowledged and
//! counted; and an AP's TLB really dropping a translation it had cached.
//! On a one-CPU boot the tests check that nothing is sent.

use myos_mm::frames::{FrameSource, Zone};
use myos_mm::paging::PteFlags;
use myos_mm::smp::{CpuId, CpuSet, Invalidate};
use myos_mm::{Page, Platform, VirtAddr};

use super::support::{check, map_fresh, stamp, TestResult, TEST_VA};
use crate::arch::percpu;
use crate::mm::{Mm, PLATFORM};
use crate::println;
use crate::smp;

/// Rounds of [`shootdown_rounds`].
const ROUNDS: u32 = 1000;

/// The other CPUs online.
fn others() -> CpuSet {
    smp::online().without(smp::cpu_id())
}

/// Run on another CPU: its number.
fn whoami(_: u32) -> u32 {
    percpu::cpu_index() as u32
}

/// Run on another CPU: the word at kernel address `va` (mapped by the
/// caller in the kernel space, which every AP runs on).
fn read_word(va: u32) -> u32 {
    // SAFETY: the test maps `va` before each call and keeps it mapped
    // until the call has returned.
    unsafe { (va as *const u32).read_volatile() }
}

pub(super) fn every_cpu_answers(_: &Mm) -> TestResult {
    check!(
        smp::cpu_id() == CpuId::BOOT,
        "tests must run on the boot CPU"
    );
    for cpu in others().iter() {
        check!(
            smp::run_on(cpu, whoami, 0) == cpu.index() as u32,
            "a CPU answered a call with another CPU's number"
        );
    }
    // The APs' local APIC timers tick (about 100 Hz): wait up to ~2 s.
    for cpu in others().iter() {
        let ticks = &percpu::of(cpu).ticks;
        let start = crate::arch::tsc::rdtsc();
        while ticks.load(core::sync::atomic::Ordering::Relaxed) == 0 {
            if crate::arch::tsc::rdtsc() - start > 1 << 33 {
                return Err("an application processor's timer never ticked");
            }
            core::hint::spin_loop();
        }
    }
    Ok(())
}

pub(super) fn shootdown_rounds(_: &Mm) -> TestResult {
    let targets = others();
    let n = targets.len() as u32;
    let before = smp::stats();
    let mut pages = [Page::from_start(VirtAddr::new(0)).map_err(|_| "page")?; smp::MAX_PAGES];
    let (mut want_pages, mut want_full) = (0u32, 0u32);
    for round in 0..ROUNDS {
        match round % 4 {
            0 | 1 => {
                let count = (round as usize % smp::MAX_PAGES) + 1;
                for (i, p) in pages.iter_mut().take(count).enumerate() {
                    *p = VirtAddr::new(TEST_VA + ((round as usize + i) as u32 % 512) * 4096).page();
                }
                PLATFORM.shootdown(targets, Invalidate::Pages(&pages[..count]));
                want_pages += count as u32 * n;
            }
            2 => {
                PLATFORM.shootdown(targets, Invalidate::AllNonGlobal);
                want_full += n;
            }
            _ => {
                PLATFORM.shootdown(targets, Invalidate::Everything);
                want_full += n;
            }
        }
    }
    let after = smp::stats();
    let sent = if n == 0 { 0 } else { ROUNDS };
    check!(
        after.shootdowns - before.shootdowns == sent,
        "a shootdown with targets was not counted (or one without was sent)"
    );
    check!(
        after.ipis - before.ipis == sent * n,
        "not one IPI per target per shootdown"
    );
    check!(
        after.pages - before.pages == want_pages,
        "the targets did not invalidate every page they were sent"
    );
    check!(
        after.full_flushes - before.full_flushes == want_full,
        "the targets did not do every full flush they were sent"
    );
    println!(
        "    {ROUNDS} shootdowns to {n} CPUs: {} IPIs, {} pages, {} full flushes acknowledged, {} NMI reminders",
        after.ipis - before.ipis,
        after.pages - before.pages,
        after.full_flushes - before.full_flushes,
        after.nmi_kicks - before.nmi_kicks
    );
    Ok(())
}

/// What an AP read through a page whose mapping the boot CPU changed.
#[derive(Clone, Copy, Debug)]
pub struct TlbObservation {
    /// The CPU that read.
    pub cpu: CpuId,
    /// Its first read (caches the translation).
    pub first: u32,
    /// Its read after the remap, before any shootdown.
    pub without_shootdown: u32,
    /// Its read after the shootdown.
    pub after_shootdown: u32,
}

/// Old and new contents of the test page.
const OLD: u32 = 0x01D0_1D01;
const NEW: u32 = 0x0E0E_0E0E;

/// Maps a page at `TEST_VA` to a frame holding [`OLD`], has the first AP
/// read it (its TLB caches the translation), remaps it to a frame holding
/// [`NEW`] with a local flush only, has the AP read again, shoots the page
/// down on the AP and has it read a third time. `None` on one CPU.
pub fn observe_remote_tlb(mm: &Mm) -> Result<Option<TlbObservation>, &'static str> {
    let Some(cpu) = others().iter().next() else {
        return Ok(None);
    };
    let page = VirtAddr::new(TEST_VA).page();
    let mut space = mm.kernel_space().lock();
    let old = map_fresh(mm, &mut space, TEST_VA, PteFlags::WRITABLE, Zone::Direct)?;
    stamp(mm, old, OLD);
    let first = smp::run_on(cpu, read_word, TEST_VA);
    let new = mm
        .frames()
        .lock()
        .alloc(Zone::Direct)
        .map_err(|_| "out of frames")?;
    stamp(mm, new, NEW);
    let (replaced, flush) = space
        .remap(
            mm.platform(),
            &mut mm.frames(),
            page,
            new,
            PteFlags::WRITABLE,
        )
        .map_err(|_| "remap failed")?;
    flush.flush(mm.platform());
    let without_shootdown = smp::run_on(cpu, read_word, TEST_VA);
    PLATFORM.shootdown(CpuSet::only(cpu), Invalidate::Pages(&[page]));
    let after_shootdown = smp::run_on(cpu, read_word, TEST_VA);
    // Only now may the old frame go: no CPU can reach it any more.
    if let Some(f) = replaced {
        mm.frames()
            .lock()
            .release(f)
            .map_err(|_| "release failed")?;
    }
    let (frame, flush) = space
        .unmap(mm.platform(), &mut mm.frames(), page)
        .map_err(|_| "unmap failed")?;
    flush.flush(mm.platform());
    PLATFORM.shootdown(others(), Invalidate::AllNonGlobal);
    mm.frames()
        .lock()
        .release(frame)
        .map_err(|_| "release failed")?;
    Ok(Some(TlbObservation {
        cpu,
        first,
        without_shootdown,
        after_shootdown,
    }))
}

/// A line describing what the AP saw.
pub fn describe(o: &TlbObservation) -> &'static str {
    match (o.without_shootdown == OLD, o.without_shootdown == NEW) {
        (true, _) => "stale (its TLB kept the old translation until the shootdown)",
        (_, true) => "already new (its TLB had dropped the entry by itself)",
        _ => "neither old nor new (a bug)",
    }
}

pub(super) fn remote_tlb_dropped(mm: &Mm) -> TestResult {
    let Some(o) = observe_remote_tlb(mm)? else {
        return Ok(());
    };
    check!(
        o.first == OLD,
        "the AP did not see the page's first contents"
    );
    check!(
        o.after_shootdown == NEW,
        "after the shootdown the AP still reads the old frame"
    );
    check!(
        o.without_shootdown == OLD || o.without_shootdown == NEW,
        "the AP read neither frame before the shootdown"
    );
    println!(
        "    CPU {} read {:#010x}, then {:#010x} after the remap without shootdown: {}, then {:#010x} after it",
        o.cpu.index(),
        o.first,
        o.without_shootdown,
        describe(&o),
        o.after_shootdown
    );
    Ok(())
}
