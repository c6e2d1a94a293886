/* Stress (-smp 4): three threads storm mmap/munmap/mprotect on one address
 * space (touching, protecting and unmapping overlapping ranges) while the
 * main thread forks children that touch memory and exit. The kernel test
 * checks afterwards that frames and heap are back at their baseline. */
#include "lib/myos.h"
MYOS_START

#define STORMERS 3
#define ROUNDS 300
#define FORKS 40
#define STACK_SIZE (16 * 1024)

static volatile uint32_t done;

static uint32_t rng(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static int stormer(void *arg) {
    uint32_t seed = 0x9E3779B9u * ((uint32_t)arg + 1);
    for (uint32_t round = 0; round < ROUNDS; round++) {
        uint32_t pages = 1 + rng(&seed) % 24;
        volatile uint8_t *p = mmap(0, pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            return 1;
        }
        for (uint32_t i = 0; i < pages; i++) {
            p[i * PAGE_SIZE] = (uint8_t)(round + i);
        }
        uint32_t cut = rng(&seed) % pages;
        if (mprotect((void *)(p + cut * PAGE_SIZE), PAGE_SIZE, PROT_READ) != 0) {
            return 2;
        }
        if (p[cut * PAGE_SIZE] != (uint8_t)(round + cut)) {
            return 3;
        }
        if (mprotect((void *)p, pages * PAGE_SIZE, PROT_READ | PROT_WRITE) != 0) {
            return 4;
        }
        p[cut * PAGE_SIZE] = 1;
        /* The cut page first, then the two sides (not the whole range: the
         * hole may hold another thread's new mapping by then). */
        if (munmap((void *)(p + cut * PAGE_SIZE), PAGE_SIZE) != 0) {
            return 5;
        }
        if (cut > 0 && munmap((void *)p, cut * PAGE_SIZE) != 0) {
            return 6;
        }
        if (cut + 1 < pages &&
            munmap((void *)(p + (cut + 1) * PAGE_SIZE), (pages - cut - 1) * PAGE_SIZE) != 0) {
            return 7;
        }
    }
    atomic_add(&done, 1);
    return 0;
}

int main(void) {
    uint8_t *stacks = mmap(0, STORMERS * STACK_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    volatile uint8_t *data = mmap(0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stacks == MAP_FAILED || data == MAP_FAILED) {
        return 1;
    }
    for (int i = 0; i < 8; i++) {
        data[i * PAGE_SIZE] = (uint8_t)i;
    }
    int tids[STORMERS];
    for (int i = 0; i < STORMERS; i++) {
        tids[i] = thread_create(stormer, (void *)i, stacks + i * STACK_SIZE, STACK_SIZE);
        if (tids[i] < 0) {
            return 2;
        }
    }
    uint32_t forks = 0;
    for (int f = 0; f < FORKS; f++) {
        int pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 8; i++) {
                if (data[i * PAGE_SIZE] != (uint8_t)i) {
                    exit(1);
                }
                data[i * PAGE_SIZE] = 0xEE;
            }
            volatile uint8_t *q = mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (q != MAP_FAILED) {
                q[0] = 1;
                q[3 * PAGE_SIZE] = 2;
            }
            exit(0);
        }
        if (pid > 0) {
            int status = 0;
            if (waitpid(pid, &status) != pid || status != 0) {
                return 3;
            }
            forks++;
        }
    }
    int failed = 0;
    for (int i = 0; i < STORMERS; i++) {
        int status = 0;
        if (thread_join(tids[i], &status) != tids[i] || status != 0) {
            put_num("smp_storm: a storming thread failed, wait status ", (uint32_t)status);
            failed = 1;
        }
    }
    if (failed || done != STORMERS) {
        return 4;
    }
    put_num("smp_storm: mmap/mprotect/munmap rounds per thread (3 threads): ", ROUNDS);
    put_num("smp_storm: forks meanwhile: ", forks);
    return 0;
}
