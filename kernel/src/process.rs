//! Ring-3 processes: creation from an embedded ELF, the `int 0x80` system
//! calls, fork/exit/wait, the round-robin scheduler, page faults and
//! signals.
//!
//! Each process has a 16 KiB kernel stack. A trap from ring 3 lands on it
//! (TSS.esp0) and pushes a [`TrapFrame`] and the FPU/SSE state (`fxsave`);
//! switching processes switches kernel stacks ([`switch_context`]), so a
//! preempted or blocked process's whole user state waits on its own stack.
//! The scheduler runs on the boot stack: a process gives the CPU back by
//! switching to it, and it picks the next runnable process in pid order.
//! The kernel itself is not preemptible (interrupts are off in ring 0).
//!
//! Locks: the process table is taken before the heap, an address space and
//! the frames (`TABLE → heap → space → frames`), and is never held across
//! a context switch.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use myos_mm::error::errno;
use myos_mm::layout::{PAGE_SIZE, USER_END};
use myos_mm::vm::Prot;
use myos_mm::vm::{FaultKind, FaultOutcome, FaultStats, PageFault, SegvCause, Signal};
use myos_mm::vm::{FdTable, MemFs, OpenMode};
use myos_mm::vm::{MapRequest, MapSource, VmSpace};
use myos_mm::{MmError, VirtAddr};
use spin::{Mutex, Once};

use crate::arch::gdt::{self, USER_CODE, USER_DATA};
use crate::arch::exception::{self, PageFaultCode};
use crate::arch::frame::{trap_return_addr, TrapFrame, FXSAVE_SIZE, TRAP_FRAME_SIZE};
use crate::arch::regs::eflags;
use crate::kstack::{KernelStack, KSTACK_SIZE};
use crate::mm::{self, UserFrames, PLATFORM};
use crate::platform::X86Platform;
use crate::programs::{self, Elf, PF_W, PF_X};
use crate::{println, serial};

/// A process's user address space.
pub type UserSpace = VmSpace<'static, X86Platform, UserFrames>;

/// Initial size of the user stack region.
const USER_STACK_SIZE: u32 = 64 * 1024;
/// How far the user stack may grow.
const USER_STACK_MAX: u32 = 1 << 20;
/// Longest path `open` accepts.
const PATH_MAX: usize = 64;
/// Bytes `write` copies per chunk.
const WRITE_CHUNK: usize = 256;

/// System-call numbers (Linux i386 where one exists).
pub mod nr {
    /// `exit(status)`.
    pub const EXIT: u32 = 1;
    /// `fork()`.
    pub const FORK: u32 = 2;
    /// `write(fd, buf, len)` (fd 1 and 2 go to the serial console).
    pub const WRITE: u32 = 4;
    /// `open(path, flags)` in the in-memory file system.
    pub const OPEN: u32 = 5;
    /// `waitpid(pid, status_ptr)` (`pid` -1: any child).
    pub const WAITPID: u32 = 7;
    /// `getpid()`.
    pub const GETPID: u32 = 20;
    /// `mmap(addr, length, prot, flags, fd, offset)`, all six in registers.
    pub const MMAP: u32 = 90;
    /// `munmap(addr, length)`.
    pub const MUNMAP: u32 = 91;
    /// `mprotect(addr, length, prot)`.
    pub const MPROTECT: u32 = 125;
    /// `sched_yield()`.
    pub const YIELD: u32 = 158;
    /// `show_maps()` (MyOS): prints the caller's regions, like
    /// `/proc/self/maps`, on the console.
    pub const SHOW_MAPS: u32 = 400;
    /// Test only (`test=kstack-overflow`): recurse in the kernel on the
    /// caller's kernel stack until it overflows into its guard page.
    pub const OVERFLOW_KERNEL_STACK: u32 = 401;
}

/// Whether [`nr::OVERFLOW_KERNEL_STACK`] is enabled (only by its test boot).
static KSTACK_OVERFLOW_TEST: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Enables the system call that overflows a process kernel stack on purpose.
pub fn enable_kernel_stack_overflow_test() {
    KSTACK_OVERFLOW_TEST.store(true, Ordering::SeqCst);
}

/// Signal numbers (Linux i386).
pub mod sig {
    /// Illegal instruction.
    pub const SIGILL: i32 = 4;
    /// Bus error (access past the end of a mapped file).
    pub const SIGBUS: i32 = 7;
    /// Arithmetic error.
    pub const SIGFPE: i32 = 8;
    /// Killed (out of memory).
    pub const SIGKILL: i32 = 9;
    /// Segmentation fault.
    pub const SIGSEGV: i32 = 11;
}

/// `O_RDWR` for `open`.
const O_RDWR: u32 = 2;
/// `O_ACCMODE`.
const O_ACCMODE: u32 = 3;
/// errno: no such file.
const ENOENT: i32 = 2;
/// errno: try again (process limit).
const EAGAIN: i32 = 11;
/// errno: no child processes.
const ECHILD: i32 = 10;
/// errno: function not implemented.
const ENOSYS: i32 = 38;

