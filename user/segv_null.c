/* A NULL dereference: killed by SIGSEGV. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    volatile uint32_t *p = (volatile uint32_t *)0;
    return (int)*p;
}
