/* Unbounded recursion: the stack grows to its limit, then the next touch is
 * a SIGSEGV that kills only this process. */
#include "lib/myos.h"
MYOS_START

static volatile uint32_t forever = 1;

static uint32_t down(uint32_t n) {
    volatile uint8_t frame[512];
    frame[0] = (uint8_t)n;
    if (!forever) {
        return frame[0];
    }
    return down(n + 1) + frame[0];
}

int main(void) {
    return (int)down(0);
}
