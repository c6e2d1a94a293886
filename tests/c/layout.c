/*
 * The header agrees with the Rust side: sizes, page_t's bit positions (each
 * field set through the bit-field, compared with the raw entry Rust builds),
 * every constant's value, and every function callable from C.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <myos/console.h>
#include "check.h"

static uint32_t raw_of(page_t p) {
    uint32_t r;
    memcpy(&r, &p, sizeof r);
    return r;
}

#define FIELD(name, value)                                                      \
    do {                                                                        \
        page_t p_;                                                              \
        memset(&p_, 0, sizeof p_);                                              \
        p_.name = (value);                                                      \
        CHECK(raw_of(p_) == myos_pte_raw(#name, (value)), "C %#x, Rust %#x",    \
              raw_of(p_), myos_pte_raw(#name, (value)));                        \
    } while (0)

static uint64_t raw64_of(page64_t p) {
    uint64_t r;
    memcpy(&r, &p, sizeof r);
    return r;
}

#define FIELD64(name, value)                                                    \
    do {                                                                        \
        page64_t p_;                                                            \
        memset(&p_, 0, sizeof p_);                                              \
        p_.name = (value);                                                      \
        CHECK(raw64_of(p_) == myos_pte64_raw(#name, (value)) && p_.raw == raw64_of(p_), \
              "C %#llx, Rust %#llx", (unsigned long long)raw64_of(p_),          \
              (unsigned long long)myos_pte64_raw(#name, (value)));              \
    } while (0)

TEST_MAIN {
    BOOT(0);

    /* Sizes. */
    CHECK(sizeof(page_t) == 4, "%zu", sizeof(page_t));
    CHECK(sizeof(page_table_t) == 4096, "%zu", sizeof(page_table_t));
    CHECK(_Alignof(page_t) == 4, "%zu", _Alignof(page_t));

    /* Every page_t field at the bits Rust's PageTableEntry uses. */
    FIELD(present, 1);
    FIELD(rw, 1);
    FIELD(user, 1);
    FIELD(pwt, 1);
    FIELD(pcd, 1);
    FIELD(accessed, 1);
    FIELD(dirty, 1);
    FIELD(unused, 1);
    FIELD(unused, 0x10);
    FIELD(unused, 0x1F);
    FIELD(frame, 1);
    FIELD(frame, 0xABCDE);
    FIELD(frame, 0xFFFFF);
    CHECK(myos_pte_raw("bogus", 1) == 0xFFFFFFFFu, "");
    CHECK(myos_pte_raw(NULL, 1) == 0xFFFFFFFFu, "");
    /* The hardware positions themselves. */
    {
        page_t p;
        memset(&p, 0, sizeof p);
        p.accessed = 1;
        CHECK(raw_of(p) == 0x20, "accessed at %#x", raw_of(p));
        memset(&p, 0, sizeof p);
        p.dirty = 1;
        CHECK(raw_of(p) == 0x40, "dirty at %#x", raw_of(p));
        memset(&p, 0, sizeof p);
        p.frame = 0x12345;
        CHECK(raw_of(p) == 0x12345000, "frame at %#x", raw_of(p));
    }

    /* Every page64_t field at the bits Rust's PaeEntry uses (extension). */
    CHECK(sizeof(page64_t) == 8 && sizeof(page_table64_t) == 4096, "%zu", sizeof(page64_t));
    FIELD64(present, 1);
    FIELD64(rw, 1);
    FIELD64(user, 1);
    FIELD64(pwt, 1);
    FIELD64(pcd, 1);
    FIELD64(accessed, 1);
    FIELD64(dirty, 1);
    FIELD64(unused, 0x1F);
    FIELD64(frame, 1);
    FIELD64(frame, 0xABCDEF);
    FIELD64(frame, 0xFFFFFF);
    FIELD64(nx, 1);
    CHECK(myos_pte64_raw("reserved", 1) == ~0ull && myos_pte64_raw(NULL, 1) == ~0ull, "");
    {
        page64_t p;
        memset(&p, 0, sizeof p);
        p.frame = 0x123456;
        CHECK(p.raw == 0x123456000ull, "frame at %#llx", (unsigned long long)p.raw);
        memset(&p, 0, sizeof p);
        p.nx = 1;
        CHECK(p.raw == 0x8000000000000000ull, "nx at %#llx", (unsigned long long)p.raw);
        memset(&p, 0, sizeof p);
        p.reserved = 1;
        CHECK(p.raw == 1ull << 36, "reserved from %#llx", (unsigned long long)p.raw);
    }

    /* The spec's constants. */
    CHECK(PROT_NONE == 0x0 && PROT_READ == 0x1 && PROT_WRITE == 0x2 && PROT_EXEC == 0x4, "");
    CHECK(MAP_SHARED == 0x01 && MAP_PRIVATE == 0x02 && MAP_FIXED == 0x10 &&
              MAP_ANONYMOUS == 0x20, "");
    CHECK(ERR_PRESENT == 0x1 && ERR_WRITE == 0x2 && ERR_USER == 0x4 && ERR_RESERVED == 0x8 &&
              ERR_FETCH == 0x10, "");
    CHECK(MM_PHYS_NONE == 0xFFFFFFFFu && PAGE_SIZE == 4096, "");
    CHECK(MM_EOK == 0 && MM_EPERM == 1 && MM_EBADF == 9 && MM_ENOMEM == 12 && MM_EACCES == 13 &&
              MM_EFAULT == 14 && MM_EEXIST == 17 && MM_ENODEV == 19 && MM_EINVAL == 22 &&
              MM_EOVERFLOW == 75, "");
    CHECK(MM_EOPNOTSUPP == 95 && MYOS_PAGING_CLASSIC == 1 && MYOS_PAGING_PAE == 2 &&
              MM_PHYS64_NONE == ~0ull, "");

    /* The spec's signatures, checked by the compiler. */
    void (*f_init_paging)(void) = init_paging;
    void (*f_switch)(page_directory_t *) = switch_page_directory;
    page_t *(*f_get_page)(uint32_t, int, page_directory_t *) = get_page;
    void (*f_alloc_frame)(page_t *, int, int) = alloc_frame;
    void (*f_free_frame)(page_t *) = free_frame;
    void (*f_map_page)(uint32_t, uint32_t, int, int) = map_page;
    void (*f_unmap_page)(uint32_t) = unmap_page;
    uint32_t (*f_gpa)(uint32_t) = get_physical_address;
    void (*f_init_kheap)(void) = init_kheap;
    heap_t *(*f_create_heap)(uint32_t, uint32_t, uint32_t, uint8_t, uint8_t) = create_heap;
    void *(*f_kmalloc)(uint32_t) = kmalloc;
    void *(*f_kmalloc_aligned)(uint32_t) = kmalloc_aligned;
    void *(*f_kmalloc_physical)(uint32_t, uint32_t *) = kmalloc_physical;
    void *(*f_kmalloc_ap)(uint32_t, uint32_t *) = kmalloc_aligned_physical;
    void (*f_kfree)(void *) = kfree;
    uint32_t (*f_free_mem)(void) = get_free_memory;
    uint32_t (*f_used_mem)(void) = get_used_memory;
    void (*f_stats)(uint32_t *, uint32_t *, uint32_t *) = get_heap_stats;
    void *(*f_mmap)(void *, uint32_t, int, int, int, uint32_t) = mmap;
    int (*f_munmap)(void *, uint32_t) = munmap;
    void (*f_pfh)(void) = page_fault_handler;
    /* The PAE extension's. */
    int (*f_mode)(void) = myos_paging_mode;
    page64_t *(*f_get_page64)(uint32_t, int, page_directory_t *) = get_page64;
    void (*f_alloc_frame64)(page64_t *, int, int, int) = alloc_frame64;
    void (*f_free_frame64)(page64_t *) = free_frame64;
    void (*f_map_page64)(uint32_t, uint64_t, int, int) = map_page64;
    uint64_t (*f_gpa64)(uint32_t) = get_physical_address64;
    CHECK(f_mode && f_get_page64 && f_alloc_frame64 && f_free_frame64 && f_map_page64 && f_gpa64,
          "");
    CHECK(f_init_paging && f_switch && f_get_page && f_alloc_frame && f_free_frame && f_map_page &&
              f_unmap_page && f_gpa && f_init_kheap && f_create_heap && f_kmalloc &&
              f_kmalloc_aligned && f_kmalloc_physical && f_kmalloc_ap && f_kfree && f_free_mem &&
              f_used_mem && f_stats && f_mmap && f_munmap && f_pfh,
          "");

    /* Every function, called once from C. */
    init_paging();
    CHECK(mm_errno() == 0, "init_paging");
    CHECK(kernel_directory != NULL && current_directory != NULL, "directories published");
    page_directory_t *cur = current_directory;
    switch_page_directory(kernel_directory);
    CHECK(mm_errno() == 0 && current_directory == kernel_directory, "switch to kernel");
    switch_page_directory(cur);
    CHECK(mm_errno() == 0 && current_directory == cur, "switch back");
    page_t *pg = get_page(0x00801000, 1, current_directory);
    CHECK(pg != NULL && !pg->present, "get_page make=1");
    alloc_frame(pg, 1, 1);
    CHECK(mm_errno() == 0 && pg->present && pg->rw && !pg->user, "alloc_frame");
    uint32_t phys = get_physical_address(0x00801234);
    CHECK(phys == ((uint32_t)pg->frame << 12 | 0x234), "get_physical_address %#x", phys);
    map_page(0x00802000, phys & ~0xFFFu, 1, 0);
    CHECK(mm_errno() == 0 && get_physical_address(0x00802000) == (phys & ~0xFFFu), "map_page");
    unmap_page(0x00802000);
    CHECK(mm_errno() == 0 && get_physical_address(0x00802000) == MM_PHYS_NONE, "unmap_page");
    free_frame(pg);
    CHECK(mm_errno() == 0 && !pg->present, "free_frame");
    init_kheap();
    CHECK(mm_errno() == 0, "init_kheap");
    heap_t *h = create_heap(0xF8000000u, 0xF8010000u, 0xF8100000u, 1, 0);
