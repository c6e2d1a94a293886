/* System calls with random arguments: children make hundreds of random
 * mmap/munmap/mprotect/write/open/waitpid/getpid/yield/bogus calls; each may
 * fail with an error or kill itself, but the kernel must survive and give
 * every frame back. MAP_FIXED only lands in a scratch zone (replacing the
 * program text with fresh zero pages would just make a child run zeros). */
#include "lib/myos.h"
MYOS_START

#define CHILDREN 24
#define CALLS 300

static uint32_t rng;

static uint32_t next(void) {
    rng = rng * 1103515245u + 12345u;
    return rng ^ (rng >> 16);
}

static uint32_t any_address(void) {
    switch (next() % 4) {
    case 0:
        return next() & 0xFFFFF000u; /* page-aligned, anywhere */
    case 1:
        return next(); /* anything */
    case 2:
        return 0x20000000u + (next() % 0x10000000u & 0xFFFFF000u); /* scratch zone */
    default:
        return 0; /* NULL */
    }
}

static uint32_t any_length(void) {
    switch (next() % 4) {
    case 0:
        return 0;
    case 1:
        return next() % (4 * PAGE_SIZE);
    case 2:
        return (next() % 4096) * PAGE_SIZE; /* up to 16 MiB */
    default:
        return next(); /* huge */
    }
}

static void one_call(void) {
    static const int fds[] = {-1, 0, 3, 7, 1000};
    int fd = fds[next() % 5];
    uint32_t flags = next() & (MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS);
    uint32_t addr = any_address();
    if (flags & MAP_FIXED) {
        addr = 0x20000000u + (next() % 0x10000000u & 0xFFFFF000u);
    }
    switch (next() % 9) {
    case 0:
    case 1: {
        uint32_t len = any_length();
        if (len > 16u << 20) {
            len = 16u << 20;
        }
        volatile uint8_t *p = mmap((void *)addr, len, (int)(next() % 8), (int)flags, fd, next() % 3 * PAGE_SIZE);
        if (p != MAP_FAILED && len > 0) {
            uint32_t off = next() % len;
            (void)p[off & ~3u]; /* may fault: PROT_NONE, or past EOF */
        }
        break;
    }
    case 2:
        /* Mostly in the scratch zone: an unmap over the program's own text
         * or stack ends the child at once (also tried, now and then). */
        if (next() % 16 == 0) {
            munmap((void *)any_address(), any_length());
        } else {
            munmap((void *)(addr | 0x20000000u), any_length() % (64u << 20));
        }
        break;
    case 3:
        if (next() % 16 == 0) {
            mprotect((void *)any_address(), any_length(), (int)(next() % 8));
        } else {
            mprotect((void *)(addr | 0x20000000u), any_length() % (64u << 20), (int)(next() % 8));
        }
        break;
    case 4:
        write(fd == 1 ? 9 : fd, (void *)any_address(), any_length());
        break;
    case 5:
        open((const char *)any_address(), (int)(next() % 4));
        break;
    case 6:
        waitpid((int)(next() % 8) - 1, (int *)any_address());
        break;
    case 7:
        syscall6((int32_t)(next() % 300), next(), next(), next(), next(), next(), next());
        break;
    default:
        (void)getpid();
        sched_yield();
        break;
    }
}

int main(void) {
    int survived = 0;
    for (int c = 0; c < CHILDREN; c++) {
        int pid = fork();
        if (pid < 0) {
            return 1;
        }
        if (pid == 0) {
            rng = 0x9E3779B9u * (uint32_t)(c + 1);
            for (int i = 0; i < CALLS; i++) {
                int n = (int)(next() % 300);
                if (n == SYS_EXIT || n == SYS_FORK) {
                    continue; /* exit and fork are exercised elsewhere */
                }
                one_call();
            }
            return 0;
        }
        int status = 0;
        if (waitpid(pid, &status) != pid) {
            return 2;
        }
        if (status == 0) {
            survived++;
        }
    }
    put_num("sysfuzz: children that made every call and exited: ", (uint32_t)survived);
    return 0;
}
