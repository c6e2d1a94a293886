//! Per-CPU data, reached through the GS segment.
//!
//! Every CPU's GDT has a data segment ([`gdt::PERCPU`]) whose base is that
//! CPU's [`PerCpu`]; GS holds it in the kernel (the trap entry reloads it,
//! whatever ring 3 left in GS). The boot CPU's segment points at CPU 0's
//! record from `gdt::init` on, before anything else runs, so
//! [`cpu_index`] is 0 on the boot CPU before SMP initialisation and never
//! faults. An application processor's GDT, TSS and double-fault TSS live in
//! its record; the boot CPU keeps the ones of `gdt` (its TSS is the one
//! processes' kernel stacks are written to).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use myos_mm::smp::{CpuId, MAX_CPUS};

use super::gdt::{self, TaskState, GDT_ENTRIES};

/// Byte offset of [`PerCpu::index`] (read with `mov reg, gs:[offset]`).
const INDEX_OFFSET: usize = core::mem::offset_of!(PerCpu, index);

/// One CPU's data. Only atomics: other CPUs read some of it (the work
/// request, the tick count) and the CPU itself updates it from interrupt
/// handlers.
#[repr(C, align(128))]
pub struct PerCpu {
    /// The CPU's number ([`CpuId`]), dense from 0 (the boot CPU).
    index: AtomicU32,
    /// Its local APIC id.
    apic_id: AtomicU32,
    /// LAPIC timer interrupts taken (application processors).
    pub ticks: AtomicU32,
    /// True while this CPU works through shootdown requests (an NMI that
    /// arrives then leaves the requests to the interrupted pass).
    pub servicing: AtomicBool,
    /// The scheduler's saved stack pointer while a process runs on this CPU.
    pub scheduler_esp: AtomicU32,
    /// Threads this CPU's scheduler switched to.
    pub switches: AtomicU32,
    /// The thread running on this CPU (its id; 0 while the scheduler or
    /// the idle loop runs).
    pub current: AtomicU32,
    /// The address space of that thread: an opaque pointer the process
    /// code owns (a counted reference it holds while the thread runs here).
    pub space: AtomicUsize,
    /// True while kernel code that may fault on user memory (and holds no
    /// address-space lock) runs: a supervisor page fault is then serviced
    /// through the current space instead of being an oops.
    pub user_access: AtomicBool,
    /// A function another CPU asked this one to run (`smp::run_on`): the
    /// function's address, 0 when none is posted.
    pub work_fn: AtomicU32,
    /// Its argument.
    pub work_arg: AtomicU32,
    /// Set once the function and argument are in place.
    pub work_ready: AtomicBool,
    /// Its result, valid once [`work_done`](Self::work_done) is set.
    pub work_result: AtomicU32,
    /// Set by this CPU when the posted function has returned.
    pub work_done: AtomicBool,
    /// The main TSS (application processors).
    tss: TaskState,
    /// The double-fault TSS (application processors).
    df_tss: TaskState,
    /// The GDT (application processors).
    gdt: [AtomicU64; GDT_ENTRIES],
}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            index: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            ticks: AtomicU32::new(0),
            servicing: AtomicBool::new(false),
            scheduler_esp: AtomicU32::new(0),
            switches: AtomicU32::new(0),
            current: AtomicU32::new(0),
            space: AtomicUsize::new(0),
            user_access: AtomicBool::new(false),
            work_fn: AtomicU32::new(0),
            work_arg: AtomicU32::new(0),
            work_ready: AtomicBool::new(false),
            work_result: AtomicU32::new(0),
            work_done: AtomicBool::new(false),
            tss: TaskState::new(),
            df_tss: TaskState::new(),
            gdt: [const { AtomicU64::new(0) }; GDT_ENTRIES],
        }
    }

    /// The CPU's number.
    pub fn id(&self) -> CpuId {
        CpuId::new(self.index.load(Ordering::Relaxed) as usize).unwrap_or(CpuId::BOOT)
    }

    /// The CPU's local APIC id.
    pub fn apic_id(&self) -> u8 {
        self.apic_id.load(Ordering::Relaxed) as u8
    }

    /// The record's address (the base of its GS segment).
    fn base(&self) -> u32 {
        self as *const Self as u32
    }
}

/// Every CPU's record, by [`CpuId`].
static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// Size of one record (the GS segment's limit + 1).
const PERCPU_SIZE: u32 = core::mem::size_of::<PerCpu>() as u32;

/// Base and size of the boot CPU's per-CPU segment, for `gdt::init`.
pub fn boot_segment() -> (u32, u32) {
    (CPUS[0].base(), PERCPU_SIZE)
}

/// The record of CPU `cpu`.
pub fn of(cpu: CpuId) -> &'static PerCpu {
    &CPUS[cpu.index()]
}

/// The number of the CPU the caller runs on (0 on the boot CPU before SMP
/// initialisation).
pub fn cpu_index() -> usize {
    let index: u32;
    // SAFETY: GS holds this CPU's per-CPU segment from `gdt::init` (boot
    // CPU) or `init_ap` (application processors) on, and every trap entry
    // reloads it; the read stays within the segment.
    unsafe {
        core::arch::asm!(
            "mov {0}, dword ptr gs:[{off}]",
            out(reg) index,
            off = const INDEX_OFFSET,
            options(nostack, readonly, preserves_flags),
        )
    };
    index as usize
}

/// The record of the CPU the caller runs on.
pub fn this() -> &'static PerCpu {
    &CPUS[cpu_index() % MAX_CPUS]
}

/// Records the boot CPU's local APIC id.
pub fn set_boot_apic_id(apic_id: u8) {
    CPUS[0].apic_id.store(u32::from(apic_id), Ordering::Relaxed);
}

/// Prepares CPU `cpu`'s record before it starts: its number and APIC id,
/// its TSS and double-fault TSS (entry, stack, `cr3`) and its GDT.
pub fn prepare_ap(cpu: CpuId, apic_id: u8, df_entry: u32, df_stack_top: u32, cr3: u32) {
    let pc = of(cpu);
    pc.index.store(cpu.index() as u32, Ordering::Relaxed);
    pc.apic_id.store(u32::from(apic_id), Ordering::Relaxed);
    gdt::setup_tss(&pc.tss, &pc.df_tss, df_entry, df_stack_top, cr3);
    let entries = gdt::entries(&pc.tss, &pc.df_tss, pc.base(), PERCPU_SIZE);
    for (slot, e) in pc.gdt.iter().zip(entries) {
        slot.store(e, Ordering::SeqCst);
    }
}

/// Loads CPU `cpu`'s GDT (prepared by [`prepare_ap`]), with GS on its
/// record and its TSS in the task register. Called by that CPU.
pub fn load_ap(cpu: CpuId) {
    gdt::load(&of(cpu).gdt);
}

/// Sets the stack the calling CPU switches to on a trap from ring 3 (its
/// TSS.esp0: the boot CPU's is `gdt`'s, an application processor's is in
/// its record).
pub fn set_kernel_stack(esp0: u32) {
    let me = this();
    if me.id() == CpuId::BOOT {
        gdt::set_kernel_stack(esp0);
    } else {
        me.tss.set_esp0(esp0);
    }
}
