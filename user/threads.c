/* Threads: four threads of one process write their own slots of a shared
 * anonymous mapping, each noting the CPUs it ran on; the main thread joins
 * them and checks every slot, that a fault kills only its thread, and
 * that exit() ends a thread still running. */
#include "lib/myos.h"
MYOS_START

#define THREADS 4
#define ROUNDS 20000
#define STACK_SIZE (16 * 1024)

static volatile uint32_t *shared;
static volatile uint32_t started;

static int worker(void *arg) {
    uint32_t me = (uint32_t)arg;
    uint32_t cpus = 0;
    atomic_add(&started, 1);
    /* Everyone spins until all have started, so they spread over the CPUs. */
    while (atomic_load(&started) < THREADS) {
        cpu_relax();
    }
    for (uint32_t i = 0; i < ROUNDS; i++) {
        shared[me * 1024 + (i % 1024)] = me * 1000000 + i;
        if (i % 1024 == 0) {
            cpus |= 1u << getcpu();
        }
    }
    shared[THREADS * 1024 + me] = cpus;
    return (int)me + 10;
}

static int spinner(void *arg) {
    (void)arg;
    while (atomic_add(&shared[THREADS * 1024 + 100], 1) != 0) {
    }
    return 0;
}

static int crasher(void *arg) {
    (void)arg;
    return *(volatile int *)0; /* SIGSEGV: only this thread dies */
}

int main(void) {
    uint8_t *stacks = mmap(0, (THREADS + 1) * STACK_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    shared = mmap(0, (THREADS + 1) * PAGE_SIZE, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stacks == MAP_FAILED || shared == MAP_FAILED) {
        return 1;
    }
    int tids[THREADS];
    for (int i = 0; i < THREADS; i++) {
        tids[i] = thread_create(worker, (void *)i, stacks + i * STACK_SIZE, STACK_SIZE);
        if (tids[i] < 0) {
            return 2;
        }
    }
    uint32_t all = 0;
    for (int i = 0; i < THREADS; i++) {
        int status = 0;
        if (thread_join(tids[i], &status) != tids[i] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 10 + i) {
            return 3;
        }
        /* The last value written to the slot's last word. */
        uint32_t last = shared[i * 1024 + ((ROUNDS - 1) % 1024)];
        if (last != (uint32_t)i * 1000000 + ROUNDS - 1) {
            return 4;
        }
        uint32_t cpus = shared[THREADS * 1024 + i];
        all |= cpus;
        put_num("threads: thread ran on CPU mask ", cpus);
    }
    int distinct = 0;
    for (int c = 0; c < 32; c++) {
        distinct += (all >> c) & 1;
    }
    put_num("threads: 4 threads joined; CPUs used: ", (uint32_t)distinct);
    int tid = thread_create(crasher, 0, stacks + THREADS * STACK_SIZE, STACK_SIZE);
    int status = 0;
    if (tid < 0 || thread_join(tid, &status) != tid || !WIFSIGNALED(status) ||
        WTERMSIG(status) != 11) {
        return 5;
    }
    puts("threads: a thread's SIGSEGV killed only that thread\n");
    /* Left running: exit() (returning from main) ends it with the process. */
    if (thread_create(spinner, 0, stacks + THREADS * STACK_SIZE, STACK_SIZE) < 0) {
        return 6;
    }
    while (atomic_load(&shared[THREADS * 1024 + 100]) == 0) {
        sched_yield();
    }
    return 0;
}
