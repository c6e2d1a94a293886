//! Ring-3 programs run to completion, each checked by how it ended.

use super::support::TestResult;
use crate::mm::{self, Mm};
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
