/* mprotect: a page made read-only faults on write (in a child, which dies
 * with SIGSEGV); made writable again, the write succeeds. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    volatile uint32_t *p = mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return 1;
    }
    p[0] = 5;
    if (mprotect((void *)p, PAGE_SIZE, PROT_READ) != 0) {
        return 2;
    }
    int pid = fork();
    if (pid == 0) {
        p[0] = 6; /* read-only: SIGSEGV */
        return 0;
    }
    int status = 0;
    if (waitpid(pid, &status) != pid || !WIFSIGNALED(status) || WTERMSIG(status) != 11) {
        return 3;
    }
    if (p[0] != 5) {
        return 4;
    }
    if (mprotect((void *)p, PAGE_SIZE, PROT_READ | PROT_WRITE) != 0) {
        return 5;
    }
    p[0] = 7;
    p[PAGE_SIZE / 4] = 8; /* the second page was never read-only */
    puts("mprotect: read-only write killed the child; writable again after mprotect\n");
    return p[0] == 7 ? 0 : 6;
}
