/*
 * myos/memory.h — the MyOS Memory Management API (spec/memory-api.md), in C.
 *
 * Every type, prototype and constant of the spec, with exactly its names,
 * signatures and values, plus what a C caller needs beyond it (marked
 * "extension"). The implementation is the Rust crate `myos-capi`, a thin
 * layer over the memory-manager core (`myos-mm`):
 *
 *   - in the kernel it is linked into the reference kernel (i686), which
 *     registers its platform at boot; the functions carry the spec's names;
 *   - in another C kernel it is the static library libmyos.a
 *     (crates/libmyos), set up with one call, myos_init (<myos/boot.h>);
 *   - on the host it is the static library `libmyos_capi.a` over a simulated
 *     i386 (see <myos/sim.h>); compile with -DMYOS_HOSTED, which renames
 *     `mmap`/`munmap` (they would clash with the C library's) to
 *     `myos_mmap`/`myos_munmap` through the macros below, so C sources stay
 *     unchanged.
 *
 * Errors: every function of this header records the outcome of the call in
 * mm_errno(): 0 on success, an MM_E* code on failure (unlike errno, a
 * successful call resets it). Functions returning a pointer return NULL on
 * failure; mmap returns NULL (not MAP_FAILED), as the spec says; munmap
 * returns -1. No call crashes on bad arguments it can detect (NULL pointers,
 * unknown heap or directory handles, misaligned or out-of-range addresses).
 *
 * Not thread-safe beyond what the core's locks give: every call is atomic
 * with respect to the others, and mm_errno() is one value for the whole
 * system (a single-CPU kernel).
 */
#ifndef MYOS_MEMORY_H
#define MYOS_MEMORY_H

/* <stdint.h>, or the compiler's own types under -nostdinc. */
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef MYOS_HOSTED
/* The host build: the C library owns these names. */
#define mmap myos_mmap
#define munmap myos_munmap
#endif

/* ------------------------------------------------------------------ */
/* Types                                                               */
/* ------------------------------------------------------------------ */

/*
 * One i386 page-table entry, as the MMU reads it.
 *
 * The spec names the fields present, rw, user, accessed, dirty, unused and
 * frame, in that order. The layout the spec descends from packs them
 * `present:1, rw:1, user:1, accessed:1, dirty:1, unused:7, frame:20`, which
 * puts `accessed` and `dirty` at bits 3 and 4 — bits the MMU reads as PWT
 * (write-through) and PCD (cache disable), while it sets A and D at bits 5
 * and 6. Here every spec field sits at the bit the hardware uses, and bits 3
 * and 4 get their hardware names; `unused` covers bits 7..11 (PAT/PS, G and
 * the three OS bits, all left zero by this API). This is bit for bit the
 * Rust `PageTableEntry` (crates/core/src/paging/entry.rs); tests/c/layout.c
 * checks each field against the Rust side. GCC and Clang allocate bit-fields
 * from the least significant bit on x86, so the order below is bit 0 first.
 */
typedef struct page {
    uint32_t present : 1;  /* bit 0  P: the entry maps a frame */
    uint32_t rw : 1;       /* bit 1  R/W: writable */
    uint32_t user : 1;     /* bit 2  U/S: ring 3 may access */
    uint32_t pwt : 1;      /* bit 3  PWT: write-through caching */
    uint32_t pcd : 1;      /* bit 4  PCD: caching disabled */
    uint32_t accessed : 1; /* bit 5  A: set by the MMU on any access */
    uint32_t dirty : 1;    /* bit 6  D: set by the MMU on a write */
    uint32_t unused : 5;   /* bits 7..11: PAT, G, OS bits (zero here) */
    uint32_t frame : 20;   /* bits 12..31: frame number (physical address >> 12) */
} page_t;

/* A page table: 1024 entries, one 4 KiB frame, mapping 4 MiB. */
typedef struct page_table {
    page_t pages[1024];
} page_table_t;

/*
 * A page directory (an address space). Opaque: C code holds pointers that
 * this API hands out (kernel_directory, current_directory) and passes them
 * back; any other pointer is refused with MM_EINVAL.
 */
typedef struct page_directory page_directory_t;

/*
 * A heap created by create_heap (or the kernel heap, myos_kheap()). Opaque:
 * allocate from it with myos_heap_alloc (extension; the spec's kmalloc
 * family always uses the kernel heap).
 */
typedef struct heap heap_t;

/* ------------------------------------------------------------------ */
/* Constants                                                           */
/* ------------------------------------------------------------------ */