/// Wait status: bits of the terminating signal.
const SIGNAL_MASK: i32 = 0x7F;
/// Wait status: where the exit code sits, and its bits.
const EXIT_CODE_SHIFT: u32 = 8;
const EXIT_CODE_MASK: i32 = 0xFF;

/// A wait status as POSIX encodes it: the exit code in bits 8..15, or the
/// signal number in bits 0..6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitStatus(pub i32);

impl WaitStatus {
    /// Normal exit with `code`.
    pub const fn exited(code: i32) -> Self {
        WaitStatus((code & EXIT_CODE_MASK) << EXIT_CODE_SHIFT)
    }
    /// Killed by `signal`.
    pub const fn signaled(signal: i32) -> Self {
        WaitStatus(signal & SIGNAL_MASK)
    }
    /// The signal that killed the process, if any.
    pub const fn signal(self) -> Option<i32> {
        match self.0 & SIGNAL_MASK {
            0 => None,
            s => Some(s),
        }
    }
    /// The exit code, if the process exited normally.
    pub const fn code(self) -> Option<i32> {
        match self.signal() {
            None => Some((self.0 >> EXIT_CODE_SHIFT) & EXIT_CODE_MASK),
            Some(_) => None,
        }
    }
}

impl fmt::Display for WaitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code(), self.signal()) {
            (Some(c), _) => write!(f, "exit {c}"),
            (_, Some(sig::SIGSEGV)) => f.write_str("killed by SIGSEGV"),
            (_, Some(sig::SIGBUS)) => f.write_str("killed by SIGBUS"),
            (_, Some(sig::SIGILL)) => f.write_str("killed by SIGILL"),
            (_, Some(sig::SIGFPE)) => f.write_str("killed by SIGFPE"),
            (_, Some(sig::SIGKILL)) => f.write_str("killed by SIGKILL"),
            (_, Some(s)) => write!(f, "killed by signal {s}"),
            _ => f.write_str("?"),
        }
    }
}

/// A 512-byte, 16-aligned `fxsave` image.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct FxArea([u8; FXSAVE_SIZE]);

/// The FPU/SSE state every new process starts with (captured at boot).
static INITIAL_FX: Once<FxArea> = Once::new();

/// Where a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Ready to run (or running).
    Runnable,
    /// Blocked in `waitpid`.
    Waiting,
    /// Exited; its status waits for the parent.
    Zombie(WaitStatus),
}

/// One process.
struct Process {
    pid: u32,
    /// The parent, or `None` for a process the kernel started (or an orphan).
    parent: Option<u32>,
    /// The kernel-started ancestor: fault counts are summed per family.
    family: u32,
    name: &'static str,
    state: State,
    /// `None` once the process has exited.
    vm: Option<UserSpace>,
    fds: FdTable,
    kstack: KernelStack,
    /// Saved kernel stack pointer while switched out.
    saved_esp: AtomicU32,
}

/// The deepest use of any process kernel stack seen so far, in bytes.
static KSTACK_HIGH_WATER: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// The deepest use of any (reaped) process kernel stack, in bytes, and the
/// stack size.
pub fn kstack_high_water() -> (usize, usize) {
    (KSTACK_HIGH_WATER.load(Ordering::Relaxed), KSTACK_SIZE)
}

impl Drop for Process {
    fn drop(&mut self) {
        // The stack was zeroed when allocated: the lowest non-zero byte
        // above the canary marks the deepest point it reached.
        let canary = core::mem::size_of_val(&KSTACK_CANARY);
        let untouched = self.kstack.bytes()[canary..]
            .iter()
            .take_while(|&&b| b == 0)
            .count();
        let used = KSTACK_SIZE - canary - untouched;
        KSTACK_HIGH_WATER.fetch_max(used, Ordering::Relaxed);
    }
}

impl Process {
    fn kstack_top(&self) -> u32 {
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
struct Table {
    /// Boxed so a process's `saved_esp` keeps its address while the vector
    /// grows or shrinks (the context switch writes through a raw pointer).
    #[allow(clippy::vec_box)]
    procs: Vec<Box<Process>>,
    current: Option<u32>,
    next_pid: u32,
    last_run: u32,
    /// Per-family results, filled as processes exit.
    families: Vec<FamilyResult>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    procs: Vec::new(),
    current: None,
    next_pid: 1,
    last_run: 0,
    families: Vec::new(),
});

/// The scheduler's saved stack pointer while a process runs.
static SCHEDULER_ESP: AtomicU32 = AtomicU32::new(0);

/// The in-memory file system processes open files in.
static FS: Once<MemFs> = Once::new();

/// Most processes alive at once (`fork` then fails with `EAGAIN`, like
/// `RLIMIT_NPROC`); the table is reserved for them at init, so it never
/// grows and the heap baseline stays put.
const MAX_PROCESSES: usize = 256;
/// Most kernel-started process families whose results are kept.
const MAX_FAMILIES: usize = 32;

/// Sets up the process table, the initial FPU state and the file system.
pub fn init(fs: MemFs) {
    let mut fx = FxArea([0; FXSAVE_SIZE]);
    // SAFETY: `fx` is a 512-byte, 16-aligned buffer; fxsave only writes it.
    unsafe { core::arch::asm!("fxsave [{}]", in(reg) fx.0.as_mut_ptr(), options(nostack)) };
    INITIAL_FX.call_once(|| fx);
    FS.call_once(|| fs);
    let mut t = TABLE.lock();
    t.procs.reserve(MAX_PROCESSES);
    t.families.reserve(MAX_FAMILIES);
}

/// The in-memory file system.
pub fn fs() -> Option<&'static MemFs> {
    FS.get()
}

