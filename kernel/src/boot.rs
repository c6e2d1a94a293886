//! The first instructions: the multiboot v1 header, the boot page directory
//! and the switch to the higher half.
//!
//! `qemu -kernel` (or GRUB) loads the ELF segments at their physical
//! addresses and jumps to `_start` in 32-bit protected mode with paging off,
//! `eax` = the multiboot magic and `ebx` = the physical address of the
//! multiboot information. `_start` lives in `.boot`, linked at its physical
//! address (1 MiB). It fills the boot page directory with 4 MiB (PSE) pages:
//! an identity entry for the first 4 MiB (the boot code itself) and the whole
//! direct map (physical 0..768 MiB at `0xC000_0000`, 192 entries), fills the
//! PAE boot tables the same way with 2 MiB pages (used only when the kernel
//! chooses PAE paging: [`enter_pae`]), enables
//! paging and jumps to `higher_half` in `.text`, which sets up the boot
//! stack, clears `.bss`, enables the FPU/SSE (the precompiled `core` uses
//! SSE2) and calls [`crate::kernel_main`].

use myos_mm::layout::{DIRECT_MAP_SIZE, KERNEL_BASE, KERNEL_PD_INDEX, TABLE_SPAN};
use myos_mm::paging::{Pae, PagingMode, PteFlags};

use crate::arch::regs::{cr0, cr4};

/// Multiboot v1 header magic.
const MULTIBOOT_HEADER_MAGIC: u32 = 0x1BAD_B002;
/// Header flag: align boot modules on 4 KiB boundaries.
const MULTIBOOT_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag: provide the memory fields and the memory map.
const MULTIBOOT_MEMORY_INFO: u32 = 1 << 1;
/// The flags we ask the boot loader for.
const MULTIBOOT_HEADER_FLAGS: u32 = MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO;

/// Size of the boot stack (the kernel's main thread runs on it).
pub const BOOT_STACK_SIZE: usize = 64 * 1024;
/// Size of the double-fault handler's stack.
pub const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;

/// Flags of a boot page-directory entry: a present, writable 4 MiB page.
const BOOT_PDE_FLAGS: u32 =
    PteFlags::PRESENT.bits() | PteFlags::WRITABLE.bits() | PteFlags::HUGE.bits();
/// Number of 4 MiB entries of the direct map.
const DIRECT_MAP_ENTRIES: u32 = DIRECT_MAP_SIZE / TABLE_SPAN;
/// Size of a page-directory entry in bytes.
const PDE_SIZE: u32 = 4;

const _: () = assert!(DIRECT_MAP_ENTRIES == 192);

/// Size of a PAE entry in bytes.
const PAE_ENTRY_SIZE: u32 = 8;
/// Bytes one PAE page-directory entry maps (a 2 MiB page).
const PAE_SPAN: u32 = 1 << Pae::DIR_SHIFT;
/// Number of 2 MiB entries of the direct map in PAE mode.
const PAE_DIRECT_MAP_ENTRIES: u32 = DIRECT_MAP_SIZE / PAE_SPAN;

const _: () = assert!(PAE_DIRECT_MAP_ENTRIES == 384 && PAE_DIRECT_MAP_ENTRIES <= 512);
const _: () = assert!(KERNEL_BASE == 3 << 30); // PDPTE[3] holds the kernel half

extern "C" {
    fn boot_enter_pae();
    static boot_pae_pdpt: u8;
}

/// Physical address of the PAE boot PDPT (identity map of the first 4 MiB
/// and the direct map), which the APs' trampoline loads in PAE mode.
pub fn pae_boot_pdpt() -> u32 {
    core::ptr::addr_of!(boot_pae_pdpt) as u32
}

/// Switches the CPU from the classic boot tables to PAE paging: EFER.NXE,
/// then `boot_enter_pae` (paging off, CR4.PAE, the PAE boot PDPT, paging
/// on). Called once by the boot CPU, before the memory manager exists (the
/// boot tables are loaded), with interrupts off.
///
/// # Safety
///
/// The CPU has PAE and NX ([`crate::arch::cpu::paging_support`]), the
/// classic boot page directory is loaded, and nothing holds a pointer
/// outside the direct map and the kernel image.
pub unsafe fn enter_pae() {
    // SAFETY: the caller checked NX.
    unsafe { crate::arch::cpu::enable_nx() };
    let entry = boot_enter_pae as *const () as u32;
    // SAFETY: `boot_enter_pae` is in `.boot`, identity-mapped by the loaded
    // boot directory and by the PAE boot tables; it changes only CR0, CR3
    // and CR4, and both tables map the kernel image and the stack at the
    // same addresses. Called through a register: its address is physical.
    unsafe {
        core::arch::asm!(
            "pushfd", "cli", "call {0}", "popfd",
            in(reg) entry, out("ecx") _,
        );
    }
    crate::platform::set_pae_on();
}

