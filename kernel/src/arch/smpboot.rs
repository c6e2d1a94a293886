//! Starting the application processors: the real-mode trampoline, the
//! higher-half entry, and INIT-SIPI-SIPI.
//!
//! The trampoline is copied to a page below 1 MiB ([`TRAMPOLINE_PHYS`],
//! kept out of the frame allocator by the multiboot parser). A STARTUP IPI
//! starts the AP there in 16-bit real mode: it loads the trampoline's flat
//! GDT, enters protected mode, turns on paging with the boot tables of the
//! running mode (the classic boot directory with CR4.PSE, or the PAE boot
//! PDPT with CR4.PAE; both identity-map the first 4 MiB and map the kernel
//! at `0xC000_0000`) and jumps to [`ap_entry`] in the higher half. That sets
//! EFER.NXE in PAE mode, loads
//! the boot CPU's CR4, the kernel address space's CR3 and the boot CPU's CR0
//! (paging, write protection, FPU/SSE on), takes its own stack and calls the
//! AP's Rust entry (given to [`install`]) with its CPU number. The parameters are in the trampoline
//! page; APs are started one at a time.

use core::sync::atomic::Ordering;

use myos_mm::layout::{KERNEL_BASE, PAGE_SIZE};
use myos_mm::smp::CpuId;

use super::gdt::{KERNEL_CODE, KERNEL_DATA};
use super::lapic;
use super::port::{inb, outb};
use super::regs::{cr0, cr4, efer};
use crate::platform::Paging;

/// Physical address of the trampoline page (below 1 MiB, page aligned: the
/// STARTUP IPI's vector is its page number).
pub const TRAMPOLINE_PHYS: u32 = 0x8000;
/// Offset of the parameter block in the trampoline page.
const PARAMS: u32 = 0xF00;
/// Parameter offsets (32-bit words).
mod param {
    pub const BOOT_CR3: u32 = 0;
    pub const ENTRY: u32 = 4;
    pub const CR3: u32 = 8;
    pub const CR4: u32 = 12;
    pub const CR0: u32 = 16;
    pub const STACK: u32 = 20;
    pub const CPU: u32 = 24;
    pub const MAIN: u32 = 28;
    pub const BOOT_CR4: u32 = 32;
    pub const EFER_NXE: u32 = 36;
    pub const SIZE: u32 = 40;
}

const _: () = assert!(TRAMPOLINE_PHYS.is_multiple_of(PAGE_SIZE as u32));
const _: () = assert!(TRAMPOLINE_PHYS < 0x10_0000 && TRAMPOLINE_PHYS >= 0x1000);
const _: () = assert!(PARAMS + param::SIZE <= PAGE_SIZE as u32);

core::arch::global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .global ap_trampoline_start
    .global ap_trampoline_end
    .code16
ap_trampoline_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl {t} + (ap_trampoline_gdt_ptr - ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl ${kcode}, ${t} + (ap_trampoline_32 - ap_trampoline_start)

    .code32
ap_trampoline_32:
    movw ${kdata}, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl {t} + {params} + {p_boot_cr3}, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl {t} + {params} + {p_boot_cr4}, %eax
    movl %eax, %cr4
    movl %cr0, %eax
    orl ${cr0_pg}, %eax
    movl %eax, %cr0
    movl {t} + {params} + {p_entry}, %eax
    jmp *%eax

    .balign 8
ap_trampoline_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
ap_trampoline_gdt_ptr:
    .word 23
    .long {t} + (ap_trampoline_gdt - ap_trampoline_start)
ap_trampoline_end:

    .section .text
    .global ap_entry
ap_entry:
    movl ${pvirt}, %esi
    /* EFER.NXE before the kernel's tables (user entries carry NX). */
    movl {p_efer_nxe}(%esi), %eax
    testl %eax, %eax
    jz 2f
    movl ${efer_msr}, %ecx
    rdmsr
    orl ${efer_nxe}, %eax
    wrmsr
2:
    movl {p_cr4}(%esi), %eax
    movl %eax, %cr4
    movl {p_cr3}(%esi), %eax
    movl %eax, %cr3
    movl {p_cr0}(%esi), %eax
    movl %eax, %cr0
    movl {p_stack}(%esi), %esp
    xorl %ebp, %ebp
    fninit
    pushl $0
    popfl
    movl {p_cpu}(%esi), %eax
    subl $12, %esp
    pushl %eax
    call *{p_main}(%esi)
1:
    cli
    hlt
    jmp 1b
    "#,
    t = const TRAMPOLINE_PHYS,
    params = const PARAMS,
    pvirt = const KERNEL_BASE + TRAMPOLINE_PHYS + PARAMS,
    p_boot_cr3 = const param::BOOT_CR3,
    p_entry = const param::ENTRY,
    p_cr3 = const param::CR3,
    p_cr4 = const param::CR4,
    p_cr0 = const param::CR0,
    p_stack = const param::STACK,
    p_cpu = const param::CPU,
    p_main = const param::MAIN,
    p_boot_cr4 = const param::BOOT_CR4,
    p_efer_nxe = const param::EFER_NXE,
    efer_msr = const efer::MSR,
    efer_nxe = const efer::NXE,
    kcode = const KERNEL_CODE,
    kdata = const KERNEL_DATA,
    cr0_pg = const cr0::PG | cr0::WP,
    options(att_syntax),
);

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static boot_page_directory: u8;
    fn ap_entry();
}

