/*
 * Hello, memory manager: the smallest C program over the API, as a C kernel
 * author's first file would be. It is also a test, built and run like every
 * file in tests/c: on the host library by `cargo xtask capi test` (main, with
 * myos_sim_boot), in the reference kernel by `cargo xtask test --c
 * tests/c/hello.c` (c_main, after the kernel set the memory manager up).
 * Exit status 0 only when every CHECK held.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"

TEST_MAIN {
    BOOT(0); /* the host boots a simulated machine; a no-op in the kernel */
    uint32_t frames = myos_frames_free();
    uint32_t heap_used = get_used_memory();

    /* The kernel heap: kmalloc'd memory is ordinary, mapped memory. */
    /* (Only the mem* functions: the kernel's freestanding C has no str*.) */
    static const char text[] = "hello, memory manager";
    char *greeting = kmalloc(64);
    CHECK(greeting != NULL && mm_errno() == 0, "kmalloc(64)");
    if (greeting) {
        memcpy(greeting, text, sizeof text);
        CHECK(memcmp(greeting, text, sizeof text) == 0, "the block holds what was written");
        CHECK(get_physical_address((uint32_t)(uintptr_t)greeting) != MM_PHYS_NONE,
              "and has a physical address");
        printf("%s: block at %#lx\n", greeting, (unsigned long)(uintptr_t)greeting);
        kfree(greeting);
        CHECK(mm_errno() == 0 && get_used_memory() == heap_used, "kfree: heap use back to %u bytes",
              (unsigned)heap_used);
    }

    /* mmap: lazy anonymous memory, paged in on first touch. */
    uint32_t len = 2 * 4096;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != NULL && mm_errno() == 0, "mmap of two pages");
    if (m) {
        CHECK(myos_frames_free() == frames, "no frame taken before the first touch");
        memset(m, 0x5a, len);
        CHECK(m[0] == 0x5a && m[len - 1] == 0x5a, "the pages were faulted in and written");
        CHECK(myos_frames_free() < frames, "now they have frames: %u in use",
              (unsigned)(frames - myos_frames_free()));
        CHECK(munmap(m, len) == 0 && mm_errno() == 0, "munmap");
        CHECK(myos_frames_free() == frames, "every frame back (page table too)");
    }
    DONE();
}
