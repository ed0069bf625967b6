/*
 * LightGBM text model loader (model format v3/v4, as written by
 * Booster::SaveModel / the CLI). This file reads the file's structure: the
 * header, then the trees in order, checked against tree_sizes; lgb_load.h
 * lists the files that do the rest.
 *
 * File layout: a header of key=value lines ("tree", version, num_class,
 * num_tree_per_iteration, max_feature_idx, objective, feature_names, the
 * bare flag line average_output, ...), then one block per tree starting at
 * "Tree=N" with key=value lines whose values are space-separated arrays, then
 * "end of trees". Only keys LightGBM itself writes are accepted, in the
 * header and in a tree (read_header here, ap__lgb_read_tree in lgb_tree.c):
 * anything else is refused, naming file:line and the key. What follows
 * "end of trees" (feature importances, "parameters: ... end of parameters",
 * pandas_categorical) is skipped: LightGBM's predictor does not read it
 * either (the parameters only set linear_tree, which predictions do not
 * consult).
 *
 * The exact split rules (LightGBM 4.x Tree::NumericalDecision /
 * CategoricalDecision) and how they map onto the IR's are in lgb_build.c;
 * the output transform is transform.c's ap__transform_lightgbm.
 */
#include "forest/forest_internal.h"
#include "forest/lgb_load.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lgb_header {
    int have_version, have_num_class, have_ntpi, have_mfi, average_output;
    long long num_class, ntpi, max_feature_idx;
    lgb_span objective, feature_names, tree_sizes;
} lgb_header;

/*
 * The header keys LightGBM writes (GBDT::SaveModelToString, v3 and v4), the
 * bare lines "tree" (first) and "average_output" aside. Any other line, and
 * any key twice, is refused: the file may hold something a newer LightGBM
 * would act on. Read and not needed:
 *   label_index           which column of a training/CLI input file is the
 *                         label: input parsing, not the model's arithmetic
 *   monotone_constraints  training constraints
 *   feature_infos         ranges / category lists seen in training; the
 *                         predictors do not consult them
 */
enum {
    H_VERSION, H_NUM_CLASS, H_NTPI, H_LABEL_INDEX, H_MFI, H_OBJECTIVE, H_FEATURE_NAMES,
    H_MONOTONE, H_FEATURE_INFOS, H_TREE_SIZES, H_COUNT
};
static const char *const header_keys[H_COUNT] = {
    "version", "num_class", "num_tree_per_iteration", "label_index", "max_feature_idx",
    "objective", "feature_names", "monotone_constraints", "feature_infos", "tree_sizes",
};

static int header_int(lgb_span key, lgb_span val, long long lo, long long hi, long long *out,
                      const char *name, ap_error *err)
{
    lgb_tokens t = lgb_tokens_of(val);
    lgb_span tok;
    if (!lgb_next_token(&t, &tok) || !ap__lgb_tok_llong(tok, out) || lgb_next_token(&t, &tok))
        return ap__error_set(err, AP_EFORMAT, "%s:%ld: %.*s=" TOKFMT " is not an integer", name,
                            key.line, (int)key.n, key.p, TOKARG(val));
    if (*out < lo || *out > hi)
        return ap__error_set(err, AP_ERANGE, "%s:%ld: %.*s=%lld out of range [%lld, %lld]", name,
                            key.line, (int)key.n, key.p, *out, lo, hi);
    return AP_OK;
}

