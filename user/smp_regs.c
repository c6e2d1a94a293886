/* Stress (-smp 4): each thread's registers survive its system calls and
 * preemptions while other threads of the process storm mmap/munmap on
 * other CPUs (each thread checks values only it holds in esi, edi and ebx
 * after every call, and on its own stack). */
#include "lib/myos.h"
MYOS_START

#define CHECKERS 3
#define CALLS 20000
#define STACK_SIZE (16 * 1024)

static volatile uint32_t stop;

static int checker(void *arg) {
    uint32_t me = (uint32_t)arg;
    volatile uint32_t on_stack = 0x5150000 + me;
    for (uint32_t i = 0; i < CALLS; i++) {
        uint32_t s = 0xA0000000 + me * 0x1000000 + i, d = ~s, b = s ^ 0x5555;
        int32_t r;
        __asm__ volatile("push %%ebx\n\t"
                         "mov %[b], %%ebx\n\t"
                         "int $0x80\n\t"
                         "mov %%ebx, %[b]\n\t"
                         "pop %%ebx"
                         : "=a"(r), "+S"(s), "+D"(d), [b] "+m"(b)
                         : "a"(i % 64 == 0 ? SYS_YIELD : SYS_GETTID)
                         : "ecx", "edx", "memory");
        if (s != 0xA0000000 + me * 0x1000000 + i || d != ~s || b != (s ^ 0x5555) ||
            on_stack != 0x5150000 + me) {
            put_num("smp_regs: REGISTERS CHANGED in thread ", me);
            put_num("smp_regs: at call ", i);
            return 1;
        }
    }
    return 0;
}

static int stormer(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        volatile uint8_t *p = mmap(0, 20 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            return 1;
        }
        for (int i = 0; i < 20; i++) {
            p[i * PAGE_SIZE] = 1;
        }
        mprotect((void *)p, 20 * PAGE_SIZE, PROT_READ);
        munmap((void *)p, 20 * PAGE_SIZE);
    }
    return 0;
}

int main(void) {
    uint8_t *stacks = mmap(0, (CHECKERS + 1) * STACK_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stacks == MAP_FAILED) {
        return 1;
    }
    int storm = thread_create(stormer, 0, stacks + CHECKERS * STACK_SIZE, STACK_SIZE);
    int tids[CHECKERS];
    for (int i = 0; i < CHECKERS; i++) {
        tids[i] = thread_create(checker, (void *)i, stacks + i * STACK_SIZE, STACK_SIZE);
    }
    int bad = 0;
    for (int i = 0; i < CHECKERS; i++) {
        int status = 0;
        if (thread_join(tids[i], &status) != tids[i] || status != 0) {
            bad = 1;
        }
    }
    atomic_store(&stop, 1);
    int status = 0;
    if (storm < 0 || thread_join(storm, &status) != storm || status != 0) {
        bad = 1;
    }
    if (bad) {
        return 2;
    }
    put_num("smp_regs: system calls per thread, registers intact (3 threads): ", CALLS);
    return 0;
}
