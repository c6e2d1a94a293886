/*
 * The kernel heap and create_heap: kmalloc's family, kfree's refusals,
 * physical addresses, alignment, statistics, growth and the limits.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"

struct stats {
    uint32_t free, used, total, free_blocks, largest;
};

static struct stats stats(void) {
    struct stats s;
    s.free = get_free_memory();
    s.used = get_used_memory();
    get_heap_stats(&s.total, &s.free_blocks, &s.largest);
    return s;
}

static int same(struct stats a, struct stats b) {
    return a.free == b.free && a.used == b.used && a.total == b.total &&
           a.free_blocks == b.free_blocks && a.largest == b.largest;
}

/* Every page of [p, p + size) translates to phys + its offset. */
static int contiguous(void *p, uint32_t size, uint32_t phys) {
    uintptr_t start = (uintptr_t)p;
    for (uintptr_t a = start; a < start + size; a = (a & ~(uintptr_t)0xFFF) + 0x1000) {
        if (get_physical_address((uint32_t)a) != phys + (uint32_t)(a - start))
            return 0;
    }
    return get_physical_address((uint32_t)(start + size - 1)) == phys + size - 1;
}

TEST_MAIN {
    BOOT(64 << 20);
    CHECK(myos_kheap() != NULL, "the boot created the kernel heap");

    /* Statistics agree with each other. */
    struct stats s0 = stats();
#ifdef MYOS_HOSTED
    CHECK(s0.free + s0.used == 1u << 20, "free %u + used %u == the mapped 1 MiB", s0.free, s0.used);
#else
    CHECK((s0.free + s0.used) % 4096 == 0, "free %u + used %u == the mapped pages", s0.free, s0.used);
#endif
    CHECK(s0.total >= 1 && s0.free_blocks >= 1 && s0.free_blocks <= s0.total, "blocks");
    CHECK(s0.largest > 0 && s0.largest <= s0.free, "largest free block");
    CHECK((s0.free_blocks == 0) == (s0.free == 0), "free blocks iff free bytes");

    /* kmalloc. */
    char *a = kmalloc(1000);
    CHECK(a != NULL && ((uintptr_t)a & 7) == 0 && mm_errno() == 0, "kmalloc(1000)");
    memset(a, 0xAB, 1000);
    CHECK(a[0] == (char)0xAB && a[999] == (char)0xAB, "usable");
    CHECK(get_physical_address((uint32_t)(uintptr_t)a) != MM_PHYS_NONE,
          "heap memory is mapped in the simulated machine");
    struct stats s1 = stats();
    CHECK(s1.used >= s0.used + 1000 && s1.free + s1.used == s0.free + s0.used, "used grew by the block");
    CHECK(s1.total == s0.total + 1, "one more block");
    CHECK(s1.largest <= s1.free && s1.free_blocks <= s1.total, "get_heap_stats agrees with get_free_memory");

    /* kmalloc(0): a unique, freeable block. */
    void *z1 = kmalloc(0), *z2 = kmalloc(0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2, "kmalloc(0) gives unique blocks");
    kfree(z1);
    kfree(z2);
    CHECK(mm_errno() == 0, "and they free");

    /* kmalloc beyond the heap's max (128 MiB here; the whole 248 MiB heap
     * window for a kernel's own heap) and sizes that overflow. */
    struct stats before = stats();
    CHECK(kmalloc(256u << 20) == NULL && mm_errno() == MM_ENOMEM, "kmalloc(256 MiB) beyond max");
    CHECK(kmalloc(0xFFFFFFF0u) == NULL && (mm_errno() == MM_EINVAL || mm_errno() == MM_ENOMEM),
          "kmalloc(4 GiB - 16)");
    CHECK(kmalloc_aligned(256u << 20) == NULL && mm_errno() == MM_ENOMEM, "kmalloc_aligned beyond max");
    uint32_t phys = 1;
    CHECK(kmalloc_physical(256u << 20, &phys) == NULL && phys == 1, "kmalloc_physical beyond max");
    struct stats after = stats();
    CHECK(same(before, after), "failed requests change nothing: free %u/%u used %u/%u blocks %u/%u free blocks %u/%u largest %u/%u",
          before.free, after.free, before.used, after.used, before.total, after.total,
          before.free_blocks, after.free_blocks, before.largest, after.largest);

    /* kfree's refusals leave the heap as it was. */
    kfree(NULL);
    CHECK(mm_errno() == 0, "kfree(NULL) does nothing");
    before = stats();
    int local;
    kfree(&local);
    CHECK(mm_errno() == MM_EINVAL && same(before, stats()), "kfree of a stack pointer refused");
    kfree(a + 8);
    CHECK(mm_errno() == MM_EINVAL && same(before, stats()), "kfree of an interior pointer refused");
    kfree(a + 3);
    CHECK(mm_errno() == MM_EINVAL && same(before, stats()), "kfree of a misaligned pointer refused");
    kfree((void *)(uintptr_t)0xF7000000u);
    CHECK(mm_errno() == MM_EINVAL && same(before, stats()), "kfree beyond the heap's top refused");
    kfree(a);
    CHECK(mm_errno() == 0, "kfree");
    before = stats();
    kfree(a);
    CHECK(mm_errno() == MM_EINVAL && same(before, stats()), "double free refused");
    /* (Block counts may differ: freed small blocks may wait in the heap's
     * quick lists, unmerged.) */
    CHECK(before.free == s0.free && before.used == s0.used, "back to the start: %u/%u vs %u/%u",
          before.free, before.used, s0.free, s0.used);

    /* kmalloc_aligned: page-aligned, without waste. */
    uint32_t sizes[] = {1, 100, 4095, 4096, 4097, 10000, 65536};
    void *al[7];
    int aligned = 1;
    for (int i = 0; i < 7; i++) {
        al[i] = kmalloc_aligned(sizes[i]);
        aligned &= al[i] != NULL && ((uintptr_t)al[i] & 0xFFF) == 0;
        if (al[i])
            memset(al[i], i, sizes[i]);
    }
    CHECK(aligned, "kmalloc_aligned returns page-aligned memory");
    for (int i = 0; i < 7; i++)
        kfree(al[i]);
    CHECK(mm_errno() == 0, "aligned blocks free");

    /* kmalloc_physical: physically contiguous, and phys is the truth. */
    uint32_t sizes2[] = {16, 4096, 3 * 4096 + 100, 64 * 1024};
    for (int i = 0; i < 4; i++) {
        uint32_t ph = 0;
        char *p = kmalloc_physical(sizes2[i], &ph);
        CHECK(p != NULL && ph == get_physical_address((uint32_t)(uintptr_t)p), "kmalloc_physical(%u)",
              sizes2[i]);
        CHECK(p && contiguous(p, sizes2[i], ph), "every page at phys + offset (%u bytes)", sizes2[i]);
        if (p) {
            /* The same bytes through the direct map (physical + 0xC0000000). */
            memset(p, 0x5A, sizes2[i]);
            volatile char *direct = (volatile char *)(uintptr_t)(0xC0000000u + ph);
            CHECK(direct[0] == 0x5A && direct[sizes2[i] - 1] == 0x5A,
                  "the physical address holds the block's bytes");
        }
        uint32_t pa = 0;
        char *q = kmalloc_aligned_physical(sizes2[i], &pa);
        CHECK(q != NULL && ((uintptr_t)q & 0xFFF) == 0 && (pa & 0xFFF) == 0 &&
                  contiguous(q, sizes2[i], pa),
              "kmalloc_aligned_physical(%u)", sizes2[i]);
        kfree(p);
        kfree(q);
    }
    CHECK(kmalloc_physical(64, NULL) != NULL, "kmalloc_physical with physical == NULL");

    /* Growth beyond the initial 1 MiB, and shrinking back. */
    before = stats();
    char *big = kmalloc(3u << 20);
    struct stats grown = stats();
    CHECK(big != NULL && grown.free + grown.used > before.free + before.used, "the heap grew: %u",
          grown.free + grown.used);
    big[0] = 1;
    big[(3u << 20) - 1] = 2;
    CHECK(grown.free + grown.used == (grown.free + grown.used) / 4096 * 4096, "mapped in pages");
    kfree(big);
    struct stats shrunk = stats();
    CHECK(shrunk.free + shrunk.used < grown.free + grown.used, "and shrank after kfree");

    /* create_heap. */
#ifndef MYOS_HOSTED
    /* The reference kernel's own heap (registered as the kernel heap) owns
     * the whole heap window. */
    CHECK(create_heap(0xF8000000u, 0xF8004000u, 0xF8100000u, 1, 0) == NULL && mm_errno() == MM_EEXIST,
          "the heap window belongs to the kernel's heap");
#else
    CHECK(create_heap(0xF8000001u, 0xF8010000u, 0xF8100000u, 1, 0) == NULL && mm_errno() == MM_EINVAL,
          "misaligned start");
    CHECK(create_heap(0xF8010000u, 0xF8010000u, 0xF8100000u, 1, 0) == NULL && mm_errno() == MM_EINVAL,
          "end <= start");
    CHECK(create_heap(0xF8000000u, 0xF8020000u, 0xF8010000u, 1, 0) == NULL && mm_errno() == MM_EINVAL,
          "max < end");
    CHECK(create_heap(0x10000000u, 0x10010000u, 0x10100000u, 1, 0) == NULL && mm_errno() == MM_EINVAL,
          "outside the heap window");
    CHECK(create_heap(0xF0100000u, 0xF0110000u, 0xF0200000u, 1, 0) == NULL && mm_errno() == MM_EEXIST,
          "overlapping the kernel heap");
    uint32_t frames = myos_frames_free();
    heap_t *h = create_heap(0xF8000000u, 0xF8004000u, 0xF8100000u, 1, 0);
    CHECK(h != NULL && myos_frames_free() == frames - 4, "create_heap maps [start, end)");
    CHECK(create_heap(0xF80F0000u, 0xF8200000u, 0xF8300000u, 1, 0) == NULL && mm_errno() == MM_EEXIST,
          "overlapping another heap");
    char *x = myos_heap_alloc(h, 20000, 0), *y = myos_heap_alloc(h, 100, 1);
    CHECK(x && y && (uintptr_t)x >= 0xF8000000u && (uintptr_t)x < 0xF8100000u &&
              ((uintptr_t)y & 0xFFF) == 0,
          "allocations come from the heap's range");
    memset(x, 1, 20000);
    CHECK(myos_heap_alloc(h, 2u << 20, 0) == NULL && mm_errno() == MM_ENOMEM, "beyond this heap's max");
    CHECK(myos_heap_free(h, x + 16) == -1 && mm_errno() == MM_EINVAL, "bad pointer refused");
    CHECK(myos_heap_free(h, x) == 0 && myos_heap_free(h, y) == 0, "frees");
    CHECK(myos_heap_alloc(NULL, 10, 0) == NULL && mm_errno() == MM_EINVAL, "NULL heap");
    CHECK(myos_heap_alloc((heap_t *)&frames, 10, 0) == NULL && mm_errno() == MM_EINVAL, "bogus heap");
    CHECK(myos_heap_destroy(myos_kheap()) == -1 && mm_errno() == MM_EINVAL, "the kernel heap stays");
    CHECK(myos_heap_destroy(h) == 0 && myos_frames_free() == frames, "destroy gives every frame back");
    CHECK(myos_heap_destroy(h) == -1 && mm_errno() == MM_EINVAL, "a destroyed heap is unknown");
#endif
    init_kheap();
    CHECK(mm_errno() == 0 && myos_kheap() != NULL, "init_kheap again does nothing");
    DONE();
}
