/*
 * What an XGBoost model document may hold: the keys each object may carry
 * (XGBoost 1.x-3.x) and the one category container accepted. Anything else
 * is refused with its name and where it is, never ignored.
 */
#include "forest/xgb_load.h"
#include "common/error.h"

#include <stdio.h>
#include <string.h>

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
static int check_known(xgb_ld *L, const void *obj, const char *where, const char *const *known,
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
                return ap__error_set(L->err, AP_EFORMAT, "%s: key '%s' appears twice in %s",
                                    L->name, kt, where);
            }
            seen |= 1u << i;
            continue;
        }
        if ((flags & KEYS_PARAMS) && kn > 6 && !memcmp(k + kn - 6, "_param", 6) &&
            !memchr(k, '\0', kn) && L->o->kind(val) == XV_OBJ)
            continue;
        key_text(kt, sizeof kt, k, kn);
        return ap__error_set(L->err, AP_EUNSUPPORTED,
                            "%s: unknown key '%s' in %s (refusing rather than ignoring it)",
                            L->name, kt, where);
    }
    return AP_OK;
}

/* The lists above by xgb_keyset. */
static const struct {
    const char *const *keys;
    size_t n;
    unsigned flags;
} keysets[] = {
    [XGB_KEYS_ROOT] = {root_keys, NKEYS(root_keys), 0},
    [XGB_KEYS_LEARNER] = {learner_keys, NKEYS(learner_keys), 0},
    [XGB_KEYS_LMP] = {lmp_keys, NKEYS(lmp_keys), 0},
    [XGB_KEYS_OBJECTIVE] = {objective_keys, NKEYS(objective_keys), KEYS_PARAMS},
    [XGB_KEYS_GBTREE] = {gbtree_keys, NKEYS(gbtree_keys), 0},
    [XGB_KEYS_DART] = {dart_keys, NKEYS(dart_keys), 0},
    [XGB_KEYS_MODEL] = {model_keys, NKEYS(model_keys), 0},
    [XGB_KEYS_GMP] = {gmp_keys, NKEYS(gmp_keys), 0},
    [XGB_KEYS_TREE] = {tree_keys, NKEYS(tree_keys), 0},
    [XGB_KEYS_TREE_PARAM] = {tree_param_keys, NKEYS(tree_param_keys), 0},
    [XGB_KEYS_CATS] = {cats_keys, NKEYS(cats_keys), 0},
};

int ap__xgb_check_keys(xgb_ld *L, const void *obj, const char *where, xgb_keyset set)
{
    return check_known(L, obj, where, keysets[set].keys, keysets[set].n, keysets[set].flags);
}

/* XGBoost 3.x's category container (CatContainer::Save): {"enc": [one entry
   per categorical feature], "feature_segments": [...], "sorted_idx": [...]}.
   With categories recorded, 3.x re-codes each input category through it
   before the trees see it; that is not implemented, so only a container
   that records none (enc and sorted_idx empty, segments all 0) is accepted. */
int ap__xgb_check_cats(xgb_ld *L, const void *c)
{
    char where[96];
    snprintf(where, sizeof where, "%s.cats", L->model_where);
    if (L->o->kind(c) != XV_OBJ)
        return ap__error_set(L->err, AP_EFORMAT, "%s: %s: expected object, found %s", L->name, where,
                            ap__xgb_kind_name(L->o->kind(c)));
    int rc = ap__xgb_check_keys(L, c, where, XGB_KEYS_CATS);
    if (rc != AP_OK)
        return rc;
    int empty = 1;
    for (size_t k = 0; k < NKEYS(cats_keys); k++) {
        const void *v = L->o->member(c, cats_keys[k]);
        if (!v)
            continue;
        if (L->o->kind(v) != XV_ARR)
            return ap__error_set(L->err, AP_EFORMAT, "%s: %s.%s: expected array, found %s", L->name,
                                where, cats_keys[k], ap__xgb_kind_name(L->o->kind(v)));
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
        return ap__error_set(L->err, AP_EUNSUPPORTED,
                            "%s: %s records categories (%zu encoded features): XGBoost 3.x "
                            "re-codes category values through it at predict time, which is not "
                            "supported (train with integer category codes instead)",
                            L->name, where, enc ? L->o->length(enc) : 0);
    return AP_OK;
}
