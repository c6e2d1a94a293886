//! The system calls (`int 0x80`): number in eax, arguments in ebx, ecx,
//! edx, esi, edi, ebp; the result (or `-errno`) goes back in eax.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use myos_abi::{errno, Errno, RawMman};
use myos_mm::vm::{OpenMode, Prot};
use myos_mm::{MmError, VirtAddr};

use super::abi::{nr, WaitStatus, EAGAIN, ECHILD, ENOENT, ENOSYS, O_ACCMODE, O_RDWR};
use super::context::{new_kstack, prepare_kstack, FxArea};
use super::sched::{exit_current, yield_cpu};
use super::stats::sample_low_water;
use super::table::{
    find, fs, try_box, with_current, Process, State, UserSpace, MAX_PROCESSES, TABLE,
};
use crate::arch::cpu::UserAccess;
use crate::arch::frame::TrapFrame;
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
fn err(e: i32) -> u32 {
    (-e) as u32
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
        nr::OVERFLOW_KERNEL_STACK if KSTACK_OVERFLOW_TEST.load(Ordering::SeqCst) => recurse(0),
        nr::TOUCH_USER if TOUCH_USER_TEST.load(Ordering::SeqCst) != 0 => touch_user(a),
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
