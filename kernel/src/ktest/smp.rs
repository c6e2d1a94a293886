//! Several CPUs: every application processor answers calls and takes its
//! timer; shootdowns to every other CPU, many times, each acknowledged and
//! counted; and an AP's TLB really dropping a translation it had cached.
//! On a one-CPU boot the tests check that nothing is sent.

use myos_mm::smp::{CpuId, CpuSet, Invalidate};
use myos_mm::{Page, Platform, VirtAddr};

use super::support::{check, TestResult, TEST_VA};
use crate::arch::percpu;
use crate::mm::{Mm, PLATFORM};
use crate::{println, smp, smpcheck};

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

/// Run on an AP: `rounds` shootdowns to every other CPU, the boot CPU
/// included (which waits with interrupts off, shooting at the AP itself).
fn shoot_everyone(rounds: u32) -> u32 {
    let targets = smp::online().without(smp::cpu_id());
    for i in 0..rounds {
        let page = VirtAddr::new(TEST_VA + (i % 16) * 4096).page();
        let what = if i % 3 == 0 {
            Invalidate::AllNonGlobal
        } else {
            Invalidate::Pages(&[page])
        };
        PLATFORM.shootdown(targets, what);
    }
    rounds
}

pub(super) fn crossed_shootdowns(_: &Mm) -> TestResult {
    let Some(ap) = others().iter().next() else {
        return Ok(());
    };
    let before = smp::stats();
    // The AP shoots at everyone from its IPI handler while this CPU, with
    // interrupts off, shoots at everyone too: each wait loop must service
    // the other's requests.
    smp::post(ap, shoot_everyone, ROUNDS / 4);
    let mine = shoot_everyone(ROUNDS / 4);
    check!(
        smp::wait(ap) == ROUNDS / 4 && mine == ROUNDS / 4,
        "a CPU did not finish its shootdowns"
    );
    let after = smp::stats();
    check!(
        after.shootdowns - before.shootdowns == ROUNDS / 2,
        "not every crossed shootdown was counted"
    );
    println!(
        "    the boot CPU and CPU {} shot at each other {} times each: all acknowledged, {} NMI reminders",
        ap.index(),
        ROUNDS / 4,
        after.nmi_kicks - before.nmi_kicks
    );
    Ok(())
}

pub(super) fn remote_tlb_dropped(mm: &Mm) -> TestResult {
    let Some(o) = smpcheck::observe_remote_tlb(mm, TEST_VA)? else {
        return Ok(());
    };
    check!(
        o.first == smpcheck::OLD,
        "the AP did not see the page's first contents"
    );
    check!(
        o.after_shootdown == smpcheck::NEW,
        "after the shootdown the AP still reads the old frame"
    );
    check!(
        o.without_shootdown == smpcheck::OLD || o.without_shootdown == smpcheck::NEW,
        "the AP read neither frame before the shootdown"
    );
    println!(
        "    CPU {} read {:#010x}, then {:#010x} after the remap without shootdown: {}, then {:#010x} after it",
        o.cpu.index(),
        o.first,
        o.without_shootdown,
        smpcheck::describe(&o),
        o.after_shootdown
    );
    Ok(())
}
