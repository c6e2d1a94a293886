//! The scheduler, on every CPU. One global ready list — the process table
//! under its lock — is scanned round-robin in thread-id order by whichever
//! CPU's scheduler looks for work; a thread another CPU has picked
//! ([`Process::on_cpu`]) is skipped. Each CPU's scheduler runs on that
//! CPU's own stack (the boot stack, or the AP's stack): a thread gives the
//! CPU back by switching to it (at every timer tick from ring 3 — the PIT
//! on the boot CPU, the local APIC timer on the others — `sched_yield`,
//! `waitpid`, `thread_join` and exit). The kernel itself is not
//! preemptible (interrupts are off in ring 0). A thread may resume on
//! another CPU than the one it left.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use myos_mm::{Frame, Platform};
use spin::Once;

use super::abi::WaitStatus;
use super::context::{canary_intact, switch_context};
use super::stats::sample_low_water;
use super::table::{current_pid, current_space, find, Space, State, Table, FAMILIES, TABLE};
use crate::arch::frame::TrapFrame;
use crate::arch::percpu;
use crate::mm::{self, PLATFORM};

/// The kernel's page directory, loaded while no thread runs on a CPU.
static KERNEL_DIR: Once<Frame> = Once::new();

/// The kernel's page directory (read once from the kernel space).
fn kernel_dir() -> Frame {
    *KERNEL_DIR.call_once(|| mm::get().kernel_root())
}

/// Moves this CPU from the address space it has loaded (`prev`, or the
/// kernel's) to `next` (or the kernel's), keeping each space's set of CPUs
/// that may hold its translations: the core's
/// [`SpaceCpus`](myos_mm::paging::SpaceCpus) joins the set
/// before it loads the directory, and the CPU leaves `prev`'s set only after
/// it loaded another one (a CR3 load drops every non-global entry). The
/// core's shootdowns read these sets; neither step takes the space's lock.
///
/// This is the one place that loads user directories.
pub(super) fn switch_space(prev: Option<&Space>, next: Option<&Space>) {
    match next {
        // SAFETY: the caller holds a reference to `space`, and the CPU keeps
        // one while the directory is loaded (`pick`, `switched_back`).
        Some(space) => unsafe { space.cpus.activate(&PLATFORM) },
        // SAFETY: the kernel's directory maps the kernel half every space
        // shares, so the code and stack this runs on stay mapped.
        None => unsafe { PLATFORM.set_root(kernel_dir()) },
    }
    if let Some(space) = prev {
        // SAFETY: the caller holds a reference to `space`; its directory is
        // no longer loaded here.
        unsafe { space.cpus.leave(&PLATFORM) };
    }
}

/// What the scheduler found.
enum Pick {
    /// Switch to this saved kernel stack pointer.
    Run(u32),
    /// Threads exist but none can run here now.
    Wait,
    /// No thread is left.
    Empty,
}

/// Picks the next runnable thread nobody runs, marks it running on this
/// CPU, loads its stack pointer for traps and its address space.
fn pick() -> Pick {
    let (esp, space) = {
        let mut t = TABLE.lock();
        reap_orphans(&mut t);
        if t.procs.is_empty() {
            return Pick::Empty;
        }
        let last = t.last_run;
        let ready =
            |p: &&alloc::boxed::Box<super::table::Process>| p.state == State::Runnable && !p.on_cpu;
        let pick = t
            .procs
            .iter()
            .filter(ready)
            .filter(|p| p.pid > last)
            .map(|p| p.pid)
            .min()
            .or_else(|| t.procs.iter().filter(ready).map(|p| p.pid).min());
        let Some(pid) = pick else {
            return Pick::Wait;
        };
        t.last_run = pid;
        let p = find(&mut t, pid);
        p.on_cpu = true;
        percpu::set_kernel_stack(p.kstack_top());
        let space = p.space.clone();
        let me = percpu::this();
        me.switches.fetch_add(1, Ordering::Relaxed);
        me.current.store(pid, Ordering::SeqCst);
        let raw = space.as_ref().map_or(0, |s| Arc::as_ptr(s) as usize);
        me.space.store(raw, Ordering::SeqCst);
        (p.saved_esp.load(Ordering::SeqCst), space)
    };
    switch_space(None, space.as_deref());
    // The CPU's reference: released in `switched_back`.
    if let Some(space) = space {
        let _ = Arc::into_raw(space);
    }
    Pick::Run(esp)
}

/// Back on the scheduler's stack after a thread switched away: the kernel's
/// directory, the CPU's reference to the space dropped (the last one frees
/// the space, here, with its directory no longer loaded anywhere), then the
/// thread is free for other CPUs.
fn switched_back() {
    sample_low_water();
    let me = percpu::this();
    let pid = me.current.load(Ordering::SeqCst);
    let raw = me.space.swap(0, Ordering::SeqCst) as *const Space;
    // SAFETY: `pick` stored `Arc::into_raw` of the thread's space there (or
    // null); this is the one place that takes it back.
    let space = (!raw.is_null()).then(|| unsafe { Arc::from_raw(raw) });
    switch_space(space.as_deref(), None);
    drop(space);
    let mut t = TABLE.lock();
    let p = find(&mut t, pid);
    if !canary_intact(&p.kstack) {
        panic!("kernel stack overflow in pid {} ({})", p.pid, p.name);
    }
    p.on_cpu = false;
    me.current.store(0, Ordering::SeqCst);
}

