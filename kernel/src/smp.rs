//! Several CPUs: bring-up (CPUs from the ACPI MADT, the local and I/O
//! APICs, the application processors started through the trampoline),
//! TLB shootdown by IPI with acknowledgements, function calls on another
//! CPU, and stopping the other CPUs when the kernel dies.
//!
//! Shootdown requests live in per-CPU mailboxes, one per *sender*: the
//! sender fills its own mailbox (what to invalidate: up to
//! [`MAX_PAGES`] pages, or a full flush), sets the mailbox's `pending`
//! mask to the target CPUs, sends each target the shootdown IPI, and waits
//! until every target has cleared its bit. A target's handler walks every
//! sender's mailbox, invalidates what the ones naming it ask, and clears its
//! bit. A CPU that waits — for acknowledgements, or for a function call to
//! finish — services its own requests in the wait loop, so two CPUs that
//! shoot at each other with interrupts off both make progress. A target
//! that does not answer within a grace period (it may spin on a lock with
//! interrupts off) is sent an NMI, whose handler services the requests too;
//! a target that answers neither within about ten seconds is a kernel bug
//! and panics the sender.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use myos_mm::smp::{CpuId, CpuSet, Invalidate, MAX_CPUS};

use crate::arch::percpu::{self, PerCpu};
use crate::arch::{acpi, fixmap, idt, ioapic, lapic, smpboot, tlb, tsc};
use crate::println;

/// The most pages one request names; longer lists become a full flush.
pub const MAX_PAGES: usize = 32;

/// Request kinds.
mod kind {
    pub const PAGES: u32 = 1;
    pub const ALL_NON_GLOBAL: u32 = 2;
    pub const EVERYTHING: u32 = 3;
}

/// One CPU's outgoing shootdown request.
struct Mailbox {
    /// Targets that have not acknowledged yet (bit per CPU).
    pending: AtomicU32,
    /// What to invalidate ([`kind`]).
    kind: AtomicU32,
    /// Valid entries of `pages` (kind PAGES).
    count: AtomicU32,
    /// Start addresses of the pages.
    pages: [AtomicU32; MAX_PAGES],
}

impl Mailbox {
    const fn new() -> Self {
        Mailbox {
            pending: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            count: AtomicU32::new(0),
            pages: [const { AtomicU32::new(0) }; MAX_PAGES],
        }
    }
}

/// Every CPU's outgoing mailbox, by [`CpuId`].
static MAILBOXES: [Mailbox; MAX_CPUS] = [const { Mailbox::new() }; MAX_CPUS];

/// CPUs online (bit per CPU); the boot CPU from the start.
static ONLINE: AtomicU32 = AtomicU32::new(1);
/// Set by the first CPU that stops the others (panic, oops).
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Shootdown counters since boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// `shootdown` calls that had at least one target.
    pub shootdowns: u32,
    /// Shootdown IPIs sent (one per target per call).
    pub ipis: u32,
    /// NMIs sent to targets that were slow to answer.
    pub nmi_kicks: u32,
    /// Pages invalidated by targets (`invlpg` on a request's behalf).
    pub pages: u32,
    /// Full flushes done by targets (CR3 reloads and global flushes).
    pub full_flushes: u32,
}

/// The counters, one atomic per field of [`Stats`].
static SHOOTDOWNS: AtomicU32 = AtomicU32::new(0);
static IPIS: AtomicU32 = AtomicU32::new(0);
static NMI_KICKS: AtomicU32 = AtomicU32::new(0);
static PAGES: AtomicU32 = AtomicU32::new(0);
static FULL_FLUSHES: AtomicU32 = AtomicU32::new(0);

/// The counters now.
pub fn stats() -> Stats {
    Stats {
        shootdowns: SHOOTDOWNS.load(Ordering::Relaxed),
        ipis: IPIS.load(Ordering::Relaxed),
        nmi_kicks: NMI_KICKS.load(Ordering::Relaxed),
        pages: PAGES.load(Ordering::Relaxed),
        full_flushes: FULL_FLUSHES.load(Ordering::Relaxed),
    }
}

/// TSC cycles a sender waits before it sends a slow target an NMI (some
/// tens of milliseconds at the GHz rates QEMU and real machines have: long
/// enough that a target which answers normally, even a vCPU thread that
/// waited for a host core, is not disturbed).
const KICK_CYCLES: u64 = 1 << 26;
/// TSC cycles after which a missing acknowledgement is a kernel bug.
const GIVE_UP_CYCLES: u64 = 1 << 35;
/// How long the boot CPU waits for an AP to come online.
const AP_START_TIMEOUT_MS: u64 = 1000;

