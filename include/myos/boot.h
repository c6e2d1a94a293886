/*
 * myos/boot.h — setting up the memory manager from a C kernel (libmyos.a).
 *
 * libmyos.a (crates/libmyos, built by xtask for i586) is the whole memory
 * manager as a freestanding i386 static library: one call, myos_init, brings
 * it up, and afterwards every function of <myos/memory.h> works. No Rust is
 * written by the kernel. See docs/porting.md (C kernels) for the full guide.
 *
 * Preconditions of myos_init (examples/c-kernel/boot.S shows them all):
 *   - 32-bit protected mode, paging on, interrupts off;
 *   - the kernel runs in the higher half: virtual = 0xC0000000 + physical
 *     for the kernel image (its stack and the boot page directory
 *     included) and for the multiboot information when it is used;
 *   - the CPU has PSE (every i386 QEMU model and every CPU since the Pentium
 *     does); myos_init turns on CR4.PSE, CR0.WP and CR4.PGE itself;
 *   - SSE is NOT needed: the library is built without SSE instructions.
 *
 * What myos_init does:
 *   1. checks the description (a MYOS_BOOT_E* code below for each fault;
 *      nothing changes on refusal, so the kernel may fix it and call again);
 *   2. fills the direct-map entries of the loaded page directory with 4 MiB
 *      pages (0xC0000000 + physical, up to the end of RAM or of the direct
 *      map) where the kernel left them empty;
 *   3. builds the frame allocator from the memory map (the kernel image, the
 *      multiboot information, memory map, command line and modules are
 *      reserved) and the kernel page directory, and loads it: from then on
 *      the kernel half holds the direct map, the kernel heap window and the
 *      kmap window, nothing else the boot directory had (identity mappings
 *      are gone; reach physical memory at 0xC0000000 + physical);
 *   4. creates the kernel heap (the kmalloc family's, and the library's own
 *      Rust allocations) and the C process, whose page directory is then
 *      current_directory: mmap places regions in its user space, and page
 *      faults there (also from kernel code, as the spec's mmap example does)
 *      are serviced by myos_page_fault / page_fault_handler.
 *
 * After a successful call nothing in this header may be called again; a
 * refused call may be retried, except after MYOS_BOOT_ECPU, MYOS_BOOT_ENOMEM
 * and MYOS_BOOT_EALREADY (the bring-up had started).
 */
#ifndef MYOS_BOOT_H
#define MYOS_BOOT_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The layout of struct myos_boot this header describes. */
#define MYOS_BOOT_VERSION 1

/* Memory region types: usable RAM; every other value is reserved. */
#define MYOS_MEM_USABLE   1
#define MYOS_MEM_RESERVED 2

/* The most regions a memory map may have (the library copies it first). */
#define MYOS_BOOT_MAX_REGIONS 64

/*
 * One entry of the memory map. Usable regions must start and end on 4 KiB
 * boundaries (MYOS_BOOT_EUNALIGNED); reserved ones may be anything. No two
 * regions may overlap (MYOS_BOOT_EOVERLAP). RAM at or above 4 GiB is
 * ignored (no PAE); RAM above the direct map (768 MiB by default) is used
 * through the kmap window.
 */
struct myos_mem_region {
    uint64_t start;  /* first physical byte */
    uint64_t length; /* bytes, > 0 */
    uint32_t type;   /* MYOS_MEM_USABLE or MYOS_MEM_RESERVED */
};

/* A console writer or panic hook: `len` bytes at `s` (not NUL-terminated). */
typedef void (*myos_write_fn)(const char *s, uint32_t len);

