//! The system-call interface as user space sees it (`user/lib/myos.h`):
//! call numbers and the POSIX wait status; signal numbers, `open` flags and
//! errno values are `myos_abi`'s, shared with the C API.

use core::fmt;

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
    /// `gettid()`: the calling thread's id.
    pub const GETTID: u32 = 224;
    /// `getcpu()`: the number of the CPU the caller runs on (MyOS: the
    /// result, not Linux's out-pointers).
    pub const GETCPU: u32 = 318;
    /// `show_maps()` (MyOS): prints the caller's regions, like
    /// `/proc/self/maps`, on the console.
    pub const SHOW_MAPS: u32 = 400;
    /// `thread_create(entry, stack, arg)` (MyOS): a new thread of the
    /// caller's process.
    pub const THREAD_CREATE: u32 = 410;
    /// `thread_exit(status)` (MyOS): ends the calling thread only.
    pub const THREAD_EXIT: u32 = 411;
    /// `thread_join(tid, status_ptr)` (MyOS): waits for a thread of the
    /// caller's process and reaps it.
    pub const THREAD_JOIN: u32 = 412;
    /// Test only (`test=kstack-overflow`): recurse in the kernel on the
    /// caller's kernel stack until it overflows into its guard page.
    pub const OVERFLOW_KERNEL_STACK: u32 = 401;
    /// Test only (`test=smep`, `test=smap`): the kernel calls (SMEP) or
    /// reads with AC clear (SMAP) the user address in ebx, from ring 0.
    pub const TOUCH_USER: u32 = 402;
}

/// Signal numbers (Linux i386): the ABI crate's.
pub use myos_abi::signal as sig;

/// `open` flags and the errno values only system calls return (the memory
/// manager's errno codes come with its errors: `myos_abi::Errno`).
pub(super) use myos_abi::errno::{EAGAIN, ECHILD, ENOENT, ENOSYS};
pub(super) use myos_abi::{O_ACCMODE, O_RDWR};
/// No such thread (`thread_join`).
pub(super) const ESRCH: i32 = 3;

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
