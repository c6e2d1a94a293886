/* fork + copy-on-write: after fork both sides write the same page; each
 * sees only its own data. */
#include "lib/myos.h"
MYOS_START

#define PAGES 8

int main(void) {
    uint32_t *p = mmap(0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return 1;
    }
    for (int i = 0; i < PAGES; i++) {
        p[i * PAGE_SIZE / 4] = 0x1000 + i;
    }
    int pid = fork();
    if (pid < 0) {
        return 2;
    }
    uint32_t mine = pid == 0 ? 0xC0DE : 0xFACE;
    for (int i = 0; i < PAGES; i++) {
        if (p[i * PAGE_SIZE / 4] != 0x1000 + (uint32_t)i) {
            return 3;
        }
        p[i * PAGE_SIZE / 4] = mine + i;
        sched_yield();
    }
    for (int i = 0; i < PAGES; i++) {
        if (p[i * PAGE_SIZE / 4] != mine + (uint32_t)i) {
            return 4;
        }
    }
    if (pid == 0) {
        puts("cow: child sees its own writes\n");
        return 0;
    }
    int status = 0;
    if (waitpid(pid, &status) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return 5;
    }
    puts("cow: parent sees its own writes; child exited 0\n");
    return 0;
}