core::arch::global_asm!(
    r#"
    .section .text
    .global switch_context
/* switch_context(save: *mut u32, next_esp: u32): saves the callee-saved
   registers on this stack, stores esp in *save, loads next_esp and pops the
   next context's registers. */
switch_context:
    mov eax, [esp + 4]
    mov edx, [esp + 8]
    push ebp
    push ebx
    push esi
    push edi
    mov [eax], esp
    mov esp, edx
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret
    "#
);

extern "C" {
    /// Saves the current kernel context to `*save` and resumes the one at `next_esp`.
    fn switch_context(save: *mut u32, next_esp: u32);
}

/// Alignment `fxsave` requires (the trap stub aligns the same way).
const FXSAVE_ALIGN: usize = 16;

/// Words of the context `switch_context` pops (edi, esi, ebx, ebp, return address).
const CONTEXT_WORDS: usize = 5;
/// Index of ebx in that context.
const CONTEXT_EBX: usize = 2;
/// Index of the return address.
const CONTEXT_RET: usize = 4;

/// Lays out a new kernel stack so that switching to it "returns" from an
/// interrupt into `frame` with FPU state `fx`; returns the stack pointer.
fn prepare_kstack(stack: &mut KernelStack, frame: &TrapFrame, fx: &FxArea) -> u32 {
    let base = stack.bytes_mut().as_mut_ptr() as usize;
    let top = base + KSTACK_SIZE;
    let frame_at = top - TRAP_FRAME_SIZE;
    let fx_at = (frame_at - FXSAVE_SIZE) & !(FXSAVE_ALIGN - 1);
    let ctx_at = fx_at - CONTEXT_WORDS * 4;
    let mut ctx = [0u32; CONTEXT_WORDS];
    ctx[CONTEXT_EBX] = frame_at as u32;
    ctx[CONTEXT_RET] = trap_return_addr();
    // SAFETY: all three ranges lie inside `stack` (16 KiB, far more than
    // 76 + 512 + 16 + 20 bytes) and do not overlap; the frame and context
    // are plain integers, written unaligned-safe.
    unsafe {
        (frame_at as *mut TrapFrame).write_unaligned(*frame);
        (fx_at as *mut FxArea).write(*fx);
        (ctx_at as *mut [u32; CONTEXT_WORDS]).write_unaligned(ctx);
    }
    ctx_at as u32
}

/// Written at the bottom of every kernel stack; checked after each switch
/// back to the scheduler, so an overflow is reported (these stacks live on
/// the heap, without a guard page).
const KSTACK_CANARY: u64 = 0x5AFE_57AC_CA9A_12E5;

/// A fresh kernel stack (mapped with a guard page below, see [`kstack`])
/// with a canary at its bottom; `None` when no slot or frame is left (the
/// caller reports `ENOMEM`, the kernel goes on).
///
/// [`kstack`]: crate::kstack
fn new_kstack() -> Option<KernelStack> {
    let mut stack = KernelStack::new()?;
    stack.bytes_mut()[..8].copy_from_slice(&KSTACK_CANARY.to_le_bytes());
    Some(stack)
}

