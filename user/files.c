/* File mappings of data.txt (in the kernel's in-memory file system): a
 * private mapping's writes stay private; a shared mapping's writes reach the
 * file and every other mapping of it. */
#include "lib/myos.h"
MYOS_START

static int starts_with(const volatile char *p, const char *s) {
    for (uint32_t i = 0; s[i]; i++) {
        if (p[i] != s[i]) {
            return 0;
        }
    }
    return 1;
}

int main(void) {
    int fd = open("data.txt", O_RDWR);
    if (fd < 0) {
        return 1;
    }
    volatile char *priv = mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    volatile char *shared = mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (priv == MAP_FAILED || shared == MAP_FAILED) {
        return 2;
    }
    if (!starts_with(priv, "hello from the file") || !starts_with(shared, "hello from the file")) {
        return 3;
    }
    priv[0] = 'J';
    if (!starts_with(shared, "hello")) {
        puts("files: private write leaked into the shared mapping\n");
        return 4;
    }
    shared[0] = 'Y';
    volatile char *again = mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (again == MAP_FAILED || !starts_with(again, "Yello") || !starts_with(priv, "Jello")) {
        return 5;
    }
    puts("files: private write stayed private; shared write visible in another mapping\n");
    show_maps();
    munmap((void *)shared, PAGE_SIZE);
    munmap((void *)again, PAGE_SIZE);
    munmap((void *)priv, PAGE_SIZE);
    return 0;
}
