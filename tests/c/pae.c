/*
 * The PAE extension (page64_t, get_page64, alloc_frame64/free_frame64,
 * map_page64, get_physical_address64, myos_paging_mode) on a PAE machine
 * with RAM above 4 GiB: entries, mappings, NX on mmap'd pages without
 * PROT_EXEC, frames above 4 GiB, and every error. Under classic paging (the
 * kernel booted without paging=pae) it checks that the page64_t calls
 * refuse instead.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"

#define PHYS64(p) ((uint64_t)(p)->frame << 12)
#define FOUR_GIB 0x100000000ull

/* The host boot puts 16 MiB of RAM at 4 GiB, where user and heap pages come
 * from first. In the kernel that depends on the RAM it was given: the
 * checks below follow what the first frame says. */
#ifdef MYOS_HOSTED
#define HOST_HAS_HIGH_RAM 1
#else
#define HOST_HAS_HIGH_RAM 0
#endif

static void classic_refuses(void) {
    page64_t loose;
    memset(&loose, 0, sizeof loose);
    CHECK(get_page64(0x00600000, 1, current_directory) == NULL && mm_errno() == MM_EOPNOTSUPP,
          "get_page64 under classic paging");
    alloc_frame64(&loose, 1, 1, 1);
    CHECK(mm_errno() == MM_EOPNOTSUPP && loose.raw == 0, "alloc_frame64 under classic paging");
    loose.present = 1;
    free_frame64(&loose);
    CHECK(mm_errno() == MM_EOPNOTSUPP && loose.present, "free_frame64 under classic paging");
    CHECK(get_physical_address64(0xC0001234u) == 0x1234, "get_physical_address64 in the direct map");
}

