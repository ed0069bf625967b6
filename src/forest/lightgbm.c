/*
 * LightGBM text model loader (model format v3/v4, as written by
 * Booster::SaveModel / the CLI) and LightGBM's objective transforms.
 *
 * File layout: a header of key=value lines ("tree", version, num_class,
 * num_tree_per_iteration, max_feature_idx, objective, feature_names, the
 * bare flag line average_output, ...), then one block per tree starting at
 * "Tree=N" with key=value lines whose values are space-separated arrays, then
 * "end of trees". Only keys LightGBM itself writes are accepted, in the
 * header and in a tree (read_header, read_tree): anything else is refused,
 * naming file:line and the key. What follows "end of trees" (feature
 * importances, "parameters: ... end of parameters", pandas_categorical) is
 * skipped: LightGBM's predictor does not read it either (the parameters only
 * set linear_tree, which predictions do not consult).
 *
 * LightGBM's node numbering: internal nodes 0..L-2 (root 0), leaves 0..L-1;
 * a child c >= 0 is internal node c, c < 0 is leaf ~c. In the IR the leaves
 * follow the internal nodes: leaf j is node L-1+j (a one-leaf tree is node 0).
 *
 * The exact split rules (LightGBM 4.x Tree::NumericalDecision /
 * CategoricalDecision) and how they map onto the IR's are in build_tree().
 */
#include "forest/forest_internal.h"
#include "common/error.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LightGBM's kZeroThreshold is declared `const double kZeroThreshold = 1e-35f`:
   the float literal widened, 1.0000000180025095e-35, not the double 1e-35. */
#define LGB_ZERO_THRESHOLD ((double)1e-35f)
/* A tree of L leaves has 2L-1 IR nodes. */
#define LGB_MAX_LEAVES ((AP_IR_MAX_NODES + 1) / 2)

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

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Next line, trimmed of blanks and CR. Returns 0 at the end of the buffer. */
static int read_line(lgb_reader *r, lgb_span *out)
{
    if (r->p >= r->end)
        return 0;
    const char *s = r->p;
    const char *nl = memchr(s, '\n', (size_t)(r->end - s));
    const char *e = nl ? nl : r->end;
    r->p = nl ? nl + 1 : r->end;
    r->line++;
    while (s < e && is_blank(*s))
        s++;
    while (e > s && is_blank(e[-1]))
        e--;
    out->p = s;
    out->n = (size_t)(e - s);
    out->line = r->line;
    return 1;
}

static int span_eq(lgb_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

static int span_starts(lgb_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n >= n && memcmp(s.p, lit, n) == 0;
}

/* Split "key=value" at the first '=' and trim both sides. 0 if no '='. */
static int split_kv(lgb_span line, lgb_span *key, lgb_span *val)
{
    const char *eq = memchr(line.p, '=', line.n);
    if (!eq)
        return 0;
    const char *ke = eq;
    while (ke > line.p && is_blank(ke[-1]))
        ke--;
    const char *vs = eq + 1, *ve = line.p + line.n;
    while (vs < ve && is_blank(*vs))
        vs++;
    key->p = line.p;
    key->n = (size_t)(ke - line.p);
    key->line = line.line;
    val->p = vs;
    val->n = (size_t)(ve - vs);
    val->line = line.line;
    return 1;
}

/* Space-separated tokens of a value. */
typedef struct lgb_tokens {
    const char *p, *end;
    size_t idx; /* index of the next token */
} lgb_tokens;

static lgb_tokens tokens_of(lgb_span v)
{
    /* an absent key (p == NULL) has no tokens; NULL + 0 is undefined in C */
    lgb_tokens t = {v.p, v.p ? v.p + v.n : NULL, 0};
    return t;
}

static int next_token(lgb_tokens *t, lgb_span *tok)
{
    while (t->p < t->end && is_blank(*t->p))
        t->p++;
    if (t->p >= t->end)
        return 0;
    const char *s = t->p;
    while (t->p < t->end && !is_blank(*t->p))
        t->p++;
    tok->p = s;
    tok->n = (size_t)(t->p - s);
    t->idx++;
    return 1;
}

static size_t count_tokens(lgb_span v)
{
    lgb_tokens t = tokens_of(v);
    lgb_span tok;
    size_t n = 0;
    while (next_token(&t, &tok))
        n++;
    return n;
}

/* Numbers: the whole token must parse. Tokens are followed by a blank, a
   newline or the buffer's terminating NUL, so strtod/strtoll stop inside the
   buffer; a NUL byte inside a token makes the end check fail. */
static int tok_double(lgb_span tok, double *out)
{
    char *end;
    *out = strtod(tok.p, &end);
    return end == tok.p + tok.n && tok.n > 0;
}

static int tok_llong(lgb_span tok, long long *out)
{
    char *end;
    if (tok.n == 0 || !(tok.p[0] == '-' || tok.p[0] == '+' || (tok.p[0] >= '0' && tok.p[0] <= '9')))
        return 0;
    errno = 0;
    *out = strtoll(tok.p, &end, 10);
    return end == tok.p + tok.n && errno == 0;
}

/* Token for messages: at most 40 characters of it. */
#define TOKFMT "'%.*s%s'"
#define TOKARG(t) (int)((t).n > 40 ? 40 : (t).n), (t).p, ((t).n > 40 ? "..." : "")

/* ---- objective ---------------------------------------------------------- */

/* LightGBM reads the objective's parameters (sigmoid:X) with Common::Atof, its
   own fast and not correctly rounded parser, rather than the precise one used
   for tree arrays. Reproduce it so an unusual sigmoid matches bit for bit. */
static double lgb_pow(double base, int power)
{
    if (power == 0)
        return 1.0;
    if (power % 2 == 0)
        return lgb_pow(base * base, power / 2);
    if (power % 3 == 0)
        return lgb_pow(base * base * base, power / 3);
    return base * lgb_pow(base, power - 1);
}

/* Only plain decimal numbers ([+-]digits[.digits][e[+-]digits]); 0 otherwise. */
static int lgb_atof(const char *p, const char *end, double *out)
{
    double sign = 1.0, value = 0.0, scale = 1.0;
    int frac = 0, digits = 0;
    if (p < end && (*p == '-' || *p == '+'))
        sign = *p++ == '-' ? -1.0 : 1.0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
        value = value * 10.0 + (*p - '0');
    if (p < end && *p == '.') {
        double right = 0.0;
        int nn = 0;
        for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
            right = (*p - '0') + right * 10.0;
            if (nn < 400) /* lgb_pow(10, >=309) is inf already */
                nn++;
        }
        value += right / lgb_pow(10.0, nn);
    }
    if (!digits)
        return 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        uint32_t expon = 0;
        p++;
        if (p < end && (*p == '-' || *p == '+'))
            frac = *p++ == '-';
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            expon = expon > 1000 ? expon : expon * 10 + (uint32_t)(*p - '0');
        if (expon > 308)
            expon = 308;
        while (expon >= 50) {
            scale *= 1E50;
            expon -= 50;
        }
        while (expon >= 8) {
            scale *= 1E8;
            expon -= 8;
        }
        while (expon > 0) {
            scale *= 10.0;
            expon -= 1;
        }
    }
    if (p != end)
        return 0;
    *out = sign * (frac ? (value / scale) : (value * scale));
    return 1;
}