#ifdef MYOS_HOSTED
    CHECK(h != NULL, "create_heap");
#else
    /* The reference kernel's heap owns the whole heap window. */
    CHECK(h == NULL && mm_errno() == MM_EEXIST, "create_heap");
    h = myos_kheap();
#endif
    void *a = kmalloc(10), *b = kmalloc_aligned(10);
    uint32_t pa = 0, pb = 0;
    void *c = kmalloc_physical(10, &pa), *d = kmalloc_aligned_physical(10, &pb);
    CHECK(a && b && c && d && pa != 0 && pb != 0, "kmalloc family");
    kfree(a);
    kfree(b);
    kfree(c);
    kfree(d);
    CHECK(mm_errno() == 0, "kfree");
    uint32_t tb = 0, fb = 0, lf = 0;
    get_heap_stats(&tb, &fb, &lf);
    CHECK(get_free_memory() > 0 && get_used_memory() > 0 && tb >= 1 && fb >= 1 && lf > 0, "stats");
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != NULL, "mmap");
    CHECK(munmap(m, 4096) == 0, "munmap");
    myos_set_fault(0x00400000, ERR_WRITE);
    page_fault_handler();
    CHECK(mm_errno() == MM_EFAULT, "page_fault_handler outside any region: %d", mm_errno());
    CHECK(myos_kheap() != NULL, "myos_kheap");
    void *e = myos_heap_alloc(h, 100, 0);
    CHECK(e != NULL && myos_heap_free(h, e) == 0, "myos_heap_alloc/free");
#ifdef MYOS_HOSTED
    CHECK(myos_heap_destroy(h) == 0, "myos_heap_destroy");
#else
    CHECK(myos_heap_destroy(h) == -1 && mm_errno() == MM_EINVAL, "myos_heap_destroy");
#endif
    int fd = myos_file_create("abc", 3, MYOS_O_RDONLY);
    char buf[3];
    CHECK(fd >= 0 && myos_file_read(fd, 0, buf, 3) == 3 && buf[2] == 'c' && myos_file_close(fd) == 0,
          "myos_file_create/read/close");
    CHECK(myos_frames_free() > 0, "myos_frames_free");
    CHECK(kprintf("kprintf %d %s %#x|%-4s|%04d\n", -5, "ok", 255, "ab", 42) == 29, "kprintf");
    console_write("console_write\n", 14);
    DONE();
}
