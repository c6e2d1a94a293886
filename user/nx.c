/* No-execute: code copied into a PROT_READ|PROT_WRITE mapping.
 *
 * A child jumps there first: under PAE paging (NX on every page mapped
 * without PROT_EXEC) it is killed by SIGSEGV; classic i386 paging has no
 * NX bit, so there the code runs and the child exits with its value (42).
 * Then mprotect(PROT_READ|PROT_EXEC) makes the page executable and the
 * parent calls it. Last, when the child was killed, the parent jumps into
 * a fresh PROT_READ|PROT_WRITE copy itself and is killed by SIGSEGV too;
 * when the child ran (classic paging), the parent exits 0.
 *
 * The kernel's test expects SIGSEGV in PAE mode and exit 0 in classic mode;
 * every other exit code names the step that went wrong. */
#include "lib/myos.h"
MYOS_START

/* mov eax, 42; ret */
static const unsigned char CODE[] = {0xB8, 42, 0, 0, 0, 0xC3};

/* A fresh PROT_READ|PROT_WRITE page holding CODE, or 0. */
static volatile unsigned char *writable_copy(void) {
    volatile unsigned char *p =
        mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return 0;
    }
    for (uint32_t i = 0; i < sizeof CODE; i++) {
        p[i] = CODE[i];
    }
    return p;
}

static int call(volatile unsigned char *code) { return ((int (*)(void))code)(); }

int main(void) {
    volatile unsigned char *p = writable_copy();
    if (!p) {
        return 1;
    }
    int pid = fork();
    if (pid == 0) {
        exit(call(p)); /* killed here under NX */
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status) != pid) {
        return 2;
    }
    int killed = WIFSIGNALED(status) && WTERMSIG(status) == 11;
    int ran = WIFEXITED(status) && WEXITSTATUS(status) == 42;
    if (killed) {
        puts("nx: a jump into a PROT_READ|PROT_WRITE page: killed by SIGSEGV (NX)\n");
    } else if (ran) {
        puts("nx: a jump into a PROT_READ|PROT_WRITE page: it ran (classic paging has no NX)\n");
    } else {
        return 3;
    }
    if (mprotect((void *)p, PAGE_SIZE, PROT_READ | PROT_EXEC) != 0) {
        return 4;
    }
    if (call(p) != 42) {
        return 5;
    }
    puts("nx: after mprotect(PROT_READ|PROT_EXEC) the same code runs\n");
    if (ran) {
        return 0;
    }
    volatile unsigned char *q = writable_copy();
    if (!q) {
        return 6;
    }
    puts("nx: the parent jumps into a fresh PROT_READ|PROT_WRITE copy\n");
    call(q); /* killed here under NX */
    return 7;
}
