/* Stack growth: recursion well past the initial 64 KiB stack region; the
 * fault handler extends the stack downwards. */
#include "lib/myos.h"
MYOS_START

static uint32_t deep(uint32_t n) {
    volatile uint8_t frame[1024];
    frame[0] = (uint8_t)n;
    frame[1023] = (uint8_t)(n >> 8);
    if (n == 0) {
        return frame[0];
    }
    return deep(n - 1) + frame[1023];
}

int main(void) {
    uint32_t r = deep(200);
    put_num("stack: recursed 200 frames of 1 KiB deep; result ", r);
    return 0;
}
