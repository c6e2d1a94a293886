/*
 * A tiny test harness for the C API tests: CHECK prints one PASS or FAIL
 * line per check, DONE prints the summary line CI parses,
 * "N passed, M failed", and returns the exit status.
 *
 * The same tests run on the host library (-DMYOS_HOSTED: TEST_MAIN is main,
 * BOOT boots the simulated machine, output through stdio) and in the kernel
 * (`cargo xtask test --c tests/c/FILE.c`: TEST_MAIN is c_main, the kernel
 * has set everything up, output through kprintf).
 */
#ifndef MYOS_TEST_CHECK_H
#define MYOS_TEST_CHECK_H

#include <myos/console.h>
#include <myos/memory.h>

#ifdef MYOS_HOSTED
#include <stdio.h>
#include <myos/sim.h>
#define TEST_MAIN int main(void)
#define FLUSH() fflush(stdout)
#else
#define printf kprintf
#define TEST_MAIN int c_main(void)
#define FLUSH() ((void)0)
#endif

/* CHECK's message may be empty. */
#pragma GCC diagnostic ignored "-Wformat-zero-length"

static int checks_passed, checks_failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            checks_passed++;                                                    \
            printf("PASS %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
        } else {                                                                \
            checks_failed++;                                                    \
            printf("FAIL %s:%d: %s (mm_errno %d: %s) ", __FILE__, __LINE__,    \
                   #cond, mm_errno(), mm_strerror(mm_errno()));                 \
            printf(__VA_ARGS__);                                                \
            printf("\n");                                                       \
        }                                                                       \
        FLUSH();                                                                \
    } while (0)

/* Boots the simulated machine (every test starts with it; a no-op in the kernel). */
#ifndef MYOS_HOSTED
#define BOOT(ram) ((void)(ram))
#else
#define BOOT(ram)                                                               \
    do {                                                                        \
        int rc_ = myos_sim_boot(ram);                                           \
        if (rc_ != 0) {                                                         \
            printf("FAIL boot: myos_sim_boot returned %d\n0 passed, 1 failed\n", rc_); \
            return 1;                                                           \
        }                                                                       \
    } while (0)
#endif

/* Boots the simulated PAE machine: `low` bytes of RAM at 0, `high` at 4 GiB
 * (a no-op in the kernel, which runs whatever paging it booted with). */
#ifndef MYOS_HOSTED
#define BOOT_PAE(low, high) ((void)(low), (void)(high))
#else
#define BOOT_PAE(low, high)                                                     \
    do {                                                                        \
        int rc_ = myos_sim_boot_pae(low, high);                                 \
        if (rc_ != 0) {                                                         \
            printf("FAIL boot: myos_sim_boot_pae returned %d\n0 passed, 1 failed\n", rc_); \
            return 1;                                                           \
        }                                                                       \
    } while (0)
#endif

#define DONE()                                                                  \
    do {                                                                        \
        printf("%d passed, %d failed\n", checks_passed, checks_failed);         \
        return checks_failed == 0 ? 0 : 1;                                      \
    } while (0)

#endif