/// Boxes `value`, or gives it back when the heap is exhausted.
fn try_box<T>(value: T) -> Result<Box<T>, T> {
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

/// True while the canary at the bottom of `stack` is intact.
fn canary_intact(stack: &KernelStack) -> bool {
    stack.bytes()[..8] == KSTACK_CANARY.to_le_bytes()
}

/// Samples kept per fault kind.
const CYCLE_SAMPLES: usize = 64;

/// The first [`CYCLE_SAMPLES`] service times (TSC cycles) of one fault kind.
#[derive(Clone, Copy, Debug)]
pub struct CycleSamples {
    samples: [u64; CYCLE_SAMPLES],
    len: usize,
}

impl CycleSamples {
    const fn new() -> Self {
        Self {
            samples: [0; CYCLE_SAMPLES],
            len: 0,
        }
    }
    fn push(&mut self, cycles: u64) {
        if self.len < CYCLE_SAMPLES {
            self.samples[self.len] = cycles;
            self.len += 1;
        }
    }
    /// The median sample (0 when there is none).
    pub fn median(&self) -> u64 {
        let mut s = self.samples;
        let s = &mut s[..self.len];
        s.sort_unstable();
        s.get(s.len() / 2).copied().unwrap_or(0)
    }
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// Service times of resolved faults, by kind (for the demo's report).
#[derive(Clone, Copy, Debug)]
pub struct FaultCycles {
    /// Demand-zero faults.
    pub demand_zero: CycleSamples,
    /// Copy-on-write faults that copied a page.
    pub cow_copy: CycleSamples,
    /// File page-ins.
    pub file_page: CycleSamples,
}

impl FaultCycles {
    fn record(&mut self, kind: FaultKind, cycles: u64) {
        match kind {
            FaultKind::DemandZero => self.demand_zero.push(cycles),
            FaultKind::CopyOnWrite => self.cow_copy.push(cycles),
            FaultKind::FilePage => self.file_page.push(cycles),
            _ => {}
        }
    }
}

/// Fault service cycles since boot.
static FAULT_CYCLES: Mutex<FaultCycles> = Mutex::new(FaultCycles {
    demand_zero: CycleSamples::new(),
    cow_copy: CycleSamples::new(),
    file_page: CycleSamples::new(),
});

/// Fault service cycles since boot.
pub fn fault_cycles() -> FaultCycles {
    *FAULT_CYCLES.lock()
}

/// The fewest free frames seen while processes ran (all zones, high zone),
/// since the last [`take_low_water`].
static LOW_WATER: Mutex<Option<(u32, u32)>> = Mutex::new(None);

/// Records the current free-frame counts into the low-water mark.
fn sample_low_water() {
    use myos_mm::frames::Zone;
    let stats = mm::frame_stats();
    let now = (stats.free, stats.free_per_zone[Zone::High as usize]);
    let mut lw = LOW_WATER.lock();
    *lw = Some(match *lw {
        Some((f, h)) => (f.min(now.0), h.min(now.1)),
        None => now,
    });
}

/// The low-water mark of free frames `(all, high zone)` since the last
/// call, and resets it.
pub fn take_low_water() -> Option<(u32, u32)> {
    LOW_WATER.lock().take()
}

/// Why a program could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// No such program in the image.
    NoProgram,
    /// The ELF file is malformed.
    BadElf(&'static str),
    /// The memory manager refused.
    Mm(MmError),
    /// Too many processes (or process families).
    Limit,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NoProgram => f.write_str("no such program"),
            SpawnError::BadElf(why) => write!(f, "bad ELF file: {why}"),
            SpawnError::Mm(e) => write!(f, "{e}"),
            SpawnError::Limit => f.write_str("too many processes"),
        }
    }
}

impl From<MmError> for SpawnError {
    fn from(e: MmError) -> Self {
        SpawnError::Mm(e)
    }
}

/// Region protection for ELF segment flags (no NX on i386 without PAE, so
/// executable means readable).
fn segment_prot(flags: u32) -> Prot {
    let mut prot = Prot::READ;
    if flags & PF_W != 0 {
        prot |= Prot::WRITE;
    }
    if flags & PF_X != 0 {
        prot |= Prot::EXEC;
    }
    prot
}

/// Loads the program `name` into a fresh address space: each `PT_LOAD`
/// segment becomes a private region (filled through `copy_to_user`, then
/// given its final protection), plus a growable stack below `USER_END`.
/// Returns the space, the entry point and the initial stack pointer.
fn load(name: &str) -> Result<(UserSpace, u32, u32), SpawnError> {
    let image = programs::find(name).ok_or(SpawnError::NoProgram)?;
    let elf = Elf::parse(image).map_err(SpawnError::BadElf)?;
    let mut vm = {
        let kernel = mm::kernel_space();
        VmSpace::new(&PLATFORM, mm::user_frames(), &kernel)?
    };
    let page = PAGE_SIZE as u32;
    let mut prev: Option<(u32, u32, Prot)> = None;
    for seg in elf.segments() {
        let seg = seg.map_err(SpawnError::BadElf)?;
        if seg.mem_size == 0 {
            continue;
        }
        let start = seg.vaddr & !(page - 1);
        let end = seg
            .vaddr
            .checked_add(seg.mem_size)
            .and_then(|e| e.checked_add(page - 1))
            .ok_or(SpawnError::BadElf("segment overflows"))?
            & !(page - 1);
        let prot = segment_prot(seg.flags);
        // A page shared with the previous segment is already mapped.
        let map_from = match prev {
            Some((_, prev_end, _)) if start < prev_end => prev_end,
            _ => start,
        };
        if map_from < end {
            vm.map(&MapRequest {
                addr: Some(VirtAddr::new(map_from)),
                length: end - map_from,
                prot: Prot::READ | Prot::WRITE,
                shared: false,
                fixed: true,
                source: MapSource::Anonymous,
            })?;
        }
        vm.copy_to_user(
            VirtAddr::new(seg.vaddr),
            elf.bytes(&seg).map_err(SpawnError::BadElf)?,
        )?;
        prev = Some((start, end, prot));
    }
    // Final protections, once every byte is in (a shared page gets both).
    let mut prev: Option<(u32, Prot)> = None;
    for seg in elf.segments().flatten().filter(|s| s.mem_size > 0) {
        let start = seg.vaddr & !(page - 1);
        let end = (seg.vaddr + seg.mem_size + page - 1) & !(page - 1);
        let mut prot = segment_prot(seg.flags);
        vm.protect(VirtAddr::new(start), end - start, prot)?;
        if let Some((prev_end, prev_prot)) = prev {
            if start < prev_end {
                prot |= prev_prot;
                vm.protect(VirtAddr::new(start), page, prot)?;
            }
        }
        prev = Some((end, segment_prot(seg.flags)));
    }
    vm.map_stack(VirtAddr::new(USER_END), USER_STACK_SIZE, USER_STACK_MAX)?;
    const INITIAL_STACK_GAP: u32 = 16;
    Ok((vm, elf.entry, USER_END - INITIAL_STACK_GAP))
}

