/* A fork bomb: fork until the kernel refuses, with ENOMEM when memory runs
 * out (32 MiB) or EAGAIN at the process limit; every child touches 192 KiB
 * and waits for a shared flag; then all are released and reaped. */
#include "lib/myos.h"
MYOS_START

#define MAX_TRIES 1000

int main(void) {
    volatile uint32_t *flag = mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (flag == MAP_FAILED) {
        return 1;
    }
    int children = 0;
    int refused = 0;
    for (int i = 0; i < MAX_TRIES; i++) {
        int pid = fork();
        if (pid < 0) {
            refused = -pid;
            break;
        }
        if (pid == 0) {
            volatile uint8_t *mine = mmap(0, 48 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (mine != MAP_FAILED) {
                for (int k = 0; k < 48; k++) {
                    mine[k * PAGE_SIZE] = 1;
                }
            }
            while (flag[0] == 0) {
                sched_yield();
            }
            return 0;
        }
        children++;
    }
    flag[0] = 1;
    int reaped = 0;
    int status;
    while (waitpid(-1, &status) > 0) {
        reaped++;
    }
    put_num("forkbomb: children forked before the kernel refused: ", (uint32_t)children);
    put_num("forkbomb: refused with errno ", (uint32_t)refused);
    return (reaped == children && refused != 0 && children > 10) ? 0 : 2;
}
