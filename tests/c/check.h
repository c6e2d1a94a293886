/*
 * A tiny test harness for the C API tests (host): CHECK prints one PASS or
 * FAIL line per check, DONE prints the summary line CI parses,
 * "N passed, M failed", and returns the exit status.
 */
#ifndef MYOS_TEST_CHECK_H
#define MYOS_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <myos/memory.h>
#include <myos/sim.h>

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
        fflush(stdout);                                                         \
    } while (0)

/* Boots the simulated machine (every test binary starts with it). */
#define BOOT(ram)                                                               \
    do {                                                                        \
        int rc_ = myos_sim_boot(ram);                                           \
        if (rc_ != 0) {                                                         \
            printf("FAIL boot: myos_sim_boot returned %d\n0 passed, 1 failed\n", rc_); \
            return 1;                                                           \
        }                                                                       \
    } while (0)

#define DONE()                                                                  \
    do {                                                                        \
        printf("%d passed, %d failed\n", checks_passed, checks_failed);         \
        return checks_failed == 0 ? 0 : 1;                                      \
    } while (0)

#endif
