/*
 * LightGBM's text format at the level of characters: lines (trimmed, with
 * their line numbers), key=value splits, space-separated tokens and whole-
 * token numbers. Nothing here knows what a key means (lgb_load.h).
 */
#include "forest/lgb_load.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Next line, trimmed of blanks and CR. Returns 0 at the end of the buffer. */
int ap__lgb_read_line(lgb_reader *r, lgb_span *out)
{
    if (r->p >= r->end)
        return 0;
    const char *s = r->p;
    const char *nl = memchr(s, '\n', (size_t)(r->end - s));
    const char *e = nl ? nl : r->end;
    r->p = nl ? nl + 1 : r->end;
    r->line++;
    while (s < e && lgb_is_blank(*s))
        s++;
    while (e > s && lgb_is_blank(e[-1]))
        e--;
    out->p = s;
    out->n = (size_t)(e - s);
    out->line = r->line;
    return 1;
}

/* Split "key=value" at the first '=' and trim both sides. 0 if no '='. */
int ap__lgb_split_kv(lgb_span line, lgb_span *key, lgb_span *val)
{
    const char *eq = memchr(line.p, '=', line.n);
    if (!eq)
        return 0;
    const char *ke = eq;
    while (ke > line.p && lgb_is_blank(ke[-1]))
        ke--;
    const char *vs = eq + 1, *ve = line.p + line.n;
    while (vs < ve && lgb_is_blank(*vs))
        vs++;
    key->p = line.p;
    key->n = (size_t)(ke - line.p);
    key->line = line.line;
    val->p = vs;
    val->n = (size_t)(ve - vs);
    val->line = line.line;
    return 1;
}

size_t ap__lgb_count_tokens(lgb_span v)
{
    lgb_tokens t = lgb_tokens_of(v);
    lgb_span tok;
    size_t n = 0;
    while (lgb_next_token(&t, &tok))
        n++;
    return n;
}

/* Numbers: the whole token must parse. Tokens are followed by a blank, a
   newline or the buffer's terminating NUL, so strtod/strtoll stop inside the
   buffer; a NUL byte inside a token makes the end check fail. */
int ap__lgb_tok_double(lgb_span tok, double *out)
{
    char *end;
    *out = strtod(tok.p, &end);
    return end == tok.p + tok.n && tok.n > 0;
}

int ap__lgb_tok_llong(lgb_span tok, long long *out)
{
    char *end;
    if (tok.n == 0 || !(tok.p[0] == '-' || tok.p[0] == '+' || (tok.p[0] >= '0' && tok.p[0] <= '9')))
        return 0;
    errno = 0;
    *out = strtoll(tok.p, &end, 10);
    return end == tok.p + tok.n && errno == 0;
}
