/* Huge and overlapping mappings: impossible sizes fail cleanly, MAP_FIXED
 * replaces what it overlaps, partial munmap and mprotect split regions,
 * and everything is given back at exit. */
#include "lib/myos.h"
MYOS_START

#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

int main(void) {
    /* Larger than user space: refused. */
    if (mmap(0, 0xF0000000u, RW, ANON, -1, 0) != MAP_FAILED) {
        return 1;
    }
    /* A lazy 1 GiB mapping costs nothing until touched. */
    uint8_t *big = mmap(0, 0x40000000u, RW, ANON, -1, 0);
    if (big == MAP_FAILED) {
        return 2;
    }
    big[0] = 1;
    big[0x3FFFF000u] = 2;
    /* Overlapping MAP_FIXED mappings in the middle of it. */
    for (uint32_t i = 0; i < 16; i++) {
        uint8_t *at = big + 0x100000u * (i + 1) - (i % 2 ? 0x1000 : 0);
        uint8_t *p = mmap(at, 3 * PAGE_SIZE, RW, ANON | MAP_FIXED, -1, 0);
        if (p != at) {
            return 3;
        }
        p[0] = (uint8_t)i;
        p[2 * PAGE_SIZE] = (uint8_t)i;
    }
    /* Punch holes and change protections across region boundaries. */
    for (uint32_t i = 0; i < 16; i++) {
        if (munmap(big + 0x100000u * (i + 1) + PAGE_SIZE, PAGE_SIZE) != 0) {
            return 4;
        }
        if (mprotect(big + 0x80000u * (2 * i + 1), 5 * PAGE_SIZE, PROT_READ) != 0) {
            return 5;
        }
    }
    if (big[0] != 1 || big[0x3FFFF000u] != 2) {
        return 6;
    }
    /* Many small mappings, then most of them gone again. */
    void *small[200];
    for (int i = 0; i < 200; i++) {
        small[i] = mmap(0, PAGE_SIZE * (1 + i % 3), RW, ANON, -1, 0);
        if (small[i] == MAP_FAILED) {
            return 7;
        }
        ((volatile uint8_t *)small[i])[0] = 1;
    }
    for (int i = 0; i < 200; i += 2) {
        if (munmap(small[i], PAGE_SIZE * (1 + i % 3)) != 0) {
            return 8;
        }
    }
    puts("mmapstorm: huge, overlapping and split mappings all behaved\n");
    return 0; /* exit frees the rest */
}
