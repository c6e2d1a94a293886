/* Touches a huge lazy mapping until the machine runs out of frames: the
 * process is killed (SIGKILL), the kernel carries on, every frame returns. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    uint32_t len = 0x70000000u; /* 1.75 GiB of address space */
    volatile uint8_t *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return 1;
    }
    for (uint32_t off = 0; off < len; off += PAGE_SIZE) {
        p[off] = 1;
    }
    return 2; /* more RAM than address space: not expected in the tests */
}
