/* Preemption: parent and child each spin, without system calls, until the
 * other one writes a shared flag; only the timer can switch between them. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    volatile uint32_t *flags = mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (flags == MAP_FAILED) {
        return 1;
    }
    int pid = fork();
    if (pid < 0) {
        return 2;
    }
    if (pid == 0) {
        flags[0] = 1;
        while (flags[1] == 0) {
        }
        return 0;
    }
    while (flags[0] == 0) {
    }
    flags[1] = 1;
    int status = -1;
    if (waitpid(pid, &status) != pid || status != 0) {
        return 3;
    }
    puts("preempt: both sides were preempted by the timer\n");
    return 0;
}