/* Protection flags (mmap's prot).
 * PROT_EXEC is recorded (and reported) but cannot be enforced in classic
 * paging: classic i386 paging (no PAE, so no NX bit) makes every readable
 * page executable, and a page mapped PROT_READ alone can be executed too --
 * as on Linux i386 without PAE. In PAE mode (extension, see "PAE paging")
 * a page without PROT_EXEC gets NX. PROT_WRITE implies readable (x86 has no
 * write-only pages). */
#define PROT_NONE  0x0
#define PROT_READ  0x1
#define PROT_WRITE 0x2
#define PROT_EXEC  0x4

/* Mapping flags (mmap's flags). */
#define MAP_SHARED    0x01
#define MAP_PRIVATE   0x02
#define MAP_FIXED     0x10
#define MAP_ANONYMOUS 0x20

/* Page-fault error code bits (the i386 error code).
 * ERR_FETCH (the I/D bit) is set by the CPU only when CR4.SMEP is on (or
 * with PAE and EFER.NXE: the PAE mode, an extension, see "PAE paging"): with
 * classic paging and no SMEP a faulting instruction fetch reports as a read.
 * A supervisor fault with ERR_FETCH on a user address is a kernel bug (ring
 * 0 ran user code), and so is a supervisor read fault on a present user
 * page (only SMAP, with EFLAGS.AC clear, makes one): page_fault_handler
 * reports both as unresolved instead of retrying them. */
#define ERR_PRESENT   0x1
#define ERR_WRITE     0x2
#define ERR_USER      0x4
#define ERR_RESERVED  0x8
#define ERR_FETCH     0x10

/* Extension: the page size. */
#ifndef PAGE_SIZE
#define PAGE_SIZE 0x1000
#endif

/* Extension: get_physical_address's result for an unmapped address. */
#define MM_PHYS_NONE 0xFFFFFFFFu

/* Extension: mm_errno() values (Linux i386 errno numbers). */
#define MM_EOK       0  /* success */
#define MM_EPERM     1  /* the address is in a fixed kernel mapping (the direct map) */
#define MM_EBADF     9  /* fd names no open file */
#define MM_ENOMEM   12  /* out of frames, heap at its max, no free address range */
#define MM_EACCES   13  /* the file's open mode forbids the mapping */
#define MM_EFAULT   14  /* heap metadata corrupted; unresolvable page fault */
#define MM_EEXIST   17  /* already mapped / heap range overlaps another heap */
#define MM_ENODEV   19  /* the memory manager is not set up (no platform registered) */
#define MM_EINVAL   22  /* bad argument: NULL, misaligned, out of range, bad pointer, double free */
#define MM_EOVERFLOW 75 /* a frame's reference count would overflow; (PAE) a physical
                           address above 4 GiB asked for as 32 bits */
#define MM_EOPNOTSUPP 95 /* the call belongs to the other paging mode (see "PAE paging") */

/* ------------------------------------------------------------------ */
/* Virtual memory: page directories                                    */
/* ------------------------------------------------------------------ */

/*
 * The kernel's page directory (the kernel address space: its upper quarter,
 * 0xC0000000 up, is shared by every directory) and the directory loaded in
 * CR3. Both are set up by init_paging (or by the kernel before C code runs);
 * NULL before. Read them; change the current one with switch_page_directory.
 */
extern page_directory_t *kernel_directory;
extern page_directory_t *current_directory;

/*
 * Builds the kernel page directory (the direct map of RAM, the heap and kmap
 * page tables) if the platform has not done so, and loads it unless a
 * directory is already current. Calling it again does nothing.
 */
void init_paging(void);

/* Loads `dir` into CR3 and makes it current_directory. NULL or an unknown
 * pointer: nothing changes, mm_errno() == MM_EINVAL. */
void switch_page_directory(page_directory_t *dir);

/*
 * The entry mapping `address` in `dir`.
 *   - make == 0: NULL (mm_errno() == MM_EINVAL) when no page table covers
 *     the address; otherwise a pointer to the entry, present or not.
 *   - make != 0: creates the page table if needed (NULL and MM_ENOMEM when
 *     no frame is free).
 * Addresses in the direct map (0xC0000000..0xEFFFFFFF, mapped with 4 MiB
 * pages) give NULL and MM_EPERM; the top 4 MiB give NULL and MM_EINVAL.
 * The pointer stays valid until the table is freed: unmap_page of the last
 * mapping in a user page table frees the table (alloc_frame and free_frame
 * never do). Writing the entry directly is allowed (it is a real entry);
 * prefer alloc_frame / map_page, which keep frame reference counts right.
 */
