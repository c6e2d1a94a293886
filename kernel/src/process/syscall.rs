//! The system calls (`int 0x80`): number in eax, arguments in ebx, ecx,
//! edx, esi, edi, ebp; the result (or `-errno`) goes back in eax.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use myos_abi::{errno, Errno, RawMman};
use myos_mm::vm::{OpenMode, Prot};
use myos_mm::{MmError, VirtAddr};

use alloc::sync::Arc;
use myos_mm::layout::USER_END;

use super::abi::{nr, WaitStatus, EAGAIN, ECHILD, ENOENT, ENOSYS, ESRCH, O_ACCMODE, O_RDWR};
use super::context::{initial_fx, new_kstack, prepare_kstack, FxArea};
use super::fault::KernelUserAccess;
use super::sched::{check_group_exit, exit_current, exit_group, group_alive, yield_cpu};
use super::stats::sample_low_water;
use super::table::{
    current_id, current_pid, current_space, find, fs, try_box, Process, Space, State, UserSpace,
    FAMILIES, MAX_PROCESSES, TABLE,
};
use crate::arch::cpu::UserAccess;
use crate::arch::frame::TrapFrame;
use crate::arch::gdt::{USER_CODE, USER_DATA};
use crate::arch::regs::eflags;
use crate::{mm, println, serial};

/// Longest path `open` accepts.
const PATH_MAX: usize = 64;
/// Bytes `write` copies per chunk.
const WRITE_CHUNK: usize = 256;

/// Whether [`nr::OVERFLOW_KERNEL_STACK`] is enabled (only by its test boot).
static KSTACK_OVERFLOW_TEST: AtomicBool = AtomicBool::new(false);

/// Enables the system call that overflows a process kernel stack on purpose.
pub fn enable_kernel_stack_overflow_test() {
    KSTACK_OVERFLOW_TEST.store(true, Ordering::SeqCst);
}

/// What [`nr::TOUCH_USER`] does with the user address it is given (only
/// the `test=smep` and `test=smap` boots enable it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TouchUser {
    /// Call it from ring 0: SMEP must stop the fetch.
    Fetch = 1,
    /// Read it from ring 0, first inside a user-access window (allowed),
    /// then with AC clear: SMAP must stop the second read.
    Read = 2,
}

/// The enabled [`TouchUser`] (0: the call is `ENOSYS`).
static TOUCH_USER_TEST: AtomicU32 = AtomicU32::new(0);

/// Enables the system call that makes the kernel touch a user page directly.
pub fn enable_touch_user_test(how: TouchUser) {
    TOUCH_USER_TEST.store(how as u32, Ordering::SeqCst);
}

/// The kernel work of [`nr::TOUCH_USER`]: a deliberate kernel bug that SMEP
/// or SMAP turn into a page fault, which the fault handler must report as
/// such (an oops naming the cause) rather than retry.
fn touch_user(addr: u32) -> u32 {
    let how = TOUCH_USER_TEST.load(Ordering::SeqCst);
    if how == TouchUser::Fetch as u32 {
        println!("kernel: calling user code at {addr:#010x} from ring 0");
        // SAFETY: not safe at all, on purpose (the test boots only): the
        // page holds `mov eax, 42; ret` written by the caller; under SMEP
        // the fetch faults and the oops stops the machine.
        let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(addr as usize) };
        return f();
    }
    {
        let _marker = KernelUserAccess::begin();
        let _window = UserAccess::begin();
        // SAFETY: the caller's page, mapped and present (it just ran it),
        // read inside a user-access window.
        let v = unsafe { (addr as *const u32).read_volatile() };
        println!("kernel: read {v:#010x} at {addr:#010x} inside a user-access window");
    }
    println!("kernel: reading {addr:#010x} again with AC clear");
    // SAFETY: not safe at all, on purpose: under SMAP the read faults and
    // the oops stops the machine.
    unsafe { (addr as *const u32).read_volatile() }
}

