/*
 * myos/types.h — the fixed-width types the MyOS headers use, with or
 * without a C library.
 *
 * With headers available (a hosted build, or -ffreestanding with the
 * compiler's own <stdint.h>), this is <stddef.h> + <stdint.h>. Under
 * -nostdinc, where no header exists, the same types come from the
 * compiler's predefined macros (__UINT32_TYPE__, __SIZE_TYPE__, ...; GCC and
 * Clang define them), so <myos/memory.h> compiles with exactly
 * `-nostdinc -ffreestanding`. The typedefs name the same types <stdint.h>
 * would, so a kernel's own identical typedefs do not conflict (C11).
 * Define MYOS_NO_STDINT_TYPEDEFS to skip them when the kernel defines
 * these names differently before including this header.
 */
#ifndef MYOS_TYPES_H
#define MYOS_TYPES_H

#if defined(__has_include)
#if __has_include(<stdint.h>) && __has_include(<stddef.h>)
#define MYOS_HAVE_STDINT_H 1
#endif
#endif

#ifdef MYOS_HAVE_STDINT_H
#include <stddef.h>
#include <stdint.h>
#elif !defined(MYOS_NO_STDINT_TYPEDEFS)
typedef __UINT8_TYPE__ uint8_t;
typedef __UINT16_TYPE__ uint16_t;
typedef __UINT32_TYPE__ uint32_t;
typedef __UINT64_TYPE__ uint64_t;
typedef __INT32_TYPE__ int32_t;
typedef __UINTPTR_TYPE__ uintptr_t;
typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;
#ifndef NULL
#define NULL ((void *)0)
#endif
#endif

#endif /* MYOS_TYPES_H */