/* The tokens after the name are the ones each objective's ToString writes
   (LightGBM src/objective); any other token, or one twice, is refused. */
enum {
    OBJ_SQRT = 1,       /* "sqrt": output sign(x) x^2 (RegressionL2loss and the subclasses
                           that keep its ConvertOutput) */
    OBJ_SIGMOID = 2,    /* needs sigmoid:X */
    OBJ_NUM_CLASS = 4,  /* needs num_class:K equal to the header's num_class */
    OBJ_ONE_OUTPUT = 8  /* one tree per iteration */
};

static const struct lgb_objective {
    const char *name;
    ap_transform tf;
    unsigned flags;
} lgb_objectives[] = {
    /* names as LightGBM's ObjectiveFunction::ToString writes them */
    {"regression", AP_TF_IDENTITY, OBJ_SQRT | OBJ_ONE_OUTPUT},
    {"regression_l1", AP_TF_IDENTITY, OBJ_SQRT | OBJ_ONE_OUTPUT},
    /* huber: LightGBM turns sqrt off (RegressionHuberLoss), never writes it */
    {"huber", AP_TF_IDENTITY, OBJ_ONE_OUTPUT},
    {"fair", AP_TF_IDENTITY, OBJ_SQRT | OBJ_ONE_OUTPUT},
    {"quantile", AP_TF_IDENTITY, OBJ_SQRT | OBJ_ONE_OUTPUT},
    {"mape", AP_TF_IDENTITY, OBJ_SQRT | OBJ_ONE_OUTPUT},
    {"poisson", AP_TF_EXP, OBJ_ONE_OUTPUT},
    {"gamma", AP_TF_EXP, OBJ_ONE_OUTPUT},
    {"tweedie", AP_TF_EXP, OBJ_ONE_OUTPUT},
    {"binary", AP_TF_SIGMOID, OBJ_SIGMOID | OBJ_ONE_OUTPUT},
    {"multiclass", AP_TF_SOFTMAX, OBJ_NUM_CLASS},
    {"multiclassova", AP_TF_SIGMOID, OBJ_NUM_CLASS | OBJ_SIGMOID},
    /* cross_entropy is 1/(1+exp(-x)): the sigmoid with scale 1 (-1*x == -x) */
    {"cross_entropy", AP_TF_SIGMOID, OBJ_ONE_OUTPUT},
    {"cross_entropy_lambda", AP_TF_LOG1P_EXP, OBJ_ONE_OUTPUT},
    {"lambdarank", AP_TF_IDENTITY, OBJ_ONE_OUTPUT},
    {"rank_xendcg", AP_TF_IDENTITY, OBJ_ONE_OUTPUT},
    /* a model trained with a custom objective has no output conversion */
    {"custom", AP_TF_IDENTITY, 0},
};