TEST_MAIN {
    BOOT_PAE(32 << 20, 16 << 20);
    CHECK(sizeof(page64_t) == 8 && sizeof(page_table64_t) == 4096, "%zu", sizeof(page64_t));
    if (myos_paging_mode() == MYOS_PAGING_CLASSIC) {
        classic_refuses();
        DONE();
    }
    CHECK(myos_paging_mode() == MYOS_PAGING_PAE && mm_errno() == 0, "PAE paging");
    uint32_t baseline = myos_frames_free();
    page_directory_t *proc = current_directory;
    CHECK(proc != NULL && proc != kernel_directory, "the C process's directory is current");

    /* The page_t calls refuse. */
    CHECK(get_page(0x00600000, 1, current_directory) == NULL && mm_errno() == MM_EOPNOTSUPP,
          "get_page under PAE");
    page_t old;
    memset(&old, 0, sizeof old);
    alloc_frame(&old, 1, 1);
    CHECK(mm_errno() == MM_EOPNOTSUPP && !old.present, "alloc_frame under PAE");
    old.present = 1;
    free_frame(&old);
    CHECK(mm_errno() == MM_EOPNOTSUPP && old.present, "free_frame under PAE");
    CHECK(myos_frames_free() == baseline, "nothing allocated by refused calls");

    /* get_page64 errors. */
    CHECK(get_page64(0x00600000, 0, current_directory) == NULL && mm_errno() == MM_EINVAL,
          "get_page64(make=0) without a table");
    CHECK(get_page64(0x00600000, 1, NULL) == NULL && mm_errno() == MM_EINVAL, "NULL directory");
    CHECK(get_page64(0x00600000, 1, (page_directory_t *)&baseline) == NULL &&
              mm_errno() == MM_EINVAL,
          "bogus directory");
    CHECK(get_page64(0xC0100000u, 1, current_directory) == NULL && mm_errno() == MM_EPERM,
          "direct map: fixed 2 MiB pages");
    CHECK(get_page64(0xFFE00000u, 1, current_directory) == NULL && mm_errno() == MM_EINVAL,
          "top 2 MiB: no page table");

    /* get_page64(make=1): one page table, entries 8 bytes apart. */
    page64_t *p = get_page64(0x00600000, 1, current_directory);
    CHECK(p != NULL && mm_errno() == 0 && p->raw == 0, "get_page64(make=1)");
    CHECK(myos_frames_free() == baseline - 1, "one frame for the table: %u",
          baseline - myos_frames_free());
    CHECK(get_page64(0x00600000, 0, current_directory) == p, "same entry with make=0");
    CHECK(get_page64(0x00601000, 0, current_directory) == p + 1, "next entry, same table");
    CHECK(get_physical_address64(0x00600000) == MM_PHYS64_NONE && mm_errno() == MM_EINVAL,
          "unmapped: MM_PHYS64_NONE");

    /* alloc_frame64: a frame above 4 GiB (when there is RAM there), NX as asked. */
    alloc_frame64(NULL, 0, 1, 1);
    CHECK(mm_errno() == MM_EINVAL, "alloc_frame64(NULL)");
    alloc_frame64(p, 0, 1, 1);
    CHECK(mm_errno() == 0 && p->present && p->rw && p->user && p->nx && !p->accessed &&
              !p->dirty && p->reserved == 0,
          "alloc_frame64: user, writable, no-exec (%#llx)", (unsigned long long)p->raw);
    uint64_t frame = PHYS64(p);
    int high = frame >= FOUR_GIB;
    if (HOST_HAS_HIGH_RAM)
        CHECK(high, "the frame is above 4 GiB: %#llx", (unsigned long long)frame);
    CHECK(myos_frames_free() == baseline - 2, "table and page");
    alloc_frame64(p, 1, 0, 0);
    CHECK(mm_errno() == 0 && PHYS64(p) == frame && p->user && p->nx, "a present page is left alone");
    CHECK(get_physical_address64(0x00600123) == (frame | 0x123), "translation %#llx",
          (unsigned long long)get_physical_address64(0x00600123));
    if (high)
        CHECK(get_physical_address(0x00600123) == MM_PHYS_NONE && mm_errno() == MM_EOVERFLOW,
              "no 32-bit physical address above 4 GiB");
    else
        CHECK(get_physical_address(0x00600123) == (uint32_t)(frame | 0x123) && mm_errno() == 0,
              "a 32-bit physical address below 4 GiB");

    /* The page is real memory at its address; the MMU sets A and D. */
    volatile uint32_t *w = (volatile uint32_t *)0x00600010;
    *w = 0xDEADBEEF;
    CHECK(*w == 0xDEADBEEF, "write and read back through a frame above 4 GiB");
    CHECK(p->accessed && p->dirty, "accessed %u dirty %u", (unsigned)p->accessed,
          (unsigned)p->dirty);

    /* map_page64: a second mapping of the frame above 4 GiB shares it. */
    map_page64(0x00601000, frame, 0, 1);
    CHECK(mm_errno() == 0 && get_physical_address64(0x00601000) == frame && !p[1].nx,
          "map_page64 above 4 GiB (executable, as map_page)");
    CHECK(*(volatile uint32_t *)0x00601010 == 0xDEADBEEF, "both pages show the same frame");
    CHECK(myos_frames_free() == baseline - 2, "shared, not copied");
    unmap_page(0x00600000);
    CHECK(mm_errno() == 0 && p->raw == 0 && get_physical_address64(0x00600000) == MM_PHYS64_NONE,
          "unmap_page clears the 64-bit entry");
    CHECK(*(volatile uint32_t *)0x00601010 == 0xDEADBEEF, "still there through the other mapping");
    map_page64(0x00602000, 1ull << 36, 0, 1);
    CHECK(mm_errno() == MM_EINVAL && get_physical_address64(0x00602000) == MM_PHYS64_NONE,
          "map_page64 at 64 GiB refused");

    /* map_page (32-bit) in PAE mode: device memory outside RAM. */
    map_page(0x00603000, 0xFEE00000u, 1, 1);
    CHECK(mm_errno() == 0 && get_physical_address(0x00603000) == 0xFEE00000u &&
              get_page64(0x00603000, 0, current_directory)->frame == 0xFEE00,
          "map_page with a 32-bit address");
    unmap_page(0x00603000);
    CHECK(mm_errno() == 0, "unmapping device memory");

    /* free_frame64. */
    page64_t *q = get_page64(0x00604000, 1, current_directory);
    alloc_frame64(q, 0, 1, 0);
    CHECK(mm_errno() == 0 && q->present && !q->nx && PHYS64(q) != frame &&
              myos_frames_free() == baseline - 3,
          "second frame");
    free_frame64(NULL);
    CHECK(mm_errno() == MM_EINVAL, "free_frame64(NULL)");
    free_frame64(q);
    CHECK(mm_errno() == 0 && q->raw == 0 && get_physical_address64(0x00604000) == MM_PHYS64_NONE,
          "free_frame64");
    CHECK(myos_frames_free() == baseline - 2, "its frame went back");
    free_frame64(q);
    CHECK(mm_errno() == 0, "free_frame64 of a free page does nothing");

    /* A detached page64_t. */
    page64_t loose;
    memset(&loose, 0, sizeof loose);
    alloc_frame64(&loose, 1, 1, 0);
    CHECK(mm_errno() == 0 && loose.present && !loose.user && !loose.nx, "alloc_frame64 detached");
    free_frame64(&loose);
    CHECK(mm_errno() == 0 && loose.raw == 0, "free_frame64 detached");

    /* The kernel directory is separate below 0xC0000000. */
    page64_t *k = get_page64(0x00700000, 1, kernel_directory);
    alloc_frame64(k, 1, 1, 0);
    CHECK(mm_errno() == 0 && get_physical_address64(0x00700000) == MM_PHYS64_NONE,
          "a kernel-directory mapping is not in the process directory");
    switch_page_directory(kernel_directory);
    CHECK(current_directory == kernel_directory && get_physical_address64(0x00700000) == PHYS64(k),
          "... but is once the kernel directory is loaded");
    free_frame64(k);
    CHECK(mm_errno() == 0 && k->raw == 0, "free_frame64 in the kernel directory");
    switch_page_directory(proc);
    CHECK(mm_errno() == 0 && current_directory == proc, "back to the process");

    /* mmap: NX unless PROT_EXEC; pages above 4 GiB. */
    uint32_t before_mmap = myos_frames_free();
    volatile uint8_t *data = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    volatile uint8_t *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(data != NULL && code != NULL, "mmap");
    data[0] = 1;
    code[0] = 0xC3;
    page64_t *dp = get_page64((uint32_t)(uintptr_t)data, 0, current_directory);
    page64_t *cp = get_page64((uint32_t)(uintptr_t)code, 0, current_directory);
    CHECK(dp != NULL && dp->present && dp->nx && dp->user && dp->rw, "PROT_READ|PROT_WRITE: NX set");
    CHECK(cp != NULL && cp->present && !cp->nx, "PROT_EXEC: NX clear");
    if (high)
        CHECK(PHYS64(dp) >= FOUR_GIB && PHYS64(cp) >= FOUR_GIB, "user pages above 4 GiB");
    /* A user fetch from the data page (present, NX) is refused... */
    myos_set_fault((uint32_t)(uintptr_t)data, ERR_PRESENT | ERR_USER | ERR_FETCH);
    page_fault_handler();
    CHECK(mm_errno() == MM_EFAULT, "fetch from an NX page: unresolved");
    /* ... and so is one from its second page, not yet present. */
    myos_set_fault((uint32_t)(uintptr_t)data + 4096, ERR_USER | ERR_FETCH);
    page_fault_handler();
    CHECK(mm_errno() == MM_EFAULT &&
              !get_page64((uint32_t)(uintptr_t)data + 4096, 0, current_directory)->present,
          "fetch from a not-present page without PROT_EXEC: unresolved, nothing mapped");
    /* A fetch from a PROT_EXEC region is demand-paged like a read. */
    CHECK(munmap((void *)code, 4096) == 0, "munmap");
    code = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    myos_set_fault((uint32_t)(uintptr_t)code, ERR_USER | ERR_FETCH);
    page_fault_handler();
    cp = get_page64((uint32_t)(uintptr_t)code, 0, current_directory);
    CHECK(mm_errno() == 0 && cp->present && !cp->nx && !cp->rw, "fetch in PROT_EXEC: resolved");
    CHECK(munmap((void *)data, 2 * 4096) == 0 && munmap((void *)code, 4096) == 0, "munmap");
    CHECK(myos_frames_free() == before_mmap, "mmap's frames back: %d",
          (int)(before_mmap - myos_frames_free()));

    /* kmalloc works; kmalloc_physical cannot describe a block above 4 GiB. */
    void *a = kmalloc(64);
    CHECK(a != NULL, "kmalloc");
    if (HOST_HAS_HIGH_RAM)
        CHECK(get_physical_address64((uint32_t)(uintptr_t)a) >= FOUR_GIB,
              "kernel heap pages above 4 GiB");
    memset(a, 0x5A, 64);
    kfree(a);
    CHECK(mm_errno() == 0, "kfree");
    uint32_t used = get_used_memory(), phys = 0x12345678;
    void *c = kmalloc_physical(64, &phys);
    if (HOST_HAS_HIGH_RAM)
        CHECK(c == NULL, "kmalloc_physical of a block above 4 GiB");
    if (c == NULL) {
        CHECK(mm_errno() == MM_EOVERFLOW && phys == 0x12345678, "refused with MM_EOVERFLOW");
        CHECK(get_used_memory() == used, "... and nothing kept: %u vs %u", get_used_memory(), used);
    } else {
        CHECK(get_physical_address64((uint32_t)(uintptr_t)c) == phys, "a block below 4 GiB");
        kfree(c);
    }

    /* The last page of the table goes: the table goes. */
    unmap_page(0x00601000);
    CHECK(mm_errno() == 0 && get_page64(0x00600000, 0, current_directory) == NULL,
          "the empty table is gone");
    CHECK(myos_frames_free() == baseline - 1,
          "all frames back but the kernel directory's table: %d",
          (int)(baseline - myos_frames_free()));
    DONE();
}
