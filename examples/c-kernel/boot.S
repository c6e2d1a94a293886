/*
 * boot.S — multiboot entry of the example C kernel: goes to the higher half
 * the way libmyos.a needs it (virtual = 0xC0000000 + physical), then calls
 * kmain(magic, multiboot_info_phys).
 *
 * `qemu -kernel` (or GRUB) jumps to _start in 32-bit protected mode, paging
 * off, eax = 0x2BADB002, ebx = physical address of the multiboot info.
 * _start runs at its physical address (.boot, linked at 1 MiB): it maps the
 * first 8 MiB twice with 4 MiB (PSE) pages — identity, for the next few
 * instructions, and at 0xC0000000 — turns on PSE, paging and CR0.WP, and
 * jumps up. myos_init extends the direct map to all RAM itself and then
 * loads its own page directory (the identity entry disappears).
 *
 * No SSE setup: libmyos.a is built for i586 and this kernel with
 * -mgeneral-regs-only, so nothing uses SSE or x87 registers.
 */
#define KERNEL_VMA 0xC0000000
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x3 /* page-aligned modules, memory information */
#define PDE_4M 0x83  /* present, writable, 4 MiB page */
#define CR4_PSE 0x10
#define CR0_PG 0x80000000
#define CR0_WP 0x10000

    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .boot.text, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    /* boot_page_directory is linked in the higher half: use its physical address. */
    mov $(boot_page_directory - KERNEL_VMA), %ecx
    movl $(0x000000 | PDE_4M), 0(%ecx)           /* identity 0..4 MiB */
    movl $(0x400000 | PDE_4M), 4(%ecx)           /* identity 4..8 MiB */
    movl $(0x000000 | PDE_4M), (768 * 4)(%ecx)   /* 0xC0000000 -> 0 */
    movl $(0x400000 | PDE_4M), (769 * 4)(%ecx)   /* 0xC0400000 -> 4 MiB */
    mov %ecx, %cr3
    mov %cr4, %edx
    or $CR4_PSE, %edx
    mov %edx, %cr4
    mov %cr0, %edx
    or $(CR0_PG | CR0_WP), %edx
    mov %edx, %cr0
    lea higher_half, %edx
    jmp *%edx

    .text
higher_half:
    mov $stack_top, %esp
    /* Our own GDT: the multiboot loader's may be anywhere. */
    lgdt gdt_descriptor
    ljmp $0x08, $1f
1:
    mov $0x10, %dx
    mov %dx, %ds
    mov %dx, %es
    mov %dx, %fs
    mov %dx, %gs
    mov %dx, %ss
    /* Clear .bss (keep eax/ebx: magic and multiboot info). */
    mov %eax, %esi
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb
    push %ebx
    push %esi
    call kmain
2:
    cli
    hlt
    jmp 2b

    .section .rodata
    .balign 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF /* 0x08: ring-0 code, flat 4 GiB */
    .quad 0x00CF92000000FFFF /* 0x10: ring-0 data, flat 4 GiB */
gdt_end:
gdt_descriptor:
    .word gdt_end - gdt - 1
    .long gdt

    .section .data
    .balign 4096
    .global boot_page_directory
boot_page_directory:
    .fill 1024, 4, 0

    .section .bss
    .balign 16
stack_bottom:
    .skip 32768
stack_top:

    .section .note.GNU-stack, "", @progbits
