/*
 * XGBoost model loader (JSON via jansson, UBJSON via ubjson.c) and the
 * objective transforms, reproducing XGBoost 1.7's CPU predictor bit for bit:
 *
 *  - base_score is stored as a probability / mean; the margin is the
 *    objective's ProbToMargin in float: -logf(1/b - 1) for binary:logistic
 *    and reg:logistic, logf(b) for poisson/gamma/tweedie, b otherwise
 *    (binary:logitraw included: checked against the library).
 *  - leaves add in float, tree order, from that margin; dart adds
 *    weight_drop[i] * leaf (checked against the library: not (base+leaf-base)*w).
 *  - numeric split: (float)x < split_condition -> left; NaN -> default child.
 *  - categorical split: NaN goes to the default child; categories in the
 *    node's set go RIGHT; all others go LEFT, including negative values and
 *    values past the node's bitset (32 * ceil((max_cat+1)/32) bits), whatever
 *    default_left says. The IR sends set bits left, so children and
 *    default_left are swapped here and cat_oor_left is 0.
 *
 * Unreachable nodes (pruned / deleted in XGBoost's node array) are dropped:
 * the IR holds the reachable nodes, renumbered in breadth-first order. Every
 * message names the tree and the node index as written in the file.
 */
#include "forest/forest_internal.h"
#include "forest/xgb_doc.h"
#include "common/error.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Bounds total categorical bitset memory (64 MiB): one 10-byte category
   value can otherwise ask for a 2 MiB bitset. */
#define XGB_MAX_TOTAL_CAT_WORDS (1u << 24)
/* XGBoost's largest category: floats represent integers exactly below 2^24. */
#define XGB_MAX_CAT (1 << 24)

typedef struct ld {
    const xgb_doc_ops *o;
    const char *name;
    ap_error *err;
    ap_forest_ir *ir;
    const char *model_where; /* path of the gbtree model object, for messages */
} ld;

/* ---- the jansson view ---- */

static const void *j_member(const void *obj, const char *key)
{
    return json_is_object((const json_t *)obj) ? json_object_get(obj, key) : NULL;
}

static int j_kind(const void *p)
{
    switch (json_typeof((const json_t *)p)) {
    case JSON_OBJECT: return XV_OBJ;
    case JSON_ARRAY: return XV_ARR;
    case JSON_STRING: return XV_STR;
    case JSON_INTEGER: return XV_INT;
    case JSON_REAL: return XV_REAL;
    case JSON_TRUE: case JSON_FALSE: return XV_BOOL;
    default: return XV_NULL;
    }
}

static size_t j_length(const void *p) { return json_array_size(p); }

static const void *j_element(const void *p, size_t i) { return json_array_get(p, i); }

static int j_number(const void *p, double *x, int *is_int)
{
    const json_t *v = p;
    if (json_is_integer(v)) {
        *x = (double)json_integer_value(v);
        *is_int = 1;
        return 0;
    }
    if (json_is_real(v)) {
        *x = json_real_value(v);
        *is_int = 0;
        return 0;
    }
    return -1;
}

static int j_number_at(const void *p, size_t i, double *x, int *is_int)
{
    const json_t *v = json_array_get(p, i);
    return v ? j_number(v, x, is_int) : -1;
}

static int j_string(const void *p, const char **s, size_t *n)
{
    if (!json_is_string((const json_t *)p))
        return -1;
    *s = json_string_value(p);
    *n = json_string_length(p);
    return 0;
}

static int j_boolean(const void *p, int *b)
{
    if (!json_is_boolean((const json_t *)p))
        return -1;
    *b = json_is_true((const json_t *)p);
    return 0;
}

static const void *j_next_member(const void *obj, const void *it, const char **key,
                                 size_t *klen, const void **val)
{
    /* jansson's iterator API takes non-const objects; it only reads them */
    json_t *o = (json_t *)obj;
    if (!json_is_object(o))
        return NULL;
    void *i = it ? json_object_iter_next(o, (void *)it) : json_object_iter(o);
    if (i) {
        *key = json_object_iter_key(i);
        *klen = json_object_iter_key_len(i);
        *val = json_object_iter_value(i);
    }
    return i;
}

static const xgb_doc_ops json_ops = {j_member,    j_kind,   j_length, j_element,    j_number_at,
                                     j_number,    j_string, j_boolean, j_next_member};

/* ---- field helpers ---- */

static const char *kind_name(int k)
{
    static const char *const names[] = {"null", "boolean", "integer", "number",
                                        "string", "array", "object"};
    return names[k];
}

/* obj[key] of the given kind; `where` names obj in messages. */
static int need(ld *L, const void *obj, const char *key, int kind, const char *where,
                const void **out)
{
    const void *v = L->o->member(obj, key);
    if (!v)
        return ap_error_set(L->err, AP_EFORMAT, "%s: %s: missing field '%s'", L->name, where,
                            key);
    int k = L->o->kind(v);
    if (k != kind && !(kind == XV_REAL && k == XV_INT))
        return ap_error_set(L->err, AP_EFORMAT, "%s: %s.%s: expected %s, found %s", L->name,
                            where, key, kind_name(kind), kind_name(k));
    *out = v;
    return AP_OK;
}

/* Integer field written as a string ("42", XGBoost's parameters) or a number. */
static int int_field(ld *L, const void *obj, const char *key, const char *where, long lo,
                     long hi, long dflt, int required, long *out)
{
    const void *v = L->o->member(obj, key);
    if (!v) {
        if (required)
            return ap_error_set(L->err, AP_EFORMAT, "%s: %s: missing field '%s'", L->name, where,
                                key);
        *out = dflt;
        return AP_OK;
    }
    const char *s;
    size_t n;
    double x;
    int is_int;
    if (L->o->string(v, &s, &n) == 0) {
        char tmp[32];
        char *end;
        if (n == 0 || n >= sizeof tmp)
            goto bad;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        x = strtod(tmp, &end);
        if (*end || x != floor(x))
            goto bad;
    } else if (L->o->number(v, &x, &is_int) != 0 || !is_int) {
        goto bad;
    }
    if (!(x >= (double)lo && x <= (double)hi))
        return ap_error_set(L->err, AP_ERANGE, "%s: %s.%s = %.17g out of range [%ld, %ld]",
                            L->name, where, key, x, lo, hi);
    *out = (long)x;
    return AP_OK;
bad:
    return ap_error_set(L->err, AP_EFORMAT, "%s: %s.%s: expected an integer", L->name, where,
                        key);
}

