/* Stress (-smp 4): N threads first-touch the same demand-zero page, and
 * the same page of a shared file mapping, at once. Each adds 1 to a word
 * right after its first touch; if two of them got different frames, an
 * addition is lost. Every round a fresh mapping. */
#include "lib/myos.h"
MYOS_START

#define ROUNDS 150
#define THREADS 4
#define STACK_SIZE (16 * 1024)

static volatile uint32_t *anon, *file;
static volatile uint32_t ready, go, seen_bad;

/* Bytes 4..7 ("o fr") and 8..11 ("om t") of data.txt ("hello from the
 * file system ..."). */
#define FILE_WORD1 (0x6fu | (0x20u << 8) | (0x66u << 16) | (0x72u << 24))
#define FILE_WORD2 (0x6fu | (0x6du << 8) | (0x20u << 16) | (0x74u << 24))

static int toucher(void *arg) {
    (void)arg;
    atomic_add(&ready, 1);
    while (!atomic_load(&go)) {
        cpu_relax();
    }
    atomic_add(&anon[7], 1);  /* first touch: a write fault */
    uint32_t f = file[1];     /* first touch: a read fault */
    if (f != FILE_WORD1) {
        atomic_store(&seen_bad, 1);
    }
    atomic_add(&file[2], 1);
    return 0;
}

int main(void) {
    int fd = open("data.txt", O_RDWR);
    uint8_t *stacks = mmap(0, THREADS * STACK_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fd < 0 || stacks == MAP_FAILED) {
        return 1;
    }
    for (uint32_t round = 0; round < ROUNDS; round++) {
        anon = mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        file = mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (anon == MAP_FAILED || file == MAP_FAILED) {
            return 2;
        }
        atomic_store(&ready, 0);
        atomic_store(&go, 0);
        int tids[THREADS];
        for (int i = 0; i < THREADS; i++) {
            tids[i] = thread_create(toucher, 0, stacks + i * STACK_SIZE, STACK_SIZE);
            if (tids[i] < 0) {
                return 3;
            }
        }
        while (atomic_load(&ready) < THREADS) {
            cpu_relax();
        }
        atomic_store(&go, 1);
        for (int i = 0; i < THREADS; i++) {
            int status = 0;
            if (thread_join(tids[i], &status) != tids[i] || status != 0) {
                return 4;
            }
        }
        uint32_t a = anon[7], word2 = file[2];
        /* Put the file back as it was (word 2 is "om t"). */
        atomic_add(&file[2], (uint32_t)-THREADS);
        if (a != THREADS || seen_bad) {
            put_num("smp_firsttouch: anonymous page lost additions in round ", round);
            return 5;
        }
        if (word2 != FILE_WORD2 + THREADS) {
            put_num("smp_firsttouch: file page lost additions in round ", round);
            return 6;
        }
        munmap((void *)anon, PAGE_SIZE);
        munmap((void *)file, PAGE_SIZE);
    }
    put_num("smp_firsttouch: rounds, 4 threads got one frame per page: ", ROUNDS);
    return 0;
}