/// The CPUs online.
pub fn online() -> CpuSet {
    CpuSet::from_bits(ONLINE.load(Ordering::SeqCst))
}

/// The CPU the caller runs on.
pub fn cpu_id() -> CpuId {
    percpu::this().id()
}

/// What [`init`] needs from the layers above it.
pub struct Setup<S, F: FnMut() -> Option<S>> {
    /// The kernel address space's page directory (physical), which APs run on.
    pub cr3: u32,
    /// The double-fault task's entry point (each AP gets its own task).
    pub double_fault_entry: u32,
    /// Makes a kernel stack (an AP's, or its double-fault stack); kept for
    /// good when the AP comes up, dropped when it does not.
    pub new_stack: F,
    /// The initial stack pointer of a stack.
    pub stack_top: fn(&S) -> u32,
}

/// Finds the CPUs (ACPI MADT), maps and enables the boot CPU's local APIC,
/// masks the I/O APIC and starts every application processor. Call once,
/// on the boot CPU, after `mm::init` and before any user address space
/// exists (the fixmap's page table is installed in the kernel directory).
/// Without a usable MADT the kernel runs on the boot CPU alone.
pub fn init<S, F: FnMut() -> Option<S>>(mut setup: Setup<S, F>) {
    fixmap::init(setup.cr3);
    let machine = match acpi::discover() {
        Ok(m) if m.cpus > 0 => m,
        Ok(_) => {
            println!("smp: the MADT lists no processor; running on the boot CPU");
            return;
        }
        Err(e) => {
            println!("smp: no ACPI MADT ({e:?}); running on the boot CPU");
            return;
        }
    };
    lapic::map(machine.lapic_phys);
    let boot_apic = lapic::id();
    percpu::set_boot_apic_id(boot_apic);
    lapic::enable(false);
    let ids = &machine.apic_ids[..machine.cpus];
    println!(
        "smp: MADT lists {} CPUs (local APIC ids {:?}), local APIC at {:#010x}, boot CPU is APIC {}",
        machine.cpus, ids, machine.lapic_phys, boot_apic
    );
    if machine.ignored > 0 {
        println!(
            "smp: {} more CPUs ignored (at most {MAX_CPUS})",
            machine.ignored
        );
    }
    if let Some(phys) = machine.ioapic_phys {
        let io = ioapic::init(phys);
        println!(
            "smp: I/O APIC id {} at {phys:#010x}, {} inputs (masked; the PIC still serves the boot CPU)",
            io.id, io.inputs
        );
    }
    smpboot::install(ap_main);
    let mut next = 1;
    for &apic in ids.iter().filter(|&&a| a != boot_apic) {
        let Some(cpu) = CpuId::new(next) else { break };
        let (Some(stack), Some(df_stack)) = ((setup.new_stack)(), (setup.new_stack)()) else {
            println!("smp: no memory for the stacks of APIC {apic}; not started");
            break;
        };
        percpu::prepare_ap(
            cpu,
            apic,
            setup.double_fault_entry,
            (setup.stack_top)(&df_stack),
            setup.cr3,
        );
        let bit = 1u32 << cpu.index();
        let top = (setup.stack_top)(&stack);
        let up = smpboot::start_ap(cpu, apic, top, AP_START_TIMEOUT_MS, || {
            ONLINE.load(Ordering::SeqCst) & bit != 0
        });
        if up {
            // The CPU runs on these stacks for good.
            core::mem::forget(stack);
            core::mem::forget(df_stack);
            next += 1;
        } else {
            println!("smp: APIC {apic} did not come online; left stopped");
        }
    }
    println!("smp: {} CPUs online", online().len());
}

/// The Rust entry of an application processor (from `ap_entry`, on its own
/// stack, with the kernel's page directory, CR0 and CR4): its GDT, TSS and
/// per-CPU segment, the IDT, its local APIC with the timer; then it marks
/// itself online and idles, servicing interrupts.
extern "C" fn ap_main(cpu: u32) -> ! {
    let id = CpuId::new(cpu as usize).unwrap_or_else(|| panic!("AP number {cpu} out of range"));
    percpu::load_ap(id);
    idt::load();
    lapic::enable(true);
    ONLINE.fetch_or(1 << id.index(), Ordering::SeqCst);
    // The scheduler: threads from the shared table when there are any,
    // `sti; hlt` otherwise.
    crate::process::run_forever()
}

