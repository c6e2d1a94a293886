/* MAP_SHARED anonymous memory survives fork shared: the child's writes are
 * visible to the parent. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    volatile uint32_t *p = mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return 1;
    }
    p[0] = 1;
    int pid = fork();
    if (pid < 0) {
        return 2;
    }
    if (pid == 0) {
        p[0] = 42;
        p[PAGE_SIZE / 4] = 4242;
        return 0;
    }
    int status = 0;
    if (waitpid(pid, &status) != pid || status != 0) {
        return 3;
    }
    if (p[0] != 42 || p[PAGE_SIZE / 4] != 4242) {
        puts("shared: child's writes NOT visible\n");
        return 4;
    }
    puts("shared: parent sees the child's writes (42, 4242)\n");
    return 0;
}
