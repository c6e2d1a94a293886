/* FPU/SSE state survives context switches: parent and child compute with
 * doubles (in SSE registers, which the compiler keeps live across the
 * sched_yield trap) while yielding and being preempted, and get results
 * identical to an uninterrupted run. */
#include "lib/myos.h"
MYOS_START

static int compute(double seed) {
    double acc = seed;
    for (int i = 1; i <= 2000; i++) {
        acc = acc * 1.0001 + 1.0 / i;
        if (i % 100 == 0) {
            sched_yield();
        }
    }
    /* Recompute without yielding; both runs must agree bit for bit. */
    double again = seed;
    for (int i = 1; i <= 2000; i++) {
        again = again * 1.0001 + 1.0 / i;
    }
    return acc == again;
}

int main(void) {
    int pid = fork();
    if (pid < 0) {
        return 1;
    }
    int ok = compute(pid == 0 ? 3.25 : 7.5);
    if (pid == 0) {
        return ok ? 0 : 10;
    }
    int status = -1;
    if (waitpid(pid, &status) != pid || status != 0 || !ok) {
        return 2;
    }
    puts("fpu: floating-point state kept across switches\n");
    return 0;
}
