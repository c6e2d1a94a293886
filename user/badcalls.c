/* Bad system-call arguments are refused with errors, never crash the kernel. */
#include "lib/myos.h"
MYOS_START

int main(void) {
    if (mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
        return 1; /* length 0 */
    }
    if (mmap(0, PAGE_SIZE, PROT_READ, MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
        return 2; /* neither shared nor private */
    }
    if (mmap((void *)0x500001, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
        return 3; /* unaligned fixed */
    }
    if (mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, 42, 0) != MAP_FAILED) {
        return 4; /* bad fd */
    }
    if (munmap((void *)0x500001, PAGE_SIZE) != -22) {
        return 5; /* EINVAL */
    }
    if (write(1, (void *)0xC0000000u, 16) != -14) {
        return 6; /* EFAULT: kernel pointer */
    }
    if (write(1, (void *)0x10, 16) != -14) {
        return 7; /* EFAULT: unmapped */
    }
    if (waitpid(-1, 0) != -10) {
        return 8; /* ECHILD */
    }
    if (open("no-such-file", O_RDONLY) != -2) {
        return 9; /* ENOENT */
    }
    if (syscall3(9999, 0, 0, 0) != -38) {
        return 10; /* ENOSYS */
    }
    int fd = open("data.txt", O_RDONLY);
    if (mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) != MAP_FAILED) {
        return 11; /* EACCES: shared writable of a read-only file */
    }
    if (mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, 1) != MAP_FAILED) {
        return 12; /* EINVAL: unaligned file offset (the sixth argument, in ebp) */
    }
    if (mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, PAGE_SIZE) == MAP_FAILED) {
        return 13; /* an aligned offset past the end is allowed (touching it is SIGBUS) */
    }
    puts("badcalls: every bad argument was refused\n");
    return 0;
}
