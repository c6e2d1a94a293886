/*
 * mmap of files (the fd and offset arguments), through the C process's
 * in-memory files (myos_file_create): shared mappings write back on munmap,
 * private ones never do, and the open mode and offset are checked.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"

#define RW (PROT_READ | PROT_WRITE)

static unsigned char data[6000];

TEST_MAIN {
    BOOT(0);
    for (unsigned i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + 1);
    uint32_t baseline = myos_frames_free();

    int fd = myos_file_create(data, sizeof data, MYOS_O_RDWR);
    CHECK(fd >= 0 && mm_errno() == 0, "myos_file_create: fd %d", fd);
    CHECK(myos_file_create(data, 10, 7) == -1 && mm_errno() == MM_EINVAL, "bad open mode");
    CHECK(myos_file_create(NULL, 10, MYOS_O_RDONLY) == -1 && mm_errno() == MM_EINVAL, "NULL data");

    /* A shared mapping shows the file, zero past its end, and writes back. */
    unsigned char *m = mmap(NULL, 8192, RW, MAP_SHARED, fd, 0);
    CHECK(m != NULL, "MAP_SHARED file mapping");
    CHECK(m && memcmp(m, data, sizeof data) == 0, "the file's bytes");
    int tail_zero = 1;
    for (unsigned i = sizeof data; m && i < 8192; i++)
        tail_zero &= m[i] == 0;
    CHECK(tail_zero, "the last page is zero past the end of the file");
    m[10] = 0xEE;
    m[5000] = 0xDD;
    CHECK(munmap(m, 8192) == 0, "munmap");
    unsigned char back[16];
    CHECK(myos_file_read(fd, 0, back, 16) == 16 && back[10] == 0xEE && back[9] == data[9],
          "a shared write reached the file on munmap");
    CHECK(myos_file_read(fd, 5000, back, 1) == 1 && back[0] == 0xDD, "on the second page too");
    CHECK(myos_file_read(fd, 5990, back, 16) == 10, "reads stop at the end (the file never grows)");

    /* A private mapping copies on write; the file keeps its bytes. */
    unsigned char *p = mmap(NULL, 4096, RW, MAP_PRIVATE, fd, 0);
    CHECK(p && p[10] == 0xEE, "MAP_PRIVATE sees the file");
    p[11] = 0x11;
    CHECK(p[11] == 0x11, "private write");
    CHECK(munmap(p, 4096) == 0 && myos_file_read(fd, 11, back, 1) == 1 && back[0] == data[11],
          "a private write never reaches the file");

    /* An offset selects the page. */
    unsigned char *o = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 4096);
    CHECK(o && memcmp(o, data + 4096, 100) == 0 && o[5000 - 4096] == 0xDD, "offset 4096");
    CHECK(munmap(o, 4096) == 0, "munmap");
    CHECK(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 100) == NULL && mm_errno() == MM_EINVAL,
          "an unaligned offset");

    /* The open mode decides what may be mapped. */
    int ro = myos_file_create(data, sizeof data, MYOS_O_RDONLY);
    CHECK(mmap(NULL, 4096, RW, MAP_SHARED, ro, 0) == NULL && mm_errno() == MM_EACCES,
          "shared writable mapping of a read-only file");
    unsigned char *r = mmap(NULL, 4096, RW, MAP_PRIVATE, ro, 0);
    CHECK(r != NULL && r[0] == data[0], "a private writable mapping of it is fine");
    munmap(r, 4096);
    int wo = myos_file_create(data, sizeof data, MYOS_O_WRONLY);
    CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, wo, 0) == NULL && mm_errno() == MM_EACCES,
          "a write-only file cannot be mapped");

    /* Closing: the descriptor goes, mappings stay. */
    unsigned char *k = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(myos_file_close(fd) == 0 && myos_file_close(fd) == -1 && mm_errno() == MM_EBADF, "close");
    CHECK(k && k[10] == 0xEE, "a mapping outlives its descriptor");
    CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == NULL && mm_errno() == MM_EBADF,
          "a closed descriptor");
    CHECK(myos_file_read(fd, 0, back, 1) == -1 && mm_errno() == MM_EBADF, "read of a closed descriptor");
    CHECK(munmap(k, 4096) == 0, "munmap");
    myos_file_close(ro);
    myos_file_close(wo);
    CHECK(myos_frames_free() == baseline, "page caches freed with their last mapping: %d",
          (int)(baseline - myos_frames_free()));
    DONE();
}
