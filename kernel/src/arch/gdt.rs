//! The global descriptor table: flat kernel and user segments, the task-state
//! segment (ring-0 stack for traps from ring 3) and a second TSS for the
//! double-fault task, whose own stack lets a kernel stack overflow be reported.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use spin::Once;

/// Selector of the kernel code segment.
pub const KERNEL_CODE: u16 = 0x08;
/// Selector of the kernel data segment.
pub const KERNEL_DATA: u16 = 0x10;
/// Requested privilege level 3 (user) in a selector.
pub const RPL_USER: u16 = 3;
#[allow(dead_code)] // used by processes
/// Selector of the user code segment (with RPL 3).
pub const USER_CODE: u16 = 0x18 | RPL_USER;
#[allow(dead_code)] // used by processes
/// Selector of the user data segment (with RPL 3).
pub const USER_DATA: u16 = 0x20 | RPL_USER;
/// Selector of the main TSS.
pub const TSS: u16 = 0x28;
/// Selector of the double-fault TSS (the target of the task gate at vector 8).
pub const DOUBLE_FAULT_TSS: u16 = 0x30;
/// Selector of the per-CPU data segment (GS in the kernel: its base is the
/// CPU's `PerCpu`, see `arch::percpu`).
pub const PERCPU: u16 = 0x38;
/// Number of GDT entries.
pub const GDT_ENTRIES: usize = 8;

/// Access byte: present.
const ACCESS_PRESENT: u8 = 1 << 7;
/// Access byte: descriptor privilege level 3.
const ACCESS_DPL3: u8 = 3 << 5;
/// Access byte: code or data segment (not a system segment).
const ACCESS_CODE_DATA: u8 = 1 << 4;
/// Access byte type: executable, readable code.
const TYPE_CODE_READ: u8 = 0xA;
/// Access byte type: writable data.
const TYPE_DATA_WRITE: u8 = 0x2;
/// Access byte type: available 32-bit TSS.
const TYPE_TSS32_AVAILABLE: u8 = 0x9;
/// Flags nibble: 4 KiB granularity.
const FLAG_GRANULARITY_4K: u8 = 1 << 3;
/// Flags nibble: 32-bit segment.
const FLAG_SIZE_32: u8 = 1 << 2;
/// The largest limit (with 4 KiB granularity: the whole 4 GiB).
const LIMIT_4G: u32 = 0xF_FFFF;

/// Encodes one segment descriptor.
const fn descriptor(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    (limit as u64 & 0xFFFF)
        | ((base as u64 & 0xFF_FFFF) << 16)
        | ((access as u64) << 40)
        | (((limit as u64 >> 16) & 0xF) << 48)
        | ((flags as u64 & 0xF) << 52)
        | (((base as u64 >> 24) & 0xFF) << 56)
}

/// Number of 32-bit words in a TSS.
const TSS_WORDS: usize = 26;
/// Size of a TSS in bytes.
const TSS_SIZE: u32 = (TSS_WORDS * 4) as u32;

/// Word indices of the TSS fields the kernel uses.
mod field {
    pub const ESP0: usize = 1;
    pub const SS0: usize = 2;
    pub const CR3: usize = 7;
    pub const EIP: usize = 8;
    pub const EFLAGS: usize = 9;
    pub const ESP: usize = 14;
    pub const EBP: usize = 15;
    pub const ES: usize = 18;
    pub const CS: usize = 19;
    pub const SS: usize = 20;
    pub const DS: usize = 21;
    pub const FS: usize = 22;
    pub const GS: usize = 23;
    pub const IOMAP: usize = 25;
}

/// A 32-bit task-state segment. The CPU reads and (on a task switch) writes
/// it behind the compiler's back, so every word is atomic.
#[repr(C, align(128))]
pub struct TaskState([AtomicU32; TSS_WORDS]);

impl TaskState {
    /// An all-zero TSS.
    pub const fn new() -> Self {
        Self([const { AtomicU32::new(0) }; TSS_WORDS])
    }
    /// Sets the stack pointer a trap from ring 3 switches to.
    pub fn set_esp0(&self, esp0: u32) {
        self.set(field::ESP0, esp0);
    }
    fn set(&self, index: usize, value: u32) {
        self.0[index].store(value, Ordering::SeqCst);
    }
    fn get(&self, index: usize) -> u32 {
        self.0[index].load(Ordering::SeqCst)
    }
    fn base(&self) -> u32 {
        self as *const Self as u32
    }
}

/// The TSS used for every ring-3 → ring-0 transition.
static MAIN_TSS: TaskState = TaskState::new();
/// The TSS the double-fault task gate switches to.
static DOUBLE_FAULT_TSS_STATE: TaskState = TaskState::new();
/// The table itself (built once; it holds the TSS addresses).
static GDT: Once<[AtomicU64; GDT_ENTRIES]> = Once::new();

/// The operand of `lgdt`/`lidt`.
#[repr(C, packed)]
pub struct DescriptorTablePointer {
    /// Size of the table minus one.
    pub limit: u16,
    /// Linear address of the table.
    pub base: u32,
}

