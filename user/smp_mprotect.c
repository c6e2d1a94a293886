/* Stress (-smp 4): mprotect(PROT_READ) against a writer on another CPU.
 * Thread A writes page P in a loop; the main thread makes P read-only,
 * then raises a flag. Once A has seen the flag, its next write must fault
 * (SIGSEGV kills A); a write that succeeds after the flag used a stale
 * writable TLB entry (and the main thread would see it). */
#include "lib/myos.h"
MYOS_START

#define ROUNDS 400
#define STACK_SIZE (16 * 1024)

static volatile uint32_t *page;
static volatile uint32_t flag, started, writer_cpu;

static int writer(void *arg) {
    (void)arg;
    uint32_t i = 0;
    page[1] = i;
    atomic_store(&started, 1);
    while (!atomic_load(&flag)) {
        page[1] = ++i;
    }
    atomic_store(&writer_cpu, (uint32_t)getcpu());
    page[0] = 0xBAD; /* must fault */
    return 100;
}

int main(void) {
    uint8_t *stack = mmap(0, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page = mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED || page == MAP_FAILED) {
        return 1;
    }
    uint32_t cross = 0, early = 0;
    for (uint32_t round = 0; round < ROUNDS; round++) {
        if (mprotect((void *)page, PAGE_SIZE, PROT_READ | PROT_WRITE) != 0) {
            return 2;
        }
        page[0] = round;
        atomic_store(&flag, 0);
        atomic_store(&started, 0);
        atomic_store(&writer_cpu, 99);
        int tid = thread_create(writer, 0, stack, STACK_SIZE);
        if (tid < 0) {
            return 3;
        }
        while (!atomic_load(&started)) {
            cpu_relax();
        }
        int me = getcpu();
        if (mprotect((void *)page, PAGE_SIZE, PROT_READ) != 0) {
            return 4;
        }
        uint32_t frozen = page[1];
        atomic_store(&flag, 1);
        int status = 0;
        if (thread_join(tid, &status) != tid) {
            return 5;
        }
        if (!WIFSIGNALED(status) || WTERMSIG(status) != 11 || page[0] != round) {
            put_num("smp_mprotect: STALE TLB: a write after mprotect succeeded in round ", round);
            return 6;
        }
        if (page[1] != frozen) {
            put_num("smp_mprotect: STALE TLB: the page changed after mprotect in round ", round);
            return 7;
        }
        uint32_t at = atomic_load(&writer_cpu);
        if (at == 99) {
            early++; /* faulted before it saw the flag: fine too */
        } else if (at != (uint32_t)me) {
            cross++;
        }
    }
    put_num("smp_mprotect: rounds, every write after mprotect faulted: ", ROUNDS);
    put_num("smp_mprotect: rounds where the writer saw the flag on another CPU: ", cross);
    put_num("smp_mprotect: rounds where it faulted before seeing the flag: ", early);
    return 0;
}
