//! The in-kernel test runner: each test by name, pass or fail over the
//! serial console, then the verdict through `isa-debug-exit`.
//!
//! The tests exercise the core on real (emulated) hardware: the frame
//! allocator over the firmware's map (all of it, high memory through the
//! kmap window included), paging with the real MMU and TLB, interrupts,
//! and on several CPUs IPIs, shootdowns and the other CPUs' TLBs.
//!
//! One file per subject, as the test names say (`frames::…` in
//! `frames.rs`); what they share is in `support.rs`, the deliberate-crash
//! boots in `crash.rs`.

mod crash;
mod frames;
mod heap;
mod interrupts;
mod paging;
mod smp;
mod support;
mod user;

use crate::exit::{exit_qemu, ExitCode};
use crate::mm::{self, Mm};
use crate::println;
use crate::process::{self, sig, WaitStatus};

pub use crash::{
    deliberate_oops, deliberate_process_kstack_overflow, deliberate_stack_overflow,
    deliberate_user_touch,
};
use support::TestResult;

/// One kernel test.
type KernelTest = fn(&Mm) -> TestResult;

/// Every test, by name.
const TESTS: &[(&str, KernelTest)] = &[
    (
        "boot::reserved_areas_respected",
        frames::boot_reserved_areas_respected,
    ),
    ("frames::alloc_share_release", frames::alloc_share_release),
    ("frames::contiguous_aligned", frames::contiguous_aligned),
    ("frames::all_ram_accounted", frames::all_ram_accounted),
    (
        "frames::high_memory_through_kmap",
        frames::high_memory_through_kmap,
    ),
    (
        "paging::map_write_translate_unmap",
        paging::map_write_translate_unmap,
    ),
    ("paging::remap_shows_new_data", paging::remap_shows_new_data),
    ("paging::protect_read_only", paging::protect_read_only),
    ("paging::user_space_lifecycle", paging::user_space_lifecycle),
    (
        "paging::high_frame_through_mmu",
        paging::high_frame_through_mmu,
    ),
    ("paging::user_pages_above_4g", paging::user_pages_above_4g),
    ("heap::box_vec_btreemap", heap::box_vec_btreemap),
    ("heap::grows_and_gives_back", heap::grows_and_gives_back),
    ("heap::bad_free_refused", heap::bad_free_refused),
    ("interrupts::timer_ticks", interrupts::timer_ticks),
    ("user::demand_paging", |_| {
        user::program("demand", WaitStatus::exited(0))
    }),
    ("user::fork_cow", |_| {
        user::program("cow", WaitStatus::exited(0))
    }),
    ("user::shared_anon_across_fork", |_| {
        user::program("shared", WaitStatus::exited(0))
    }),
    ("user::file_mappings", |_| {
        user::program("files", WaitStatus::exited(0))
    }),
    ("user::fork_of_fork_orphan", |_| {
        user::program("forktree", WaitStatus::exited(0))
    }),
    ("user::preemption", |_| {
        user::program("preempt", WaitStatus::exited(0))
    }),
    ("user::fpu_state_per_process", |_| {
        user::program("fpu", WaitStatus::exited(0))
    }),
    ("user::stack_growth", |_| {
        user::program("stack", WaitStatus::exited(0))
    }),
    ("user::bad_syscall_arguments", |_| {
        user::program("badcalls", WaitStatus::exited(0))
    }),
    ("user::mprotect_read_only_then_writable", |_| {
        user::program("mprotect", WaitStatus::exited(0))
    }),
    ("user::sigbus_past_end_of_file", |_| {
        user::program("sigbus", WaitStatus::signaled(sig::SIGBUS))
    }),
    ("user::privileged_instruction_sigsegv", |_| {
        user::program("privileged", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("user::invalid_instruction_sigill", |_| {
        user::program("badinsn", WaitStatus::signaled(sig::SIGILL))
    }),
    (
        "user::out_of_memory_kills_only_the_process",
        user::out_of_memory,
    ),
    ("misbehaving::wild_addresses", |_| {
        user::program("wild", WaitStatus::exited(0))
    }),
    ("misbehaving::stack_overflow", |_| {
        user::program("stackbomb", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("misbehaving::munmap_own_stack", |_| {
        user::program("unmapstack", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("misbehaving::huge_and_overlapping_mmaps", |_| {
        user::program("mmapstorm", WaitStatus::exited(0))
    }),
    ("misbehaving::random_system_calls", |_| {
        user::program("sysfuzz", WaitStatus::exited(0))
    }),
    ("misbehaving::fork_bomb", |_| {
        user::program("forkbomb", WaitStatus::exited(0))
    }),
    ("user::segv_write_read_only", |_| {
        user::program("segv_readonly", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("user::segv_null", |_| {
        user::program("segv_null", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("user::segv_after_munmap", |_| {
        user::program("segv_unmapped", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("user::segv_kernel_address", |_| {
        user::program("segv_kernel", WaitStatus::signaled(sig::SIGSEGV))
    }),
    ("user::fetch_fault_error_code", user::fetch_fault_error_code),
    ("user::no_execute", user::no_execute),
    ("user::threads", |_| {
        user::program("threads", WaitStatus::exited(0))
    }),
    (
        "interrupts::breakpoint_recovers",
        interrupts::breakpoint_recovers,
    ),
    ("smp::every_cpu_answers", smp::every_cpu_answers),
    ("smp::shootdown_rounds", smp::shootdown_rounds),
    ("smp::crossed_shootdowns", smp::crossed_shootdowns),
    ("smp::remote_tlb_dropped", smp::remote_tlb_dropped),
];

/// The ring-3 stress tests of several CPUs (`mode=test tests=stress`, on
/// `-smp 4`): threads of one process on different CPUs against munmap,
/// mprotect, fork, first touches, and a storm of memory calls with forks.
const STRESS: &[(&str, KernelTest)] = &[
    ("stress::registers_survive_calls", |_| {
        user::stress("smp_regs")
    }),
    ("stress::munmap_vs_reader", |_| user::stress("smp_munmap")),
    ("stress::mprotect_vs_writer", |_| {
        user::stress("smp_mprotect")
    }),
    ("stress::cow_fork_vs_sibling_writers", |_| {
        user::stress("smp_cowfork")
    }),
    ("stress::first_touch_one_frame", |_| {
        user::stress("smp_firsttouch")
    }),
    ("stress::memory_call_storm_with_forks", |_| {
        user::stress("smp_storm")
    }),
];

/// Runs every test (or with `stress`, the stress tests) and exits QEMU
/// with the verdict.
pub fn run_all(mm: &Mm, stress: bool, only: Option<&str>) -> ! {
    crate::demo::init_processes();
    let all = if stress { STRESS } else { TESTS };
    let mut chosen = alloc::vec::Vec::new();
    chosen.extend(
        all.iter()
            .filter(|(name, _)| only.is_none_or(|o| name.contains(o))),
    );
    let tests = &chosen[..];
    println!("running {} kernel tests", tests.len());
    mm::heap_trim();
    let (suite_frames, suite_heap) = (mm::frame_stats(), mm::heap_stats());
    let mut failed = 0;
    for (name, test) in tests {
        mm::heap_trim();
        let heap_before = mm::heap_stats();
        let before = mm::frame_stats();
        let mut result = test(mm);
        mm::heap_trim();
        let after = mm::frame_stats();
        if result.is_ok() && (after.free != before.free || after.used != before.used) {
            result = Err("frames leaked (free/used counts differ from before the test)");
        }
        if result.is_ok() && mm::heap_stats().used_bytes != heap_before.used_bytes {
            result = Err("heap bytes leaked");
        }
        match result {
            Ok(()) => println!("test {name} ... ok"),
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED: {why}");
            }
        }
    }
    mm::heap_trim();
    let (end_frames, end_heap) = (mm::frame_stats(), mm::heap_stats());
    let back = end_frames.free == suite_frames.free && end_heap.used_bytes == suite_heap.used_bytes;
    println!(
        "whole suite: free frames {} -> {}, heap in use {} -> {} bytes ({})",
        suite_frames.free,
        end_frames.free,
        suite_heap.used_bytes,
        end_heap.used_bytes,
        if back { "back to baseline" } else { "LEAK" }
    );
    if !back {
        failed += 1;
    }
    let (deepest, size) = process::kstack_high_water();
    println!("process kernel stacks: deepest use {deepest} of {size} bytes");
    if failed == 0 {
        println!("test result: ok. {} passed; 0 failed", tests.len());
        exit_qemu(ExitCode::Success)
    } else {
        println!(
            "test result: FAILED. {} passed; {failed} failed",
            tests.len() - failed
        );
        exit_qemu(ExitCode::Failure)
    }
}