static int parse_objective(lgb_span v, int num_class, const char *name, ap_forest_ir *ir,
                           ap_error *err)
{
    lgb_tokens t = tokens_of(v);
    lgb_span tok;
    if (!next_token(&t, &tok))
        return ap_error_set(err, AP_EFORMAT, "%s:%ld: empty objective", name, v.line);
    const struct lgb_objective *obj = NULL;
    for (size_t i = 0; i < sizeof lgb_objectives / sizeof lgb_objectives[0]; i++)
        if (span_eq(tok, lgb_objectives[i].name))
            obj = &lgb_objectives[i];
    if (!obj)
        return ap_error_set(err, AP_EUNSUPPORTED, "%s:%ld: unknown LightGBM objective " TOKFMT,
                            name, v.line, TOKARG(tok));
    ir->transform = obj->tf;
    ir->sigmoid_scale = 1.0;
    int have_sigmoid = 0, have_nc = 0, use_sqrt = 0;
    while (next_token(&t, &tok)) {
        int *seen = NULL;
        if (span_eq(tok, "sqrt") && (obj->flags & OBJ_SQRT)) {
            seen = &use_sqrt;
        } else if (span_starts(tok, "sigmoid:") && (obj->flags & OBJ_SIGMOID)) {
            seen = &have_sigmoid;
            if (!lgb_atof(tok.p + 8, tok.p + tok.n, &ir->sigmoid_scale) ||
                !isfinite(ir->sigmoid_scale) || ir->sigmoid_scale <= 0)
                return ap_error_set(err, AP_EFORMAT,
                                    "%s:%ld: objective: bad sigmoid " TOKFMT
                                    " (a positive number)",
                                    name, v.line, TOKARG(tok));
        } else if (span_starts(tok, "num_class:") && (obj->flags & OBJ_NUM_CLASS)) {
            long long k;
            lgb_span num = {tok.p + 10, tok.n - 10, tok.line};
            seen = &have_nc;
            if (!tok_llong(num, &k) || k != num_class)
                return ap_error_set(err, AP_EFORMAT,
                                    "%s:%ld: objective " TOKFMT " disagrees with num_class=%d",
                                    name, v.line, TOKARG(tok), num_class);
        } else {
            /* not a parameter LightGBM writes for this objective: it may
               mean something to a version we do not know */
            return ap_error_set(err, AP_EUNSUPPORTED,
                                "%s:%ld: objective %s: unknown parameter " TOKFMT
                                " (refusing rather than ignoring it)",
                                name, v.line, obj->name, TOKARG(tok));
        }
        if (*seen)
            return ap_error_set(err, AP_EFORMAT, "%s:%ld: objective: " TOKFMT " given twice",
                                name, v.line, TOKARG(tok));
        *seen = 1;
    }
    if ((obj->flags & OBJ_SIGMOID) && !have_sigmoid)
        return ap_error_set(err, AP_EFORMAT, "%s:%ld: objective %s without sigmoid:X", name,
                            v.line, obj->name);
    if ((obj->flags & OBJ_NUM_CLASS) && !have_nc)
        return ap_error_set(err, AP_EFORMAT, "%s:%ld: objective %s without num_class:K", name,
                            v.line, obj->name);
    if ((obj->flags & OBJ_ONE_OUTPUT) && num_class != 1)
        return ap_error_set(err, AP_EFORMAT, "%s:%ld: objective %s with num_class=%d (expected 1)",
                            name, v.line, obj->name, num_class);
    if (use_sqrt && (obj->flags & OBJ_SQRT))
        ir->transform = AP_TF_SQUARE_SIGNED;
    /* the whole objective line when it fits (e.g. "binary sigmoid:1"), else its name */
    if (v.n < sizeof ir->objective)
        snprintf(ir->objective, sizeof ir->objective, "%.*s", (int)v.n, v.p);
    else
        snprintf(ir->objective, sizeof ir->objective, "%s", obj->name);
    return AP_OK;
}