/// Starts the program `name` as a new kernel-started process.
pub fn spawn(name: &'static str) -> Result<u32, SpawnError> {
    if !mm::free_frames_above(mm::FORK_RESERVE_FRAMES) {
        return Err(SpawnError::Mm(MmError::OutOfMemory));
    }
    let (vm, entry, esp) = load(name)?;
    let frame = TrapFrame {
        gs: USER_DATA.into(),
        fs: USER_DATA.into(),
        es: USER_DATA.into(),
        ds: USER_DATA.into(),
        eip: entry,
        cs: USER_CODE.into(),
        eflags: eflags::IF | eflags::RESERVED1,
        user_esp: esp,
        user_ss: USER_DATA.into(),
        ..TrapFrame::default()
    };
    let fx = INITIAL_FX
        .get()
        .copied()
        .unwrap_or(FxArea([0; FXSAVE_SIZE]));
    let mut kstack = new_kstack().ok_or(SpawnError::Mm(MmError::OutOfMemory))?;
    let esp0 = prepare_kstack(&mut kstack, &frame, &fx);
    let mut t = TABLE.lock();
    if t.procs.len() >= MAX_PROCESSES || t.families.len() >= MAX_FAMILIES {
        return Err(SpawnError::Limit);
    }
    let pid = t.next_pid;
    let process = try_box(Process {
        pid,
        parent: None,
        family: pid,
        name,
        state: State::Runnable,
        vm: Some(vm),
        fds: FdTable::new(),
        kstack,
        saved_esp: AtomicU32::new(esp0),
    })
    .map_err(|_| SpawnError::Mm(MmError::OutOfMemory))?;
    t.next_pid += 1;
    // Within the capacity reserved at init: no allocation.
    t.procs.push(process);
    t.families.push(FamilyResult {
        pid,
        status: WaitStatus(0),
        faults: FaultStats::default(),
        processes: 1,
    });
    Ok(pid)
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

/// Adds `b` to `a`.
pub fn add_fault_stats(a: &mut FaultStats, b: &FaultStats) {
    a.demand_zero += b.demand_zero;
    a.shared_anon += b.shared_anon;
    a.file_page += b.file_page;
    a.cow_copy += b.cow_copy;
    a.cow_reuse += b.cow_reuse;
    a.write_notify += b.write_notify;
    a.stack_growth += b.stack_growth;
    a.spurious += b.spurious;
    a.sigsegv += b.sigsegv;
    a.sigbus += b.sigbus;
    a.out_of_memory += b.out_of_memory;
    a.kernel_bug += b.kernel_bug;
}

/// Runs processes until none is left. Called on the boot stack; returns
/// when every process has exited and been reaped.
pub fn run_until_idle() {
    loop {
        let next = {
            let mut t = TABLE.lock();
            reap_orphans(&mut t);
            if t.procs.is_empty() {
                return;
            }
            let last = t.last_run;
            let runnable = |p: &&Process| p.state == State::Runnable;
            let pick = t
                .procs
                .iter()
                .map(|p| &**p)
                .filter(runnable)
                .filter(|p| p.pid > last)
                .map(|p| p.pid)
                .min()
                .or_else(|| {
                    t.procs
                        .iter()
                        .map(|p| &**p)
                        .filter(runnable)
                        .map(|p| p.pid)
                        .min()
                });
            match pick {
                Some(pid) => {
                    t.last_run = pid;
                    t.current = Some(pid);
                    let p = find(&mut t, pid);
                    gdt::set_kernel_stack(p.kstack_top());
                    if let Some(vm) = &p.vm {
                        vm.activate();
                    }
                    Some(p.saved_esp.load(Ordering::SeqCst))
                }
                None => None,
            }
        };
        match next {
            Some(esp) => {
                // SAFETY: `esp` is the saved context of a live process (its
                // stack is owned by the table and outlives the switch); the
                // scheduler's context is saved in SCHEDULER_ESP.
                unsafe { switch_context(SCHEDULER_ESP.as_ptr(), esp) };
                sample_low_water();
                let mut t = TABLE.lock();
                if let Some(p) = t
                    .current
                    .and_then(|pid| t.procs.iter().find(|p| p.pid == pid))
                {
                    if !canary_intact(&p.kstack) {
                        panic!("kernel stack overflow in pid {} ({})", p.pid, p.name);
                    }
                }
                t.current = None;
                drop(t);
                mm::kernel_space().activate(&PLATFORM);
            }
            None => {
                // Everyone is blocked: wait for an interrupt.
                // SAFETY: enabling interrupts only to halt; nothing is locked.
                unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
            }
        }
    }
}

/// Frees zombies nobody will wait for.
fn reap_orphans(t: &mut Table) {
    t.procs
        .retain(|p| !(matches!(p.state, State::Zombie(_)) && p.parent.is_none()));
}

/// The process `pid` (which must exist).
fn find(t: &mut Table, pid: u32) -> &mut Process {
    match t.procs.iter_mut().find(|p| p.pid == pid) {
        Some(p) => p,
        None => panic!("process {pid} vanished from the table"),
    }
}

/// Gives the CPU back to the scheduler; returns when this process is
/// scheduled again.
fn yield_cpu() {
    let save = {
        let mut t = TABLE.lock();
        let Some(pid) = t.current else { return };
        find(&mut t, pid).saved_esp.as_ptr()
    };
    // SAFETY: `save` points into this process's boxed entry, which lives
    // until it is reaped (never while it is the one switching out); the
    // scheduler's context was saved when it switched to us.
    unsafe { switch_context(save, SCHEDULER_ESP.load(Ordering::SeqCst)) };
}

/// Ends the current process with `status`: frees its address space, hands
/// its children to nobody, wakes a waiting parent, and switches away for good.
fn exit_current(status: WaitStatus) -> ! {
    let vm = {
        let mut t = TABLE.lock();
        let Some(pid) = t.current else {
            panic!("exit with no current process");
        };
        let p = find(&mut t, pid);
        p.state = State::Zombie(status);
        let (family, parent) = (p.family, p.parent);
        let vm = p.vm.take();
        let _ = core::mem::take(&mut p.fds);
        let faults = vm.as_ref().map(|v| v.fault_stats()).unwrap_or_default();
        if let Some(f) = t.families.iter_mut().find(|f| f.pid == family) {
            add_fault_stats(&mut f.faults, &faults);
            if family == pid {
                f.status = status;
            }
        }
        for child in t.procs.iter_mut().filter(|c| c.parent == Some(pid)) {
            child.parent = None;
        }
        if let Some(ppid) = parent {
            if let Some(pp) = t.procs.iter_mut().find(|q| q.pid == ppid) {
                if pp.state == State::Waiting {
                    pp.state = State::Runnable;
                }
            }
        }
        vm
    };
    // Frees every frame, page table and object reference (loads the
    // kernel's directory first, since this space is the loaded one).
    drop(vm);
    yield_cpu();
    panic!("a zombie was scheduled");
}

/// Kills the current process with `signal`, after printing why.
fn kill_current(frame: &TrapFrame, signal: i32, why: fmt::Arguments<'_>) -> ! {
    let (pid, name) = current_id();
    println!(
        "  [pid {pid} {name}] {why}, eip {:#010x} => {}",
        frame.eip,
        WaitStatus::signaled(signal)
    );
    exit_current(WaitStatus::signaled(signal))
}

/// Pid and name of the current process.
fn current_id() -> (u32, &'static str) {
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

/// The timer fired while ring 3 ran: let the next process run.
pub fn preempt(frame: &mut TrapFrame) {
    let _ = frame;
    yield_cpu();
}

/// A page fault. Returns true when it was resolved (or the faulting process
/// was killed, which does not return); false means a kernel bug.
pub fn page_fault(frame: &mut TrapFrame, addr: u32) -> bool {
    let user = frame.came_from_user();
    if user {
        sample_low_water();
    }
    let fault = PageFault::new(addr, frame.error);
    let outcome = {
        // A supervisor fault while the table is locked is a bug in the
        // kernel's own process code: report it rather than deadlock.
        let table = if user {
            Some(TABLE.lock())
        } else {
            TABLE.try_lock()
        };
        let Some(mut t) = table else { return false };
        let Some(pid) = t.current else {
            drop(t);
            return crate::cprog::page_fault(addr, frame.error);
        };
        match find(&mut t, pid).vm.as_mut() {
            Some(vm) => {
                let start = crate::arch::tsc::rdtsc();
                let outcome = vm.handle_fault(fault);
                let cycles = crate::arch::tsc::rdtsc().wrapping_sub(start);
                if let FaultOutcome::Resolved(kind) = outcome {
                    FAULT_CYCLES.lock().record(kind, cycles);
                }
                outcome
            }
            None => return false,
        }
    };
    match outcome {
        FaultOutcome::Resolved(_) => true,
        FaultOutcome::Signal(signal) if frame.came_from_user() => {
            let (number, cause) = match signal {
                Signal::Segv {
                    cause: SegvCause::NoRegion,
                    ..
                } => (sig::SIGSEGV, "no mapping there"),
                Signal::Segv {
                    cause: SegvCause::Protection,
                    ..
                } => (sig::SIGSEGV, "not allowed by the mapping"),
                Signal::Bus { .. } => (sig::SIGBUS, "past the end of the file"),
            };
            kill_current(
                frame,
                number,
                format_args!(
                    "page fault: {} at {addr:#010x}, {cause}",
                    PageFaultCode(frame.error)
                ),
            )
        }
        FaultOutcome::OutOfMemory if frame.came_from_user() => kill_current(
            frame,
            sig::SIGKILL,
            format_args!("out of memory on a fault at {addr:#010x}"),
        ),
        _ => false,
    }
}

/// A CPU exception other than a page fault, from ring 3: kill the process.
pub fn user_exception(frame: &mut TrapFrame) {
    const DIVIDE: u32 = 0;
    const INVALID_OPCODE: u32 = 6;
    const SIMD: u32 = 19;
    const X87: u32 = 16;
    let signal = match frame.vector {
        DIVIDE | X87 | SIMD => sig::SIGFPE,
        INVALID_OPCODE => sig::SIGILL,
        _ => sig::SIGSEGV,
    };
    kill_current(
        frame,
        signal,
        format_args!("{}", exception::exception_name(frame.vector)),
    )
}

/// `-errno` for an error, as a register value.
fn err(e: i32) -> u32 {
    (-e) as u32
}

/// Runs `f` on the current process (table locked).
fn with_current<R>(f: impl FnOnce(&mut Process) -> R) -> Option<R> {
    let mut t = TABLE.lock();
    let pid = t.current?;
    Some(f(find(&mut t, pid)))
}

/// Handles `int 0x80`: number in eax, arguments in ebx, ecx, edx, esi,
/// edi, ebp; the result (or `-errno`) goes back in eax.
pub fn syscall(frame: &mut TrapFrame, fx: *mut u8) {
    sample_low_water();
    let (a, b, c) = (frame.ebx, frame.ecx, frame.edx);
    let result = match frame.eax {
        nr::EXIT => exit_current(WaitStatus::exited(a as i32)),
        nr::WRITE => sys_write(a, b, c),
        nr::GETPID => with_current(|p| p.pid).unwrap_or(0),
        nr::YIELD => {
            yield_cpu();
            0
        }
        nr::FORK => sys_fork(frame, fx),
        nr::WAITPID => sys_waitpid(a as i32, b),
        nr::OPEN => sys_open(a, b),
        nr::SHOW_MAPS => sys_show_maps(),
        nr::OVERFLOW_KERNEL_STACK if KSTACK_OVERFLOW_TEST.load(Ordering::SeqCst) => {
            crate::ktest::recurse(0)
        }
        nr::MMAP => with_current(|p| {
            let Some(vm) = p.vm.as_mut() else {
                return err(errno::EFAULT);
            };
            match vm.mmap(
                &p.fds,
                VirtAddr::new(a),
                b,
                c,
                frame.esi,
                frame.edi as i32,
                frame.ebp,
            ) {
                Ok(va) => va.as_u32(),
                Err(e) => err(e.errno()),
            }
        })
        .unwrap_or(err(errno::EFAULT)),
        nr::MUNMAP => vm_call(|vm| vm.munmap(VirtAddr::new(a), b)),
        nr::MPROTECT => vm_call(|vm| vm.mprotect(VirtAddr::new(a), b, c)),
        _ => err(ENOSYS),
    };
    frame.eax = result;
}

/// Runs a `Result<(), MmError>` operation on the current address space.
fn vm_call(f: impl FnOnce(&mut UserSpace) -> Result<(), MmError>) -> u32 {
    with_current(|p| match p.vm.as_mut().map(f) {
        Some(Ok(())) => 0,
        Some(Err(e)) => err(e.errno()),
        None => err(errno::EFAULT),
    })
    .unwrap_or(err(errno::EFAULT))
}

/// `write(fd, buf, len)`: fd 1 and 2 print on the console.
fn sys_write(fd: u32, buf: u32, len: u32) -> u32 {
    const STDOUT: u32 = 1;
    const STDERR: u32 = 2;
    if fd != STDOUT && fd != STDERR {
        return err(errno::EBADF);
    }
    let mut done = 0u32;
    let mut chunk = [0u8; WRITE_CHUNK];
    while done < len {
        let n = (len - done).min(WRITE_CHUNK as u32);
        let Some(src) = buf.checked_add(done) else {
            return err(errno::EFAULT);
        };
        let copied = with_current(|p| match p.vm.as_mut() {
            Some(vm) => vm.copy_from_user(VirtAddr::new(src), &mut chunk[..n as usize]),
            None => Err(MmError::InvalidArgument),
        });
        if !matches!(copied, Some(Ok(()))) {
            return if done > 0 { done } else { err(errno::EFAULT) };
        }
        serial::write_bytes(&chunk[..n as usize]);
        done += n;
    }
    done
}

/// `show_maps()`: prints the caller's regions (start, end, protection,
/// shared or private, backing) and how many pages are resident.
fn sys_show_maps() -> u32 {
    use core::fmt::Write as _;
    use myos_mm::vm::BackingKind;
    let mut t = TABLE.lock();
    let Some(pid) = t.current else {
        return err(errno::EFAULT);
    };
    let p = find(&mut t, pid);
    let Some(vm) = p.vm.as_ref() else {
        return err(errno::EFAULT);
    };
    println!(
        "  [pid {pid} {}] regions ({} pages resident):",
        p.name,
        vm.resident_pages()
    );
    for r in vm.regions() {
        let flag = |on: bool, c: char| if on { c } else { '-' };
        let mut backing = crate::text::StackString::<32>::new();
        let _ = match r.backing {
            BackingKind::Anonymous if r.stack => backing.write_str("stack (grows down)"),
            BackingKind::Anonymous => backing.write_str("anonymous"),
            BackingKind::File { offset } => write!(backing, "file at offset {offset:#x}"),
        };
        println!(
            "    {:08x}-{:08x} {}{}{}{} {:>7} KiB  {}",
            r.start.as_u32(),
            r.end.as_u32(),
            flag(r.prot.contains(Prot::READ), 'r'),
            flag(r.prot.contains(Prot::WRITE), 'w'),
            flag(r.prot.contains(Prot::EXEC), 'x'),
            if r.shared { 's' } else { 'p' },
            (r.end.as_u32() - r.start.as_u32()) / 1024,
            backing.as_str()
        );
    }
    0
}

/// `open(path, flags)` in the in-memory file system.
fn sys_open(path: u32, flags: u32) -> u32 {
    let mut buf = [0u8; PATH_MAX];
    let mut len = 0;
    while len < PATH_MAX {
        let mut byte = [0u8; 1];
        let Some(at) = path.checked_add(len as u32) else {
            return err(errno::EFAULT);
        };
        let ok = with_current(|p| {
            p.vm.as_mut()
                .map(|vm| vm.copy_from_user(VirtAddr::new(at), &mut byte))
        });
        if !matches!(ok, Some(Some(Ok(())))) {
            return err(errno::EFAULT);
        }
        if byte[0] == 0 {
            break;
        }
        buf[len] = byte[0];
        len += 1;
    }
    let Ok(name) = core::str::from_utf8(&buf[..len]) else {
        return err(ENOENT);
    };
    let mode = if flags & O_ACCMODE == O_RDWR {
        OpenMode::ReadWrite
    } else {
        OpenMode::ReadOnly
    };
    let Some(file) = fs().and_then(|fs| fs.open(name, mode)) else {
        return err(ENOENT);
    };
    with_current(|p| p.fds.insert(file) as u32).unwrap_or(err(errno::EFAULT))
}

/// `fork()`: the child gets a copy-on-write clone of the address space, a
/// copy of the descriptor table, and this trap frame with eax = 0.
fn sys_fork(frame: &TrapFrame, fx: *mut u8) -> u32 {
    let mut t = TABLE.lock();
    let Some(pid) = t.current else {
        return err(errno::EFAULT);
    };
    if t.procs.len() >= MAX_PROCESSES {
        return err(EAGAIN);
    }
    if !mm::free_frames_above(mm::FORK_RESERVE_FRAMES) {
        return err(errno::ENOMEM);
    }
    let parent = find(&mut t, pid);
    let (family, name, fds) = (parent.family, parent.name, parent.fds.clone());
    let child_vm = match parent.vm.as_mut().map(|vm| vm.fork()) {
        Some(Ok(vm)) => vm,
        Some(Err(e)) => return err(e.errno()),
        None => return err(errno::EFAULT),
    };
    let mut child_frame = *frame;
    child_frame.eax = 0;
    // SAFETY: the trap stub passes the 16-aligned 512-byte fxsave area it
    // filled on this stack; it is valid for reads for this call.
    let child_fx = unsafe { (fx as *const FxArea).read() };
    // On failure below, the child's address space is dropped (freed).
    let Some(mut kstack) = new_kstack() else {
        return err(errno::ENOMEM);
    };
    let esp = prepare_kstack(&mut kstack, &child_frame, &child_fx);
    let child = t.next_pid;
    let Ok(process) = try_box(Process {
        pid: child,
        parent: Some(pid),
        family,
        name,
        state: State::Runnable,
        vm: Some(child_vm),
        fds,
        kstack,
        saved_esp: AtomicU32::new(esp),
    }) else {
        return err(errno::ENOMEM);
    };
    t.next_pid += 1;
    // Within the capacity reserved at init (checked above): no allocation.
    t.procs.push(process);
    if let Some(f) = t.families.iter_mut().find(|f| f.pid == family) {
        f.processes += 1;
    }
    child
}

/// `waitpid(pid, status)`: reaps an exited child (`pid` -1: any), blocking
/// until one exits; stores its wait status at `status` when non-null.
fn sys_waitpid(want: i32, status_ptr: u32) -> u32 {
    loop {
        let reaped = {
            let mut t = TABLE.lock();
            let Some(me) = t.current else {
                return err(errno::EFAULT);
            };
            let mine = |p: &Process| p.parent == Some(me) && (want == -1 || p.pid as i32 == want);
            if !t.procs.iter().any(|p| mine(p)) {
                return err(ECHILD);
            }
            let zombie = t
                .procs
                .iter()
                .position(|p| mine(p) && matches!(p.state, State::Zombie(_)));
            match zombie {
                Some(i) => {
                    let child = t.procs.swap_remove(i);
                    let State::Zombie(status) = child.state else {
                        return err(errno::EFAULT);
                    };
                    Some((child.pid, status))
                }
                None => {
                    find(&mut t, me).state = State::Waiting;
                    None
                }
            }
        };
        match reaped {
            Some((pid, status)) => {
                if status_ptr != 0 {
                    let bytes = status.0.to_le_bytes();
                    let ok = with_current(|p| {
                        p.vm.as_mut()
                            .map(|vm| vm.copy_to_user(VirtAddr::new(status_ptr), &bytes))
                    });
                    if !matches!(ok, Some(Some(Ok(())))) {
                        return err(errno::EFAULT);
                    }
                }
                return pid;
            }
            None => yield_cpu(),
        }
    }
}

const _: () = assert!(KSTACK_SIZE > TRAP_FRAME_SIZE + FXSAVE_SIZE + 64);
