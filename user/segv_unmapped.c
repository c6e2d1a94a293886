/* A touch after munmap: killed by SIGSEGV. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    volatile uint32_t *p = mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return 1;
    }
    p[0] = 7;
    if (munmap((void *)p, 4 * PAGE_SIZE) != 0) {
        return 2;
    }
    p[0] = 8;
    return 0;
}
