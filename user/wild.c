/* Wild accesses: children read, write and jump to pseudo-random addresses
 * outside their own mappings (user space holes, NULL page, kernel half);
 * every one must die alone with SIGSEGV while the parent goes on. */
#include "lib/myos.h"
MYOS_START

#define CHILDREN 48

static uint32_t rng = 0x12345678u;

static uint32_t next(void) {
    rng = rng * 1664525u + 1013904223u;
    return rng;
}

/* An address in a range this program never maps: below its image, in the
 * middle of user space, or in the kernel half. */
static uint32_t wild_address(void) {
    uint32_t r = next();
    switch (r % 4) {
    case 0:
        return r % 0x00400000u; /* NULL guard area */
    case 1:
        return 0x10000000u + r % 0x70000000u; /* unmapped user space */
    case 2:
        return 0xC0000000u + r % 0x30000000u; /* kernel: direct map */
    default:
        return 0xF0000000u + r % 0x0FFFF000u; /* kernel: heap, kmap, top */
    }
}

int main(void) {
    int killed = 0;
    for (int i = 0; i < CHILDREN; i++) {
        uint32_t addr = wild_address();
        int how = (int)(next() % 3);
        int pid = fork();
        if (pid < 0) {
            return 1;
        }
        if (pid == 0) {
            volatile uint32_t *p = (volatile uint32_t *)addr;
            if (how == 0) {
                return (int)*p;
            } else if (how == 1) {
                *p = 0xDEADBEEF;
            } else {
                ((void (*)(void))addr)();
            }
            return 0; /* not reached */
        }
        int status = 0;
        if (waitpid(pid, &status) != pid) {
            return 2;
        }
        if (WIFSIGNALED(status) && WTERMSIG(status) == 11) {
            killed++;
        }
    }
    put_num("wild: children killed by SIGSEGV: ", (uint32_t)killed);
    return killed == CHILDREN ? 0 : 3;
}
