/*
 * A small append-only text buffer for writing JSON and Prometheus text.
 * Responses are printed directly instead of being built as jansson trees:
 * it is several times cheaper per request, and number formatting is ours
 * (%.17g round-trips a double; NaN and infinities become null).
 * Starts in caller storage (usually the stack) and moves to the heap when it
 * grows; on allocation failure it sets `failed` and drops further text.
 */
#ifndef AP_SERVER_JBUF_H
#define AP_SERVER_JBUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct jbuf {
    char *p;
    size_t len, cap;
    int heap, failed;
} jbuf;

void ap__jb_init(jbuf *b, char *storage, size_t cap);
void ap__jb_free(jbuf *b);
void ap__jb_raw(jbuf *b, const char *s, size_t n);
void ap__jb_puts(jbuf *b, const char *s);
void ap__jb_printf(jbuf *b, const char *fmt, ...) AP_PRINTF(2, 3);
/* A JSON string literal, quoted and escaped. */
void ap__jb_str(jbuf *b, const char *s);
/* A double (%.17g), or null when not finite. */
void ap__jb_num(jbuf *b, double v);
void ap__jb_u64(jbuf *b, uint64_t v);
void ap__jb_i64(jbuf *b, int64_t v);
/* Drop a trailing ',' (after a loop that wrote "x," items). */
void ap__jb_uncomma(jbuf *b);

#endif