/* ---- the keys each object may carry ----
 *
 * A key that can change a prediction and is not understood makes the load
 * fail with its name and where it is; nothing is ignored silently. Every
 * object the loader reads has the list of keys XGBoost 1.x-3.x write there
 * (src/learner.cc, src/gbm/gbtree.cc, gbtree_model.cc, src/tree/tree_model.cc):
 * the ones the loader uses and, marked "not needed", the ones it reads past
 * because they cannot change a prediction, each with the reason. Anything
 * else is refused, and so is a key written twice (UBJSON allows it; jansson
 * already refuses duplicates in JSON).
 */
enum { KEYS_PARAMS = 1 }; /* also accept "<name>_param" keys holding an object */

static const char *const root_keys[] = {
    "learner",
    "version", /* not needed: [major, minor, patch] of the writer */
};
static const char *const learner_keys[] = {
    "learner_model_param", "objective", "gradient_booster", "feature_names",
    /* not needed: string annotations (best_iteration, ...). best_iteration is
       used by the Python sklearn wrapper's predict() only; Booster.predict and
       the C API use every tree, as this loader does */
    "attributes",
    /* not needed: "q"/"c"/... per feature; each split carries its own
       split_type, which is what prediction follows */
    "feature_types",
};
static const char *const lmp_keys[] = {
    "base_score", "num_feature", "num_class", "num_target",
    "boost_from_average", /* not needed: how training estimated base_score */
};
/* objective: "name" and "<objective>_param" objects (reg_loss_param,
   softmax_multiclass_param, poisson_regression_param, ...): training
   parameters; the prediction transforms of the supported objectives take
   none (each objective's PredTransform in XGBoost's src/objective) */
static const char *const objective_keys[] = {"name"};
static const char *const gbtree_keys[] = {"name", "model"};
/* dart (1.x, and read by 3.x): the model one level down, weights beside it */
static const char *const dart_keys[] = {"name", "gbtree", "weight_drop"};
static const char *const model_keys[] = {
    "gbtree_model_param", "trees", "tree_info",
    "weight_drop", /* 3.x: dart weights live here */
    "cats",        /* 3.x: category re-coding; only an empty one is accepted */
    /* not needed: tree count per boosting round, for iteration_range slicing;
       a full prediction sums every tree */
    "iteration_indptr",
};
static const char *const gmp_keys[] = {
    "num_trees", "size_leaf_vector",
    /* not needed: trees per round (boosted random forests); the prediction is
       still the plain sum of all trees */
    "num_parallel_tree",
};
static const char *const tree_keys[] = {
    "tree_param", "left_children", "right_children", "split_indices", "split_conditions",
    "default_left", "split_type", "categories", "categories_nodes", "categories_segments",
    "categories_sizes",
    "id", /* must equal the tree's position (1.x places a tree at its id) */
    /* not needed: training statistics per node (gain, hessian sum, the
       node's weight before it was split) and the parent links, which the
       children arrays already determine */
    "loss_changes", "sum_hessian", "base_weights", "parents",
};
static const char *const tree_param_keys[] = {
    "num_nodes", "size_leaf_vector",
    "num_deleted", /* not needed: count of pruned nodes, which are unreachable */
    "num_feature", /* not needed: split indices are checked against learner's num_feature */
};
static const char *const cats_keys[] = {"enc", "feature_segments", "sorted_idx"};

#define NKEYS(a) (sizeof(a) / sizeof(a)[0])

