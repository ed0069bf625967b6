/*
 * Private to the XGBoost loader: the seams between its files.
 *
 *   xgboost.c       the model document: learner, booster, weights, trees
 *                   in order (ap__xgboost_load_json / _ubj, forest_internal.h)
 *   xgb_objective.c supported objectives, base_score -> margin
 *   xgb_tree.c      one tree: reachable nodes, splits, categories -> IR
 *   xgb_keys.c      the keys each object may carry; the rest is refused
 *   xgb_fields.c    typed access to the document, with messages that say where
 *
 * Calls go down this list only (xgboost.c calls the others; xgb_tree.c and
 * xgb_objective.c call xgb_keys.c / xgb_fields.c; xgb_keys.c calls
 * xgb_fields.c), never back up. The document itself is read through
 * xgb_doc.h (JSON in xgb_json.c, UBJSON in ubjson.c).
 */
#ifndef AP_FOREST_XGB_LOAD_H
#define AP_FOREST_XGB_LOAD_H

#include <stddef.h>
#include <stdint.h>
#include "forest/ir.h"
#include "forest/xgb_doc.h"

/* One load in progress. */
typedef struct xgb_ld {
    const xgb_doc_ops *o;    /* the document's view (JSON or UBJSON) */
    const char *name;        /* prefixes every message */
    ap_error *err;
    ap_forest_ir *ir;        /* being filled */
    const char *model_where; /* path of the gbtree model object, for messages */
} xgb_ld;

/* ---- xgb_fields.c: typed fields ---- */

/* "null", "boolean", ... for an XV_* kind */
const char *ap__xgb_kind_name(int kind);
/* obj[key] of the given kind (XV_REAL accepts integers); `where` names obj. */
int ap__xgb_need(xgb_ld *L, const void *obj, const char *key, int kind, const char *where,
                const void **out);
/* Integer field written as a string ("42", XGBoost's parameters) or a number,
   in [lo, hi]; dflt when absent and not required. */
int ap__xgb_int_field(xgb_ld *L, const void *obj, const char *key, const char *where, long lo,
                     long hi, long dflt, int required, long *out);
/* A per-node array of tree ti: an array of exactly n elements (n < 0: any). */
int ap__xgb_node_array(xgb_ld *L, const void *tobj, const char *key, int ti, long n,
                      int required, const void **out);
/* Integer element i of arr (tree ti's array `key`). */
int ap__xgb_int_at(xgb_ld *L, const void *arr, long i, int ti, const char *key, double *x);
/* A double as float, refusing what float cannot hold (the cast would be UB): 0 or -1. */
int ap__xgb_to_float(double x, float *f);

/* ---- xgb_keys.c: the keys each object may carry ---- */

typedef enum xgb_keyset {
    XGB_KEYS_ROOT, XGB_KEYS_LEARNER, XGB_KEYS_LMP, XGB_KEYS_OBJECTIVE, XGB_KEYS_GBTREE,
    XGB_KEYS_DART, XGB_KEYS_MODEL, XGB_KEYS_GMP, XGB_KEYS_TREE, XGB_KEYS_TREE_PARAM,
    XGB_KEYS_CATS
} xgb_keyset;

/* Refuse a key of obj that is not in the set (or written twice); `where` names obj. */
int ap__xgb_check_keys(xgb_ld *L, const void *obj, const char *where, xgb_keyset set);
/* XGBoost 3.x's category container: only one that records no category. */
int ap__xgb_check_cats(xgb_ld *L, const void *cats);

/* ---- xgb_objective.c ---- */

enum { PTM_IDENTITY, PTM_LOGIT, PTM_LOG }; /* how base_score becomes a margin */

typedef struct xgb_objective {
    const char *name;
    int prob_to_margin;
    ap_transform transform;
} xgb_objective;

/* The supported objective called name[0..n), or NULL. */
const xgb_objective *ap__xgb_objective(const char *name, size_t n);
/* ir->base_score (ir->num_groups values, set) from learner_model_param's
   base_score, as margins of objective obj. */
int ap__xgb_base_margin(xgb_ld *L, const void *lmp, const xgb_objective *obj);

/* ---- xgb_tree.c ---- */

/* Buffers reused from tree to tree; zero-initialise, free with
   ap__xgb_tree_scratch_free. */
typedef struct xgb_tree_scratch {
    int32_t *order;    /* breadth-first order of reachable file node indices */
    int32_t *newidx;   /* file index -> IR index, -1 unreachable */
    int32_t *cat_of;   /* file index -> entry in categories_nodes, -1 none */
    uint32_t *words;   /* bitset being built */
} xgb_tree_scratch;

/* Append tree ti (document value t) to L->ir, adding to `group` with `weight`. */
int ap__xgb_load_tree(xgb_ld *L, int ti, const void *t, int32_t group, double weight,
                     xgb_tree_scratch *sc);
void ap__xgb_tree_scratch_free(xgb_tree_scratch *sc);

#endif
