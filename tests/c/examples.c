/*
 * The spec's three examples (examples/c/, unchanged apart from being
 * wrapped in a function) compile and run on the host library.
 */
#include <stdint.h>

#define MYOS_EXAMPLE_NO_MAIN
#include "check.h"
#include "../../examples/c/basic_page_allocation.c"
#include "../../examples/c/heap_memory_usage.c"
#include "../../examples/c/memory_mapping.c"

TEST_MAIN {
    BOOT(0);
    uint32_t frames = myos_frames_free();

    basic_page_allocation();
    CHECK(mm_errno() == 0, "Basic Page Allocation: the last call succeeded");
    page_t *page = get_page(0x1000, 0, current_directory);
    CHECK(page && page->present && page->rw && page->user &&
              get_physical_address(0x1000) == (uint32_t)page->frame << 12,
          "0x1000 is mapped, user, writable, to the frame alloc_frame gave it");
    CHECK(myos_frames_free() == frames - 2, "one page table and one frame: %d",
          (int)(frames - myos_frames_free()));

    uint32_t free0 = get_free_memory(), used0 = get_used_memory();
    heap_memory_usage();
    CHECK(mm_errno() == 0, "Heap Memory Usage: kfree succeeded");
    CHECK(get_free_memory() == free0 && get_used_memory() == used0, "the heap is as before");

    frames = myos_frames_free();
    memory_mapping();
    CHECK(mm_errno() == 0, "Memory Mapping: munmap succeeded");
    CHECK(myos_frames_free() == frames, "the demand-zero page went back");
    DONE();
}