/* Reads header lines up to the first "Tree=" (left in *line). */
static int read_header(lgb_reader *r, lgb_header *h, lgb_span *line, const char *name,
                       ap_error *err)
{
    int first = 1;
    unsigned seen = 0;
    for (;;) {
        if (!ap__lgb_read_line(r, line))
            return ap__error_set(err, AP_EFORMAT,
                                "%s: truncated LightGBM model: no 'Tree=' section after the "
                                "header (line %ld)",
                                name, r->line);
        if (line->n == 0)
            continue;
        if (first) {
            if (!lgb_span_eq(*line, "tree"))
                return ap__error_set(err, AP_EFORMAT,
                                    "%s:%ld: not a LightGBM text model (first line is not 'tree')",
                                    name, line->line);
            first = 0;
            continue;
        }
        if (lgb_span_starts(*line, "Tree="))
            return AP_OK;
        if (lgb_span_eq(*line, "end of trees"))
            return ap__error_set(err, AP_EFORMAT, "%s:%ld: model has no trees", name, line->line);
        if (lgb_span_eq(*line, "average_output")) {
            if (h->average_output)
                return ap__error_set(err, AP_EFORMAT, "%s:%ld: average_output appears twice",
                                    name, line->line);
            h->average_output = 1;
            continue;
        }
        lgb_span key, val;
        if (!ap__lgb_split_kv(*line, &key, &val))
            return ap__error_set(err, AP_EUNSUPPORTED,
                                "%s:%ld: unknown header line " TOKFMT
                                " (refusing rather than ignoring it)",
                                name, line->line, TOKARG(*line));
        int k;
        for (k = 0; k < H_COUNT && !lgb_span_eq(key, header_keys[k]); k++)
            ;
        if (k == H_COUNT)
            return ap__error_set(err, AP_EUNSUPPORTED,
                                "%s:%ld: unknown header key " TOKFMT
                                " (refusing rather than ignoring it)",
                                name, key.line, TOKARG(key));
        if (seen >> k & 1)
            return ap__error_set(err, AP_EFORMAT, "%s:%ld: %s appears twice", name, key.line,
                                header_keys[k]);
        seen |= 1u << k;
        int rc = AP_OK;
        switch (k) {
        case H_VERSION:
            if (!lgb_span_eq(val, "v3") && !lgb_span_eq(val, "v4"))
                return ap__error_set(err, AP_EUNSUPPORTED,
                                    "%s:%ld: LightGBM model version " TOKFMT
                                    " not supported (v3, v4)",
                                    name, key.line, TOKARG(val));
            h->have_version = 1;
            break;
        case H_NUM_CLASS:
            rc = header_int(key, val, 1, AP_IR_MAX_GROUPS, &h->num_class, name, err);
            h->have_num_class = 1;
            break;
        case H_NTPI:
            rc = header_int(key, val, 1, AP_IR_MAX_GROUPS, &h->ntpi, name, err);
            h->have_ntpi = 1;
            break;
        case H_MFI:
            rc = header_int(key, val, 0, AP_IR_MAX_FEATURES - 1, &h->max_feature_idx, name, err);
            h->have_mfi = 1;
            break;
        case H_OBJECTIVE: h->objective = val; break;
        case H_FEATURE_NAMES: h->feature_names = val; break;
        case H_TREE_SIZES: h->tree_sizes = val; break;
        default: break; /* not needed (above) */
        }
        if (rc != AP_OK)
            return rc;
    }
}

static int set_header(const lgb_header *h, const char *name, ap_forest_ir *ir, ap_error *err)
{
    if (!h->have_version)
        return ap__error_set(err, AP_EFORMAT, "%s: LightGBM header has no version= line", name);
    if (!h->have_num_class)
        return ap__error_set(err, AP_EFORMAT, "%s: LightGBM header has no num_class= line", name);
    if (!h->have_mfi)
        return ap__error_set(err, AP_EFORMAT, "%s: LightGBM header has no max_feature_idx= line",
                            name);
    long long ntpi = h->have_ntpi ? h->ntpi : h->num_class;
    /* LightGBM trains num_class trees per iteration (one per class), or one */
    if (ntpi != h->num_class)
        return ap__error_set(err, AP_EUNSUPPORTED,
                            "%s: num_tree_per_iteration=%lld differs from num_class=%lld", name,
                            ntpi, h->num_class);
    ir->precision = AP_PREC_F64;
    snprintf(ir->source, sizeof ir->source, "lightgbm");
    ir->num_groups = (int32_t)ntpi;
    ir->average_output = h->average_output;
    ir->base_score = calloc((size_t)ir->num_groups, sizeof *ir->base_score);
    if (!ir->base_score)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    if (h->objective.p) {
        int rc = ap__lgb_parse_objective(h->objective, (int)h->num_class, name, ir, err);
        if (rc != AP_OK)
            return rc;
    } else {
        /* no objective line: trained without one, LightGBM predicts raw scores */
        ir->transform = AP_TF_IDENTITY;
        snprintf(ir->objective, sizeof ir->objective, "none");
    }
    int32_t nf = (int32_t)h->max_feature_idx + 1;
    if (h->feature_names.p) {
        size_t cnt = ap__lgb_count_tokens(h->feature_names);
        if (cnt != (size_t)nf)
            return ap__error_set(err, AP_EFORMAT,
                                "%s:%ld: feature_names has %zu names but max_feature_idx=%d "
                                "means %d features",
                                name, h->feature_names.line, cnt, nf - 1, nf);
        ir->feature_names = calloc((size_t)nf, sizeof *ir->feature_names);
        if (!ir->feature_names)
            return ap__error_set(err, AP_ENOMEM, "%s: out of memory for feature names", name);
    }
    ir->num_features = nf; /* from here ap__forest_ir_free frees the names */
    if (ir->feature_names) {
        lgb_tokens t = lgb_tokens_of(h->feature_names);
        lgb_span tok;
        for (int32_t i = 0; lgb_next_token(&t, &tok); i++) {
            ir->feature_names[i] = strndup(tok.p, tok.n);
            if (!ir->feature_names[i])
                return ap__error_set(err, AP_ENOMEM, "%s: out of memory for feature names", name);
        }
    }
    return AP_OK;
}