struct myos_boot {
    uint32_t version; /* MYOS_BOOT_VERSION */
    /*
     * The memory map: `map_len` entries at `map` (a kernel-virtual pointer).
     * NULL: read the multiboot (v1) information at physical address
     * `multiboot_info` instead — its memory map (flag bit 6), else its
     * mem_lower/mem_upper sizes (bit 0); firmware regions are trimmed to
     * whole pages, and the information itself, the map, the command line
     * and the modules (with their list and strings) are reserved.
     */
    const struct myos_mem_region *map;
    uint32_t map_len;
    uint32_t multiboot_info; /* physical address of the multiboot info (ebx at entry), or 0 */
    /*
     * The kernel image's physical range [start, end), .bss and the boot stack
     * included (the linker script's symbols). It must lie in usable RAM below
     * the end of the direct map; it is reserved (rounded out to pages).
     */
    uint32_t kernel_phys_start;
    uint32_t kernel_phys_end;
    /*
     * Console output for console_write/kprintf (<myos/console.h>) and the
     * library's messages. NULL: output is dropped. Called with interrupts as
     * the caller of the API left them; must not call back into this API.
     */
    myos_write_fn console_write;
    /*
     * Called once if the library hits a bug it cannot report through an
     * error code (a Rust panic), with a one-line message. Must not return
     * (print and halt). NULL: the message goes to console_write and the
     * CPU halts (cli; hlt).
     */
    myos_write_fn panic;
};

#if defined(__i386__) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
/* The library reads these with the i386 SysV layout (64-bit fields 4-aligned). */
_Static_assert(sizeof(struct myos_mem_region) == 20, "struct myos_mem_region layout");
_Static_assert(sizeof(struct myos_boot) == 32, "struct myos_boot layout");
#endif

/* myos_init's results. */
#define MYOS_BOOT_OK          0
#define MYOS_BOOT_ENULL       1  /* boot is NULL */
#define MYOS_BOOT_EVERSION    2  /* boot->version is not MYOS_BOOT_VERSION */
#define MYOS_BOOT_ENOMAP      3  /* map is NULL and no multiboot memory information (or it is unreadable) */
#define MYOS_BOOT_EEMPTY      4  /* map_len is 0, or the map has no usable RAM */
#define MYOS_BOOT_EREGION     5  /* a region of length 0, or one that wraps around */
#define MYOS_BOOT_EUNALIGNED  6  /* a usable region of the map is not page-aligned */
#define MYOS_BOOT_EOVERLAP    7  /* two regions of the map overlap */
#define MYOS_BOOT_ETOOBIG     8  /* more than MYOS_BOOT_MAX_REGIONS regions */
#define MYOS_BOOT_EKERNEL     9  /* kernel image range empty, outside usable RAM or beyond the direct map */
#define MYOS_BOOT_EALREADY   10  /* myos_init already ran */
#define MYOS_BOOT_ENOMEM     11  /* too little RAM to build the memory manager */
#define MYOS_BOOT_ECPU       12  /* paging is off, or the library does not run in the higher half */

/* Sets up the memory manager: 0 (MYOS_BOOT_OK) or a MYOS_BOOT_E* code. */
int myos_init(const struct myos_boot *boot);

/* A static description of a MYOS_BOOT_E* code. */
const char *myos_boot_strerror(int code);

/*
 * Services a page fault, for the kernel's ISR 14: read CR2 and pass it with
 * the error code the CPU pushed. Returns 0 when the fault is resolved
 * (return from the ISR: the access is retried), MM_EFAULT when no region
 * allows the access (a user fault: kill the process; a kernel fault: a
 * bug), MM_ENOMEM when no frame is free, MM_ENODEV before myos_init. The
 * same as myos_set_fault(cr2, err); page_fault_handler(); mm_errno().
 */
int myos_page_fault(uint32_t cr2, uint32_t error_code);

/*
 * myos_page_fault for a kernel that turned on SMEP or SMAP: cpu_flags is
 * MYOS_FAULT_SMEP | MYOS_FAULT_SMAP | MYOS_FAULT_AC (<myos/memory.h>) as
 * they were when the fault was taken, so a supervisor access the CPU
 * refused returns MM_EFAULT instead of 0 (which would retry it forever).
 * Unknown bits: MM_EINVAL.
 */
int myos_page_fault_ctx(uint32_t cr2, uint32_t error_code, uint32_t cpu_flags);

#ifdef __cplusplus
}
#endif

#endif /* MYOS_BOOT_H */