/// Recurses forever, keeping 256 bytes of each frame alive: the kernel
/// work of [`nr::OVERFLOW_KERNEL_STACK`], and of the `test=stack-overflow`
/// boot on its own stack.
#[allow(unconditional_recursion)] // the point of the tests
pub extern "C" fn recurse(depth: u32) -> u32 {
    let mut buf = [0u8; 256];
    buf[(depth as usize) % 256] = depth as u8;
    let buf = core::hint::black_box(buf);
    recurse(depth.wrapping_add(1)).wrapping_add(u32::from(buf[0]))
}

/// `-errno` for an error, as a register value.
/// `-errno` for an error, as a register value.
fn err(e: i32) -> u32 {
    (-e) as u32
}

/// Handles `int 0x80`: number in eax, arguments in ebx, ecx, edx, esi,
/// edi, ebp; the result (or `-errno`) goes back in eax.
pub fn syscall(frame: &mut TrapFrame, fx: *mut u8) {
    sample_low_water();
    check_group_exit();
    let (a, b, c) = (frame.ebx, frame.ecx, frame.edx);
    let result = match frame.eax {
        nr::EXIT => exit_group(WaitStatus::exited(a as i32)),
        nr::WRITE => sys_write(a, b, c),
        nr::GETPID => current_id().1,
        nr::YIELD => {
            yield_cpu();
            0
        }
        nr::FORK => sys_fork(frame, fx),
        nr::WAITPID => sys_waitpid(a as i32, b),
        nr::OPEN => sys_open(a, b),
        nr::SHOW_MAPS => sys_show_maps(),
        nr::GETCPU => crate::smp::cpu_id().index() as u32,
        nr::THREAD_CREATE => sys_thread_create(a, b, c),
        nr::THREAD_EXIT => exit_current(WaitStatus::exited(a as i32)),
        nr::THREAD_JOIN => sys_thread_join(a, b),
        nr::GETTID => current_pid(),
        nr::OVERFLOW_KERNEL_STACK if KSTACK_OVERFLOW_TEST.load(Ordering::SeqCst) => recurse(0),
        nr::TOUCH_USER if TOUCH_USER_TEST.load(Ordering::SeqCst) != 0 => touch_user(a),
        nr::MMAP => match current_space() {
            Some(space) => {
                let fds = space.fds.lock();
                let mut vm = space.vm.lock();
                match vm.mmap(
                    &fds,
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
            }
            None => err(errno::EFAULT),
        },
        nr::MUNMAP => vm_call(|vm| vm.munmap(VirtAddr::new(a), b)),
        nr::MPROTECT => vm_call(|vm| vm.mprotect(VirtAddr::new(a), b, c)),
        _ => err(ENOSYS),
    };
    frame.eax = result;
    check_group_exit();
}

/// Runs `f` on the current address space, under its lock.
fn with_vm<R>(f: impl FnOnce(&mut UserSpace) -> R) -> Option<R> {
    current_space().map(|space| f(&mut space.vm.lock()))
}

/// Runs a `Result<(), MmError>` operation on the current address space.
fn vm_call(f: impl FnOnce(&mut UserSpace) -> Result<(), MmError>) -> u32 {
    match with_vm(f) {
        Some(Ok(())) => 0,
        Some(Err(e)) => err(e.errno()),
        None => err(errno::EFAULT),
    }
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
        let copied = with_vm(|vm| vm.copy_from_user(VirtAddr::new(src), &mut chunk[..n as usize]));
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
    let (_, pid, name) = current_id();
    let Some(space) = current_space() else {
        return err(errno::EFAULT);
    };
    let vm = space.vm.lock();
    println!(
        "  [pid {pid} {name}] regions ({} pages resident):",
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
        let ok = with_vm(|vm| vm.copy_from_user(VirtAddr::new(at), &mut byte));
        if !matches!(ok, Some(Ok(()))) {
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
    match current_space() {
        Some(space) => space.fds.lock().insert(file) as u32,
        None => err(errno::EFAULT),
    }
}

/// A new thread entry, runnable, with a fresh kernel stack prepared to
/// "return" into `frame`; pushed into the table (`EAGAIN` at the limit).
#[allow(clippy::too_many_arguments)]
fn add_thread(
    frame: &TrapFrame,
    fx: &FxArea,
    space: Arc<Space>,
    main: bool,
    parent: Option<u32>,
    family: u32,
    name: &'static str,
) -> Result<u32, i32> {
    let mut kstack = new_kstack().ok_or(errno::ENOMEM)?;
    let esp = prepare_kstack(&mut kstack, frame, fx);
    let mut t = TABLE.lock();
    if t.procs.len() >= MAX_PROCESSES {
        return Err(EAGAIN);
    }
    let pid = t.next_pid;
    let tgid = if main { pid } else { current_id_locked(&mut t) };
    let entry = Process {
        pid,
        tgid,
        parent,
        family,
        name,
        state: State::Runnable,
        space: Some(space),
        kstack,
        saved_esp: AtomicU32::new(esp),
        on_cpu: false,
    };
    let Ok(process) = try_box(entry) else {
        return Err(errno::ENOMEM);
    };
    t.next_pid += 1;
    // Within the capacity reserved at init (checked above): no allocation.
    t.procs.push(process);
    Ok(pid)
}

/// The calling thread's process id, with the table locked.
fn current_id_locked(t: &mut super::table::Table) -> u32 {
    find(t, current_pid()).tgid
}

/// `fork()`: the child process gets a copy-on-write clone of the address
/// space, a copy of the descriptor table, and this trap frame with eax = 0
/// (only the calling thread is copied).
fn sys_fork(frame: &TrapFrame, fx: *mut u8) -> u32 {
    let Some(space) = current_space() else {
        return err(errno::EFAULT);
    };
    let (family, tgid, name) = {
        let mut t = TABLE.lock();
        if t.procs.len() >= MAX_PROCESSES {
            return err(EAGAIN);
        }
        let p = find(&mut t, current_pid());
        (p.family, p.tgid, p.name)
    };
    if !mm::free_frames_above(mm::FORK_RESERVE_FRAMES) {
        return err(errno::ENOMEM);
    }
    let fds = space.fds.lock().clone();
    // The copy-on-write marking ends with one full flush of this space on
    // every CPU that runs it (the platform's flush reaches the others).
    let child_vm = match space.vm.lock().fork() {
        Ok(vm) => vm,
        Err(e) => return err(e.errno()),
    };
    let mut child_frame = *frame;
    child_frame.eax = 0;
    // SAFETY: the trap stub passes the 16-aligned 512-byte fxsave area it
    // filled on this stack; it is valid for reads for this call.
    let child_fx = unsafe { (fx as *const FxArea).read() };
    // On failure below, the child's address space is dropped (freed).
    let child_space = Space::new(child_vm, fds, family);
    match add_thread(
        &child_frame,
        &child_fx,
        child_space,
        true,
        Some(tgid),
        family,
        name,
    ) {
        Ok(child) => {
            if let Some(f) = FAMILIES.lock().iter_mut().find(|f| f.pid == family) {
                f.processes += 1;
            }
            child
        }
        Err(e) => err(e),
    }
}

/// `thread_create(entry, stack, arg)`: a new thread of the calling process
/// starts at `entry` with its stack pointer at `stack` and `arg` in eax
/// (the C library's start routine finds its function and argument on that
/// stack). Returns the thread id.
fn sys_thread_create(entry: u32, stack: u32, arg: u32) -> u32 {
    if entry >= USER_END || stack > USER_END {
        return err(errno::EINVAL);
    }
    let (family, name, shared) = {
        let mut t = TABLE.lock();
        let p = find(&mut t, current_pid());
        let Some(shared) = p.space.clone() else {
            return err(errno::EFAULT);
        };
        (p.family, p.name, shared)
    };
    let frame = TrapFrame {
        gs: USER_DATA.into(),
        fs: USER_DATA.into(),
        es: USER_DATA.into(),
        ds: USER_DATA.into(),
        eax: arg,
        eip: entry,
        cs: USER_CODE.into(),
        eflags: eflags::IF | eflags::RESERVED1,
        user_esp: stack,
        user_ss: USER_DATA.into(),
        ..TrapFrame::default()
    };
    match add_thread(&frame, &initial_fx(), shared, false, None, family, name) {
        Ok(tid) => tid,
        Err(e) => err(e),
    }
}

/// `thread_join(tid, status)`: waits until thread `tid` of the calling
/// process has exited, reaps it and stores its wait status (an exit code,
/// or the signal that killed it) at `status` when non-null.
fn sys_thread_join(tid: u32, status_ptr: u32) -> u32 {
    let me = current_pid();
    loop {
        let reaped = {
            let mut t = TABLE.lock();
            let tgid = find(&mut t, me).tgid;
            let Some(i) = t
                .procs
                .iter()
                .position(|p| p.pid == tid && p.tgid == tgid && !p.is_main() && p.pid != me)
            else {
                return err(ESRCH);
            };
            match t.procs[i].state {
                State::Zombie(status) if !t.procs[i].on_cpu => {
                    let thread = t.procs.swap_remove(i);
                    drop(t);
                    drop(thread);
                    Some(status)
                }
                // Exited but still leaving its CPU: look again soon.
                State::Zombie(_) => None,
                _ => {
                    find(&mut t, me).state = State::Waiting;
                    None
                }
            }
        };
        match reaped {
            Some(status) => return store_status(status_ptr, status).unwrap_or(tid),
            None => {
                yield_cpu();
                check_group_exit();
            }
        }
    }
}

/// Writes a wait status to user memory (`status_ptr` 0: nowhere);
/// `Some(-EFAULT)` when the address is bad.
fn store_status(status_ptr: u32, status: WaitStatus) -> Option<u32> {
    if status_ptr == 0 {
        return None;
    }
    let bytes = status.0.to_le_bytes();
    match with_vm(|vm| vm.copy_to_user(VirtAddr::new(status_ptr), &bytes)) {
        Some(Ok(())) => None,
        _ => Some(err(errno::EFAULT)),
    }
}

/// `waitpid(pid, status)`: reaps an exited child process (`pid` -1: any) —
/// its main thread has exited and no thread of it is left — blocking until
/// one has; stores its wait status at `status` when non-null.
fn sys_waitpid(want: i32, status_ptr: u32) -> u32 {
    let me = current_pid();
    loop {
        let reaped = {
            let mut t = TABLE.lock();
            let tgid = find(&mut t, me).tgid;
            let mine = |p: &Process| {
                p.is_main() && p.parent == Some(tgid) && (want == -1 || p.pid as i32 == want)
            };
            if !t.procs.iter().any(|p| mine(p)) {
                return err(ECHILD);
            }
            let zombie = t
                .procs
                .iter()
                .position(|p| mine(p) && !p.alive() && !p.on_cpu && !group_alive(&t, p.pid));
            match zombie {
                Some(i) => {
                    let child = t.procs.swap_remove(i);
                    drop(t);
                    let State::Zombie(status) = child.state else {
                        return err(errno::EFAULT);
                    };
                    let pid = child.pid;
                    drop(child);
                    Some((pid, status))
                }
                None => {
                    // A child that exited but is still leaving its CPU is
                    // looked at again soon; otherwise sleep until woken (a
                    // thread of a child that exits wakes the parent).
                    let leaving = t.procs.iter().any(|p| mine(p) && !p.alive() && p.on_cpu);
                    if !leaving {
                        find(&mut t, me).state = State::Waiting;
                    }
                    None
                }
            }
        };
        match reaped {
            Some((pid, status)) => return store_status(status_ptr, status).unwrap_or(pid),
            None => {
                yield_cpu();
                check_group_exit();
            }
        }
    }
}