/* ---- header ------------------------------------------------------------- */

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
    lgb_tokens t = tokens_of(val);
    lgb_span tok;
    if (!next_token(&t, &tok) || !tok_llong(tok, out) || next_token(&t, &tok))
        return ap_error_set(err, AP_EFORMAT, "%s:%ld: %.*s=" TOKFMT " is not an integer", name,
                            key.line, (int)key.n, key.p, TOKARG(val));
    if (*out < lo || *out > hi)
        return ap_error_set(err, AP_ERANGE, "%s:%ld: %.*s=%lld out of range [%lld, %lld]", name,
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
        if (!read_line(r, line))
            return ap_error_set(err, AP_EFORMAT,
                                "%s: truncated LightGBM model: no 'Tree=' section after the "
                                "header (line %ld)",
                                name, r->line);
        if (line->n == 0)
            continue;
        if (first) {
            if (!span_eq(*line, "tree"))
                return ap_error_set(err, AP_EFORMAT,
                                    "%s:%ld: not a LightGBM text model (first line is not 'tree')",
                                    name, line->line);
            first = 0;
            continue;
        }
        if (span_starts(*line, "Tree="))
            return AP_OK;
        if (span_eq(*line, "end of trees"))
            return ap_error_set(err, AP_EFORMAT, "%s:%ld: model has no trees", name, line->line);
        if (span_eq(*line, "average_output")) {
            if (h->average_output)
                return ap_error_set(err, AP_EFORMAT, "%s:%ld: average_output appears twice",
                                    name, line->line);
            h->average_output = 1;
            continue;
        }
        lgb_span key, val;
        if (!split_kv(*line, &key, &val))
            return ap_error_set(err, AP_EUNSUPPORTED,
                                "%s:%ld: unknown header line " TOKFMT
                                " (refusing rather than ignoring it)",
                                name, line->line, TOKARG(*line));
        int k;
        for (k = 0; k < H_COUNT && !span_eq(key, header_keys[k]); k++)
            ;
        if (k == H_COUNT)
            return ap_error_set(err, AP_EUNSUPPORTED,
                                "%s:%ld: unknown header key " TOKFMT
                                " (refusing rather than ignoring it)",
                                name, key.line, TOKARG(key));
        if (seen >> k & 1)
            return ap_error_set(err, AP_EFORMAT, "%s:%ld: %s appears twice", name, key.line,
                                header_keys[k]);
        seen |= 1u << k;
        int rc = AP_OK;
        switch (k) {
        case H_VERSION:
            if (!span_eq(val, "v3") && !span_eq(val, "v4"))
                return ap_error_set(err, AP_EUNSUPPORTED,
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
        return ap_error_set(err, AP_EFORMAT, "%s: LightGBM header has no version= line", name);
    if (!h->have_num_class)
        return ap_error_set(err, AP_EFORMAT, "%s: LightGBM header has no num_class= line", name);
    if (!h->have_mfi)
        return ap_error_set(err, AP_EFORMAT, "%s: LightGBM header has no max_feature_idx= line",
                            name);
    long long ntpi = h->have_ntpi ? h->ntpi : h->num_class;
    /* LightGBM trains num_class trees per iteration (one per class), or one */
    if (ntpi != h->num_class)
        return ap_error_set(err, AP_EUNSUPPORTED,
                            "%s: num_tree_per_iteration=%lld differs from num_class=%lld", name,
                            ntpi, h->num_class);
    ir->precision = AP_PREC_F64;
    snprintf(ir->source, sizeof ir->source, "lightgbm");
    ir->num_groups = (int32_t)ntpi;
    ir->average_output = h->average_output;
    ir->base_score = calloc((size_t)ir->num_groups, sizeof *ir->base_score);
    if (!ir->base_score)
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
    if (h->objective.p) {
        int rc = parse_objective(h->objective, (int)h->num_class, name, ir, err);
        if (rc != AP_OK)
            return rc;
    } else {
        /* no objective line: trained without one, LightGBM predicts raw scores */
        ir->transform = AP_TF_IDENTITY;
        snprintf(ir->objective, sizeof ir->objective, "none");
    }
    int32_t nf = (int32_t)h->max_feature_idx + 1;
    if (h->feature_names.p) {
        size_t cnt = count_tokens(h->feature_names);
        if (cnt != (size_t)nf)
            return ap_error_set(err, AP_EFORMAT,
                                "%s:%ld: feature_names has %zu names but max_feature_idx=%d "
                                "means %d features",
                                name, h->feature_names.line, cnt, nf - 1, nf);
        ir->feature_names = calloc((size_t)nf, sizeof *ir->feature_names);
        if (!ir->feature_names)
            return ap_error_set(err, AP_ENOMEM, "%s: out of memory for feature names", name);
    }
    ir->num_features = nf; /* from here ap_forest_ir_free frees the names */
    if (ir->feature_names) {
        lgb_tokens t = tokens_of(h->feature_names);
        lgb_span tok;
        for (int32_t i = 0; next_token(&t, &tok); i++) {
            ir->feature_names[i] = strndup(tok.p, tok.n);
            if (!ir->feature_names[i])
                return ap_error_set(err, AP_ENOMEM, "%s: out of memory for feature names", name);
        }
    }
    return AP_OK;
}

/* ---- trees -------------------------------------------------------------- */

enum {
    K_NUM_LEAVES, K_NUM_CAT, K_SPLIT_FEATURE, K_THRESHOLD, K_DECISION_TYPE, K_LEFT_CHILD,
    K_RIGHT_CHILD, K_LEAF_VALUE, K_CAT_BOUNDARIES, K_CAT_THRESHOLD, K_IS_LINEAR, K_LEAF_CONST,
    K_NUM_FEATURES, K_LEAF_FEATURES, K_LEAF_COEFF, K_COUNT
};
static const char *const lgb_keys[K_COUNT] = {
    "num_leaves", "num_cat", "split_feature", "threshold", "decision_type",
    "left_child", "right_child", "leaf_value", "cat_boundaries", "cat_threshold",
    "is_linear", "leaf_const", "num_features", "leaf_features", "leaf_coeff",
};

typedef struct lgb_tree {
    const char *name;
    int index;
    long line;             /* the Tree= line */
    lgb_span f[K_COUNT];   /* p == NULL: absent (LightGBM also treats "key=" as absent) */
    size_t cnt[K_COUNT];
} lgb_tree;

static int tree_err(const lgb_tree *t, long line, ap_error *err, int code, const char *fmt, ...)
    AP_PRINTF(5, 6);

static int tree_err(const lgb_tree *t, long line, ap_error *err, int code, const char *fmt, ...)
{
    char msg[AP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ap_error_set(err, code, "%s:%ld: tree %d: %s", t->name, line ? line : t->line,
                        t->index, msg);
}

/* The key must hold exactly `want` values (absent counts as 0). */
static int want_count(const lgb_tree *t, int k, size_t want, ap_error *err)
{
    if (t->cnt[k] == want)
        return AP_OK;
    if (!t->f[k].p)
        return tree_err(t, 0, err, AP_EFORMAT, "missing %s (expected %zu values)", lgb_keys[k],
                        want);
    return tree_err(t, t->f[k].line, err, AP_EFORMAT, "%s has %zu values, expected %zu",
                    lgb_keys[k], t->cnt[k], want);
}

/* Next value of key k as an integer in [lo, hi]. */
static int tree_int(const lgb_tree *t, int k, lgb_tokens *it, long long lo, long long hi,
                    long long *out, ap_error *err)
{
    lgb_span tok;
    if (!next_token(it, &tok))
        return tree_err(t, t->f[k].line, err, AP_EFORMAT, "%s ends early", lgb_keys[k]);
    if (!tok_llong(tok, out))
        return tree_err(t, t->f[k].line, err, AP_EFORMAT, "%s value #%zu " TOKFMT
                        " is not an integer", lgb_keys[k], it->idx - 1, TOKARG(tok));
    if (*out < lo || *out > hi)
        return tree_err(t, t->f[k].line, err, AP_EFORMAT,
                        "%s value #%zu = %lld out of range [%lld, %lld]", lgb_keys[k],
                        it->idx - 1, *out, lo, hi);
    return AP_OK;
}

/* Next value of key k as a double; finite unless allow_inf (never NaN). */
static int tree_double(const lgb_tree *t, int k, lgb_tokens *it, int allow_inf, double *out,
                       ap_error *err)
{
    lgb_span tok;
    if (!next_token(it, &tok))
        return tree_err(t, t->f[k].line, err, AP_EFORMAT, "%s ends early", lgb_keys[k]);
    if (!tok_double(tok, out))
        return tree_err(t, t->f[k].line, err, AP_EFORMAT,
                        "%s value #%zu " TOKFMT " is not a number", lgb_keys[k], it->idx - 1,
                        TOKARG(tok));
    if (isnan(*out) || (!allow_inf && !isfinite(*out)))
        return tree_err(t, t->f[k].line, err, AP_EFORMAT, "%s value #%zu " TOKFMT
                        " is not finite", lgb_keys[k], it->idx - 1, TOKARG(tok));
    return AP_OK;
}

static int tree_scalar(const lgb_tree *t, int k, long long lo, long long hi, long long dflt,
                       long long *out, ap_error *err)
{
    if (!t->f[k].p) {
        *out = dflt;
        return AP_OK;
    }
    int rc = want_count(t, k, 1, err);
    if (rc != AP_OK)
        return rc;
    lgb_tokens it = tokens_of(t->f[k]);
    return tree_int(t, k, &it, lo, hi, out, err);
}

/*
 * LightGBM's predictors drop every input with |x| <= kZeroThreshold (the
 * parsers and the C API keep only "non-zero" features), so the trees see 0.0
 * for such an x. For a numeric split x <= t this only matters when t itself
 * lies in [-k, k): move t so that x <= t' equals (x or 0) <= t for every x.
 * (LightGBM writes t = +-k often: 1.0000000180025095e-35 is a common threshold.)
 * Linear leaves still multiply the x as given: for |x| <= k, c*x instead of
 * LightGBM's c*0 changes the sum only when it is itself below ~1e-19.
 */
static double lgb_threshold(double t)
{
    const double k = LGB_ZERO_THRESHOLD;
    if (t >= 0 && t < k)
        return k;                   /* 0 <= t: every |x| <= k goes left */
    if (t >= -k && t < 0)
        return nextafter(-k, -INFINITY); /* 0 > t: every |x| <= k goes right */
    return t;
}

static int build_tree(const lgb_tree *t, ap_forest_ir *ir, ap_error *err)
{
    long long L, ncat, is_linear;
    int rc = tree_scalar(t, K_NUM_LEAVES, 1, LGB_MAX_LEAVES, 0, &L, err);
    if (rc == AP_OK && !t->f[K_NUM_LEAVES].p)
        rc = tree_err(t, 0, err, AP_EFORMAT, "missing num_leaves");
    if (rc == AP_OK)
        rc = tree_scalar(t, K_NUM_CAT, 0, L - 1, 0, &ncat, err);
    if (rc == AP_OK)
        rc = tree_scalar(t, K_IS_LINEAR, 0, 1, 0, &is_linear, err);
    if (rc != AP_OK)
        return rc;
    size_t ni = (size_t)L - 1;
    /* check every array's length before allocating anything: the counts are
       bounded by the file's size, L alone is not */
    static const int internal_keys[] = {K_SPLIT_FEATURE, K_THRESHOLD, K_LEFT_CHILD,
                                        K_RIGHT_CHILD};
    for (size_t i = 0; i < sizeof internal_keys / sizeof internal_keys[0]; i++)
        if ((rc = want_count(t, internal_keys[i], ni, err)) != AP_OK)
            return rc;
    if (t->f[K_DECISION_TYPE].p && (rc = want_count(t, K_DECISION_TYPE, ni, err)) != AP_OK)
        return rc;
    if ((rc = want_count(t, K_LEAF_VALUE, (size_t)L, err)) != AP_OK)
        return rc;
    if (ncat > 0) {
        if ((rc = want_count(t, K_CAT_BOUNDARIES, (size_t)ncat + 1, err)) != AP_OK)
            return rc;
        if (t->cnt[K_CAT_THRESHOLD] == 0)
            return tree_err(t, 0, err, AP_EFORMAT, "num_cat=%lld but no cat_threshold", ncat);
    }
    int32_t *lin_n = NULL, *lin_feat = NULL;
    double *lin_coeff = NULL;
    uint32_t *bounds = NULL;
    size_t nterms = 0;
    if (is_linear) {
        if ((rc = want_count(t, K_LEAF_CONST, (size_t)L, err)) != AP_OK ||
            (rc = want_count(t, K_NUM_FEATURES, (size_t)L, err)) != AP_OK)
            return rc;
        lin_n = malloc((size_t)L * sizeof *lin_n);
        if (!lin_n)
            return tree_err(t, 0, err, AP_ENOMEM, "out of memory");
        lgb_tokens it = tokens_of(t->f[K_NUM_FEATURES]);
        for (long long j = 0; j < L && rc == AP_OK; j++) {
            long long v;
            rc = tree_int(t, K_NUM_FEATURES, &it, 0, ir->num_features, &v, err);
            lin_n[j] = (int32_t)v;
            nterms += (size_t)v;
        }
        if (rc == AP_OK && (rc = want_count(t, K_LEAF_FEATURES, nterms, err)) == AP_OK)
            rc = want_count(t, K_LEAF_COEFF, nterms, err);
        if (rc == AP_OK) {
            lin_feat = malloc((nterms + 1) * sizeof *lin_feat);
            lin_coeff = malloc((nterms + 1) * sizeof *lin_coeff);
            if (!lin_feat || !lin_coeff)
                rc = tree_err(t, 0, err, AP_ENOMEM, "out of memory for linear leaves");
        }
        lgb_tokens itf = tokens_of(t->f[K_LEAF_FEATURES]);
        lgb_tokens itc = tokens_of(t->f[K_LEAF_COEFF]);
        for (size_t i = 0; i < nterms && rc == AP_OK; i++) {
            long long v;
            rc = tree_int(t, K_LEAF_FEATURES, &itf, 0, ir->num_features - 1, &v, err);
            lin_feat[i] = (int32_t)v;
            if (rc == AP_OK)
                rc = tree_double(t, K_LEAF_COEFF, &itc, 0, &lin_coeff[i], err);
        }
    }
    uint32_t lin_base = 0, cat_base = 0;
    if (rc == AP_OK && is_linear) {
        rc = ap_forest_ir_add_lin(ir, lin_feat, lin_coeff, (uint32_t)nterms, &lin_base, err);
        if (rc != AP_OK)
            ap_error_prefix(err, "%s: tree %d: ", t->name, t->index);
    }
    if (rc == AP_OK && ncat > 0) {
        /* all of the tree's bitsets go in at once; nodes point into them */
        size_t nwords = t->cnt[K_CAT_THRESHOLD];
        bounds = malloc(((size_t)ncat + 1) * sizeof *bounds);
        uint32_t *words = malloc(nwords * sizeof *words);
        if (!bounds || !words)
            rc = tree_err(t, 0, err, AP_ENOMEM, "out of memory for categorical bitsets");
        lgb_tokens it = tokens_of(t->f[K_CAT_BOUNDARIES]);
        for (long long i = 0; i <= ncat && rc == AP_OK; i++) {
            long long v;
            rc = tree_int(t, K_CAT_BOUNDARIES, &it, i ? bounds[i - 1] : 0, (long long)nwords,
                          &v, err);
            bounds[i] = (uint32_t)v;
        }
        it = tokens_of(t->f[K_CAT_THRESHOLD]);
        for (size_t i = 0; i < nwords && rc == AP_OK; i++) {
            long long v;
            rc = tree_int(t, K_CAT_THRESHOLD, &it, 0, UINT32_MAX, &v, err);
            words[i] = (uint32_t)v;
        }
        if (rc == AP_OK) {
            rc = ap_forest_ir_add_cat(ir, words, (uint32_t)nwords, &cat_base, err);
            if (rc != AP_OK)
                ap_error_prefix(err, "%s: tree %d: ", t->name, t->index);
        }
        free(words);
    }
    ap_ir_tree *tr = NULL;
    if (rc == AP_OK) {
        tr = ap_forest_ir_add_tree(ir, (int32_t)(2 * L - 1), err);
        if (!tr) {
            rc = err ? err->code : AP_ENOMEM;
            ap_error_prefix(err, "%s: ", t->name);
        }
    }
    if (rc == AP_OK) {
        tr->group = t->index % ir->num_groups;
        lgb_tokens sf = tokens_of(t->f[K_SPLIT_FEATURE]), th = tokens_of(t->f[K_THRESHOLD]),
                   dt = tokens_of(t->f[K_DECISION_TYPE]), lc = tokens_of(t->f[K_LEFT_CHILD]),
                   rcs = tokens_of(t->f[K_RIGHT_CHILD]);
        for (size_t i = 0; i < ni && rc == AP_OK; i++) {
            ap_ir_node *n = &tr->nodes[i];
            long long feat, d = 0, kid[2];
            double thr;
            if ((rc = tree_int(t, K_SPLIT_FEATURE, &sf, 0, ir->num_features - 1, &feat, err)) ||
                (rc = tree_double(t, K_THRESHOLD, &th, 1, &thr, err)) ||
                (t->f[K_DECISION_TYPE].p &&
                 (rc = tree_int(t, K_DECISION_TYPE, &dt, 0, 15, &d, err))) ||
                (rc = tree_int(t, K_LEFT_CHILD, &lc, -L, L - 2, &kid[0], err)) ||
                (rc = tree_int(t, K_RIGHT_CHILD, &rcs, -L, L - 2, &kid[1], err)))
                break;
            n->feature = (int32_t)feat;
            for (int k = 0; k < 2; k++) {
                if (kid[k] == 0) {
                    rc = tree_err(t, t->f[k ? K_RIGHT_CHILD : K_LEFT_CHILD].line, err,
                                  AP_EFORMAT, "node %zu: child 0 is the root (cycle)", i);
                    break;
                }
                /* leaf ~c lives at IR node L-1+~c */
                int32_t c = kid[k] > 0 ? (int32_t)kid[k] : (int32_t)(L - 1 + ~kid[k]);
                if (k)
                    n->right = c;
                else
                    n->left = c;
            }
            if (rc != AP_OK)
                break;
            if (d & 1) {
                /*
                 * Categorical (CategoricalDecision): NaN -> right; (int)x < 0
                 * -> right; bit (int)x of bitset cat_idx set -> left, else
                 * right (also past the bitset's end). cat_idx = (int)threshold.
                 * default_left and the missing type play no part. In IR terms:
                 * default_left = 0, cat_oor_left = 0 (x <= -1 and x >= 32*nwords
                 * are the out of range values), in-set left: no swap.
                 */
                if (thr != floor(thr) || thr < 0 || thr >= (double)ncat) {
                    rc = tree_err(t, t->f[K_THRESHOLD].line, err, AP_EFORMAT,
                                  "node %zu: categorical threshold %.17g is not a category "
                                  "index in [0, num_cat=%lld)",
                                  i, thr, ncat);
                    break;
                }
                uint32_t ci = (uint32_t)thr;
                if (bounds[ci + 1] == bounds[ci]) {
                    rc = tree_err(t, t->f[K_CAT_BOUNDARIES].line, err, AP_EFORMAT,
                                  "node %zu: categorical split %u has an empty bitset", i, ci);
                    break;
                }
                n->kind = AP_SPLIT_CAT;
                n->cat_off = cat_base + bounds[ci];
                n->cat_nwords = bounds[ci + 1] - bounds[ci];
                n->default_left = 0;
                n->cat_oor_left = 0;
                continue;
            }
            /*
             * Numeric (NumericalDecision), missing type = bits 2-3:
             *   0 None: NaN -> 0.0, then x <= threshold      (IR AP_MISS_NONE)
             *   1 Zero: NaN or |x| <= kZeroThreshold -> default (AP_MISS_ZERO)
             *   2 NaN:  NaN -> default                         (AP_MISS_NAN)
             * default = left if bit 1 (default_left), then x <= threshold -> left.
             */
            static const uint8_t miss_map[3] = {AP_MISS_NONE, AP_MISS_ZERO, AP_MISS_NAN};
            int mt = (int)((d >> 2) & 3);
            if (mt == 3) {
                rc = tree_err(t, t->f[K_DECISION_TYPE].line, err, AP_EFORMAT,
                              "node %zu: decision_type %lld has missing type 3 (0 None, 1 Zero, "
                              "2 NaN)",
                              i, d);
                break;
            }
            n->kind = AP_SPLIT_NUM;
            n->missing = miss_map[mt];
            n->default_left = (uint8_t)((d >> 1) & 1);
            n->threshold = lgb_threshold(thr);
        }
        /* leaves */
        lgb_tokens lv = tokens_of(t->f[K_LEAF_VALUE]), lk = tokens_of(t->f[K_LEAF_CONST]);
        uint32_t off = 0;
        for (long long j = 0; j < L && rc == AP_OK; j++) {
            ap_ir_node *n = &tr->nodes[ni + (size_t)j];
            n->kind = AP_SPLIT_LEAF;
            if ((rc = tree_double(t, K_LEAF_VALUE, &lv, 0, &n->value, err)) != AP_OK)
                break;
            if (!is_linear)
                continue;
            /*
             * Linear leaf (Tree::Predict, is_linear): leaf_const + sum of
             * coeff*x in order; if any of those x is NaN, leaf_value. With no
             * terms that is leaf_const (not leaf_value), so a term-less leaf
             * becomes a constant leaf holding leaf_const.
             */
            double c;
            if ((rc = tree_double(t, K_LEAF_CONST, &lk, 0, &c, err)) != AP_OK)
                break;
            if (lin_n[j] == 0) {
                n->value = c;
                continue;
            }
            n->lin_const = c;
            n->lin_off = lin_base + off;
            n->lin_len = (uint32_t)lin_n[j];
            off += (uint32_t)lin_n[j];
        }
    }
    free(lin_n);
    free(lin_feat);
    free(lin_coeff);
    free(bounds);
    return rc;
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
static int read_tree(lgb_reader *r, lgb_tree *t, lgb_span *line, int *done, ap_error *err)
{
    for (int k = 0; k < K_COUNT; k++) {
        t->f[k].p = NULL;
        t->cnt[k] = 0;
    }
    unsigned seen = 0, skip_seen = 0;
    int ended = 0; /* a blank line after key lines was seen */
    int nkeys = 0;
    for (;;) {
        if (!read_line(r, line))
            return tree_err(t, 0, err, AP_EFORMAT,
                            "truncated LightGBM model: file ends inside the tree (no 'end of "
                            "trees' line)");
        if (span_starts(*line, "Tree="))
            return AP_OK;
        if (span_eq(*line, "end of trees")) {
            *done = 1;
            return AP_OK;
        }
        if (line->n == 0) {
            ended = nkeys > 0;
            continue;
        }
        if (ended)
            return tree_err(t, line->line, err, AP_EFORMAT,
                            "line " TOKFMT " after the blank line that ends the tree "
                            "(LightGBM would not read it)",
                            TOKARG(*line));
        lgb_span key, val;
        if (!split_kv(*line, &key, &val))
            return tree_err(t, line->line, err, AP_EFORMAT, "not a key=value line: " TOKFMT,
                            TOKARG(*line));
        nkeys++;
        int k;
        for (k = 0; k < K_COUNT && !span_eq(key, lgb_keys[k]); k++)
            ;
        if (k < K_COUNT) {
            if (seen >> k & 1)
                return tree_err(t, key.line, err, AP_EFORMAT, "%s appears twice", lgb_keys[k]);
            seen |= 1u << k;
            if (val.n > 0) { /* "key=" counts as absent */
                t->f[k] = val;
                t->cnt[k] = count_tokens(val);
            }
            continue;
        }
        size_t j;
        for (j = 0; j < N_SKIP_KEYS && !span_eq(key, lgb_skip_keys[j]); j++)
            ;
        if (j == N_SKIP_KEYS)
            return tree_err(t, key.line, err, AP_EUNSUPPORTED,
                            "unknown key " TOKFMT " (refusing rather than ignoring it)",
                            TOKARG(key));
        if (skip_seen >> j & 1)
            return tree_err(t, key.line, err, AP_EFORMAT, "%s appears twice", lgb_skip_keys[j]);
        skip_seen |= 1u << j;
    }
}

int ap_lightgbm_load(const char *buf, size_t len, const char *name, ap_forest_ir *ir,
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
    lgb_tokens sizes = tokens_of(h.tree_sizes);
    unsigned long long at = 0;
    int done = 0, idx;
    for (idx = 0; rc == AP_OK && !done; idx++) {
        lgb_tree t = {.name = name, .index = idx, .line = line.line};
        if (h.tree_sizes.p && idx > 0) {
            lgb_span tok;
            long long sz;
            if (!next_token(&sizes, &tok)) {
                rc = ap_error_set(err, AP_EFORMAT,
                                  "%s:%ld: tree_sizes lists %d trees but the file holds more "
                                  "(LightGBM would read only those)",
                                  name, h.tree_sizes.line, idx - 1);
                break;
            }
            if (!tok_llong(tok, &sz) || sz < 0) {
                rc = ap_error_set(err, AP_EFORMAT,
                                  "%s:%ld: tree_sizes value #%d " TOKFMT " is not a size", name,
                                  h.tree_sizes.line, idx - 1, TOKARG(tok));
                break;
            }
            at += (unsigned long long)sz;
            for (; scan + 1 < line.p; scan++)
                crlf += scan[0] == '\r' && scan[1] == '\n';
            size_t off = (size_t)(line.p - tree0) - crlf;
            if (at != (unsigned long long)off) {
                rc = ap_error_set(err, AP_EFORMAT,
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
        if (!tok_llong(num, &n) || n != idx) {
            rc = ap_error_set(err, AP_EFORMAT, "%s:%ld: expected 'Tree=%d', found " TOKFMT, name,
                              line.line, idx, TOKARG(line));
            break;
        }
        if (idx >= AP_IR_MAX_TREES) {
            rc = ap_error_set(err, AP_ERANGE, "%s:%ld: more than %d trees", name, line.line,
                              AP_IR_MAX_TREES);
            break;
        }
        rc = read_tree(&r, &t, &line, &done, err);
        if (rc == AP_OK)
            rc = build_tree(&t, ir, err);
    }
    if (rc == AP_OK && h.tree_sizes.p) {
        /* the last tree's size (LightGBM does not use it) and nothing more */
        lgb_span tok;
        long long sz;
        size_t listed = count_tokens(h.tree_sizes);
        if (listed != (size_t)idx)
            rc = ap_error_set(err, AP_EFORMAT,
                              "%s:%ld: tree_sizes lists %zu trees but the file holds %d",
                              name, h.tree_sizes.line, listed, idx);
        else if (!next_token(&sizes, &tok) || !tok_llong(tok, &sz) || sz < 0)
            rc = ap_error_set(err, AP_EFORMAT, "%s:%ld: tree_sizes value #%d " TOKFMT
                              " is not a size", name, h.tree_sizes.line, idx - 1, TOKARG(tok));
    }
    if (rc == AP_OK && ir->ntrees % ir->num_groups != 0)
        rc = ap_error_set(err, AP_EFORMAT,
                          "%s: %d trees is not a whole number of iterations of %d trees", name,
                          ir->ntrees, ir->num_groups);
    return rc;
}

/*
 * LightGBM's ObjectiveFunction::ConvertOutput, in double:
 *   sigmoid (binary, multiclassova per class, cross_entropy):
 *       1.0 / (1.0 + exp(-sigmoid * x))
 *   softmax (Common::Softmax): m = max; e_i = exp(x_i - m); e_i / sum(e)
 *   exp (poisson, gamma, tweedie); regression sqrt: Sign(x) * x * x
 *   cross_entropy_lambda: SafeLog(1.0 + exp(x)) = log(1.0 + exp(x)) -- the
 *       library's own formula, which is not log1p(exp(x)) to the last bit.
 */
void ap_lightgbm_transform(const ap_forest_ir *ir, const double *m, double *out)
{
    int G = ir->num_groups;
    switch (ir->transform) {
    case AP_TF_SIGMOID:
        for (int g = 0; g < G; g++)
            out[g] = 1.0 / (1.0 + exp(-ir->sigmoid_scale * m[g]));
        break;
    case AP_TF_SOFTMAX: {
        double wmax = m[0];
        for (int g = 1; g < G; g++)
            wmax = m[g] < wmax ? wmax : m[g]; /* std::max(m[g], wmax) */
        double wsum = 0.0;
        for (int g = 0; g < G; g++) {
            out[g] = exp(m[g] - wmax);
            wsum += out[g];
        }
        for (int g = 0; g < G; g++)
            out[g] /= wsum;
        break;
    }
    case AP_TF_EXP:
        for (int g = 0; g < G; g++)
            out[g] = exp(m[g]);
        break;
    case AP_TF_LOG1P_EXP:
        for (int g = 0; g < G; g++)
            out[g] = log(1.0 + exp(m[g]));
        break;
    case AP_TF_SQUARE_SIGNED:
        for (int g = 0; g < G; g++)
            out[g] = (double)((m[g] > 0) - (m[g] < 0)) * m[g] * m[g];
        break;
    default:
        for (int g = 0; g < G; g++)
            out[g] = m[g];
        break;
    }
}