page_t *get_page(uint32_t address, int make, page_directory_t *dir);

/* ------------------------------------------------------------------ */
/* Physical frames                                                     */
/* ------------------------------------------------------------------ */

/*
 * Backs `page` with a fresh frame: present, rw = is_writeable != 0,
 * user = is_kernel == 0 (the spec's example passes is_kernel = 0 for
 * "user mode"). A page that is already present is left as it is (success).
 * NULL page: MM_EINVAL. No free frame: MM_ENOMEM, the entry unchanged.
 */
void alloc_frame(page_t *page, int is_kernel, int is_writeable);

/*
 * Releases the frame of a present `page` (its reference: the frame returns
 * to the allocator when no other mapping shares it) and clears the entry,
 * with the TLB flush when the entry belongs to a known directory. A page
 * that is not present is left as it is (success). NULL page: MM_EINVAL.
 */
void free_frame(page_t *page);

/* ------------------------------------------------------------------ */
/* Mapping (in current_directory)                                      */
/* ------------------------------------------------------------------ */

/*
 * Maps the page containing `virtual_addr` to the frame containing
 * `physical_addr` in current_directory: user = is_kernel == 0,
 * rw = is_writeable != 0. An existing mapping is replaced (mapping a page to
 * the frame it already has, as the spec's first example does, just updates
 * the flags). The new mapping takes a reference to its frame (a free frame
 * is claimed, an allocated one shared); the replaced one's reference is
 * released. Frames outside the allocator's RAM (device memory) are mapped
 * without a reference. Errors: MM_EPERM in the direct map, MM_EINVAL in the
 * top 4 MiB, MM_ENOMEM without a frame for a page table.
 */
void map_page(uint32_t virtual_addr, uint32_t physical_addr, int is_kernel, int is_writeable);

/*
 * Unmaps the page containing `virtual_addr` from current_directory and
 * releases its frame reference; a user page table left empty is freed.
 * Not mapped: MM_EINVAL, nothing changes.
 */
void unmap_page(uint32_t virtual_addr);

/*
 * The physical address `virtual_addr` translates to in current_directory
 * (4 MiB direct-map pages included), or MM_PHYS_NONE (0xFFFFFFFF) with
 * mm_errno() == MM_EINVAL when it is not mapped. (0 is a valid result:
 * physical frame 0 is ordinary RAM.)
 */
uint32_t get_physical_address(uint32_t virtual_addr);

/* ------------------------------------------------------------------ */
/* Heaps                                                               */
/* ------------------------------------------------------------------ */

/*
 * Creates the kernel heap (used by the kmalloc family) if the platform has
 * not registered one: supervisor-only, writable, at 0xF0000000, 1 MiB
 * mapped at first, growing on demand up to 128 MiB (0xF8000000). Calling it
 * again does nothing. The kmalloc family calls it on first use.
 */
void init_kheap(void);

/*
 * A heap over the addresses [start, max): [start, end) is mapped now, the
 * rest on demand. `max` is an address (the heap's exclusive bound), as in
 * the design the spec comes from. start, end and max must be page-aligned
 * (MM_EINVAL) with 0 < start < end <= max (MM_EINVAL), inside the kernel
 * heap window 0xF0000000..0xFF800000 (MM_EINVAL), whose page tables every
 * directory shares, so a heap is usable whatever directory is loaded; and
 * [start, max) must not overlap another heap, the kernel heap included
 * (MM_EEXIST). Beside the kernel heap that init_kheap creates,
 * 0xF8000000..0xFF800000 is free for such heaps (a kernel that registers its
 * own heap may use the whole window). supervisor != 0: ring 0 only; readonly != 0: mapped
 * read-only (the heap writes its own headers, so this only works while
 * supervisor writes ignore R/W). NULL on failure.
 */
heap_t *create_heap(uint32_t start, uint32_t end, uint32_t max, uint8_t supervisor,
                    uint8_t readonly);

/*
 * kmalloc: `size` bytes, 8-byte aligned, from the kernel heap. kmalloc(0)
 * returns a unique minimum-size block (free it like any other), as
 * glibc's malloc(0) does. NULL with MM_ENOMEM when the heap cannot grow
 * enough (its max, or no free frames); MM_EINVAL for sizes that overflow.
 */
void *kmalloc(uint32_t size);

