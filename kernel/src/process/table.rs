//! The process table: every thread's state, address space, kernel stack
//! and CPU; the address spaces threads share; the families whose results
//! the demo and the tests read; the in-memory file system processes open
//! files in.
//!
//! A *process* is a group of threads sharing one [`Space`] (address space
//! and descriptor table); its id is its main thread's. A thread is one
//! table entry ([`Process`]); `fork` makes a new process with one thread,
//! `thread_create` a new thread in the caller's process.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use myos_abi::MemFs;
use myos_mm::paging::SpaceCpus;
use myos_mm::vm::{FaultStats, FdTable};
use spin::Once;

use super::abi::WaitStatus;
use super::context;
use super::stats::add_fault_stats;
use crate::arch::percpu;
use crate::kstack::KernelStack;
use crate::sync::Mutex;

pub use super::userspace::UserSpace;

/// What the threads of one process share, alive as long as any of them
/// (and any CPU running one of them) holds a reference.
pub(super) struct Space {
    /// The address space, behind its own lock: the fault path and the
    /// memory system calls take it, never the process table.
    pub(super) vm: Mutex<UserSpace>,
    /// The descriptor table (taken before `vm` when both are needed).
    pub(super) fds: Mutex<FdTable>,
    /// The page directory and the set of CPUs that may cache the space,
    /// which the scheduler updates without taking `vm`
    /// (`sched::switch_space`).
    pub(super) cpus: SpaceCpus,
    /// Set by `exit`: the other threads end at their next kernel entry.
    pub(super) exiting: AtomicBool,
    /// The status `exit` gave (valid once `exiting` is set).
    pub(super) exit_status: AtomicI32,
    /// The family whose fault counts this space adds to when it goes.
    family: u32,
}

impl Space {
    /// A new shared space for `vm` and `fds`, counted in `family`.
    pub(super) fn new(vm: UserSpace, fds: FdTable, family: u32) -> Arc<Space> {
        let cpus = vm.cpus();
        Arc::new(Space {
            vm: Mutex::new(vm),
            fds: Mutex::new(fds),
            cpus,
            exiting: AtomicBool::new(false),
            exit_status: AtomicI32::new(0),
            family,
        })
    }
}

impl Drop for Space {
    /// The last thread (or CPU) let go: the fault counts go to the family;
    /// then the fields drop, which frees every frame and page table.
    fn drop(&mut self) {
        let faults = self.vm.get_mut().fault_stats();
        let mut families = FAMILIES.lock();
        if let Some(f) = families.iter_mut().find(|f| f.pid == self.family) {
            add_fault_stats(&mut f.faults, &faults);
        }
    }
}

/// Where a thread is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Ready to run (or running: see [`Process::on_cpu`]).
    Runnable,
    /// Blocked in `waitpid` or `thread_join`.
    Waiting,
    /// Exited; its status waits for the parent (main thread) or a joiner.
    Zombie(WaitStatus),
}

/// One thread (the table's entry; a process is the threads of a `tgid`).
pub(super) struct Process {
    /// Thread id (the main thread's is the process id).
    pub(super) pid: u32,
    /// The process: its main thread's id.
    pub(super) tgid: u32,
    /// The parent process (main threads only), or `None` for a process the
    /// kernel started (or an orphan).
    pub(super) parent: Option<u32>,
    /// The kernel-started ancestor: fault counts are summed per family.
    pub(super) family: u32,
    pub(super) name: &'static str,
    pub(super) state: State,
    /// `None` once the thread has exited.
    pub(super) space: Option<Arc<Space>>,
    pub(super) kstack: KernelStack,
    /// Saved kernel stack pointer while switched out.
    pub(super) saved_esp: AtomicU32,
    /// True from the moment a CPU picks the thread until that CPU's
    /// scheduler is back on its own stack: no other CPU may pick it, and a
    /// zombie is not reaped.
    pub(super) on_cpu: bool,
}

impl Drop for Process {
    fn drop(&mut self) {
        context::record_stack_use(&self.kstack);
    }
}

impl Process {
    pub(super) fn kstack_top(&self) -> u32 {
        self.kstack.top()
    }
    /// True for a process's main thread.
    pub(super) fn is_main(&self) -> bool {
        self.pid == self.tgid
    }
    /// True while the thread has not exited.
    pub(super) fn alive(&self) -> bool {
        !matches!(self.state, State::Zombie(_))
    }
}

/// How a kernel-started process and its descendants did.
#[derive(Clone, Copy, Debug)]
pub struct FamilyResult {
    /// The kernel-started process.
    pub pid: u32,
    /// Its wait status.
    pub status: WaitStatus,
    /// Fault counts of the whole family.
    pub faults: FaultStats,
    /// Processes in the family (forks included; threads not).
    pub processes: u32,
}

