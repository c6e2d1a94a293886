/*
 * myos/console.h — printing from C code that runs in MyOS (extension).
 *
 * In the kernel the text goes to the serial console (COM1), through the
 * writer the kernel registers with the C API at boot; on the host library it
 * goes to standard output. Output written before a writer is registered is
 * dropped.
 */
#ifndef MYOS_CONSOLE_H
#define MYOS_CONSOLE_H

/* <stdint.h>, or the compiler's own types under -nostdinc. */
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes `len` bytes of `s` to the console. */
void console_write(const char *s, uint32_t len);

/*
 * printf-like formatted output to the console; returns the number of bytes
 * written. Conversions: %d %i %u %x %X %o %c %s %p %%, with the flags '-',
 * '0', '+', ' ', '#', a field width and precision (numbers or '*'), and the
 * length modifiers hh, h, l, ll, z, t, j. No floating point. One call writes
 * at most 1023 bytes (the rest is cut).
 */
int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* kprintf with a va_list (written as the compiler's own type, which is what
 * <stdarg.h>'s va_list is, so this header needs no <stdarg.h>). */
int kvprintf(const char *fmt, __builtin_va_list ap);

#ifdef __cplusplus
}
#endif

#endif /* MYOS_CONSOLE_H */
