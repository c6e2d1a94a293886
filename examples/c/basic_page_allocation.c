/*
 * The spec's example "Basic Page Allocation" (spec/memory-api.md), unchanged
 * apart from being wrapped in a function.
 *
 * Host:   compiled into tests/c/examples.c (cargo xtask test).
 * Kernel: cargo xtask run --c examples/c/basic_page_allocation.c
 */
#include <myos/console.h>
#include <myos/memory.h>

void basic_page_allocation(void) {
    // Get a page
    page_t *page = get_page(0x1000, 1, current_directory);

    // Allocate a frame for it
    alloc_frame(page, 0, 1);  // User mode, writeable

    // Map it
    map_page(0x1000, get_physical_address(0x1000), 0, 1);
}

#ifndef MYOS_EXAMPLE_NO_MAIN
/* Entry point for `--c`: 0 when the last call of the example succeeded. */
int c_main(void) {
    basic_page_allocation();
    kprintf("basic_page_allocation: 0x1000 -> %#x (%s)\n", get_physical_address(0x1000),
            mm_strerror(mm_errno()));
    return mm_errno();
}
#endif
