/* A file mapping longer than the file: the page past the end of the file
 * raises SIGBUS. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    int fd = open("data.txt", O_RDONLY);
    if (fd < 0) {
        return 1;
    }
    volatile char *p = mmap(0, 2 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        return 2;
    }
    if (p[0] != 'h' && p[0] != 'Y') {
        return 3;
    }
    return p[PAGE_SIZE]; /* wholly past the end of the file */
}
