/* Stress (-smp 4): fork while sibling threads write on other CPUs. Three
 * threads keep incrementing their counters in a private page; the main
 * thread forks. The child's copy must hold pre-fork data only: it reads
 * the counters, spins, reads them again and exits 1 if they moved (a
 * sibling still wrote the shared frame through a stale writable TLB entry
 * after fork made it copy-on-write). */
#include "lib/myos.h"
MYOS_START

#define ROUNDS 120
#define WRITERS 3
#define STACK_SIZE (16 * 1024)

static volatile uint32_t *page;
static volatile uint32_t stop, running;

static int writer(void *arg) {
    uint32_t me = (uint32_t)arg;
    atomic_add(&running, 1);
    while (!atomic_load(&stop)) {
        page[me] = page[me] + 1;
    }
    return 0;
}

static int child_check(void) {
    uint32_t before[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        before[i] = page[i];
    }
    for (volatile int spin = 0; spin < 50000; spin++) {
    }
    sched_yield();
    for (int i = 0; i < WRITERS; i++) {
        if (page[i] != before[i]) {
            return 1;
        }
    }
    return 0;
}

int main(void) {
    uint8_t *stacks = mmap(0, WRITERS * STACK_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page = mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stacks == MAP_FAILED || page == MAP_FAILED) {
        return 1;
    }
    page[0] = 0;
    int tids[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        tids[i] = thread_create(writer, (void *)i, stacks + i * STACK_SIZE, STACK_SIZE);
        if (tids[i] < 0) {
            return 2;
        }
    }
    while (atomic_load(&running) < WRITERS) {
        cpu_relax();
    }
    int failures = 0;
    for (uint32_t round = 0; round < ROUNDS; round++) {
        int pid = fork();
        if (pid == 0) {
            exit(child_check());
        }
        if (pid < 0) {
            failures = 100;
            break;
        }
        int status = 0;
        if (waitpid(pid, &status) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            put_num("smp_cowfork: the child saw a sibling's write after fork in round ", round);
            failures++;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WRITERS; i++) {
        int status = 0;
        thread_join(tids[i], &status);
    }
    if (failures) {
        return 3;
    }
    put_num("smp_cowfork: forks, each child saw pre-fork data only: ", ROUNDS);
    put_num("smp_cowfork: writer 0 counted to ", page[0]);
    return 0;
}
