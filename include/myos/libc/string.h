/*
 * A minimal <string.h> for C code compiled freestanding into the kernel
 * (`cargo xtask run --c`, which puts include/myos/libc first on the include
 * path; the C example kernel, compiled with -nostdinc, too). The kernel
 * provides these functions (Rust's `core` needs them too); libmyos.a
 * defines them as weak symbols, so a kernel's own definitions win.
 */
#ifndef MYOS_LIBC_STRING_H
#define MYOS_LIBC_STRING_H

#include "../types.h"

void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
