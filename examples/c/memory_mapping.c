/*
 * The spec's example "Memory Mapping" (spec/memory-api.md), unchanged apart
 * from being wrapped in a function.
 *
 * Host:   compiled into tests/c/examples.c (cargo xtask test).
 * Kernel: cargo xtask run --c examples/c/memory_mapping.c
 */
#include <string.h>

#include <myos/console.h>
#include <myos/memory.h>

void memory_mapping(void) {
    // Map anonymous memory
    void *addr = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    // Use memory
    memset(addr, 0, 4096);

    // Unmap
    munmap(addr, 4096);
}

#ifndef MYOS_EXAMPLE_NO_MAIN
/* Entry point for `--c`: 0 when the last call of the example succeeded. */
int c_main(void) {
    memory_mapping();
    int err = mm_errno();
    kprintf("memory_mapping: %s\n", mm_strerror(err));
    return err;
}
#endif
