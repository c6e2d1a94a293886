/* A fork bomb: fork until the kernel refuses, with ENOMEM when memory runs
 * low (32 MiB) or EAGAIN at the process limit. One child at a time touches
 * 128 KiB and reports ready before the next fork (so the order, and the
 * outcome, are the same on every run); then all are released and reaped. */
#include "lib/myos.h"
MYOS_START

#define MAX_TRIES 1000
#define TOUCH_PAGES 32

int main(void) {
    /* flags[0]: release; flags[1 + i]: child i is ready. */
    volatile uint32_t *flags = mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (flags == MAP_FAILED) {
        return 1;
    }
    int children = 0;
    int refused = 0;
    for (int i = 0; i < MAX_TRIES && i < 2 * PAGE_SIZE / 4 - 1; i++) {
        int pid = fork();
        if (pid < 0) {
            refused = -pid;
            break;
        }
        if (pid == 0) {
            volatile uint8_t *mine = mmap(0, TOUCH_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (mine == MAP_FAILED) {
                return 1;
            }
            for (int k = 0; k < TOUCH_PAGES; k++) {
                mine[k * PAGE_SIZE] = 1;
            }
            flags[1 + i] = 1;
            while (flags[0] == 0) {
                sched_yield();
            }
            return 0;
        }
        children++;
        while (flags[1 + i] == 0) {
            sched_yield();
        }
    }
    flags[0] = 1;
    int reaped = 0;
    int clean = 0;
    int status;
    while (waitpid(-1, &status) > 0) {
        reaped++;
        if (status == 0) {
            clean++;
        }
    }
    put_num("forkbomb: children forked before the kernel refused: ", (uint32_t)children);
    put_num("forkbomb: refused with errno ", (uint32_t)refused);
    return (reaped == children && clean == children && refused != 0 && children > 10) ? 0 : 2;
}