/// The process table.
pub(super) struct Table {
    /// Boxed so a thread's `saved_esp` keeps its address while the vector
    /// grows or shrinks (the context switch writes through a raw pointer).
    #[allow(clippy::vec_box)]
    pub(super) procs: Vec<Box<Process>>,
    pub(super) next_pid: u32,
    pub(super) last_run: u32,
}

/// The process table. Lock order: `TABLE → FAMILIES`; an address space's
/// locks are never taken with `TABLE` held, and no `Space` is dropped
/// with `FAMILIES` held.
pub(super) static TABLE: Mutex<Table> = Mutex::new(Table {
    procs: Vec::new(),
    next_pid: 1,
    last_run: 0,
});

/// Per-family results, filled as processes exit and spaces go.
pub(super) static FAMILIES: Mutex<Vec<FamilyResult>> = Mutex::new(Vec::new());

/// The in-memory file system processes open files in.
static FS: Once<MemFs> = Once::new();

/// Most threads alive at once (`fork` and `thread_create` then fail with
/// `EAGAIN`, like `RLIMIT_NPROC`); the table is reserved for them at init,
/// so it never grows and the heap baseline stays put.
pub(super) const MAX_PROCESSES: usize = 256;
/// Most kernel-started process families whose results are kept.
pub(super) const MAX_FAMILIES: usize = 32;

/// Sets up the process table, the initial FPU state and the file system.
pub fn init(fs: MemFs) {
    context::capture_initial_fx();
    FS.call_once(|| fs);
    TABLE.lock().procs.reserve(MAX_PROCESSES);
    FAMILIES.lock().reserve(MAX_FAMILIES);
}

/// The in-memory file system.
pub fn fs() -> Option<&'static MemFs> {
    FS.get()
}

/// Boxes `value`, or gives it back when the heap is exhausted.
pub(super) fn try_box<T>(value: T) -> Result<Box<T>, T> {
    let layout = core::alloc::Layout::new::<T>();
    if layout.size() == 0 {
        return Ok(Box::new(value));
    }
    // SAFETY: the layout is not zero-sized (checked above).
    let ptr = unsafe { alloc::alloc::alloc(layout) }.cast::<T>();
    if ptr.is_null() {
        return Err(value);
    }
    // SAFETY: `ptr` is a fresh, suitably aligned allocation for one `T`;
    // writing initializes it, and the box takes over the allocation.
    unsafe {
        ptr.write(value);
        Ok(Box::from_raw(ptr))
    }
}

/// The result of the kernel-started process `pid` and its family, once all
/// of them have exited.
pub fn family_result(pid: u32) -> Option<FamilyResult> {
    let t = TABLE.lock();
    let alive = t.procs.iter().any(|p| p.family == pid);
    let result = FAMILIES.lock().iter().find(|f| f.pid == pid).copied();
    if alive {
        None
    } else {
        result
    }
}

/// Forgets the results of finished families.
pub fn clear_results() {
    FAMILIES.lock().clear();
}

/// The thread `pid` (which must exist).
pub(super) fn find(t: &mut Table, pid: u32) -> &mut Process {
    match t.procs.iter_mut().find(|p| p.pid == pid) {
        Some(p) => p,
        None => panic!("thread {pid} vanished from the table"),
    }
}

/// The thread running on this CPU (0: none).
pub(super) fn current_pid() -> u32 {
    percpu::this().current.load(Ordering::SeqCst)
}

/// The address space of the thread running on this CPU.
///
/// The reference is valid while that thread runs (on whichever CPU): the
/// thread's own table entry holds the space until it exits, and each CPU
/// that runs it holds one more reference meanwhile.
pub(super) fn current_space() -> Option<&'static Space> {
    let ptr = percpu::this().space.load(Ordering::SeqCst) as *const Space;
    // SAFETY: the scheduler stores `Arc::into_raw` of the running thread's
    // space there before switching to it and takes it back only after the
    // thread switched away; the caller runs as that thread.
    unsafe { ptr.as_ref() }
}

/// Thread id, process id and name of the thread running on this CPU.
pub(super) fn current_id() -> (u32, u32, &'static str) {
    let pid = current_pid();
    if pid == 0 {
        return (0, 0, "kernel");
    }
    let mut t = TABLE.lock();
    let p = find(&mut t, pid);
    (p.pid, p.tgid, p.name)
}

/// The thread the CPU was working for, for an oops: `None` when no thread
/// runs here, or the table is locked (the crash may be inside process code).
pub fn current_for_oops() -> Option<(u32, &'static str)> {
    let pid = current_pid();
    let t = TABLE.try_lock()?;
    t.procs
        .iter()
        .find(|p| p.pid == pid)
        .map(|p| (p.pid, p.name))
}
