/* munmap of its own stack: the next push (a call) faults with no region
 * there, so the process dies with SIGSEGV. */
#include "lib/myos.h"
MYOS_START

__attribute__((noinline)) static int after(int r) {
    volatile int x = r;
    return x;
}

int main(void) {
    uint32_t top = 0xC0000000u;
    uint32_t len = 16 * PAGE_SIZE; /* the whole initial stack region */
    int r = syscall3(SYS_MUNMAP, top - len, len, 0);
    return after(r) == 0 ? 0 : 1; /* the call pushes onto the unmapped stack */
}
