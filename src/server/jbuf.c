/* JSON / text writer for responses (see jbuf.h). */
#include "server/jbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ap__jb_init(jbuf *b, char *storage, size_t cap)
{
    b->p = storage;
    b->cap = cap;
    b->len = 0;
    b->heap = 0;
    b->failed = 0;
    if (cap)
        b->p[0] = 0;
}

void ap__jb_free(jbuf *b)
{
    if (b->heap)
        free(b->p);
    b->p = NULL;
    b->cap = b->len = 0;
    b->heap = 0;
}

/* Room for n more bytes plus a NUL. */
static int reserve(jbuf *b, size_t n)
{
    if (b->failed)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = b->heap ? realloc(b->p, cap) : malloc(cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    if (!b->heap && b->len)
        memcpy(p, b->p, b->len);
    b->p = p;
    b->cap = cap;
    b->heap = 1;
    return 0;
}

void ap__jb_raw(jbuf *b, const char *s, size_t n)
{
    if (reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void ap__jb_puts(jbuf *b, const char *s)
{
    ap__jb_raw(b, s, strlen(s));
}

void ap__jb_printf(jbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    /* no storage yet (a heap buffer before its first write): measure only */
    int n = b->failed ? -1 : vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= room) {
        if (reserve(b, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void ap__jb_str(jbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    ap__jb_raw(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        ap__jb_raw(b, run, (size_t)(s - run));
        char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t n = 2;
        if (c == '\n')
            esc[1] = 'n';
        else if (c == '\t')
            esc[1] = 't';
        else if (c == '\r')
            esc[1] = 'r';
        else if (c < 0x20) {
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        ap__jb_raw(b, esc, n);
        run = s + 1;
    }
    ap__jb_raw(b, run, (size_t)(s - run));
    ap__jb_raw(b, "\"", 1);
}

void ap__jb_num(jbuf *b, double v)
{
    if (!isfinite(v)) {
        ap__jb_raw(b, "null", 4);
        return;
    }
    char t[32];
    int n = snprintf(t, sizeof t, "%.17g", v);
    ap__jb_raw(b, t, (size_t)n);
}

void ap__jb_u64(jbuf *b, uint64_t v)
{
    char t[24];
    size_t i = sizeof t;
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    ap__jb_raw(b, t + i, sizeof t - i);
}

void ap__jb_i64(jbuf *b, int64_t v)
{
    if (v < 0) {
        ap__jb_raw(b, "-", 1);
        ap__jb_u64(b, (uint64_t)0 - (uint64_t)v);
    } else
        ap__jb_u64(b, (uint64_t)v);
}

void ap__jb_uncomma(jbuf *b)
{
    if (b->len && b->p[b->len - 1] == ',')
        b->p[--b->len] = 0;
}
