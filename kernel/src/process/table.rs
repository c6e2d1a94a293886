//! The process table: each process's state, address space, descriptors and
//! kernel stack; the families whose results the demo and the tests read;
//! the in-memory file system processes open files in.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;

use myos_abi::MemFs;
use myos_mm::vm::{FaultStats, FdTable, VmSpace};
use spin::{Mutex, Once};

use super::abi::WaitStatus;
use super::context;
use crate::kstack::KernelStack;
use crate::mm::UserFrames;
use crate::platform::X86Platform;

/// A process's user address space.
pub type UserSpace = VmSpace<'static, X86Platform, UserFrames>;

/// Where a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Ready to run (or running).
    Runnable,
    /// Blocked in `waitpid`.
    Waiting,
    /// Exited; its status waits for the parent.
    Zombie(WaitStatus),
}

/// One process.
pub(super) struct Process {
    pub(super) pid: u32,
    /// The parent, or `None` for a process the kernel started (or an orphan).
    pub(super) parent: Option<u32>,
    /// The kernel-started ancestor: fault counts are summed per family.
    pub(super) family: u32,
    pub(super) name: &'static str,
    pub(super) state: State,
    /// `None` once the process has exited.
    pub(super) vm: Option<UserSpace>,
    pub(super) fds: FdTable,
    pub(super) kstack: KernelStack,
    /// Saved kernel stack pointer while switched out.
    pub(super) saved_esp: AtomicU32,
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
    /// Processes in the family (forks included).
    pub processes: u32,
}

/// The process table.
pub(super) struct Table {
    /// Boxed so a process's `saved_esp` keeps its address while the vector
    /// grows or shrinks (the context switch writes through a raw pointer).
    #[allow(clippy::vec_box)]
    pub(super) procs: Vec<Box<Process>>,
    pub(super) current: Option<u32>,
    pub(super) next_pid: u32,
    pub(super) last_run: u32,
    /// Per-family results, filled as processes exit.
    pub(super) families: Vec<FamilyResult>,
}

pub(super) static TABLE: Mutex<Table> = Mutex::new(Table {
    procs: Vec::new(),
    current: None,
    next_pid: 1,
    last_run: 0,
    families: Vec::new(),
});

/// The in-memory file system processes open files in.
static FS: Once<MemFs> = Once::new();

/// Most processes alive at once (`fork` then fails with `EAGAIN`, like
/// `RLIMIT_NPROC`); the table is reserved for them at init, so it never
/// grows and the heap baseline stays put.
pub(super) const MAX_PROCESSES: usize = 256;
/// Most kernel-started process families whose results are kept.
pub(super) const MAX_FAMILIES: usize = 32;

/// Sets up the process table, the initial FPU state and the file system.
pub fn init(fs: MemFs) {
    context::capture_initial_fx();
    FS.call_once(|| fs);
    let mut t = TABLE.lock();
    t.procs.reserve(MAX_PROCESSES);
    t.families.reserve(MAX_FAMILIES);
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
    let result = t.families.iter().find(|f| f.pid == pid).copied();
    if alive {
        None
    } else {
        result
    }
}

/// Forgets the results of finished families.
pub fn clear_results() {
    TABLE.lock().families.clear();
}

/// The process `pid` (which must exist).
pub(super) fn find(t: &mut Table, pid: u32) -> &mut Process {
    match t.procs.iter_mut().find(|p| p.pid == pid) {
        Some(p) => p,
        None => panic!("process {pid} vanished from the table"),
    }
}

/// Pid and name of the current process.
pub(super) fn current_id() -> (u32, &'static str) {
    let mut t = TABLE.lock();
    match t.current {
        Some(pid) => {
            let name = find(&mut t, pid).name;
            (pid, name)
        }
        None => (0, "kernel"),
    }
}

/// The process the CPU was working for, for an oops: `None` when no process
/// runs, or the table is locked (the crash may be inside process code).
pub fn current_for_oops() -> Option<(u32, &'static str)> {
    let t = TABLE.try_lock()?;
    let pid = t.current?;
    t.procs
        .iter()
        .find(|p| p.pid == pid)
        .map(|p| (p.pid, p.name))
}

/// Runs `f` on the current process (table locked).
pub(super) fn with_current<R>(f: impl FnOnce(&mut Process) -> R) -> Option<R> {
    let mut t = TABLE.lock();
    let pid = t.current?;
    Some(f(find(&mut t, pid)))
}
