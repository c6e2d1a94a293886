/*
 * kprintf / kvprintf (include/myos/console.h): a small freestanding printf
 * that formats into a buffer and hands it to console_write (Rust, in
 * myos-capi). Compiled with the C code that uses it, both for the kernel
 * (gcc -m32 -ffreestanding) and for the host library.
 */
#include "myos/console.h"

/* <stdarg.h> when there are headers; the compiler's builtins under -nostdinc
 * (what <stdarg.h> expands to with GCC and Clang). */
#if defined(__has_include)
#if __has_include(<stdarg.h>)
#include <stdarg.h>
#endif
#endif
#ifndef va_start
typedef __builtin_va_list va_list;
#define va_start(ap, last) __builtin_va_start(ap, last)
#define va_arg(ap, type) __builtin_va_arg(ap, type)
#define va_end(ap) __builtin_va_end(ap)
#endif

#define KPRINTF_BUF 1024

struct out {
    char buf[KPRINTF_BUF];
    uint32_t len;
};

static void put(struct out *o, char c) {
    if (o->len < KPRINTF_BUF - 1)
        o->buf[o->len++] = c;
}

static void pad(struct out *o, char c, int n) {
    while (n-- > 0)
        put(o, c);
}

struct spec {
    int left, zero, plus, space, alt;
    int width, prec; /* prec < 0: none */
};

/* Formats an unsigned magnitude with sign/prefix, width and precision. */
static void number(struct out *o, const struct spec *s, unsigned long long v, int neg,
                   unsigned base, int upper) {
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;
    if (v == 0 && s->prec != 0)
        tmp[n++] = '0';
    while (v) {
        tmp[n++] = digits[v % base];
        v /= base;
    }
    const char *prefix = "";
    if (neg)
        prefix = "-";
    else if (s->plus && base == 10)
        prefix = "+";
    else if (s->space && base == 10)
        prefix = " ";
    else if (s->alt && base == 16 && n > 0 && !(n == 1 && tmp[0] == '0'))
        prefix = upper ? "0X" : "0x";
    else if (s->alt && base == 8 && tmp[n - 1] != '0')
        prefix = "0";
    int plen = 0;
    while (prefix[plen])
        plen++;
    int zeros = s->prec > n ? s->prec - n : 0;
    int total = plen + zeros + n;
    int fill = s->width > total ? s->width - total : 0;
    if (s->zero && !s->left && s->prec < 0) {
        zeros += fill;
        fill = 0;
    }
    if (!s->left)
        pad(o, ' ', fill);
    for (int i = 0; i < plen; i++)
        put(o, prefix[i]);
    pad(o, '0', zeros);
    while (n)
        put(o, tmp[--n]);
    if (s->left)
        pad(o, ' ', fill);
}

int kvprintf(const char *fmt, va_list ap) {
    struct out o;
    o.len = 0;
    if (!fmt)
        return 0;
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            put(&o, *p);
            continue;
        }
        p++;
        struct spec s = {0, 0, 0, 0, 0, 0, -1};
        for (;; p++) {
            if (*p == '-')
                s.left = 1;
            else if (*p == '0')
                s.zero = 1;
            else if (*p == '+')
                s.plus = 1;
            else if (*p == ' ')
                s.space = 1;
            else if (*p == '#')
                s.alt = 1;
            else
                break;
        }
        if (*p == '*') {
            s.width = va_arg(ap, int);
            if (s.width < 0) {
                s.left = 1;
                s.width = -s.width;
            }
            p++;
        } else {
            while (*p >= '0' && *p <= '9')
                s.width = s.width * 10 + (*p++ - '0');
        }
        if (*p == '.') {
            p++;
            s.prec = 0;
            if (*p == '*') {
                s.prec = va_arg(ap, int);
                p++;
            } else {
                while (*p >= '0' && *p <= '9')
                    s.prec = s.prec * 10 + (*p++ - '0');
            }
        }
        int len = 0; /* 0 int, 1 long, 2 long long, 3 size_t/ptrdiff_t/intmax_t */
        if (*p == 'h') {
            p++;
            if (*p == 'h')
                p++;
        } else if (*p == 'l') {
            p++;
            len = 1;
            if (*p == 'l') {
                p++;
                len = 2;
            }
        } else if (*p == 'z' || *p == 't' || *p == 'j') {
            len = *p == 'j' ? 2 : 3;
            p++;
        }
        switch (*p) {
        case 'd':
        case 'i': {
            long long v = len == 2   ? va_arg(ap, long long)
                          : len == 1 ? va_arg(ap, long)
                          : len == 3 ? (long long)va_arg(ap, ptrdiff_t)
                                     : va_arg(ap, int);
            unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
            number(&o, &s, m, v < 0, 10, 0);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            unsigned long long v = len == 2   ? va_arg(ap, unsigned long long)
                                   : len == 1 ? va_arg(ap, unsigned long)
                                   : len == 3 ? va_arg(ap, size_t)
                                              : va_arg(ap, unsigned int);
            unsigned base = *p == 'o' ? 8 : *p == 'u' ? 10 : 16;
            number(&o, &s, v, 0, base, *p == 'X');
            break;
        }
        case 'p': {
            s.alt = 1;
            number(&o, &s, (unsigned long long)(uintptr_t)va_arg(ap, void *), 0, 16, 0);
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            if (!s.left)
                pad(&o, ' ', s.width - 1);
            put(&o, c);
            if (s.left)
                pad(&o, ' ', s.width - 1);
            break;
        }
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            int n = 0;
            while (str[n] && (s.prec < 0 || n < s.prec))
                n++;
            if (!s.left)
                pad(&o, ' ', s.width - n);
            for (int i = 0; i < n; i++)
                put(&o, str[i]);
            if (s.left)
                pad(&o, ' ', s.width - n);
            break;
        }
        case '%':
            put(&o, '%');
            break;
        case '\0':
            p--; /* a lone '%' at the end */
            break;
        default: /* unknown conversion: print it as written */
            put(&o, '%');
            put(&o, *p);
            break;
        }
    }
    console_write(o.buf, o.len);
    return (int)o.len;
}

int kprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = kvprintf(fmt, ap);
    va_end(ap);
    return n;
}
