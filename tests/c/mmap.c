/*
 * mmap / munmap / page_fault_handler in the C process: lazy anonymous
 * memory that demand-pages on first touch, MAP_FIXED, and every failure.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"

#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static int all_zero(const unsigned char *p, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

TEST_MAIN {
    /* 3 GiB of RAM: user pages come from high memory (above the 768 MiB
     * direct map) first. */
    BOOT(3u << 30);
    uint32_t baseline = myos_frames_free();

    /* A lazy anonymous mapping. */
    unsigned char *m = mmap(NULL, 3 * 4096, RW, ANON, -1, 0);
    uintptr_t a = (uintptr_t)m;
    CHECK(m != NULL && mm_errno() == 0, "mmap");
    CHECK((a & 0xFFF) == 0 && a >= 0x00400000u && a + 3 * 4096 <= 0xC0000000u,
          "page-aligned, in user space: %#lx", (unsigned long)a);
    CHECK(get_physical_address((uint32_t)a) == MM_PHYS_NONE, "nothing is mapped before the first touch");
    CHECK(myos_frames_free() == baseline, "no frame taken yet");
    CHECK(all_zero(m, 3 * 4096), "demand-zero pages read as zeros");
    CHECK(get_physical_address((uint32_t)a) != MM_PHYS_NONE, "the first touch mapped the page");
    memset(m, 0x77, 3 * 4096);
    CHECK(m[0] == 0x77 && m[3 * 4096 - 1] == 0x77, "writable");
    /* A ring-0 write fault on that present, writable user page: without
     * the CPU's protections it can only be a stale TLB entry (resolved);
     * under SMAP with AC clear it is a kernel bug, never retried. */
    myos_set_fault((uint32_t)a, ERR_PRESENT | ERR_WRITE);
    page_fault_handler();
    CHECK(mm_errno() == 0, "no SMAP: a stale TLB entry, resolved");
    myos_set_fault_ctx((uint32_t)a, ERR_PRESENT | ERR_WRITE, MYOS_FAULT_SMAP);
    page_fault_handler();
    CHECK(mm_errno() == MM_EFAULT, "SMAP, AC clear: refused (%d)", mm_errno());
    myos_set_fault_ctx((uint32_t)a, ERR_PRESENT | ERR_WRITE, MYOS_FAULT_SMAP | MYOS_FAULT_AC);
    page_fault_handler();
    CHECK(mm_errno() == 0, "SMAP inside stac/clac: allowed, a stale TLB entry");
    myos_set_fault_ctx((uint32_t)a, ERR_PRESENT | ERR_FETCH, MYOS_FAULT_SMEP);
    page_fault_handler();
    CHECK(mm_errno() == MM_EFAULT, "SMEP: a ring-0 fetch from a user page is refused");
    myos_set_fault_ctx((uint32_t)a, ERR_PRESENT | ERR_WRITE, 0x80);
    CHECK(mm_errno() == MM_EINVAL, "unknown cpu flags");
    /* The page is the simulated frame: map it by its physical address in
     * the kernel directory and read it there. */
    uint32_t phys = get_physical_address((uint32_t)a + 4096);
    page_directory_t *proc = current_directory;
    switch_page_directory(kernel_directory);
    map_page(0x3F000000u, phys, 1, 0);
    CHECK(mm_errno() == 0 && get_physical_address(0x3F000000u) == phys, "a second mapping of %#x", phys);
    CHECK(*(volatile unsigned char *)(uintptr_t)0x3F000000u == 0x77,
          "the bytes are in the frame the page table names");
    unmap_page(0x3F000000u);
    switch_page_directory(proc);
    CHECK(mm_errno() == 0 && ((volatile unsigned char *)m)[4096] == 0x77, "back in the process");
    if (phys < 0x30000000u)
        CHECK(*(volatile unsigned char *)(uintptr_t)(0xC0000000u + phys) == 0x77,
              "and through the direct map");
    CHECK(munmap(m, 3 * 4096) == 0 && mm_errno() == 0, "munmap");
    CHECK(get_physical_address((uint32_t)a) == MM_PHYS_NONE, "unmapped");
    CHECK(myos_frames_free() == baseline, "every frame back (page tables too): %d",
          (int)(baseline - myos_frames_free()));

    /* A hint is taken when free; MAP_FIXED places exactly. */
    void *want = (void *)(uintptr_t)0x10000000u;
    void *h = mmap(want, 4096, RW, ANON, -1, 0);
    CHECK(h == want, "hint honoured: %p", h);
    void *f = mmap(want, 8192, PROT_READ, ANON | MAP_FIXED, -1, 0);
    CHECK(f == want, "MAP_FIXED over it: %p", f);
    CHECK(all_zero(f, 8192), "read-only anonymous memory reads as zeros");
    CHECK(munmap(f, 8192) == 0, "munmap");

    /* Shared anonymous memory. */
    unsigned char *s = mmap(NULL, 4096, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(s != NULL, "MAP_SHARED | MAP_ANONYMOUS");
    s[100] = 42;
    CHECK(s[100] == 42 && munmap(s, 4096) == 0, "usable and unmappable");

    /* Partial munmap splits the region. */
    unsigned char *p = mmap(NULL, 4 * 4096, RW, ANON, -1, 0);
    memset(p, 1, 4 * 4096);
    CHECK(munmap(p + 4096, 2 * 4096) == 0, "munmap of the middle");
    CHECK(p[0] == 1 && p[3 * 4096] == 1, "the ends stay");
    CHECK(get_physical_address((uint32_t)(uintptr_t)(p + 4096)) == MM_PHYS_NONE, "the middle is gone");
    CHECK(munmap(p, 4 * 4096) == 0, "munmap over holes is fine");

    /* mmap failures: NULL and the reason. */
    CHECK(mmap(NULL, 0, RW, ANON, -1, 0) == NULL && mm_errno() == MM_EINVAL, "length 0");
    CHECK(mmap(NULL, 4096, RW, MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == NULL &&
              mm_errno() == MM_EINVAL,
          "both MAP_SHARED and MAP_PRIVATE");
    CHECK(mmap(NULL, 4096, RW, MAP_ANONYMOUS, -1, 0) == NULL && mm_errno() == MM_EINVAL,
          "neither MAP_SHARED nor MAP_PRIVATE");
    CHECK(mmap((void *)(uintptr_t)0x10000123u, 4096, RW, ANON | MAP_FIXED, -1, 0) == NULL &&
              mm_errno() == MM_EINVAL,
          "MAP_FIXED at an unaligned address");
    CHECK(mmap(NULL, 4096, RW, ANON | MAP_FIXED, -1, 0) == NULL && mm_errno() == MM_EINVAL,
          "MAP_FIXED at NULL");
    CHECK(mmap((void *)(uintptr_t)0xC0000000u, 4096, RW, ANON | MAP_FIXED, -1, 0) == NULL &&
              mm_errno() == MM_EINVAL,
          "MAP_FIXED in the kernel half");
    CHECK(mmap(NULL, 4096, RW, MAP_PRIVATE, 42, 0) == NULL && mm_errno() == MM_EBADF, "bad fd");
    CHECK(mmap(NULL, 4096, RW, MAP_PRIVATE, -1, 0) == NULL && mm_errno() == MM_EBADF,
          "a file mapping with fd -1");
    CHECK(mmap(NULL, 4096, RW, ANON, 3, 0) == NULL && mm_errno() == MM_EINVAL,
          "MAP_ANONYMOUS with an fd");
    CHECK(mmap(NULL, 4096, RW, ANON, -1, 4096) == NULL && mm_errno() == MM_EINVAL,
          "MAP_ANONYMOUS with an offset");
    CHECK(mmap(NULL, 4096, 0x80, ANON, -1, 0) == NULL && mm_errno() == MM_EINVAL, "unknown prot bits");
    CHECK(mmap(NULL, 4096, RW, ANON | 0x4000, -1, 0) == NULL && mm_errno() == MM_EINVAL,
          "unknown flags");
    CHECK(mmap(NULL, 0xF0000000u, RW, ANON, -1, 0) == NULL && mm_errno() == MM_ENOMEM,
          "larger than user space");

    /* munmap failures: -1 and the reason. */
    CHECK(munmap((void *)(uintptr_t)0x10000123u, 4096) == -1 && mm_errno() == MM_EINVAL,
          "munmap at an unaligned address");
    CHECK(munmap((void *)(uintptr_t)0x10000000u, 0) == -1 && mm_errno() == MM_EINVAL, "munmap of 0 bytes");
    CHECK(munmap((void *)(uintptr_t)0xBFFFF000u, 8192) == -1 && mm_errno() == MM_EINVAL,
          "munmap past user space");
    CHECK(munmap((void *)(uintptr_t)0x20000000u, 4096) == 0, "munmap of nothing mapped succeeds");

    /* page_fault_handler: the fault recorded with myos_set_fault. */
    page_fault_handler();
    CHECK(mm_errno() == MM_EINVAL, "no pending fault");
    unsigned char *q = mmap(NULL, 2 * 4096, RW, ANON, -1, 0);
    uint32_t qa = (uint32_t)(uintptr_t)q;
    myos_set_fault(qa + 4096 + 12, ERR_WRITE);
    page_fault_handler();
    CHECK(mm_errno() == 0 && get_physical_address(qa + 4096) != MM_PHYS_NONE,
          "a write fault in a region is resolved (demand-zero)");
    CHECK(get_physical_address(qa) == MM_PHYS_NONE, "only the faulting page");
    page_t *pte = get_page(qa + 4096, 0, current_directory);
    CHECK(pte && pte->present && pte->rw && pte->user, "the entry the handler made");
    myos_set_fault(0x00300000, ERR_USER);
    page_fault_handler();
    CHECK(mm_errno() == MM_EFAULT, "a fault outside any region is not resolved");
    unsigned char *ro = mmap(NULL, 4096, PROT_READ, ANON, -1, 0);
    myos_set_fault((uint32_t)(uintptr_t)ro, ERR_WRITE | ERR_USER);
    page_fault_handler();
    CHECK(mm_errno() == MM_EFAULT, "a write to a read-only region is not resolved");
    myos_set_fault(qa, ERR_RESERVED);
    page_fault_handler();
    CHECK(mm_errno() == MM_EFAULT, "a reserved-bit fault is a kernel bug");
    CHECK(munmap(q, 2 * 4096) == 0 && munmap(ro, 4096) == 0, "cleanup");
    CHECK(myos_frames_free() == baseline, "frames back to baseline: %d",
          (int)(baseline - myos_frames_free()));

    /* A bigger mapping touched everywhere. */
    uint32_t len = 4u << 20;
    unsigned char *big = mmap(NULL, len, RW, ANON, -1, 0);
    CHECK(big != NULL, "4 MiB");
    for (uint32_t i = 0; i < len; i += 4096)
        big[i] = (unsigned char)(i >> 12);
    int ok = 1;
    for (uint32_t i = 0; i < len; i += 4096)
        ok &= big[i] == (unsigned char)(i >> 12);
    CHECK(ok, "every page holds what was written");
    CHECK(myos_frames_free() <= baseline - 1024, "1024 pages resident");
    CHECK(munmap(big, len) == 0 && myos_frames_free() == baseline, "all back after munmap");
    DONE();
}