/// Builds and loads the boot CPU's GDT, reloads every segment register
/// (GS = [`PERCPU`], based at `percpu`, `percpu_size` bytes) and loads the
/// task register. `double_fault_entry` and `double_fault_stack_top` set up
/// the double-fault task; `cr3` is the page directory that task runs on.
pub fn init(
    double_fault_entry: u32,
    double_fault_stack_top: u32,
    cr3: u32,
    percpu: u32,
    percpu_size: u32,
) {
    setup_tss(
        &MAIN_TSS,
        &DOUBLE_FAULT_TSS_STATE,
        double_fault_entry,
        double_fault_stack_top,
        cr3,
    );
    let gdt = GDT.call_once(|| {
        entries(&MAIN_TSS, &DOUBLE_FAULT_TSS_STATE, percpu, percpu_size).map(AtomicU64::new)
    });
    load(gdt);
}

/// Fills one CPU's main TSS (ring-0 stack segment, no I/O bitmap) and its
/// double-fault TSS (`cr3`, entry point, own stack, GS = [`PERCPU`]).
pub fn setup_tss(
    tss: &TaskState,
    df: &TaskState,
    double_fault_entry: u32,
    double_fault_stack_top: u32,
    cr3: u32,
) {
    tss.set(field::SS0, KERNEL_DATA.into());
    tss.set(field::IOMAP, TSS_SIZE << 16);
    df.set(field::CR3, cr3);
    df.set(field::EIP, double_fault_entry);
    df.set(field::EFLAGS, super::regs::eflags::RESERVED1);
    df.set(field::ESP, double_fault_stack_top);
    df.set(field::EBP, 0);
    df.set(field::CS, KERNEL_CODE.into());
    for seg in [field::SS, field::DS, field::ES, field::FS] {
        df.set(seg, KERNEL_DATA.into());
    }
    df.set(field::GS, PERCPU.into());
    df.set(field::SS0, KERNEL_DATA.into());
    df.set(field::ESP0, double_fault_stack_top);
    df.set(field::IOMAP, TSS_SIZE << 16);
}

/// The descriptors of one CPU's GDT: flat kernel and user segments, its
/// TSS and double-fault TSS, and its per-CPU segment.
pub fn entries(
    tss: &TaskState,
    df: &TaskState,
    percpu: u32,
    percpu_size: u32,
) -> [u64; GDT_ENTRIES] {
    let code = ACCESS_PRESENT | ACCESS_CODE_DATA | TYPE_CODE_READ;
    let data = ACCESS_PRESENT | ACCESS_CODE_DATA | TYPE_DATA_WRITE;
    let flat = FLAG_GRANULARITY_4K | FLAG_SIZE_32;
    let tss_access = ACCESS_PRESENT | TYPE_TSS32_AVAILABLE;
    [
        0,
        descriptor(0, LIMIT_4G, code, flat),
        descriptor(0, LIMIT_4G, data, flat),
        descriptor(0, LIMIT_4G, code | ACCESS_DPL3, flat),
        descriptor(0, LIMIT_4G, data | ACCESS_DPL3, flat),
        descriptor(tss.base(), TSS_SIZE - 1, tss_access, 0),
        descriptor(df.base(), TSS_SIZE - 1, tss_access, 0),
        descriptor(percpu, percpu_size - 1, data, FLAG_SIZE_32),
    ]
}

/// Loads `gdt` (which lives for good: the CPU keeps using it and marks its
/// TSS busy in it), reloads the segment registers (GS = [`PERCPU`]) and
/// loads the task register.
pub fn load(gdt: &'static [AtomicU64; GDT_ENTRIES]) {
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of_val(gdt) - 1) as u16,
        base: gdt.as_ptr() as u32,
    };
    // SAFETY: the GDT lives forever and describes flat segments equivalent
    // to the boot loader's (and the trampoline's); the far return reloads CS
    // with the kernel code selector and execution continues at label 2. GS
    // gets this CPU's per-CPU segment.
    unsafe {
        core::arch::asm!(
            "lgdt [{ptr}]",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov fs, {data:x}",
            "mov ss, {data:x}",
            "mov gs, {percpu:x}",
            "push {code}",
            "lea {tmp}, [2f]",
            "push {tmp}",
            "retf",
            "2:",
            "ltr {tss:x}",
            ptr = in(reg) &pointer,
            data = in(reg) u32::from(KERNEL_DATA),
            percpu = in(reg) u32::from(PERCPU),
            code = const KERNEL_CODE,
            tmp = out(reg) _,
            tss = in(reg) u32::from(TSS),
        );
    }
}

/// Sets the stack the CPU switches to on a trap from ring 3.
pub fn set_kernel_stack(esp0: u32) {
    MAIN_TSS.set(field::ESP0, esp0);
}

/// Updates the page directory the double-fault task runs on.
pub fn set_double_fault_cr3(cr3: u32) {
    DOUBLE_FAULT_TSS_STATE.set(field::CR3, cr3);
}

/// The state of the task that double-faulted (saved in the main TSS by the
/// task switch): `(eip, esp, ebp)`.
pub fn faulting_task_state() -> (u32, u32, u32) {
    (
        MAIN_TSS.get(field::EIP),
        MAIN_TSS.get(field::ESP),
        MAIN_TSS.get(field::EBP),
    )
}
