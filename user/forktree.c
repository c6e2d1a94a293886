/* A fork of a fork; the processes exit in different orders and every frame
 * comes back. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    uint32_t *p = mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return 1;
    }
    p[0] = 1;
    int child = fork();
    if (child == 0) {
        p[0] = 2;
        int grandchild = fork();
        if (grandchild == 0) {
            p[0] = 3;
            p[PAGE_SIZE / 4] = 3;
            return p[0] == 3 ? 0 : 1;
        }
        /* Exit before the grandchild is reaped: it becomes an orphan. */
        return p[0] == 2 ? 0 : 1;
    }
    int status = -1;
    if (waitpid(child, &status) != child || status != 0 || p[0] != 1) {
        return 2;
    }
    return 0;
}