/* a key for a message: at most 48 bytes, unprintable bytes as '?' */
static void key_text(char *dst, size_t cap, const char *k, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap && i < 48; i++)
        dst[o++] = (k[i] >= 0x20 && k[i] < 0x7f) ? k[i] : '?';
    if (n > 48 && o + 4 < cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

/* Refuse a key of obj that is not in known[] (or written twice). */
static int check_keys(ld *L, const void *obj, const char *where, const char *const *known,
                      size_t nknown, unsigned flags)
{
    uint32_t seen = 0;
    const char *k;
    size_t kn;
    const void *val;
    char kt[64];
    for (const void *it = L->o->next_member(obj, NULL, &k, &kn, &val); it;
         it = L->o->next_member(obj, it, &k, &kn, &val)) {
        size_t i;
        for (i = 0; i < nknown; i++)
            if (strlen(known[i]) == kn && !memcmp(known[i], k, kn))
                break;
        if (i < nknown) {
            if (seen >> i & 1) {
                key_text(kt, sizeof kt, k, kn);
                return ap_error_set(L->err, AP_EFORMAT, "%s: key '%s' appears twice in %s",
                                    L->name, kt, where);
            }
            seen |= 1u << i;
            continue;
        }
        if ((flags & KEYS_PARAMS) && kn > 6 && !memcmp(k + kn - 6, "_param", 6) &&
            !memchr(k, '\0', kn) && L->o->kind(val) == XV_OBJ)
            continue;
        key_text(kt, sizeof kt, k, kn);
        return ap_error_set(L->err, AP_EUNSUPPORTED,
                            "%s: unknown key '%s' in %s (refusing rather than ignoring it)",
                            L->name, kt, where);
    }
    return AP_OK;
}

/* A per-node array of a tree: must be an array of exactly n elements. */
static int node_array(ld *L, const void *tobj, const char *key, int ti, long n, int required,
                      const void **out)
{
    const void *v = L->o->member(tobj, key);
    *out = NULL;
    if (!v) {
        if (!required)
            return AP_OK;
        return ap_error_set(L->err, AP_EFORMAT, "%s: tree %d: missing field '%s'", L->name, ti,
                            key);
    }
    if (L->o->kind(v) != XV_ARR)
        return ap_error_set(L->err, AP_EFORMAT, "%s: tree %d: %s: expected array, found %s",
                            L->name, ti, key, kind_name(L->o->kind(v)));
    if (n >= 0 && L->o->length(v) != (size_t)n)
        return ap_error_set(L->err, AP_EFORMAT,
                            "%s: tree %d: %s has %zu entries but num_nodes is %ld", L->name, ti,
                            key, L->o->length(v), n);
    *out = v;
    return AP_OK;
}

/* Integer element i of arr. */
static int int_at(ld *L, const void *arr, long i, int ti, const char *key, double *x)
{
    int is_int;
    if (L->o->number_at(arr, (size_t)i, x, &is_int) != 0 || !is_int)
        return ap_error_set(L->err, AP_EFORMAT, "%s: tree %d node %ld: %s is not an integer",
                            L->name, ti, i, key);
    return AP_OK;
}

/* A double as float, refusing what float cannot hold (the cast would be UB). */
static int to_float(double x, float *f)
{
    if (!isfinite(x) || fabs(x) > FLT_MAX)
        return -1;
    *f = (float)x;
    return 0;
}

/* ---- objectives ---- */

enum { PTM_IDENTITY, PTM_LOGIT, PTM_LOG };

typedef struct xgb_objective {
    const char *name;
    int prob_to_margin;
    ap_transform transform;
} xgb_objective;

static const xgb_objective objectives[] = {
    {"binary:logistic", PTM_LOGIT, AP_TF_SIGMOID},
    {"reg:logistic", PTM_LOGIT, AP_TF_SIGMOID},
    {"binary:logitraw", PTM_IDENTITY, AP_TF_IDENTITY}, /* 1.7: base_score taken as a margin */
    {"reg:squarederror", PTM_IDENTITY, AP_TF_IDENTITY},
    {"reg:linear", PTM_IDENTITY, AP_TF_IDENTITY},
    {"reg:squaredlogerror", PTM_IDENTITY, AP_TF_IDENTITY},
    {"reg:pseudohubererror", PTM_IDENTITY, AP_TF_IDENTITY},
    {"reg:absoluteerror", PTM_IDENTITY, AP_TF_IDENTITY},
    {"reg:quantileerror", PTM_IDENTITY, AP_TF_IDENTITY},
    {"count:poisson", PTM_LOG, AP_TF_EXP},
    {"reg:gamma", PTM_LOG, AP_TF_EXP},
    {"reg:tweedie", PTM_LOG, AP_TF_EXP},
    {"multi:softprob", PTM_IDENTITY, AP_TF_SOFTMAX},
    {"multi:softmax", PTM_IDENTITY, AP_TF_ARGMAX},
    {"rank:pairwise", PTM_IDENTITY, AP_TF_IDENTITY},
    {"rank:ndcg", PTM_IDENTITY, AP_TF_IDENTITY},
    {"rank:map", PTM_IDENTITY, AP_TF_IDENTITY},
};

/* base_score: "5E-1" (1.x/2.x), "[5E-1]" or "[a,b,c]" (3.x), or a number. */
static int parse_base_score(ld *L, const void *v, float *vals, int G, int *count)
{
    const char *s;
    size_t n;
    double x;
    int is_int;
    *count = 0;
    if (L->o->number(v, &x, &is_int) == 0) {
        if (to_float(x, &vals[0]) != 0)
            goto bad;
        *count = 1;
        return AP_OK;
    }
    if (L->o->string(v, &s, &n) != 0)
        goto bad;
    char *tmp = malloc(n + 1);
    if (!tmp)
        return ap_error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *p = tmp;
    int rc = AP_OK, list = 0;
    while (*p == ' ')
        p++;
    if (*p == '[') {
        list = 1;
        p++;
    }
    for (;;) {
        while (*p == ' ')
            p++;
        if (list && *p == ']' && *count == 0)
            break; /* "[]" */
        char *end;
        /* strtof: the decimal rounds straight to float, as XGBoost reads it */
        float f = strtof(p, &end);
        if (end == p || !isfinite(f) || *count >= G) {
            rc = -1;
            break;
        }
        vals[(*count)++] = f;
        p = end;
        while (*p == ' ')
            p++;
        if (list && *p == ',') {
            p++;
            continue;
        }
        if (list && *p == ']')
            p++;
        else if (list)
            rc = -1;
        break;
    }
    while (rc == 0 && *p == ' ')
        p++;
    if (rc == 0 && (*p || *count == 0))
        rc = -1;
    free(tmp);
    if (rc == 0)
        return AP_OK;
bad:
    return ap_error_set(L->err, AP_EFORMAT,
                        "%s: learner_model_param.base_score: expected a number, or a list of 1 "
                        "or %d numbers",
                        L->name, G);
}

/* ---- trees ---- */

typedef struct tree_scratch {
    int32_t *order;    /* breadth-first order of reachable file node indices */
    int32_t *newidx;   /* file index -> IR index, -1 unreachable */
    int32_t *cat_of;   /* file index -> entry in categories_nodes, -1 none */
    uint32_t *words;   /* bitset being built */
} tree_scratch;

static int load_categorical(ld *L, int ti, long i, const void *cats, const void *segs,
                            const void *sizes, long j, uint32_t *nwords_out, uint32_t *off,
                            uint32_t **words)
{
    double seg, size;
    if (int_at(L, segs, j, ti, "categories_segments", &seg) != AP_OK ||
        int_at(L, sizes, j, ti, "categories_sizes", &size) != AP_OK)
        return L->err->code;
    size_t ncat = L->o->length(cats);
    if (size < 1 || seg < 0 || seg > (double)ncat || size > (double)ncat - seg)
        return ap_error_set(L->err, AP_EFORMAT,
                            "%s: tree %d node %ld: categories segment [%.17g, +%.17g) out of "
                            "range (%zu categories in the tree)",
                            L->name, ti, i, seg, size, ncat);
    long b = (long)seg, e = (long)seg + (long)size;
    double maxc = -1;
    for (long k = b; k < e; k++) {
        double c;
        int is_int;
        if (L->o->number_at(cats, (size_t)k, &c, &is_int) != 0 || !is_int)
            return ap_error_set(L->err, AP_EFORMAT,
                                "%s: tree %d node %ld: categories[%ld] is not an integer",
                                L->name, ti, i, k);
        if (c < 0 || c >= XGB_MAX_CAT)
            return ap_error_set(L->err, AP_ERANGE,
                                "%s: tree %d node %ld: category %.17g out of range [0, %d)",
                                L->name, ti, i, c, XGB_MAX_CAT);
        if (c > maxc)
            maxc = c;
    }
    /* XGBoost sizes the bitset from the largest category: that size decides
       which values count as out of range. */
    uint32_t nw = (uint32_t)maxc / 32 + 1;
    if (L->ir->ncat_words + (uint64_t)nw > XGB_MAX_TOTAL_CAT_WORDS)
        return ap_error_set(L->err, AP_ERANGE,
                            "%s: tree %d node %ld: categorical bitsets exceed %u words in total",
                            L->name, ti, i, XGB_MAX_TOTAL_CAT_WORDS);
    uint32_t *w = realloc(*words, nw * sizeof *w);
    if (!w)
        return ap_error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
    *words = w;
    memset(w, 0, nw * sizeof *w);
    for (long k = b; k < e; k++) {
        double c;
        int is_int;
        L->o->number_at(cats, (size_t)k, &c, &is_int);
        uint32_t ci = (uint32_t)c;
        w[ci / 32] |= 1u << (ci % 32);
    }
    *nwords_out = nw;
    if (ap_forest_ir_add_cat(L->ir, w, nw, off, L->err) != AP_OK)
        return ap_error_prefix(L->err, "%s: tree %d node %ld: ", L->name, ti, i);
    return AP_OK;
}

static int load_tree(ld *L, int ti, const void *t, int32_t group, double weight,
                     tree_scratch *sc)
{
    char where[48];
    snprintf(where, sizeof where, "tree %d", ti);
    if (L->o->kind(t) != XV_OBJ)
        return ap_error_set(L->err, AP_EFORMAT, "%s: tree %d: expected object, found %s",
                            L->name, ti, kind_name(L->o->kind(t)));
    const void *tp;
    long n, slv;
    int rc;
    if ((rc = need(L, t, "tree_param", XV_OBJ, where, &tp)) != AP_OK ||
        (rc = int_field(L, tp, "num_nodes", where, 1, AP_IR_MAX_NODES, 0, 1, &n)) != AP_OK ||
        (rc = int_field(L, tp, "size_leaf_vector", where, 0, INT32_MAX, 0, 0, &slv)) != AP_OK)
        return rc;
    if (slv > 1)
        return ap_error_set(L->err, AP_EUNSUPPORTED,
                            "%s: tree %d: vector leaves (size_leaf_vector %ld, multi_strategy "
                            "multi_output_tree) are not supported",
                            L->name, ti, slv);
    char path[128];
    snprintf(path, sizeof path, "%s.trees[%d]", L->model_where, ti);
    if ((rc = check_keys(L, t, path, tree_keys, NKEYS(tree_keys), 0)) != AP_OK)
        return rc;
    snprintf(path, sizeof path, "%s.trees[%d].tree_param", L->model_where, ti);
    if ((rc = check_keys(L, tp, path, tree_param_keys, NKEYS(tree_param_keys), 0)) != AP_OK)
        return rc;
    /* 1.x puts tree t at position id (so an id out of order reorders the
       trees against tree_info and weight_drop); 3.x refuses it */
    const void *idv = L->o->member(t, "id");
    if (idv) {
        double id;
        int is_int;
        if (L->o->number(idv, &id, &is_int) != 0 || !is_int || id != ti)
            return ap_error_set(L->err, AP_EFORMAT,
                                "%s: tree %d: id is not %d (trees must be listed in id order)",
                                L->name, ti, ti);
    }
    const void *lc, *rcx, *si, *cond, *dl, *st, *cats, *cnodes, *segs, *sizes;
    if ((rc = node_array(L, t, "left_children", ti, n, 1, &lc)) != AP_OK ||
        (rc = node_array(L, t, "right_children", ti, n, 1, &rcx)) != AP_OK ||
        (rc = node_array(L, t, "split_indices", ti, n, 1, &si)) != AP_OK ||
        (rc = node_array(L, t, "split_conditions", ti, n, 1, &cond)) != AP_OK ||
        (rc = node_array(L, t, "default_left", ti, n, 1, &dl)) != AP_OK ||
        (rc = node_array(L, t, "split_type", ti, n, 0, &st)) != AP_OK ||
        (rc = node_array(L, t, "categories", ti, -1, 0, &cats)) != AP_OK ||
        (rc = node_array(L, t, "categories_nodes", ti, -1, 0, &cnodes)) != AP_OK ||
        (rc = node_array(L, t, "categories_segments", ti, -1, 0, &segs)) != AP_OK ||
        (rc = node_array(L, t, "categories_sizes", ti, -1, 0, &sizes)) != AP_OK)
        return rc;

    /* n is bounded by AP_IR_MAX_NODES and equals the length of arrays in the
       file, so these allocations are bounded by the input. */
    int32_t *order = realloc(sc->order, (size_t)n * sizeof *order);
    if (order)
        sc->order = order;
    int32_t *newidx = realloc(sc->newidx, (size_t)n * sizeof *newidx);
    if (newidx)
        sc->newidx = newidx;
    int32_t *cat_of = realloc(sc->cat_of, (size_t)n * sizeof *cat_of);
    if (cat_of)
        sc->cat_of = cat_of;
    if (!order || !newidx || !cat_of)
        return ap_error_set(L->err, AP_ENOMEM, "%s: tree %d: out of memory (%ld nodes)",
                            L->name, ti, n);
    for (long i = 0; i < n; i++)
        newidx[i] = cat_of[i] = -1;

    size_t ncn = cnodes ? L->o->length(cnodes) : 0;
    if (ncn && (!cats || !segs || !sizes || L->o->length(segs) != ncn ||
                L->o->length(sizes) != ncn))
        return ap_error_set(L->err, AP_EFORMAT,
                            "%s: tree %d: categories_nodes has %zu entries but "
                            "categories_segments / categories_sizes / categories disagree",
                            L->name, ti, ncn);
    for (size_t j = 0; j < ncn; j++) {
        double x;
        int is_int;
        if (L->o->number_at(cnodes, j, &x, &is_int) != 0 || !is_int || x < 0 || x >= (double)n)
            return ap_error_set(L->err, AP_EFORMAT,
                                "%s: tree %d: categories_nodes[%zu] is not a node index in "
                                "[0, %ld)",
                                L->name, ti, j, n);
        if (cat_of[(long)x] >= 0)
            return ap_error_set(L->err, AP_EFORMAT,
                                "%s: tree %d node %ld: listed twice in categories_nodes",
                                L->name, ti, (long)x);
        cat_of[(long)x] = (int32_t)j;
    }

    /* reachable nodes, breadth first; catches bad children and cycles */
    int32_t head = 0, tail = 1;
    order[0] = 0;
    newidx[0] = 0;
    while (head < tail) {
        int32_t i = order[head++];
        double kid[2];
        if ((rc = int_at(L, lc, i, ti, "left_children", &kid[0])) != AP_OK)
            return rc;
        if (kid[0] == -1)
            continue; /* XGBoost: a node is a leaf iff its left child is -1 */
        if ((rc = int_at(L, rcx, i, ti, "right_children", &kid[1])) != AP_OK)
            return rc;
        for (int k = 0; k < 2; k++) {
            if (!(kid[k] >= 1 && kid[k] < (double)n))
                return ap_error_set(L->err, AP_EFORMAT,
                                    "%s: tree %d node %d: %s child %.17g out of range [1, %ld)",
                                    L->name, ti, i, k ? "right" : "left", kid[k], n);
            int32_t c = (int32_t)kid[k];
            if (newidx[c] >= 0)
                return ap_error_set(L->err, AP_EFORMAT,
                                    "%s: tree %d node %d: child %d is reached twice (cycle or "
                                    "shared child)",
                                    L->name, ti, i, c);
            newidx[c] = tail;
            order[tail++] = c;
        }
    }

    ap_ir_tree *tr = ap_forest_ir_add_tree(L->ir, tail, L->err);
    if (!tr)
        return ap_error_prefix(L->err, "%s: ", L->name);
    tr->group = group;
    tr->weight = weight;
    for (int32_t k = 0; k < tail; k++) {
        int32_t i = order[k];
        ap_ir_node *nd = &tr->nodes[k];
        double x, l, r;
        int is_int;
        float f = 0;
        int_at(L, lc, i, ti, "left_children", &l); /* checked in the walk */
        double stype = 0;
        if (l != -1 && st && (rc = int_at(L, st, i, ti, "split_type", &stype)) != AP_OK)
            return rc;
        /* categorical splits carry NaN here (written as a bare NaN in JSON) */
        if (stype != 1 &&
            (L->o->number_at(cond, (size_t)i, &x, &is_int) != 0 || to_float(x, &f) != 0))
            return ap_error_set(L->err, AP_EFORMAT,
                                "%s: tree %d node %d: split_conditions is not a finite float",
                                L->name, ti, i);
        if (l == -1) {
            nd->kind = AP_SPLIT_LEAF;
            nd->value = f;
            continue;
        }
        int_at(L, rcx, i, ti, "right_children", &r);
        double feat;
        if ((rc = int_at(L, si, i, ti, "split_indices", &feat)) != AP_OK)
            return rc;
        if (!(feat >= 0 && feat < L->ir->num_features))
            return ap_error_set(L->err, AP_EFORMAT,
                                "%s: tree %d node %d: split feature %.17g out of range [0, %d) "
                                "(num_feature)",
                                L->name, ti, i, feat, L->ir->num_features);
        int dleft;
        const void *dle = L->o->element(dl, (size_t)i);
        if (L->o->number_at(dl, (size_t)i, &x, &is_int) == 0 && is_int && (x == 0 || x == 1))
            dleft = x == 1;
        else if (!dle || L->o->boolean(dle, &dleft) != 0)
            return ap_error_set(L->err, AP_EFORMAT,
                                "%s: tree %d node %d: default_left is not 0, 1 or a boolean",
                                L->name, ti, i);
        nd->feature = (int32_t)feat;
        nd->threshold = f;
        nd->missing = AP_MISS_NAN;
        if (stype == 0) {
            nd->kind = AP_SPLIT_NUM;
            nd->left = newidx[(int32_t)l];
            nd->right = newidx[(int32_t)r];
            nd->default_left = (uint8_t)dleft;
        } else if (stype == 1) {
            if (cat_of[i] < 0)
                return ap_error_set(L->err, AP_EFORMAT,
                                    "%s: tree %d node %d: categorical split without an entry in "
                                    "categories_nodes",
                                    L->name, ti, i);
            nd->kind = AP_SPLIT_CAT;
            if ((rc = load_categorical(L, ti, i, cats, segs, sizes, cat_of[i], &nd->cat_nwords,
                                       &nd->cat_off, &sc->words)) != AP_OK)
                return rc;
            /* in-set categories go right in XGBoost, left in the IR: swap */
            nd->left = newidx[(int32_t)r];
            nd->right = newidx[(int32_t)l];
            nd->default_left = (uint8_t)!dleft;
            /* 1.7.4 sends negative and past-the-bitset categories to its left
               (the not-in-set side), whatever default_left says (checked
               against the library), i.e. IR right */
            nd->cat_oor_left = 0;
        } else {
            return ap_error_set(L->err, AP_EFORMAT, "%s: tree %d node %d: unknown split_type %.17g",
                                L->name, ti, i, stype);
        }
    }
    return AP_OK;
}

/* ---- the model ---- */

/* A weight_drop list: absent or [] means unit weights (*w = NULL); else one
   finite float per tree (XGBoost indexes it by tree, so a shorter list would
   be read past its end, and a longer one is not what was trained). */
static int read_weights(ld *L, const void *v, long ntrees, const char *where, float **w,
                        size_t *n)
{
    *w = NULL;
    *n = 0;
    if (!v)
        return AP_OK;
    if (L->o->kind(v) != XV_ARR)
        return ap_error_set(L->err, AP_EFORMAT, "%s: %s: expected array, found %s", L->name,
                            where, kind_name(L->o->kind(v)));
    size_t len = L->o->length(v);
    if (len == 0)
        return AP_OK;
    if (len != (size_t)ntrees)
        return ap_error_set(L->err, AP_EFORMAT,
                            "%s: %s has %zu weights but the model has %ld trees", L->name, where,
                            len, ntrees);
    /* len == ntrees <= AP_IR_MAX_TREES: bounded */
    float *f = malloc(len * sizeof *f);
    if (!f)
        return ap_error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
    for (size_t i = 0; i < len; i++) {
        double x;
        int is_int;
        if (L->o->number_at(v, i, &x, &is_int) != 0 || to_float(x, &f[i]) != 0) {
            free(f);
            return ap_error_set(L->err, AP_EFORMAT, "%s: %s[%zu] (tree %zu) is not a finite float",
                                L->name, where, i, i);
        }
    }
    *w = f;
    *n = len;
    return AP_OK;
}

/* XGBoost 3.x's category container (CatContainer::Save): {"enc": [one entry
   per categorical feature], "feature_segments": [...], "sorted_idx": [...]}.
   With categories recorded, 3.x re-codes each input category through it
   before the trees see it; that is not implemented, so only a container
   that records none (enc and sorted_idx empty, segments all 0) is accepted. */
static int check_cats(ld *L, const void *c)
{
    char where[96];
    snprintf(where, sizeof where, "%s.cats", L->model_where);
    if (L->o->kind(c) != XV_OBJ)
        return ap_error_set(L->err, AP_EFORMAT, "%s: %s: expected object, found %s", L->name,
                            where, kind_name(L->o->kind(c)));
    int rc = check_keys(L, c, where, cats_keys, NKEYS(cats_keys), 0);
    if (rc != AP_OK)
        return rc;
    int empty = 1;
    for (size_t k = 0; k < NKEYS(cats_keys); k++) {
        const void *v = L->o->member(c, cats_keys[k]);
        if (!v)
            continue;
        if (L->o->kind(v) != XV_ARR)
            return ap_error_set(L->err, AP_EFORMAT, "%s: %s.%s: expected array, found %s",
                                L->name, where, cats_keys[k], kind_name(L->o->kind(v)));
        size_t n = L->o->length(v);
        for (size_t i = 0; i < n && empty; i++) {
            double x;
            int is_int;
            /* segments are offsets: all 0 means no category anywhere */
            if (k != 1 || L->o->number_at(v, i, &x, &is_int) != 0 || x != 0)
                empty = 0;
        }
    }
    const void *enc = L->o->member(c, "enc");
    if (!empty)
        return ap_error_set(L->err, AP_EUNSUPPORTED,
                            "%s: %s records categories (%zu encoded features): XGBoost 3.x "
                            "re-codes category values through it at predict time, which is not "
                            "supported (train with integer category codes instead)",
                            L->name, where, enc ? L->o->length(enc) : 0);
    return AP_OK;
}


static int load_doc(ld *L, const void *root)
{
    ap_forest_ir *ir = L->ir;
    const void *learner, *lmp, *obj, *objname, *gb, *gbname, *model, *gmp, *trees, *tinfo;
    int rc;
    if (L->o->kind(root) != XV_OBJ)
        return ap_error_set(L->err, AP_EFORMAT, "%s: top level is not an object", L->name);
    if ((rc = need(L, root, "learner", XV_OBJ, "model", &learner)) != AP_OK ||
        (rc = need(L, learner, "learner_model_param", XV_OBJ, "learner", &lmp)) != AP_OK ||
        (rc = need(L, learner, "objective", XV_OBJ, "learner", &obj)) != AP_OK ||
        (rc = need(L, obj, "name", XV_STR, "learner.objective", &objname)) != AP_OK ||
        (rc = need(L, learner, "gradient_booster", XV_OBJ, "learner", &gb)) != AP_OK ||
        (rc = need(L, gb, "name", XV_STR, "learner.gradient_booster", &gbname)) != AP_OK)
        return rc;

    const char *s;
    size_t sn;
    L->o->string(objname, &s, &sn);
    const xgb_objective *objective = NULL;
    for (size_t k = 0; k < sizeof objectives / sizeof objectives[0]; k++)
        if (strlen(objectives[k].name) == sn && !memcmp(objectives[k].name, s, sn))
            objective = &objectives[k];
    if (!objective)
        return ap_error_set(L->err, AP_EUNSUPPORTED, "%s: objective '%.*s' is not supported",
                            L->name, (int)(sn > 64 ? 64 : sn), s);
    snprintf(ir->objective, sizeof ir->objective, "%s", objective->name);
    snprintf(ir->source, sizeof ir->source, "xgboost");
    ir->precision = AP_PREC_F32;
    ir->transform = objective->transform;
    ir->sigmoid_scale = 1.0;

    /*
     * The booster. XGBoost 1.x writes gbtree as {name: "gbtree", model} and
     * dart as {name: "dart", gbtree: {name: "gbtree", model}, weight_drop}.
     * 3.x writes both as {name: "gbtree", model: {..., weight_drop}}, the
     * weights inside the model and only when there are any, and still reads
     * the dart form: the model's weight_drop first, then the one beside
     * gbtree, which replaces it (GBTree::LoadModel). Both are accepted; when
     * both are present they must agree.
     */
    const void *wd_outer = NULL;
    L->o->string(gbname, &s, &sn);
    if (sn == 6 && !memcmp(s, "gbtree", 6)) {
        if ((rc = need(L, gb, "model", XV_OBJ, "learner.gradient_booster", &model)) != AP_OK)
            return rc;
        /* 3.x would read a weight_drop here too, 1.x ignores it: ambiguous */
        if (L->o->member(gb, "weight_drop"))
            return ap_error_set(L->err, AP_EUNSUPPORTED,
                                "%s: learner.gradient_booster.weight_drop beside a gbtree model "
                                "(XGBoost 1.x ignores it, 3.x applies it; refusing rather "
                                "than guessing)",
                                L->name);
        if ((rc = check_keys(L, gb, "learner.gradient_booster", gbtree_keys, NKEYS(gbtree_keys),
                             0)) != AP_OK)
            return rc;
        L->model_where = "learner.gradient_booster.model";
    } else if (sn == 4 && !memcmp(s, "dart", 4)) {
        const void *inner, *iname;
        if ((rc = need(L, gb, "gbtree", XV_OBJ, "learner.gradient_booster", &inner)) != AP_OK ||
            (rc = need(L, inner, "name", XV_STR, "learner.gradient_booster.gbtree", &iname)) !=
                AP_OK ||
            (rc = need(L, inner, "model", XV_OBJ, "learner.gradient_booster.gbtree", &model)) !=
                AP_OK)
            return rc;
        L->o->string(iname, &s, &sn);
        if (!(sn == 6 && !memcmp(s, "gbtree", 6)))
            return ap_error_set(L->err, AP_EUNSUPPORTED,
                                "%s: learner.gradient_booster.gbtree.name is '%.*s' (expected "
                                "gbtree)",
                                L->name, (int)(sn > 64 ? 64 : sn), s);
        if ((rc = check_keys(L, gb, "learner.gradient_booster", dart_keys, NKEYS(dart_keys), 0)) !=
                AP_OK ||
            (rc = check_keys(L, inner, "learner.gradient_booster.gbtree", gbtree_keys,
                             NKEYS(gbtree_keys), 0)) != AP_OK)
            return rc;
        wd_outer = L->o->member(gb, "weight_drop");
        L->model_where = "learner.gradient_booster.gbtree.model";
    } else {
        return ap_error_set(L->err, AP_EUNSUPPORTED,
                            "%s: booster '%.*s' is not supported (gbtree and dart are)", L->name,
                            (int)(sn > 64 ? 64 : sn), s);
    }
    if ((rc = check_keys(L, root, "the top level", root_keys, NKEYS(root_keys), 0)) != AP_OK ||
        (rc = check_keys(L, learner, "learner", learner_keys, NKEYS(learner_keys), 0)) != AP_OK ||
        (rc = check_keys(L, lmp, "learner.learner_model_param", lmp_keys, NKEYS(lmp_keys), 0)) !=
            AP_OK ||
        (rc = check_keys(L, obj, "learner.objective", objective_keys, NKEYS(objective_keys),
                         KEYS_PARAMS)) != AP_OK ||
        (rc = check_keys(L, model, L->model_where, model_keys, NKEYS(model_keys), 0)) != AP_OK)
        return rc;

    long nfeat, nclass, ntarget, ntrees, slv;
    if ((rc = int_field(L, lmp, "num_feature", "learner_model_param", 1, AP_IR_MAX_FEATURES, 0,
                        1, &nfeat)) != AP_OK ||
        (rc = int_field(L, lmp, "num_class", "learner_model_param", 0, AP_IR_MAX_GROUPS, 0, 0,
                        &nclass)) != AP_OK ||
        (rc = int_field(L, lmp, "num_target", "learner_model_param", 1, AP_IR_MAX_GROUPS, 1, 0,
                        &ntarget)) != AP_OK)
        return rc;
    if (nclass > 0 && ntarget > 1)
        return ap_error_set(L->err, AP_EFORMAT, "%s: both num_class (%ld) and num_target (%ld) set",
                            L->name, nclass, ntarget);
    if ((objective->transform == AP_TF_SOFTMAX || objective->transform == AP_TF_ARGMAX) &&
        nclass < 1)
        return ap_error_set(L->err, AP_EFORMAT, "%s: objective %s needs num_class >= 1", L->name,
                            objective->name);
    int G = nclass > 0 ? (int)nclass : (int)ntarget;
    ir->num_features = (int32_t)nfeat;
    ir->num_groups = G;

    /* base score, as a margin */
    const void *bs = L->o->member(lmp, "base_score");
    if (!bs)
        return ap_error_set(L->err, AP_EFORMAT, "%s: learner_model_param: missing base_score",
                            L->name);
    float *bv = malloc((size_t)G * sizeof *bv);
    ir->base_score = malloc((size_t)G * sizeof *ir->base_score);
    if (!bv || !ir->base_score) {
        free(bv);
        return ap_error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
    }
    int nb;
    rc = parse_base_score(L, bs, bv, G, &nb);
    if (rc == AP_OK && nb != 1 && nb != G)
        rc = ap_error_set(L->err, AP_EFORMAT,
                          "%s: base_score has %d values for %d outputs", L->name, nb, G);
    for (int g = 0; rc == AP_OK && g < G; g++) {
        float b = bv[nb == 1 ? 0 : g], m = b;
        if (objective->prob_to_margin == PTM_LOGIT) {
            if (!(b > 0.0f && b < 1.0f))
                rc = ap_error_set(L->err, AP_EFORMAT,
                                  "%s: base_score %.9g must be in (0, 1) for %s", L->name, b,
                                  objective->name);
            m = -logf(1.0f / b - 1.0f);
        } else if (objective->prob_to_margin == PTM_LOG) {
            if (!(b > 0.0f))
                rc = ap_error_set(L->err, AP_EFORMAT, "%s: base_score %.9g must be > 0 for %s",
                                  L->name, b, objective->name);
            m = logf(b);
        }
        ir->base_score[g] = m;
    }
    free(bv);
    if (rc != AP_OK)
        return rc;

    /* feature names (optional) */
    const void *fn = L->o->member(learner, "feature_names");
    if (fn && L->o->kind(fn) != XV_ARR)
        return ap_error_set(L->err, AP_EFORMAT, "%s: learner.feature_names is not an array",
                            L->name);
    size_t nfn = fn ? L->o->length(fn) : 0;
    if (nfn && nfn != (size_t)nfeat)
        return ap_error_set(L->err, AP_EFORMAT,
                            "%s: learner.feature_names has %zu names but num_feature is %ld",
                            L->name, nfn, nfeat);
    if (nfn) {
        ir->feature_names = calloc((size_t)nfeat, sizeof *ir->feature_names);
        if (!ir->feature_names)
            return ap_error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
        for (size_t k = 0; k < nfn; k++) {
            const void *e = L->o->element(fn, k);
            if (!e || L->o->string(e, &s, &sn) != 0)
                return ap_error_set(L->err, AP_EFORMAT,
                                    "%s: learner.feature_names[%zu] is not a string", L->name, k);
            if (memchr(s, '\0', sn))
                return ap_error_set(L->err, AP_EFORMAT,
                                    "%s: learner.feature_names[%zu] contains a NUL byte", L->name,
                                    k);
            ir->feature_names[k] = strndup(s, sn);
            if (!ir->feature_names[k])
                return ap_error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
        }
    }

    if ((rc = need(L, model, "gbtree_model_param", XV_OBJ, "model", &gmp)) != AP_OK ||
        (rc = int_field(L, gmp, "num_trees", "gbtree_model_param", 0, AP_IR_MAX_TREES, 0, 1,
                        &ntrees)) != AP_OK ||
        (rc = int_field(L, gmp, "size_leaf_vector", "gbtree_model_param", 0, INT32_MAX, 0, 0,
                        &slv)) != AP_OK ||
        (rc = need(L, model, "trees", XV_ARR, "model", &trees)) != AP_OK ||
        (rc = need(L, model, "tree_info", XV_ARR, "model", &tinfo)) != AP_OK)
        return rc;
    if (slv > 1)
        return ap_error_set(L->err, AP_EUNSUPPORTED,
                            "%s: vector leaves (size_leaf_vector %ld) are not supported", L->name,
                            slv);
    char where[96];
    snprintf(where, sizeof where, "%s.gbtree_model_param", L->model_where);
    if ((rc = check_keys(L, gmp, where, gmp_keys, NKEYS(gmp_keys), 0)) != AP_OK)
        return rc;
    if (L->o->length(trees) != (size_t)ntrees || L->o->length(tinfo) != (size_t)ntrees)
        return ap_error_set(L->err, AP_EFORMAT,
                            "%s: num_trees is %ld but trees has %zu, tree_info %zu entries",
                            L->name, ntrees, L->o->length(trees), L->o->length(tinfo));
    const void *cats = L->o->member(model, "cats");
    if (cats && (rc = check_cats(L, cats)) != AP_OK)
        return rc;

    /* dart tree weights: inside the model (3.x) and/or beside gbtree (1.x
       dart); the outer list is what XGBoost 3.x ends up with, so two lists
       that differ cannot both be honoured: refused */
    float *wm = NULL, *wo = NULL;
    size_t nwm = 0, nwo = 0;
    snprintf(where, sizeof where, "%s.weight_drop", L->model_where);
    rc = read_weights(L, L->o->member(model, "weight_drop"), ntrees, where, &wm, &nwm);
    if (rc == AP_OK)
        rc = read_weights(L, wd_outer, ntrees, "learner.gradient_booster.weight_drop", &wo, &nwo);
    if (rc == AP_OK && wd_outer && L->o->member(model, "weight_drop") &&
        (nwm != nwo || (nwm && memcmp(wm, wo, nwm * sizeof *wm) != 0)))
        rc = ap_error_set(L->err, AP_EFORMAT,
                          "%s: %s and learner.gradient_booster.weight_drop differ (XGBoost 3.x "
                          "would use the second, 1.x only knows it; refusing rather than "
                          "guessing)",
                          L->name, where);
    const float *wdrop = wo ? wo : wm;

    tree_scratch sc = {0};
    for (long ti = 0; ti < ntrees && rc == AP_OK; ti++) {
        double g;
        int is_int;
        if (L->o->number_at(tinfo, (size_t)ti, &g, &is_int) != 0 || !is_int || g < 0 ||
            g >= G) {
            rc = ap_error_set(L->err, AP_EFORMAT,
                              "%s: tree %ld: tree_info group is not an integer in [0, %d)",
                              L->name, ti, G);
            break;
        }
        rc = load_tree(L, (int)ti, L->o->element(trees, (size_t)ti), (int32_t)g,
                       wdrop ? wdrop[ti] : 1.0, &sc);
    }
    free(wm);
    free(wo);
    free(sc.order);
    free(sc.newidx);
    free(sc.cat_of);
    free(sc.words);
    return rc;
}

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.';
}

