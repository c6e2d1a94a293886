/*
 * myos/jamesm.h — the names of James Molloy's kernel tutorial (paging.h and
 * kheap.h of chapters 6-7) over the MyOS memory API, for a kernel that
 * followed the tutorial and switches to libmyos.a.
 *
 * How to switch: delete the tutorial's paging.c, kheap.c and
 * ordered_array.c; replace `#include "paging.h"` and `#include "kheap.h"`
 * with `#include <myos/jamesm.h>`; call myos_init (<myos/boot.h>) once at
 * boot, before any kmalloc (the tutorial's placement allocator, used before
 * initialise_paging, does not exist here: the heap exists from myos_init
 * on); in the tutorial's page_fault(registers_t regs), call
 * jamesm_page_fault(regs.err_code) and PANIC only when it returns nonzero.
 *
 * Differences that remain (the tutorial's own bugs or layout):
 *   - the kernel must run in the higher half (0xC0000000 + physical), see
 *     <myos/boot.h>; the tutorial's identity-mapped kernel must move;
 *   - page_directory_t and heap_t are opaque: code that reads
 *     dir->tablesPhysical or heap->start_address must use the API instead
 *     (get_page, get_physical_address, get_heap_stats);
 *   - heaps live in the heap window (0xF0000000..0xFF800000 by default), not
 *     at the tutorial's 0xC0000000: the kernel heap (kheap) is
 *     0xF0000000..0xF8000000, and create_heap may use
 *     JAMESM_CREATE_HEAP_START (0xF8000000) up to 0xFF800000;
 *   - kfree and free refuse bad pointers and double frees (mm_errno())
 *     instead of corrupting the heap.
 *
 * The tutorial's integer types (common.h) are defined unless common.h was
 * included first (its guard COMMON_H) or MYOS_NO_JAMESM_TYPES is defined.
 * Define MYOS_JAMESM_NO_ALLOC_FREE to leave the names alloc and free alone.
 */
#ifndef MYOS_JAMESM_H
#define MYOS_JAMESM_H

#include "boot.h"
#include "memory.h"

#if !defined(COMMON_H) && !defined(MYOS_NO_JAMESM_TYPES)
typedef unsigned int u32int;
typedef int s32int;
typedef unsigned short u16int;
typedef short s16int;
typedef unsigned char u8int;
typedef char s8int;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* kheap.h's constants, moved to this library's heap window (the default
 * layout; a library built with MYOS_HEAP_START / MYOS_HEAP_END defines them
 * to match before including this header). */
#ifndef KHEAP_START
#define KHEAP_START 0xF0000000u
#endif
#ifndef KHEAP_INITIAL_SIZE
#define KHEAP_INITIAL_SIZE 0x10000u
#endif
#ifndef JAMESM_CREATE_HEAP_START
#define JAMESM_CREATE_HEAP_START 0xF8000000u
#endif

/* The kernel heap, created by myos_init (the tutorial's `heap_t *kheap`). */
#define kheap (myos_kheap())

/*
 * paging.c's initialise_paging: the frame allocator, the kernel directory
 * and the heap already exist after myos_init; this makes sure the kernel
 * directory is loaded and the kernel heap exists (both no-ops then).
 */
static inline void initialise_paging(void) {
    init_paging();
    init_kheap();
}

/*
 * For the tutorial's page_fault(registers_t regs): services the fault at
 * CR2 with the error code the CPU pushed. 0: resolved, return from the
 * interrupt; otherwise the MM_E* code (MM_EFAULT: a real fault, PANIC).
 */
static inline int jamesm_page_fault(u32int err_code) {
    u32int cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    return myos_page_fault(cr2, err_code);
}

/*
 * kmalloc returns u32int in the tutorial and void * in the spec: the macro
 * calls the spec's function (the parenthesised name is not expanded again)
 * and converts.
 */
#define kmalloc(sz) ((u32int)(uintptr_t)(kmalloc)(sz))

/* kmalloc_int: page-aligned when `align`, the physical address in *phys. */
static inline u32int kmalloc_int(u32int sz, int align, u32int *phys) {
    void *p;
    if (phys)
        p = align ? kmalloc_aligned_physical(sz, phys) : kmalloc_physical(sz, phys);
    else
        p = align ? kmalloc_aligned(sz) : (kmalloc)(sz);
    return (u32int)(uintptr_t)p;
}

/* Page aligned. */
static inline u32int kmalloc_a(u32int sz) {
    return kmalloc_int(sz, 1, 0);
}

/* With the physical address (physically contiguous). */
static inline u32int kmalloc_p(u32int sz, u32int *phys) {
    return kmalloc_int(sz, 0, phys);
}

/* Page aligned, with the physical address. */
static inline u32int kmalloc_ap(u32int sz, u32int *phys) {
    return kmalloc_int(sz, 1, phys);
}

#ifndef MYOS_JAMESM_NO_ALLOC_FREE
/* kheap.c's alloc / free on a heap from create_heap (or kheap). */
static inline void *alloc(u32int size, u8int page_align, heap_t *heap) {
    return myos_heap_alloc(heap, size, page_align);
}

static inline void free(void *p, heap_t *heap) {
    (void)myos_heap_free(heap, p);
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* MYOS_JAMESM_H */