/// Writes parameter `offset` of the trampoline page.
fn set_param(offset: u32, value: u32) {
    let va = KERNEL_BASE + TRAMPOLINE_PHYS + PARAMS + offset;
    // SAFETY: the trampoline page is reserved for this (kept out of the
    // frame allocator) and lies in the direct map; APs are started one at a
    // time, so no AP reads the block while it changes.
    unsafe { (va as *mut u32).write_volatile(value) }
}

/// Copies the trampoline to its page and fills the parameters every AP
/// shares: the boot page directory, the entry, `main` (the Rust entry,
/// called with the CPU number on the AP's stack), and the boot CPU's CR0,
/// CR3 and CR4 (so APs get the same paging, FPU/SSE and protection bits).
pub fn install(main: extern "C" fn(u32) -> !) {
    let start = core::ptr::addr_of!(ap_trampoline_start);
    let end = core::ptr::addr_of!(ap_trampoline_end);
    let len = end as usize - start as usize;
    assert!(
        len <= PARAMS as usize,
        "AP trampoline of {len} bytes too big"
    );
    // SAFETY: the source is the trampoline's bytes in .rodata; the
    // destination is the reserved trampoline page in the direct map.
    unsafe {
        core::ptr::copy_nonoverlapping(start, (KERNEL_BASE + TRAMPOLINE_PHYS) as *mut u8, len)
    };
    // The boot tables of the running mode: the classic directory (4 MiB
    // pages, CR4.PSE) or the PAE PDPT (2 MiB pages need no PSE; CR4.PAE
    // must be set before paging goes on), and EFER.NXE with PAE.
    let (boot_cr3, boot_cr4, nxe) = match crate::platform::paging() {
        Paging::Classic => (core::ptr::addr_of!(boot_page_directory) as u32, cr4::PSE, 0),
        Paging::Pae => (crate::boot::pae_boot_pdpt(), cr4::PAE, 1),
    };
    set_param(param::BOOT_CR3, boot_cr3);
    set_param(param::BOOT_CR4, boot_cr4);
    set_param(param::EFER_NXE, nxe);
    set_param(param::ENTRY, ap_entry as *const () as usize as u32);
    set_param(param::MAIN, main as usize as u32);
    let (c0, c3, c4): (u32, u32, u32);
    // SAFETY: reading control registers has no side effect.
    unsafe {
        core::arch::asm!(
            "mov {0}, cr0", "mov {1}, cr3", "mov {2}, cr4",
            out(reg) c0, out(reg) c3, out(reg) c4,
            options(nomem, nostack, preserves_flags),
        )
    };
    set_param(param::CR0, c0);
    set_param(param::CR3, c3);
    set_param(param::CR4, c4);
}

/// PIT mode/command port.
const PIT_COMMAND: u16 = 0x43;
/// PIT channel 0 data port.
const PIT_CHANNEL0: u16 = 0x40;
/// PIT input clock in Hz.
const PIT_HZ: u64 = 1_193_182;

/// Reads PIT channel 0's counter (latched).
fn pit_count() -> u16 {
    // SAFETY: latching and reading channel 0's count does not change its
    // programming; only the boot CPU does this, with interrupts off.
    unsafe {
        outb(PIT_COMMAND, 0);
        let lo = inb(PIT_CHANNEL0);
        let hi = inb(PIT_CHANNEL0);
        u16::from_le_bytes([lo, hi])
    }
}

/// Waits about `us` microseconds by watching the PIT count down (it runs
/// whether or not its interrupt is delivered).
pub fn delay_us(us: u64) {
    let wanted = us * PIT_HZ / 1_000_000 + 1;
    let reload = u64::from(PIT_HZ as u32 / super::pit::HZ);
    let mut elapsed = 0u64;
    let mut last = pit_count();
    while elapsed < wanted {
        let now = pit_count();
        // The count goes down and reloads at `reload`.
        elapsed += if now <= last {
            u64::from(last - now)
        } else {
            u64::from(last) + reload - u64::from(now)
        };
        last = now;
        core::hint::spin_loop();
    }
}

/// Starts CPU `cpu` (APIC id `apic_id`) on `stack_top` with INIT, then two
/// STARTUPs at the trampoline, and waits up to `timeout_ms` for `online()`.
/// Returns whether it came online.
pub fn start_ap(
    cpu: CpuId,
    apic_id: u8,
    stack_top: u32,
    timeout_ms: u64,
    online: impl Fn() -> bool,
) -> bool {
    set_param(param::STACK, stack_top);
    set_param(param::CPU, cpu.index() as u32);
    core::sync::atomic::fence(Ordering::SeqCst);
    let page = (TRAMPOLINE_PHYS / PAGE_SIZE as u32) as u8;
    lapic::send_init(apic_id);
    delay_us(10_000);
    for _ in 0..2 {
        if online() {
            return true;
        }
        lapic::send_startup(apic_id, page);
        delay_us(200);
    }
    for _ in 0..timeout_ms {
        if online() {
            return true;
        }
        delay_us(1000);
    }
    online()
}