/* As kmalloc, on a page (4096-byte) boundary. */
void *kmalloc_aligned(uint32_t size);

/*
 * As kmalloc, with physically contiguous memory (for DMA): the physical
 * address of the first byte is stored in *physical (when physical is not
 * NULL), and byte i of the block is at physical address *physical + i.
 */
void *kmalloc_physical(uint32_t size, uint32_t *physical);

/* kmalloc_physical on a page boundary. */
void *kmalloc_aligned_physical(uint32_t size, uint32_t *physical);

/*
 * Frees a block of the kernel heap. kfree(NULL) does nothing (success). A
 * pointer the heap did not return (or an interior one), a block already
 * freed, or damaged heap metadata is refused: nothing changes, mm_errno()
 * is MM_EINVAL (bad pointer, double free) or MM_EFAULT (corruption).
 */
void kfree(void *ptr);

/*
 * Kernel-heap statistics, in bytes. The heap is its mapped pages:
 * get_free_memory() + get_used_memory() == the mapped heap size. Free bytes
 * are the free blocks' sizes, headers included; used bytes are everything
 * else (allocated blocks with their 8-byte headers, and an 8-byte end
 * marker). 0 before the heap exists.
 */
uint32_t get_free_memory(void);
uint32_t get_used_memory(void);

/*
 * Blocks of the kernel heap (allocated and free), free blocks, and the size
 * of the largest free block, header included (a request of up to
 * largest_free - 8 bytes fits without growing). NULL pointers are skipped.
 */
void get_heap_stats(uint32_t *total_blocks, uint32_t *free_blocks, uint32_t *largest_free);

/* ------------------------------------------------------------------ */
/* Memory mapping (the current process)                                */
/* ------------------------------------------------------------------ */

/*
 * Maps `length` bytes (rounded up to pages) in the current process's user
 * space (0x00400000..0xBFFFFFFF), lazily: pages come in on first touch
 * (demand-zero for anonymous memory), through the page-fault handler.
 * `addr` is a hint (NULL: none) or, with MAP_FIXED, the exact page-aligned
 * address (what was there is replaced). Exactly one of MAP_SHARED and
 * MAP_PRIVATE; MAP_ANONYMOUS needs fd == -1 and offset 0; otherwise fd names
 * an open file and offset is page-aligned. Returns NULL on failure:
 * MM_EINVAL (length 0, bad flags, unaligned MAP_FIXED address or offset,
 * range outside user space), MM_EBADF, MM_EACCES, MM_ENOMEM.
 */
void *mmap(void *addr, uint32_t length, int prot, int flags, int fd, uint32_t offset);

/*
 * Unmaps the pages of [addr, addr + length) (parts of regions included;
 * unmapped pages in the range are fine). 0 on success; -1 with MM_EINVAL
 * for an unaligned addr, length 0 or a range outside user space.
 */
int munmap(void *addr, uint32_t length);

/* ------------------------------------------------------------------ */
/* Page faults                                                         */
/* ------------------------------------------------------------------ */

/*
 * Services the pending page fault: the address (CR2) and error code the
 * trap entry recorded with myos_set_fault. Demand-zero and file pages,
 * copy-on-write and stack growth are resolved (mm_errno() == 0); a fault
 * that no region allows leaves mm_errno() == MM_EFAULT (the caller raises
 * SIGSEGV or reports a kernel bug); MM_ENOMEM when no frame was free. No
 * pending fault: MM_EINVAL. (The kernel's and the host library's own fault
 * paths call the same handler directly; this entry point is for C code that
 * dispatches faults itself. libmyos.a also offers the one-call
 * myos_page_fault(cr2, error_code) in <myos/boot.h>.)
 */
void page_fault_handler(void);

/* ------------------------------------------------------------------ */
/* Extensions                                                          */
/* ------------------------------------------------------------------ */

/* The outcome of the last call of this API: 0 or an MM_E* code. */
int mm_errno(void);

/* A short description of an MM_E* code ("success" for 0). */
const char *mm_strerror(int code);

/* Records a page fault for page_fault_handler (CR2 and the error code). */
void myos_set_fault(uint32_t address, uint32_t error_code);

