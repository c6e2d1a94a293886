//! Ring-3 processes and their threads: creation from an embedded ELF, the
//! `int 0x80` system calls, fork/exit/wait, threads (create, exit, join),
//! the scheduler of every CPU, page faults and signals.
//!
//! | file | what it owns |
//! |---|---|
//! | `abi.rs` | system-call, signal and errno numbers; the wait status |
//! | `table.rs` | the thread table, the `Space` a process's threads share, process families, the file system |
//! | `context.rs` | kernel stacks laid out for a first switch, `switch_context`, the stack canary |
//! | `spawn.rs` | loading an ELF program into a fresh address space |
//! | `sched.rs` | the scheduler of every CPU, `switch_space`, yield, exit |
//! | `syscall.rs` | the system calls |
//! | `fault.rs` | page faults and exceptions from ring 3, killing with a signal |
//! | `stats.rs` | fault service times, the free-frame low-water mark |
//! | `userspace.rs` | `UserSpace`: the core's `VmSpace` in the paging mode chosen at boot |
//!
//! Each thread has a 16 KiB kernel stack. A trap from ring 3 lands on it
//! and pushes the user state; switching threads switches kernel stacks, so
//! a preempted or blocked thread's whole user state waits on its own
//! stack. Each CPU's scheduler runs on that CPU's own stack.
//!
//! Locks (all `sync::Mutex`, which services shootdowns while it spins):
//! `TABLE → FAMILIES`; a space's `fds → vm`; a space's locks are never
//! taken with `TABLE` held; the core's locks (heap, frames, kernel space)
//! come last. None is held across a context switch.

mod abi;
mod context;
mod fault;
mod sched;
mod spawn;
mod stats;
mod syscall;
mod table;
mod userspace;

pub use abi::{sig, WaitStatus};
pub use context::kstack_high_water;
pub use fault::{page_fault, user_exception, LAST_USER_FAULT, THREAD_KILLS};
pub use sched::{preempt, run_forever, run_until_idle};
pub use spawn::spawn;
pub use stats::{add_fault_stats, fault_cycles, take_low_water};
pub use syscall::{
    enable_kernel_stack_overflow_test, enable_touch_user_test, recurse, syscall, TouchUser,
};
pub use table::{clear_results, current_for_oops, family_result, fs, init};
pub use userspace::UserSpace;