/*
 * XGBoost's JSON writer emits bare NaN / Infinity / -Infinity tokens (every
 * categorical split has split_condition NaN), which jansson rejects. Copy the
 * text with those tokens, outside strings, turned into null; the walker then
 * refuses a null wherever a number is needed. At most 4/3 of the input.
 */
static char *nonfinite_to_null(const char *buf, size_t len, size_t *outlen)
{
    static const char *const toks[] = {"-Infinity", "Infinity", "-NaN", "NaN"};
    char *out = malloc(len + len / 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len)
                out[o++] = buf[++i];
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if ((c == 'N' || c == 'I' || c == '-') && (i == 0 || !is_word(buf[i - 1]))) {
            size_t k;
            for (k = 0; k < sizeof toks / sizeof toks[0]; k++) {
                size_t tl = strlen(toks[k]);
                if (len - i >= tl && !memcmp(buf + i, toks[k], tl) &&
                    (i + tl == len || !is_word(buf[i + tl]))) {
                    memcpy(out + o, "null", 4);
                    o += 4;
                    i += tl - 1;
                    break;
                }
            }
            if (k < sizeof toks / sizeof toks[0])
                continue;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

int ap_xgboost_load_json(const char *buf, size_t len, const char *name, ap_forest_ir *ir,
                         ap_error *err)
{
    size_t clen;
    char *clean = nonfinite_to_null(buf, len, &clen);
    if (!clean)
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
    json_error_t jerr;
    json_t *root = json_loadb(clean, clen, JSON_REJECT_DUPLICATES, &jerr);
    free(clean);
    if (!root)
        return ap_error_set(err, AP_EFORMAT, "%s: JSON line %d column %d: %s", name, jerr.line,
                            jerr.column, jerr.text);
    ld L = {&json_ops, name, err, ir, "learner.gradient_booster.model"};
    int rc = load_doc(&L, root);
    json_decref(root);
    return rc;
}

int ap_xgboost_load_ubj(const unsigned char *buf, size_t len, const char *name, ap_forest_ir *ir,
                        ap_error *err)
{
    ubj_val *root;
    int rc = ap_ubj_parse(buf, len, name, &root, err);
    if (rc != AP_OK)
        return rc;
    ld L = {&ap_ubj_ops, name, err, ir, "learner.gradient_booster.model"};
    rc = load_doc(&L, root);
    ap_ubj_free(root);
    return rc;
}

/* ---- transforms: XGBoost 1.7's PredTransform, in float ---- */

void ap_xgboost_transform(const ap_forest_ir *ir, const double *m, double *out)
{
    int G = ir->num_groups;
    switch (ir->transform) {
    case AP_TF_SIGMOID:
        for (int g = 0; g < G; g++) {
            /* common::Sigmoid: x = std::min(-x, 88.7f); 1 / (expf(x) + 1 + 1e-16f).
               The clamp keeps expf finite, so very negative margins give
               ~3.0e-39, not 0 (checked against the library). */
            float nx = -(float)m[g];
            if (88.7f < nx)
                nx = 88.7f;
            float den = expf(nx) + 1.0f + 1e-16f;
            out[g] = 1.0f / den;
        }
        break;
    case AP_TF_EXP:
        for (int g = 0; g < G; g++)
            out[g] = expf((float)m[g]);
        break;
    case AP_TF_SOFTMAX: {
        /* common::Softmax: float max and exps, but the sum in double, cast
           to float for the divisions (checked: a float sum differs). */
        float wmax = (float)m[0];
        for (int g = 1; g < G; g++)
            wmax = fmaxf((float)m[g], wmax);
        double wsum = 0.0;
        for (int g = 0; g < G; g++) {
            float e = expf((float)m[g] - wmax);
            out[g] = e;
            wsum += e;
        }
        for (int g = 0; g < G; g++)
            out[g] = (float)out[g] / (float)wsum;
        break;
    }
    case AP_TF_ARGMAX: {
        /* FindMaxIndex: the first maximum */
        int best = 0;
        for (int g = 1; g < G; g++)
            if ((float)m[g] > (float)m[best])
                best = g;
        out[0] = best;
        break;
    }
    default:
        for (int g = 0; g < G; g++)
            out[g] = (float)m[g];
        break;
    }
}