/// Handles the local APIC's vectors. Returns false for other vectors.
pub fn interrupt(vector: u32) -> bool {
    match u8::try_from(vector) {
        Ok(lapic::TIMER_VECTOR) => {
            percpu::this().ticks.fetch_add(1, Ordering::Relaxed);
            lapic::end_of_interrupt();
        }
        Ok(lapic::SHOOTDOWN_VECTOR) => {
            service();
            lapic::end_of_interrupt();
        }
        Ok(lapic::CALL_VECTOR) => {
            service();
            run_posted_call(percpu::this());
            lapic::end_of_interrupt();
        }
        // A spurious interrupt is not acknowledged.
        Ok(lapic::SPURIOUS_VECTOR) => {}
        _ => return false,
    }
    true
}

/// Handles an NMI: a CPU that is being stopped parks for good; otherwise
/// the NMI is a sender's reminder and the pending requests are serviced.
/// Returns false when SMP is not running (the NMI is then the caller's to
/// report).
pub fn nmi() -> bool {
    if STOPPING.load(Ordering::SeqCst) {
        park()
    }
    if online().len() <= 1 {
        return false;
    }
    service();
    true
}

/// Stops here for good, interrupts off.
fn park() -> ! {
    loop {
        // SAFETY: halting with interrupts off; only NMIs wake the CPU,
        // and they come back here.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Services every shootdown request addressed to this CPU. Re-entry (an
/// NMI during a pass) returns at once: the interrupted pass finishes.
pub fn service() {
    let me = percpu::this();
    if me.servicing.swap(true, Ordering::Acquire) {
        return;
    }
    let bit = 1u32 << me.id().index();
    for mailbox in &MAILBOXES {
        if mailbox.pending.load(Ordering::Acquire) & bit == 0 {
            continue;
        }
        match mailbox.kind.load(Ordering::Relaxed) {
            kind::PAGES => {
                let count = (mailbox.count.load(Ordering::Relaxed) as usize).min(MAX_PAGES);
                for page in &mailbox.pages[..count] {
                    tlb::invlpg(page.load(Ordering::Relaxed));
                }
                PAGES.fetch_add(count as u32, Ordering::Relaxed);
            }
            kind::ALL_NON_GLOBAL => {
                tlb::flush_non_global();
                FULL_FLUSHES.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                tlb::flush_everything();
                FULL_FLUSHES.fetch_add(1, Ordering::Relaxed);
            }
        }
        mailbox.pending.fetch_and(!bit, Ordering::Release);
    }
    me.servicing.store(false, Ordering::Release);
}

/// Makes every online CPU of `targets` but the caller drop what `what`
/// names from its TLB, and returns when each has acknowledged
/// (`Platform::shootdown`).
pub fn shootdown(targets: CpuSet, what: Invalidate<'_>) {
    let me = cpu_id();
    let targets = CpuSet::from_bits(targets.without(me).bits() & online().bits());
    if targets.is_empty() {
        return;
    }
    let mailbox = &MAILBOXES[me.index()];
    assert!(
        mailbox.pending.load(Ordering::SeqCst) == 0,
        "nested shootdown on CPU {}",
        me.index()
    );
    let kind = match what {
        Invalidate::Pages(pages) if pages.len() <= MAX_PAGES => {
            for (slot, page) in mailbox.pages.iter().zip(pages) {
                slot.store(page.start().as_u32(), Ordering::Relaxed);
            }
            mailbox.count.store(pages.len() as u32, Ordering::Relaxed);
            kind::PAGES
        }
        // Too many pages for the mailbox: they may include kernel-half
        // (global) pages, so flush everything.
        Invalidate::Pages(_) | Invalidate::Everything => kind::EVERYTHING,
        Invalidate::AllNonGlobal => kind::ALL_NON_GLOBAL,
    };
    mailbox.kind.store(kind, Ordering::Relaxed);
    mailbox.pending.store(targets.bits(), Ordering::SeqCst);
    for cpu in targets.iter() {
        lapic::send_ipi(percpu::of(cpu).apic_id(), lapic::SHOOTDOWN_VECTOR);
        IPIS.fetch_add(1, Ordering::Relaxed);
    }
    SHOOTDOWNS.fetch_add(1, Ordering::Relaxed);
    wait_until("shootdown acknowledgement", || {
        let left = mailbox.pending.load(Ordering::Acquire);
        (left == 0).then_some(()).ok_or(CpuSet::from_bits(left))
    });
}

/// Waits until `done` returns `Ok`, servicing this CPU's requests, sending
/// an NMI to the CPUs it names while they are slow, and panicking when they
/// never answer.
fn wait_until<R>(what: &str, mut done: impl FnMut() -> Result<R, CpuSet>) -> R {
    let start = tsc::rdtsc();
    let mut next_kick = start + KICK_CYCLES;
    loop {
        let slow = match done() {
            Ok(r) => return r,
            Err(slow) => slow,
        };
        service();
        core::hint::spin_loop();
        let now = tsc::rdtsc();
        if now >= next_kick {
            for cpu in slow.iter() {
                lapic::send_nmi(percpu::of(cpu).apic_id());
                NMI_KICKS.fetch_add(1, Ordering::Relaxed);
            }
            next_kick = now + KICK_CYCLES;
        }
        if now - start > GIVE_UP_CYCLES {
            panic!("{what}: CPUs {:#x} never answered", slow.bits());
        }
    }
}

/// Runs `f(arg)` on CPU `cpu` (in its IPI handler, interrupts off) and
/// returns its result; the caller services its own requests meanwhile.
/// `f` must not take locks the caller may hold.
pub fn run_on(cpu: CpuId, f: fn(u32) -> u32, arg: u32) -> u32 {
    post(cpu, f, arg);
    wait(cpu)
}

/// Posts `f(arg)` to CPU `cpu` (see [`run_on`]) without waiting; [`wait`]
/// collects the result. One call per target at a time; only the boot CPU
/// posts calls in this step (the target answers in its IPI handler, which
/// the boot CPU only takes in its wait loops).
pub fn post(cpu: CpuId, f: fn(u32) -> u32, arg: u32) {
    assert!(cpu != cpu_id(), "a call posted to the calling CPU");
    assert!(
        online().contains(cpu),
        "a call posted to CPU {} (offline)",
        cpu.index()
    );
    let pc = percpu::of(cpu);
    let free = pc
        .work_fn
        .compare_exchange(0, f as usize as u32, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    assert!(
        free,
        "a call posted to CPU {} while one is pending",
        cpu.index()
    );
    pc.work_done.store(false, Ordering::SeqCst);
    pc.work_arg.store(arg, Ordering::SeqCst);
    pc.work_ready.store(true, Ordering::SeqCst);
    lapic::send_ipi(pc.apic_id(), lapic::CALL_VECTOR);
}

/// Waits for the call posted to `cpu` and returns its result, servicing
/// this CPU's requests meanwhile.
pub fn wait(cpu: CpuId) -> u32 {
    let pc = percpu::of(cpu);
    let result = wait_until("cross-CPU call", || {
        if pc.work_done.load(Ordering::Acquire) {
            Ok(pc.work_result.load(Ordering::Acquire))
        } else {
            Err(CpuSet::EMPTY)
        }
    });
    pc.work_ready.store(false, Ordering::SeqCst);
    pc.work_fn.store(0, Ordering::SeqCst);
    result
}

/// Runs the call posted to this CPU, if any and not yet done.
fn run_posted_call(me: &PerCpu) {
    if !me.work_ready.load(Ordering::Acquire) || me.work_done.load(Ordering::Acquire) {
        return;
    }
    let f = me.work_fn.load(Ordering::Acquire);
    // SAFETY: `post` stored a `fn(u32) -> u32` there (function pointers
    // are 32 bits on i686) before setting `work_ready`, and `wait` keeps it
    // until the call is done.
    let f: fn(u32) -> u32 = unsafe { core::mem::transmute::<usize, fn(u32) -> u32>(f as usize) };
    let r = f(me.work_arg.load(Ordering::Acquire));
    me.work_result.store(r, Ordering::Release);
    me.work_done.store(true, Ordering::Release);
}

/// Stops every other CPU (an NMI; their handler parks them) before the
/// caller reports a panic or an oops. If another CPU is stopping the
/// machine already, the caller parks instead.
pub fn stop_others() {
    if online().len() <= 1 || !lapic::is_mapped() {
        return;
    }
    if STOPPING.swap(true, Ordering::SeqCst) {
        park();
    }
    lapic::send_nmi_all_but_self();
}
