//! The round-robin scheduler. It runs on the boot stack: a process gives
//! the CPU back by switching to it (at every timer tick from ring 3,
//! `sched_yield`, `waitpid` and `exit`), and it picks the next runnable
//! process in pid order. The kernel itself is not preemptible (interrupts
//! are off in ring 0).

use core::sync::atomic::Ordering;

use super::abi::WaitStatus;
use super::context::{canary_intact, switch_context};
use super::stats::{add_fault_stats, sample_low_water};
use super::table::{find, Process, State, Table, TABLE};
use crate::arch::frame::TrapFrame;
use crate::arch::{gdt, percpu};
use crate::mm::{self, PLATFORM};

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
                // scheduler's context is saved in this CPU's `scheduler_esp`.
                unsafe { switch_context(percpu::this().scheduler_esp.as_ptr(), esp) };
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

/// Gives the CPU back to the scheduler; returns when this process is
/// scheduled again.
pub(super) fn yield_cpu() {
    let save = {
        let mut t = TABLE.lock();
        let Some(pid) = t.current else { return };
        find(&mut t, pid).saved_esp.as_ptr()
    };
    // SAFETY: `save` points into this process's boxed entry, which lives
    // until it is reaped (never while it is the one switching out); the
    // scheduler's context was saved when it switched to us.
    unsafe { switch_context(save, percpu::this().scheduler_esp.load(Ordering::SeqCst)) };
}

/// Ends the current process with `status`: frees its address space, hands
/// its children to nobody, wakes a waiting parent, and switches away for good.
pub(super) fn exit_current(status: WaitStatus) -> ! {
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

/// The timer fired while ring 3 ran: let the next process run.
pub fn preempt(frame: &mut TrapFrame) {
    let _ = frame;
    yield_cpu();
}
