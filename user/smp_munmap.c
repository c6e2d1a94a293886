/* Stress (-smp 4): munmap against a reader on another CPU. Thread A reads
 * page P in a loop; the main thread munmaps P, then raises a flag. Once A
 * has seen the flag, its next read of P must fault (SIGSEGV kills A, which
 * thread_join reports); a read that succeeds after the flag used a stale
 * TLB entry. Exit 0: every round faulted. */
#include "lib/myos.h"
MYOS_START

#define ROUNDS 400
#define STACK_SIZE (16 * 1024)

static volatile uint32_t *page;
static volatile uint32_t flag, started, reader_cpu;

static int reader(void *arg) {
    (void)arg;
    uint32_t sum = 0;
    sum += page[0];
    atomic_store(&started, 1);
    while (!atomic_load(&flag)) {
        sum += page[0];
    }
    atomic_store(&reader_cpu, (uint32_t)getcpu());
    sum += page[0]; /* must fault */
    return 100 + (int)(sum & 1); /* a stale read */
}

int main(void) {
    uint8_t *stack = mmap(0, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED) {
        return 1;
    }
    uint32_t cross = 0, early = 0;
    for (uint32_t round = 0; round < ROUNDS; round++) {
        page = mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) {
            return 2;
        }
        page[0] = round;
        atomic_store(&flag, 0);
        atomic_store(&started, 0);
        atomic_store(&reader_cpu, 99);
        int tid = thread_create(reader, 0, stack, STACK_SIZE);
        if (tid < 0) {
            return 3;
        }
        while (!atomic_load(&started)) {
            cpu_relax();
        }
        int me = getcpu();
        if (munmap((void *)page, PAGE_SIZE) != 0) {
            return 4;
        }
        atomic_store(&flag, 1);
        int status = 0;
        if (thread_join(tid, &status) != tid) {
            return 5;
        }
        if (!WIFSIGNALED(status) || WTERMSIG(status) != 11) {
            put_num("smp_munmap: STALE TLB: a read after munmap succeeded in round ", round);
            return 6;
        }
        uint32_t at = atomic_load(&reader_cpu);
        if (at == 99) {
            early++; /* faulted before it saw the flag: fine too */
        } else if (at != (uint32_t)me) {
            cross++;
        }
    }
    put_num("smp_munmap: rounds, every read after munmap faulted: ", ROUNDS);
    put_num("smp_munmap: rounds where the reader saw the flag on another CPU: ", cross);
    put_num("smp_munmap: rounds where it faulted before seeing the flag: ", early);
    return 0;
}