/*
 * The same for a kernel that turned on SMEP or SMAP (CR4 bits 20 and 21):
 * cpu_flags says which, and whether EFLAGS.AC of the interrupted code was
 * set (bit 18 of the EFLAGS the CPU pushed). With it, a supervisor fetch
 * from a user page under SMEP, or a supervisor data access to a user page
 * under SMAP with AC clear, leaves mm_errno() == MM_EFAULT (a kernel bug)
 * instead of being taken for a stale TLB entry (resolved, and the access
 * faults again forever). Without it (myos_set_fault), SMEP/SMAP are assumed
 * off. Unknown bits in cpu_flags: MM_EINVAL, nothing recorded.
 */
#define MYOS_FAULT_SMEP 0x1
#define MYOS_FAULT_SMAP 0x2
#define MYOS_FAULT_AC   0x4
void myos_set_fault_ctx(uint32_t address, uint32_t error_code, uint32_t cpu_flags);

/*
 * In-memory files, so C code can map files (mmap's fd and offset): a file
 * holding `len` bytes of `data`, opened with MYOS_O_RDONLY, MYOS_O_WRONLY or
 * MYOS_O_RDWR in the current process's descriptor table. Returns the
 * descriptor, or -1 (MM_EINVAL). Writes through MAP_SHARED mappings reach
 * the file when the region is unmapped (the file never grows); read it back
 * with myos_file_read (bytes read, or -1 with MM_EBADF). myos_file_close
 * closes a descriptor (mappings of the file stay valid): 0 or -1.
 */
#define MYOS_O_RDONLY 0
#define MYOS_O_WRONLY 1
#define MYOS_O_RDWR   2
int myos_file_create(const void *data, uint32_t len, int mode);
int myos_file_read(int fd, uint32_t offset, void *buf, uint32_t len);
int myos_file_close(int fd);

/* Free physical frames now (for leak checks). */
uint32_t myos_frames_free(void);

/* The kernel heap as a heap_t (NULL before init_kheap). */
heap_t *myos_kheap(void);

/* `size` bytes from `heap` (page-aligned when page_align != 0); NULL on failure. */
void *myos_heap_alloc(heap_t *heap, uint32_t size, int page_align);

/* Frees a block of `heap`: 0, or -1 (MM_EINVAL / MM_EFAULT) as kfree refuses. */
int myos_heap_free(heap_t *heap, void *ptr);

/* Unmaps a heap made by create_heap (every block dies with it): 0 or -1. */
int myos_heap_destroy(heap_t *heap);

/*
 * For layout tests: the raw 32-bit entry the Rust side (`PageTableEntry`)
 * builds with one page_t field set to `value` and the others zero. `field`
 * is "present", "rw", "user", "pwt", "pcd", "accessed", "dirty", "unused"
 * or "frame"; an unknown name (or NULL) gives 0xFFFFFFFF.
 */
uint32_t myos_pte_raw(const char *field, uint32_t value);

/* ------------------------------------------------------------------ */
/* Extension: PAE paging (64-bit entries)                              */
/* ------------------------------------------------------------------ */

/*
 * Beyond the spec, which knows only classic two-level i386 paging. A kernel
 * may run the memory manager in PAE paging instead (docs/pae.md): 64-bit
 * entries with a no-execute bit, three levels (a 4-entry PDPT, then page
 * directories and page tables of 512 entries), frames up to 64 GiB. There
 * a page_t * would point into a table whose entries are not page_t, so:
 *
 *   - get_page, alloc_frame and free_frame (the page_t calls) do nothing
 *     under PAE: NULL / no change, mm_errno() == MM_EOPNOTSUPP. Use
 *     get_page64, alloc_frame64 and free_frame64 and page64_t. Under
 *     classic paging those three refuse the same way, with MM_EOPNOTSUPP.
 *   - Everything else works in both modes unchanged (directories, map_page,
 *     unmap_page, the heaps, mmap and the fault handler). In PAE mode mmap
 *     sets NX on every page of a region without PROT_EXEC, and an
 *     instruction fetch from one is a fault no region allows (MM_EFAULT).
 *     map_page maps executable pages, as in classic mode.
 *   - Frames may lie above 4 GiB: get_physical_address gives MM_PHYS_NONE
 *     with MM_EOVERFLOW for them (get_physical_address64 gives the address),
 *     and kmalloc_physical / kmalloc_aligned_physical fail with MM_EOVERFLOW
 *     (nothing allocated) when the block they found lies above 4 GiB.
 *
 * The C program asks which mode runs with myos_paging_mode().
 */
#define MYOS_PAGING_CLASSIC 1 /* two-level paging, page_t (the spec's) */
#define MYOS_PAGING_PAE     2 /* PAE paging, page64_t */

