/* A write to a kernel address (the kernel image in the direct map): killed
 * by SIGSEGV, the kernel carries on. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    volatile uint32_t *p = (volatile uint32_t *)0xC0100000u;
    *p = 0xBAD;
    return 0;
}