int ap__lightgbm_load(const char *buf, size_t len, const char *name, ap_forest_ir *ir,
                     ap_error *err)
{
    if (!name)
        name = "model";
    lgb_reader r = {buf, buf + len, 0};
    lgb_header h;
    memset(&h, 0, sizeof h);
    lgb_span line;
    int rc = read_header(&r, &h, &line, name, err);
    if (rc == AP_OK)
        rc = set_header(&h, name, ir, err);
    /* tree_sizes: LightGBM (when the line is there) reads exactly that many
       trees, tree i at byte sum(sizes[0..i-1]) after the first "Tree=" line,
       not by scanning. So the list must name every tree and each must start
       where the sizes say, or LightGBM predicts other trees than these. */
    const char *tree0 = line.p, *scan = line.p;
    size_t crlf = 0; /* "\r\n" line ends seen since tree0: counted as one byte,
                        so a CRLF copy of a file still matches its sizes */
    lgb_tokens sizes = lgb_tokens_of(h.tree_sizes);
    unsigned long long at = 0;
    int done = 0, idx;
    for (idx = 0; rc == AP_OK && !done; idx++) {
        lgb_tree t = {.name = name, .index = idx, .line = line.line};
        if (h.tree_sizes.p && idx > 0) {
            lgb_span tok;
            long long sz;
            if (!lgb_next_token(&sizes, &tok)) {
                rc = ap__error_set(err, AP_EFORMAT,
                                  "%s:%ld: tree_sizes lists %d trees but the file holds more "
                                  "(LightGBM would read only those)",
                                  name, h.tree_sizes.line, idx - 1);
                break;
            }
            if (!ap__lgb_tok_llong(tok, &sz) || sz < 0) {
                rc = ap__error_set(err, AP_EFORMAT,
                                  "%s:%ld: tree_sizes value #%d " TOKFMT " is not a size", name,
                                  h.tree_sizes.line, idx - 1, TOKARG(tok));
                break;
            }
            at += (unsigned long long)sz;
            for (; scan + 1 < line.p; scan++)
                crlf += scan[0] == '\r' && scan[1] == '\n';
            size_t off = (size_t)(line.p - tree0) - crlf;
            if (at != (unsigned long long)off) {
                rc = ap__error_set(err, AP_EFORMAT,
                                  "%s:%ld: tree_sizes puts tree %d at byte %llu after 'Tree=0', "
                                  "but it is at byte %zu (LightGBM locates trees by these "
                                  "sizes)",
                                  name, line.line, idx, at, off);
                break;
            }
        }
        /* line is "Tree=N": N must count up from 0 */
        long long n;
        lgb_span num = {line.p + 5, line.n - 5, line.line};
        if (!ap__lgb_tok_llong(num, &n) || n != idx) {
            rc = ap__error_set(err, AP_EFORMAT, "%s:%ld: expected 'Tree=%d', found " TOKFMT, name,
                              line.line, idx, TOKARG(line));
            break;
        }
        if (idx >= AP_IR_MAX_TREES) {
            rc = ap__error_set(err, AP_ERANGE, "%s:%ld: more than %d trees", name, line.line,
                              AP_IR_MAX_TREES);
            break;
        }
        rc = ap__lgb_read_tree(&r, &t, &line, &done, err);
        if (rc == AP_OK)
            rc = ap__lgb_build_tree(&t, ir, err);
    }
    if (rc == AP_OK && h.tree_sizes.p) {
        /* the last tree's size (LightGBM does not use it) and nothing more */
        lgb_span tok;
        long long sz;
        size_t listed = ap__lgb_count_tokens(h.tree_sizes);
        if (listed != (size_t)idx)
            rc = ap__error_set(err, AP_EFORMAT,
                              "%s:%ld: tree_sizes lists %zu trees but the file holds %d",
                              name, h.tree_sizes.line, listed, idx);
        else if (!lgb_next_token(&sizes, &tok) || !ap__lgb_tok_llong(tok, &sz) || sz < 0)
            rc = ap__error_set(err, AP_EFORMAT, "%s:%ld: tree_sizes value #%d " TOKFMT
                              " is not a size", name, h.tree_sizes.line, idx - 1, TOKARG(tok));
    }
    if (rc == AP_OK && ir->ntrees % ir->num_groups != 0)
        rc = ap__error_set(err, AP_EFORMAT,
                          "%s: %d trees is not a whole number of iterations of %d trees", name,
                          ir->ntrees, ir->num_groups);
    return rc;
}
