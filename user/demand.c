/* Demand paging: an anonymous mapping costs nothing until touched; each
 * first touch is one demand-zero fault, and the pages read as zero. */
#include "lib/myos.h"
MYOS_START

#define PAGES 64

int main(void) {
    uint8_t *p = mmap(0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        puts("demand: mmap failed\n");
        return 1;
    }
    for (int i = 0; i < PAGES; i++) {
        if (p[i * PAGE_SIZE + 100] != 0) {
            return 2;
        }
        p[i * PAGE_SIZE] = (uint8_t)i;
    }
    for (int i = 0; i < PAGES; i++) {
        if (p[i * PAGE_SIZE] != (uint8_t)i) {
            return 3;
        }
    }
    put_num("demand: touched pages: ", PAGES);
    if (munmap(p, PAGES * PAGE_SIZE) != 0) {
        return 4;
    }
    return 0;
}
