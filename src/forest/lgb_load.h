/*
 * Private to the LightGBM loader: the seams between its files.
 *
 *   lightgbm.c       the file: header lines, then the trees in order,
 *                    tree_sizes (ap__lightgbm_load, forest_internal.h)
 *   lgb_build.c      one tree's values -> an IR tree (split rules,
 *                    categorical bitsets, linear leaves)
 *   lgb_tree.c       one tree block: its key=value lines, values with messages
 *   lgb_objective.c  the objective line -> transform and sigmoid scale
 *   lgb_text.c       lines, key=value, tokens, numbers
 *
 * Calls go down this list only (lightgbm.c calls the others, lgb_build.c
 * calls lgb_tree.c, and every file uses lgb_text.c's helpers, the small ones
 * inline below), never back up.
 */
#ifndef AP_FOREST_LGB_LOAD_H
#define AP_FOREST_LGB_LOAD_H

#include <stddef.h>
#include <string.h>
#include "alphapulse/common.h"
#include "common/error.h"
#include "forest/ir.h"

/* ---- lgb_text.c: the text ---- */

/* A trimmed piece of the buffer and the 1-based line it sits on. */
typedef struct lgb_span {
    const char *p;
    size_t n;
    long line;
} lgb_span;

typedef struct lgb_reader {
    const char *p, *end;
    long line;
} lgb_reader;

/* Space-separated tokens of a value. */
typedef struct lgb_tokens {
    const char *p, *end;
    size_t idx; /* index of the next token */
} lgb_tokens;

/* Token for messages: at most 40 characters of it. */
#define TOKFMT "'%.*s%s'"
#define TOKARG(t) (int)((t).n > 40 ? 40 : (t).n), (t).p, ((t).n > 40 ? "..." : "")

/* Next line, trimmed of blanks and CR. Returns 0 at the end of the buffer. */
int ap__lgb_read_line(lgb_reader *r, lgb_span *out);
/* Split "key=value" at the first '=' and trim both sides. 0 if no '='. */
int ap__lgb_split_kv(lgb_span line, lgb_span *key, lgb_span *val);
size_t ap__lgb_count_tokens(lgb_span v);
/* The whole token as a number: 1, or 0 if it is not one. */
int ap__lgb_tok_double(lgb_span tok, double *out);
int ap__lgb_tok_llong(lgb_span tok, long long *out);

/* The small ones, inline: they run once per token of every tree array. */
static inline int lgb_is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static inline int lgb_span_eq(lgb_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

static inline int lgb_span_starts(lgb_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n >= n && memcmp(s.p, lit, n) == 0;
}

static inline lgb_tokens lgb_tokens_of(lgb_span v)
{
    /* an absent key (p == NULL) has no tokens; NULL + 0 is undefined in C */
    lgb_tokens t = {v.p, v.p ? v.p + v.n : NULL, 0};
    return t;
}

static inline int lgb_next_token(lgb_tokens *t, lgb_span *tok)
{
    while (t->p < t->end && lgb_is_blank(*t->p))
        t->p++;
    if (t->p >= t->end)
        return 0;
    const char *s = t->p;
    while (t->p < t->end && !lgb_is_blank(*t->p))
        t->p++;
    tok->p = s;
    tok->n = (size_t)(t->p - s);
    t->idx++;
    return 1;
}

/* ---- lgb_objective.c ---- */

/* Set ir->transform, ir->sigmoid_scale and ir->objective from the objective
   line's value v; num_class is the header's. */
int ap__lgb_parse_objective(lgb_span v, int num_class, const char *name, ap_forest_ir *ir,
                           ap_error *err);

/* ---- lgb_tree.c: one tree block ---- */

enum {
    K_NUM_LEAVES, K_NUM_CAT, K_SPLIT_FEATURE, K_THRESHOLD, K_DECISION_TYPE, K_LEFT_CHILD,
    K_RIGHT_CHILD, K_LEAF_VALUE, K_CAT_BOUNDARIES, K_CAT_THRESHOLD, K_IS_LINEAR, K_LEAF_CONST,
    K_NUM_FEATURES, K_LEAF_FEATURES, K_LEAF_COEFF, K_COUNT
};

typedef struct lgb_tree {
    const char *name;
    int index;
    long line;             /* the Tree= line */
    lgb_span f[K_COUNT];   /* p == NULL: absent (LightGBM also treats "key=" as absent) */
    size_t cnt[K_COUNT];
} lgb_tree;

/* Collect one tree's key=value lines into t (name, index, line set by the
   caller); stops at the next "Tree=" or "end of trees" line, left in *line.
   *done is set at "end of trees". */
int ap__lgb_read_tree(lgb_reader *r, lgb_tree *t, lgb_span *line, int *done, ap_error *err);
/* A message "name:line: tree N: ..." (line 0: the Tree= line); returns code. */
int ap__lgb_tree_err(const lgb_tree *t, long line, ap_error *err, int code, const char *fmt, ...)
    AP_PRINTF(5, 6);
/* The key must hold exactly `want` values (absent counts as 0). */
int ap__lgb_want_count(const lgb_tree *t, int k, size_t want, ap_error *err);
/* Next value of key k as an integer in [lo, hi]. */
int ap__lgb_tree_int(const lgb_tree *t, int k, lgb_tokens *it, long long lo, long long hi,
                    long long *out, ap_error *err);
/* Next value of key k as a double; finite unless allow_inf (never NaN). */
int ap__lgb_tree_double(const lgb_tree *t, int k, lgb_tokens *it, int allow_inf, double *out,
                       ap_error *err);
/* Key k as one integer in [lo, hi]; dflt when absent. */
int ap__lgb_tree_scalar(const lgb_tree *t, int k, long long lo, long long hi, long long dflt,
                       long long *out, ap_error *err);

/* ---- lgb_build.c ---- */

/* Append tree t to ir (group t->index % ir->num_groups). */
int ap__lgb_build_tree(const lgb_tree *t, ap_forest_ir *ir, ap_error *err);

#endif
