/*
 * One LightGBM tree block ("Tree=N" up to the next one): the key=value
 * lines it may hold, collected once each (read_tree), and their values read
 * with messages naming file:line, the tree and the key. What the values
 * mean is lgb_build.c's business.
 */
#include "forest/lgb_load.h"
#include "common/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static const char *const lgb_keys[K_COUNT] = {
    "num_leaves", "num_cat", "split_feature", "threshold", "decision_type",
    "left_child", "right_child", "leaf_value", "cat_boundaries", "cat_threshold",
    "is_linear", "leaf_const", "num_features", "leaf_features", "leaf_coeff",
};

int ap__lgb_tree_err(const lgb_tree *t, long line, ap_error *err, int code, const char *fmt, ...)
{
    char msg[AP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ap__error_set(err, code, "%s:%ld: tree %d: %s", t->name, line ? line : t->line,
                        t->index, msg);
}

/* The key must hold exactly `want` values (absent counts as 0). */
int ap__lgb_want_count(const lgb_tree *t, int k, size_t want, ap_error *err)
{
    if (t->cnt[k] == want)
        return AP_OK;
    if (!t->f[k].p)
        return ap__lgb_tree_err(t, 0, err, AP_EFORMAT, "missing %s (expected %zu values)",
                               lgb_keys[k], want);
    return ap__lgb_tree_err(t, t->f[k].line, err, AP_EFORMAT, "%s has %zu values, expected %zu",
                           lgb_keys[k], t->cnt[k], want);
}

/* Next value of key k as an integer in [lo, hi]. */
int ap__lgb_tree_int(const lgb_tree *t, int k, lgb_tokens *it, long long lo, long long hi,
                    long long *out, ap_error *err)
{
    lgb_span tok;
    if (!lgb_next_token(it, &tok))
        return ap__lgb_tree_err(t, t->f[k].line, err, AP_EFORMAT, "%s ends early", lgb_keys[k]);
    if (!ap__lgb_tok_llong(tok, out))
        return ap__lgb_tree_err(t, t->f[k].line, err, AP_EFORMAT,
                               "%s value #%zu " TOKFMT " is not an integer", lgb_keys[k],
                               it->idx - 1, TOKARG(tok));
    if (*out < lo || *out > hi)
        return ap__lgb_tree_err(t, t->f[k].line, err, AP_EFORMAT,
                               "%s value #%zu = %lld out of range [%lld, %lld]", lgb_keys[k],
                               it->idx - 1, *out, lo, hi);
    return AP_OK;
}

/* Next value of key k as a double; finite unless allow_inf (never NaN). */
int ap__lgb_tree_double(const lgb_tree *t, int k, lgb_tokens *it, int allow_inf, double *out,
                       ap_error *err)
{
    lgb_span tok;
    if (!lgb_next_token(it, &tok))
        return ap__lgb_tree_err(t, t->f[k].line, err, AP_EFORMAT, "%s ends early", lgb_keys[k]);
    if (!ap__lgb_tok_double(tok, out))
        return ap__lgb_tree_err(t, t->f[k].line, err, AP_EFORMAT,
                               "%s value #%zu " TOKFMT " is not a number", lgb_keys[k], it->idx - 1,
                               TOKARG(tok));
    if (isnan(*out) || (!allow_inf && !isfinite(*out)))
        return ap__lgb_tree_err(t, t->f[k].line, err, AP_EFORMAT,
                               "%s value #%zu " TOKFMT " is not finite", lgb_keys[k], it->idx - 1,
                               TOKARG(tok));
    return AP_OK;
}

int ap__lgb_tree_scalar(const lgb_tree *t, int k, long long lo, long long hi, long long dflt,
                       long long *out, ap_error *err)
{
    if (!t->f[k].p) {
        *out = dflt;
        return AP_OK;
    }
    int rc = ap__lgb_want_count(t, k, 1, err);
    if (rc != AP_OK)
        return rc;
    lgb_tokens it = lgb_tokens_of(t->f[k]);
    return ap__lgb_tree_int(t, k, &it, lo, hi, out, err);
}

/* Tree keys LightGBM writes (Tree::ToString) that prediction does not use:
   training statistics (split gains, sums of hessians and counts per node,
   used for importances, SHAP contributions and refit) and shrinkage, the
   learning rate already multiplied into leaf_value (Tree::Shrinkage). */
static const char *const lgb_skip_keys[] = {
    "split_gain", "leaf_weight", "leaf_count", "internal_value", "internal_weight",
    "internal_count", "shrinkage",
};
#define N_SKIP_KEYS (sizeof lgb_skip_keys / sizeof lgb_skip_keys[0])

/* Collect one tree's key=value lines; stops at the next "Tree=" or "end of
   trees" line, left in *line. *done is set at "end of trees". Every key must
   be one LightGBM writes, once. LightGBM stops reading a tree at its first
   blank line (Tree::Tree(const char*)), so nothing but blank lines may
   follow one before the next tree. */
int ap__lgb_read_tree(lgb_reader *r, lgb_tree *t, lgb_span *line, int *done, ap_error *err)
{
    for (int k = 0; k < K_COUNT; k++) {
        t->f[k].p = NULL;
        t->cnt[k] = 0;
    }
    unsigned seen = 0, skip_seen = 0;
    int ended = 0; /* a blank line after key lines was seen */
    int nkeys = 0;
    for (;;) {
        if (!ap__lgb_read_line(r, line))
            return ap__lgb_tree_err(
                t, 0, err, AP_EFORMAT,
                "truncated LightGBM model: file ends inside the tree (no 'end of "
                "trees' line)");
        if (lgb_span_starts(*line, "Tree="))
            return AP_OK;
        if (lgb_span_eq(*line, "end of trees")) {
            *done = 1;
            return AP_OK;
        }
        if (line->n == 0) {
            ended = nkeys > 0;
            continue;
        }
        if (ended)
            return ap__lgb_tree_err(t, line->line, err, AP_EFORMAT,
                                   "line " TOKFMT " after the blank line that ends the tree "
                                   "(LightGBM would not read it)",
                                   TOKARG(*line));
        lgb_span key, val;
        if (!ap__lgb_split_kv(*line, &key, &val))
            return ap__lgb_tree_err(t, line->line, err, AP_EFORMAT, "not a key=value line: " TOKFMT,
                                   TOKARG(*line));
        nkeys++;
        int k;
        for (k = 0; k < K_COUNT && !lgb_span_eq(key, lgb_keys[k]); k++)
            ;
        if (k < K_COUNT) {
            if (seen >> k & 1)
                return ap__lgb_tree_err(t, key.line, err, AP_EFORMAT, "%s appears twice",
                                       lgb_keys[k]);
            seen |= 1u << k;
            if (val.n > 0) { /* "key=" counts as absent */
                t->f[k] = val;
                t->cnt[k] = ap__lgb_count_tokens(val);
            }
            continue;
        }
        size_t j;
        for (j = 0; j < N_SKIP_KEYS && !lgb_span_eq(key, lgb_skip_keys[j]); j++)
            ;
        if (j == N_SKIP_KEYS)
            return ap__lgb_tree_err(t, key.line, err, AP_EUNSUPPORTED,
                                   "unknown key " TOKFMT " (refusing rather than ignoring it)",
                                   TOKARG(key));
        if (skip_seen >> j & 1)
            return ap__lgb_tree_err(t, key.line, err, AP_EFORMAT, "%s appears twice",
                                   lgb_skip_keys[j]);
        skip_seen |= 1u << j;
    }
}
