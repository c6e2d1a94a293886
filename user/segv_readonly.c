/* A write to a PROT_READ mapping: killed by SIGSEGV. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    volatile uint32_t *p = mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return 1;
    }
    (void)p[0];
    p[0] = 1;
    return 0;
}
