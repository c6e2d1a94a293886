/*
 * The spec's example "Heap Memory Usage" (spec/memory-api.md), unchanged
 * apart from being wrapped in a function.
 *
 * Host:   compiled into tests/c/examples.c (cargo xtask test).
 * Kernel: cargo xtask run --c examples/c/heap_memory_usage.c
 */
#include <string.h>

#include <myos/console.h>
#include <myos/memory.h>

void heap_memory_usage(void) {
    // Allocate memory
    void *ptr = kmalloc(1024);  // 1KB

    // Use memory
    memset(ptr, 0, 1024);

    // Free memory
    kfree(ptr);
}

#ifndef MYOS_EXAMPLE_NO_MAIN
/* Entry point for `--c`: 0 when the last call of the example succeeded. */
int c_main(void) {
    heap_memory_usage();
    int err = mm_errno();
    kprintf("heap_memory_usage: %s; heap %u bytes free, %u used\n", mm_strerror(err),
            get_free_memory(), get_used_memory());
    return err;
}
#endif