/* MYOS_PAGING_CLASSIC or MYOS_PAGING_PAE; 0 (MM_ENODEV) before set-up. */
int myos_paging_mode(void);

/*
 * One PAE page-table entry, as the MMU reads it: the flag bits 0..11 at the
 * same places as in page_t, the frame number (physical address >> 12) in
 * bits 12..35 (24 bits: frames below 64 GiB), bits 36..62 zero (the memory
 * manager writes no frame above 64 GiB; a CPU with fewer physical-address
 * bits faults on the ones it lacks), and nx, bit 63: instruction fetches
 * through the entry fault (EFER.NXE, which a PAE kernel turns on). `raw` is
 * the whole 64-bit entry. This is bit for bit the Rust `PaeEntry`
 * (crates/core/src/paging/entry.rs); tests/c/layout.c checks each field
 * against the Rust side (myos_pte64_raw).
 *
 * A 32-bit CPU writes the entry as two 32-bit halves while the MMU reads it
 * at once: C code that writes a present entry by hand must write the high
 * half first and the low half (with present) last, and clear present first
 * when changing a present entry's high half. Prefer alloc_frame64 /
 * free_frame64 / map_page64, which do.
 */
typedef union page64 {
    struct {
        uint64_t present : 1;   /* bit 0  P */
        uint64_t rw : 1;        /* bit 1  R/W */
        uint64_t user : 1;      /* bit 2  U/S */
        uint64_t pwt : 1;       /* bit 3  PWT */
        uint64_t pcd : 1;       /* bit 4  PCD */
        uint64_t accessed : 1;  /* bit 5  A */
        uint64_t dirty : 1;     /* bit 6  D */
        uint64_t unused : 5;    /* bits 7..11: PAT, G, OS bits (zero here) */
        uint64_t frame : 24;    /* bits 12..35: frame number */
        uint64_t reserved : 27; /* bits 36..62: zero */
        uint64_t nx : 1;        /* bit 63  XD: no instruction fetch */
    };
    uint64_t raw;
} page64_t;

/* A PAE page table: 512 entries, one 4 KiB frame, mapping 2 MiB. */
typedef struct page_table64 {
    page64_t pages[512];
} page_table64_t;

/*
 * get_page for PAE paging: the entry mapping `address` in `dir`, with the
 * same rules (make, NULL and MM_EINVAL without a table, MM_ENOMEM, MM_EPERM
 * in the direct map, MM_EINVAL in the top 4 MiB). Consecutive pages of a
 * 2 MiB-aligned range have consecutive entries. Classic mode: NULL,
 * MM_EOPNOTSUPP.
 */
page64_t *get_page64(uint32_t address, int make, page_directory_t *dir);

/*
 * alloc_frame for PAE entries: backs a not-present `page` with a fresh
 * frame (which may lie above 4 GiB), present, rw = is_writeable != 0,
 * user = is_kernel == 0, nx = no_exec != 0. A present page is left as it is
 * (success). NULL: MM_EINVAL; no free frame: MM_ENOMEM. Classic mode:
 * MM_EOPNOTSUPP, the entry unchanged.
 */
void alloc_frame64(page64_t *page, int is_kernel, int is_writeable, int no_exec);

/*
 * free_frame for PAE entries: releases the frame of a present `page` and
 * clears the entry (TLB flushed). Not present: nothing (success). NULL:
 * MM_EINVAL. Classic mode: MM_EOPNOTSUPP, the entry unchanged.
 */
void free_frame64(page64_t *page);

/*
 * map_page with a 64-bit physical address, in either mode: frames above
 * 4 GiB under PAE. Classic mode refuses a frame at or above 4 GiB, both
 * modes one at or above 64 GiB: MM_EINVAL, nothing mapped.
 */
void map_page64(uint32_t virtual_addr, uint64_t physical_addr, int is_kernel, int is_writeable);

/* get_physical_address with a 64-bit result, in either mode; MM_PHYS64_NONE
 * (and MM_EINVAL) when unmapped. */
uint64_t get_physical_address64(uint32_t virtual_addr);
#define MM_PHYS64_NONE 0xFFFFFFFFFFFFFFFFull

/*
 * For layout tests: the raw entry the Rust side (`PaeEntry`) builds with
 * one page64_t field set to `value` and the others zero. `field` is one of
 * page_t's names, or "nx"; an unknown name (or NULL) gives all ones.
 */
uint64_t myos_pte64_raw(const char *field, uint64_t value);

#ifdef __cplusplus
}
#endif

#endif /* MYOS_MEMORY_H */