/// Runs one thread if one is ready: true when it did. `Empty` and `Wait`
/// are the caller's.
fn run_once() -> Pick {
    match pick() {
        Pick::Run(esp) => {
            // SAFETY: `esp` is the saved context of a live thread picked for
            // this CPU only (its stack is owned by the table and outlives the
            // switch); the scheduler's context is saved in this CPU's
            // `scheduler_esp`.
            unsafe { switch_context(percpu::this().scheduler_esp.as_ptr(), esp) };
            switched_back();
            Pick::Run(0)
        }
        other => other,
    }
}

/// Waits for an interrupt (a timer tick at the latest).
fn idle() {
    // SAFETY: enabling interrupts only to halt; nothing is locked.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Runs threads until none is left (on the boot CPU, with the other CPUs
/// in [`run_forever`]); returns when every thread has exited, been reaped
/// and left its CPU.
pub fn run_until_idle() {
    loop {
        match run_once() {
            Pick::Run(_) => {}
            Pick::Wait => idle(),
            Pick::Empty => return,
        }
    }
}

/// An application processor's scheduler: runs whatever is ready, idles
/// otherwise.
pub fn run_forever() -> ! {
    loop {
        match run_once() {
            Pick::Run(_) => {}
            Pick::Wait | Pick::Empty => idle(),
        }
    }
}

/// Frees zombies nobody will wait for: a kernel-started (or orphaned)
/// process whose threads have all exited, and threads nobody joined once
/// their process has no live thread. Never a thread still on a CPU.
fn reap_orphans(t: &mut Table) {
    let mut i = 0;
    while i < t.procs.len() {
        let p = &t.procs[i];
        let done = !p.alive()
            && !p.on_cpu
            && (!p.is_main() || p.parent.is_none())
            && !group_alive(t, p.tgid);
        if done {
            t.procs.swap_remove(i);
        } else {
            i += 1;
        }
    }
}

/// True while a thread of process `tgid` has not exited.
pub(super) fn group_alive(t: &Table, tgid: u32) -> bool {
    t.procs.iter().any(|p| p.tgid == tgid && p.alive())
}

/// Gives the CPU back to the scheduler; returns when this thread is
/// scheduled again (perhaps on another CPU).
pub(super) fn yield_cpu() {
    let pid = current_pid();
    if pid == 0 {
        return;
    }
    let save = {
        let mut t = TABLE.lock();
        find(&mut t, pid).saved_esp.as_ptr()
    };
    // SAFETY: `save` points into this thread's boxed entry, which lives
    // until it is reaped (never while it is on a CPU); the scheduler's
    // context was saved when it switched to us.
    unsafe { switch_context(save, percpu::this().scheduler_esp.load(Ordering::SeqCst)) };
}

/// Ends the calling thread with `status`: drops its reference to the
/// address space (the last thread's drop frees it), hands the process's
/// children to nobody once no thread is left, wakes the parent and the
/// process's waiting threads, and switches away for good.
pub(super) fn exit_current(status: WaitStatus) -> ! {
    let space = {
        let mut t = TABLE.lock();
        let pid = current_pid();
        if pid == 0 {
            panic!("exit with no current thread");
        }
        let p = find(&mut t, pid);
        let (family, tgid, main) = (p.family, p.tgid, p.is_main());
        // A main thread killed by a group exit reports the group's status.
        let status = match p.space.as_ref() {
            Some(s) if s.exiting.load(Ordering::SeqCst) && main => {
                WaitStatus(s.exit_status.load(Ordering::SeqCst))
            }
            _ => status,
        };
        p.state = State::Zombie(status);
        let space = p.space.take();
        if main && family == pid {
            if let Some(f) = FAMILIES.lock().iter_mut().find(|f| f.pid == family) {
                f.status = status;
            }
        }
        let last = !super::sched::group_alive(&t, tgid);
        if last {
            for child in t.procs.iter_mut().filter(|c| c.parent == Some(tgid)) {
                child.parent = None;
            }
        }
        let parent = t
            .procs
            .iter()
            .find(|q| q.pid == tgid)
            .and_then(|m| m.parent);
        for q in t.procs.iter_mut() {
            if q.state == State::Waiting && (q.tgid == tgid || Some(q.tgid) == parent) {
                q.state = State::Runnable;
            }
        }
        space
    };
    // The CPU running us still holds a reference: the space is freed by
    // its scheduler at the latest, with another directory loaded.
    drop(space);
    yield_cpu();
    panic!("a zombie was scheduled");
}

/// `exit(status)`: ends the whole process. The other threads end at their
/// next kernel entry (a system call or a timer tick); the waiting ones are
/// woken for it.
pub(super) fn exit_group(status: WaitStatus) -> ! {
    if let Some(space) = current_space() {
        if !space.exiting.swap(true, Ordering::SeqCst) {
            space.exit_status.store(status.0, Ordering::SeqCst);
        }
        let (_, tgid, _) = super::table::current_id();
        let mut t = TABLE.lock();
        for q in t.procs.iter_mut() {
            if q.tgid == tgid && q.state == State::Waiting {
                q.state = State::Runnable;
            }
        }
    }
    exit_current(status)
}

/// Ends the calling thread if its process is exiting (called where a
/// thread enters the kernel and holds nothing).
pub(super) fn check_group_exit() {
    if let Some(space) = current_space() {
        if space.exiting.load(Ordering::SeqCst) {
            let status = WaitStatus(space.exit_status.load(Ordering::SeqCst));
            exit_current(status);
        }
    }
}

/// The timer fired while ring 3 ran: let the next thread run.
pub fn preempt(frame: &mut TrapFrame) {
    let _ = frame;
    check_group_exit();
    yield_cpu();
    check_group_exit();
}