core::arch::global_asm!(
    r#"
    .section .multiboot, "a"
    .balign 4
    .long {mb_magic}
    .long {mb_flags}
    .long -({mb_magic} + {mb_flags})

    .section .boot.text, "ax"
    .global _start
    .code32
_start:
    cli
    cld
    /* Identity entry for the first 4 MiB: this code runs there until the jump. */
    mov edi, offset boot_page_directory
    mov dword ptr [edi], {pde_flags}
    /* The direct map: 192 entries from index 768, physical 0, 4 MiB, ... */
    lea edi, [edi + {kernel_pd_index} * {pde_size}]
    mov edx, {pde_flags}
    mov ecx, {direct_entries}
2:
    mov dword ptr [edi], edx
    add edi, {pde_size}
    add edx, {table_span}
    dec ecx
    jnz 2b

    /* The PAE boot tables (used only if the kernel switches to PAE mode,
       `boot_enter_pae`): 2 MiB pages, an identity entry pair for the
       first 4 MiB and the direct map (384 entries) in the PD of PDPTE[3]. */
    mov edi, offset boot_pae_pd_low
    mov dword ptr [edi], {pde_flags}
    mov dword ptr [edi + {pae_entry_size}], {pde_flags} + {pae_span}
    mov edi, offset boot_pae_pd_high
    mov edx, {pde_flags}
    mov ecx, {pae_direct_entries}
3:
    mov dword ptr [edi], edx
    add edi, {pae_entry_size}
    add edx, {pae_span}
    dec ecx
    jnz 3b

    mov ecx, offset boot_page_directory
    mov cr3, ecx
    mov ecx, cr4
    or ecx, {cr4_pse}
    mov cr4, ecx
    mov ecx, cr0
    or ecx, {cr0_pg} | {cr0_wp}
    mov cr0, ecx
    mov ecx, offset higher_half
    jmp ecx

    /* Classic paging -> PAE paging, called (through its identity address)
       from the higher half with interrupts off: paging off, CR4.PAE, CR3 =
       the PAE boot PDPT, paging on, return (the stack is in the direct
       map, which both sets of boot tables map). No memory is touched
       while paging is off. */
    .global boot_enter_pae
boot_enter_pae:
    mov ecx, cr0
    and ecx, {cr0_no_pg}
    mov cr0, ecx
    mov ecx, cr4
    or ecx, {cr4_pae}
    mov cr4, ecx
    mov ecx, offset boot_pae_pdpt
    mov cr3, ecx
    mov ecx, cr0
    or ecx, {cr0_pg}
    mov cr0, ecx
    ret

    .section .boot.data, "aw"
    .balign 4096
    .global boot_page_directory
boot_page_directory:
    .fill 1024, 4, 0
    .global boot_pae_pd_low
boot_pae_pd_low:
    .fill 512, 8, 0
boot_pae_pd_high:
    .fill 512, 8, 0
    /* PDPT entries hold only P (R/W and U/S are reserved there). */
    .balign 32
    .global boot_pae_pdpt
boot_pae_pdpt:
    .long boot_pae_pd_low + 1, 0
    .long 0, 0
    .long 0, 0
    .long boot_pae_pd_high + 1, 0

    .section .bss
    .balign 16
    .global boot_stack_bottom
boot_stack_bottom:
    .skip {boot_stack_size}
    .global boot_stack_top
boot_stack_top:
    .balign 16
    .global double_fault_stack_bottom
double_fault_stack_bottom:
    .skip {df_stack_size}
    .global double_fault_stack_top
double_fault_stack_top:

    .section .text
    .global higher_half
higher_half:
    mov esp, offset boot_stack_top
    xor ebp, ebp
    /* Keep the multiboot magic and info pointer across the .bss clearing. */
    mov esi, eax
    mov edx, ebx
    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    xor eax, eax
    rep stosb
    mov esp, offset boot_stack_top
    /* FPU and SSE: CR0.EM = 0, CR0.MP = 1, CR4.OSFXSR | CR4.OSXMMEXCPT. */
    mov eax, cr0
    and eax, ~{cr0_em}
    or eax, {cr0_mp} | {cr0_ne}
    mov cr0, eax
    mov eax, cr4
    or eax, {cr4_osfxsr} | {cr4_osxmmexcpt}
    mov cr4, eax
    fninit
    push 0
    popfd
    /* The i386 SysV ABI wants esp 16-aligned at the call (SSE spills). */
    sub esp, 8
    push edx
    push esi
    call {kernel_main}
3:
    cli
    hlt
    jmp 3b
    "#,
    mb_magic = const MULTIBOOT_HEADER_MAGIC,
    mb_flags = const MULTIBOOT_HEADER_FLAGS,
    pde_flags = const BOOT_PDE_FLAGS,
    kernel_pd_index = const KERNEL_PD_INDEX,
    pde_size = const PDE_SIZE,
    direct_entries = const DIRECT_MAP_ENTRIES,
    table_span = const TABLE_SPAN,
    cr4_pse = const cr4::PSE,
    cr4_pae = const cr4::PAE,
    cr0_pg = const cr0::PG,
    cr0_no_pg = const !cr0::PG,
    pae_entry_size = const PAE_ENTRY_SIZE,
    pae_span = const PAE_SPAN,
    pae_direct_entries = const PAE_DIRECT_MAP_ENTRIES,
    cr0_wp = const cr0::WP,
    cr0_em = const cr0::EM,
    cr0_mp = const cr0::MP,
    cr0_ne = const cr0::NE,
    cr4_osfxsr = const cr4::OSFXSR,
    cr4_osxmmexcpt = const cr4::OSXMMEXCPT,
    boot_stack_size = const BOOT_STACK_SIZE,
    df_stack_size = const DOUBLE_FAULT_STACK_SIZE,
    kernel_main = sym crate::kernel_main,
);

const _: () = assert!(KERNEL_BASE == 0xC000_0000);
