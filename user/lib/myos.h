/* MyOS user library: system calls (int 0x80) and a few helpers.
 *
 * System calls take their number in eax and up to six arguments in ebx, ecx,
 * edx, esi, edi, ebp; the result comes back in eax (negative = -errno).
 * Numbers follow Linux i386 where one exists; mmap takes its six arguments
 * in registers and its offset in bytes.
 */
#ifndef MYOS_USER_H
#define MYOS_USER_H

typedef unsigned int uint32_t;
typedef int int32_t;
typedef unsigned char uint8_t;

#define SYS_EXIT 1
#define SYS_FORK 2
#define SYS_WRITE 4
#define SYS_OPEN 5
#define SYS_WAITPID 7
#define SYS_GETPID 20
#define SYS_MMAP 90
#define SYS_MUNMAP 91
#define SYS_MPROTECT 125
#define SYS_YIELD 158
#define SYS_GETTID 224
#define SYS_GETCPU 318
#define SYS_SHOW_MAPS 400
#define SYS_THREAD_CREATE 410
#define SYS_THREAD_EXIT 411
#define SYS_THREAD_JOIN 412

#define PROT_NONE 0x0
#define PROT_READ 0x1
#define PROT_WRITE 0x2
#define PROT_EXEC 0x4
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_FAILED ((void *)-1)

#define O_RDONLY 0
#define O_RDWR 2

#define PAGE_SIZE 4096

static inline int32_t syscall6(int32_t n, uint32_t a, uint32_t b, uint32_t c, uint32_t d,
                               uint32_t e, uint32_t f) {
    /* ebp can't be an operand: the number and the sixth argument go in
     * memory, reached through eax, and ebp is saved around the trap. */
    volatile uint32_t nf[2] = {(uint32_t)n, f};
    int32_t ret;
    __asm__ volatile("push %%ebp\n\t"
                     "mov 4(%%eax), %%ebp\n\t"
                     "mov (%%eax), %%eax\n\t"
                     "int $0x80\n\t"
                     "pop %%ebp"
                     : "=a"(ret)
                     : "a"(nf), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                     : "memory");
    return ret;
}

static inline int32_t syscall3(int32_t n, uint32_t a, uint32_t b, uint32_t c) {
    int32_t ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(n), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

static inline __attribute__((noreturn)) void exit(int status) {
    syscall3(SYS_EXIT, (uint32_t)status, 0, 0);
    __builtin_unreachable();
}
static inline int fork(void) { return syscall3(SYS_FORK, 0, 0, 0); }
static inline int getpid(void) { return syscall3(SYS_GETPID, 0, 0, 0); }
static inline int sched_yield(void) { return syscall3(SYS_YIELD, 0, 0, 0); }
static inline int write(int fd, const void *buf, uint32_t len) {
    return syscall3(SYS_WRITE, (uint32_t)fd, (uint32_t)buf, len);
}
/* MyOS: prints this process's regions on the console. */
static inline int show_maps(void) { return syscall3(SYS_SHOW_MAPS, 0, 0, 0); }
static inline int open(const char *path, int flags) {
    return syscall3(SYS_OPEN, (uint32_t)path, (uint32_t)flags, 0);
}
static inline int waitpid(int pid, int *status) {
    return syscall3(SYS_WAITPID, (uint32_t)pid, (uint32_t)status, 0);
}
static inline void *mmap(void *addr, uint32_t length, int prot, int flags, int fd, uint32_t offset) {
    int32_t r = syscall6(SYS_MMAP, (uint32_t)addr, length, (uint32_t)prot, (uint32_t)flags,
                         (uint32_t)fd, offset);
    return (r < 0 && r > -4096) ? MAP_FAILED : (void *)r;
}
static inline int munmap(void *addr, uint32_t length) {
    return syscall3(SYS_MUNMAP, (uint32_t)addr, length, 0);
}
static inline int mprotect(void *addr, uint32_t length, int prot) {
    return syscall3(SYS_MPROTECT, (uint32_t)addr, length, (uint32_t)prot);
}

/* Threads. A thread shares the caller's address space and descriptors;
 * exit() ends the whole process (the other threads at their next kernel
 * entry), thread_exit() only the calling thread, and a signal from a fault
 * kills only the faulting thread (thread_join reports it). */
static inline int gettid(void) { return syscall3(SYS_GETTID, 0, 0, 0); }
/* The CPU the caller runs on now (0 = the boot CPU). */
static inline int getcpu(void) { return syscall3(SYS_GETCPU, 0, 0, 0); }
static inline __attribute__((noreturn)) void thread_exit(int status) {
    syscall3(SYS_THREAD_EXIT, (uint32_t)status, 0, 0);
    __builtin_unreachable();
}
/* Where a new thread starts: its function and argument are on its stack. */
static void __attribute__((noreturn, used)) myos_thread_start(int (*fn)(void *), void *arg) {
    thread_exit(fn(arg));
}
/* Starts fn(arg) in a new thread on the stack [stack, stack + size); its
 * return value is its exit status. Returns the thread id or -errno. */
static inline int thread_create(int (*fn)(void *), void *arg, void *stack, uint32_t size) {
    /* 16-aligned top; at entry esp + 4 is 16-aligned, as after a call:
     * [esp] = 0 (no return: the start routine never returns), [esp+4] = fn,
     * [esp+8] = arg. */
    uint32_t *sp = (uint32_t *)((((uint32_t)stack + size) & ~15u) - 20);
    sp[0] = 0;
    sp[1] = (uint32_t)fn;
    sp[2] = (uint32_t)arg;
    return syscall3(SYS_THREAD_CREATE, (uint32_t)myos_thread_start, (uint32_t)sp, (uint32_t)arg);
}
/* Waits for thread tid of this process to end; its wait status (exit code
 * or killing signal) goes to *status when status is not null. */
static inline int thread_join(int tid, int *status) {
    return syscall3(SYS_THREAD_JOIN, (uint32_t)tid, (uint32_t)status, 0);
}

/* Atomics for threads on several CPUs (gcc builtins, sequentially
 * consistent). */
#define atomic_load(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define atomic_store(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define atomic_add(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

/* Wait-status decoding (as POSIX). */
#define WIFEXITED(s) (((s) & 0x7f) == 0)
#define WEXITSTATUS(s) (((s) >> 8) & 0xff)
#define WIFSIGNALED(s) (((s) & 0x7f) != 0)
#define WTERMSIG(s) ((s) & 0x7f)

static inline uint32_t strlen(const char *s) {
    uint32_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

static inline void puts(const char *s) { write(1, s, strlen(s)); }

/* Prints s, then n in decimal, then a newline. */
static inline void put_num(const char *s, uint32_t n) {
    char buf[16];
    int i = 15;
    buf[i] = '\n';
    do {
        buf[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n && i > 0);
    puts(s);
    write(1, buf + i, 16 - (uint32_t)i);
}

/* Every program defines main; _start calls it and exits with its result. */
int main(void);

#define MYOS_START                                                                          \
    void _start(void) __attribute__((section(".text.start"), noreturn));                  \
    void _start(void) { exit(main()); }

#endif
