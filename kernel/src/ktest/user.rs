//! Ring-3 programs run to completion, each checked by how it ended.

use core::sync::atomic::Ordering;

use super::support::TestResult;
use crate::arch::cpu;
use crate::mm::{self, Mm};
use crate::platform::Paging;
use crate::println;
use crate::process::{self, sig, WaitStatus};

/// Runs the user program `name` to completion (its children too) and
/// checks how it ended.
pub(super) fn program(name: &'static str, expect: WaitStatus) -> TestResult {
    let pid = process::spawn(name).map_err(|_| "cannot start the program")?;
    process::run_until_idle();
    let result = process::family_result(pid).ok_or("no result")?;
    process::clear_results();
    if result.status != expect {
        println!("    {name}: {} (expected {expect})", result.status);
        return Err("unexpected exit status");
    }
    Ok(())
}

/// Runs the stress program `name` (which prints its rounds), meant for
/// several CPUs (on one, its threads only interleave at timer ticks).
pub(super) fn stress(name: &'static str) -> TestResult {
    let cpus = crate::smp::online().len();
    let kills = process::THREAD_KILLS.load(Ordering::Relaxed);
    let before = crate::smp::stats();
    let start = crate::arch::tsc::rdtsc();
    program(name, WaitStatus::exited(0))?;
    let cycles = crate::arch::tsc::rdtsc().wrapping_sub(start);
    let after = crate::smp::stats();
    println!(
        "    {cpus} CPUs, {} Mcycles: {} shootdowns ({} IPIs, {} NMI reminders), {} threads killed by a fault",
        cycles / 1_000_000,
        after.shootdowns - before.shootdowns,
        after.ipis - before.ipis,
        after.nmi_kicks - before.nmi_kicks,
        process::THREAD_KILLS.load(Ordering::Relaxed) - kills
    );
    Ok(())
}

/// Most RAM the out-of-memory test runs with (it touches every frame).
const OOM_TEST_MAX_RAM: u64 = 256 << 20;

pub(super) fn out_of_memory(_mm: &Mm) -> TestResult {
    if mm::ram_end() > OOM_TEST_MAX_RAM {
        println!(
            "    skipped: more than {} MiB of RAM",
            OOM_TEST_MAX_RAM >> 20
        );
        return Ok(());
    }
    program("oom", WaitStatus::signaled(sig::SIGKILL))
}

/// Page-fault error code: the fault hit a present page.
const ERR_PRESENT: u32 = 0x1;
/// Page-fault error code: the access came from ring 3.
const ERR_USER: u32 = 0x4;
/// Page-fault error code: an instruction fetch (I/D).
const ERR_FETCH: u32 = 0x10;

/// A jump to an unmapped user address kills the process with SIGSEGV, and
/// the fault's error code has the I/D (fetch) bit exactly when SMEP is on
/// or the kernel runs PAE paging with NX: classic i386 paging reports it
/// only under CR4.SMEP.
pub(super) fn fetch_fault_error_code(mm: &Mm) -> TestResult {
    process::LAST_USER_FAULT.store(0, Ordering::Relaxed);
    program("fetch_unmapped", WaitStatus::signaled(sig::SIGSEGV))?;
    let code = process::LAST_USER_FAULT.load(Ordering::Relaxed);
    let smep = cpu::smep_on() || mm.paging() == Paging::Pae;
    println!(
        "    error code {code:#x} (SMEP {}: I/D bit {})",
        if smep { "on" } else { "off" },
        if code & ERR_FETCH != 0 {
            "set"
        } else {
            "clear"
        }
    );
    if code & (ERR_USER | ERR_PRESENT) != ERR_USER {
        return Err("not a user not-present fault");
    }
    if (code & ERR_FETCH != 0) != smep {
        return Err("the I/D bit does not follow CR4.SMEP (or PAE with NX)");
    }
    Ok(())
}

/// Code copied into a `PROT_READ|PROT_WRITE` mapping (`user/nx.c`): under
/// PAE a jump there is a user fetch from a present NX page, SIGSEGV (a
/// child first, then the program itself), and after `mprotect(PROT_READ |
/// PROT_EXEC)` the same code runs; classic paging has no NX, so there the
/// jump runs and the program exits 0.
pub(super) fn no_execute(mm: &Mm) -> TestResult {
    process::LAST_USER_FAULT.store(0, Ordering::Relaxed);
    match mm.paging() {
        Paging::Classic => program("nx", WaitStatus::exited(0)),
        Paging::Pae => {
            program("nx", WaitStatus::signaled(sig::SIGSEGV))?;
            let code = process::LAST_USER_FAULT.load(Ordering::Relaxed);
            println!("    error code {code:#x}");
            let want = ERR_PRESENT | ERR_USER | ERR_FETCH;
            if code & want != want {
                return Err("not a user fetch from a present (NX) page");
            }
            Ok(())
        }
    }
}
