/*
 * One XGBoost tree into the IR. The node arrays are walked from the root:
 * unreachable nodes (pruned / deleted in XGBoost's node array) are dropped
 * and the reachable ones renumbered in breadth-first order; bad children
 * and cycles are refused. Messages name the tree and the node index as
 * written in the file.
 *
 *  - numeric split: (float)x < split_condition -> left; NaN -> default child.
 *  - categorical split: NaN goes to the default child; categories in the
 *    node's set go RIGHT; all others go LEFT, including negative values and
 *    values past the node's bitset (32 * ceil((max_cat+1)/32) bits), whatever
 *    default_left says. The IR sends set bits left, so children and
 *    default_left are swapped here and cat_oor_left is 0.
 */
#include "forest/xgb_load.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds total categorical bitset memory (64 MiB): one 10-byte category
   value can otherwise ask for a 2 MiB bitset. */
#define XGB_MAX_TOTAL_CAT_WORDS (1u << 24)
/* XGBoost's largest category: floats represent integers exactly below 2^24. */
#define XGB_MAX_CAT (1 << 24)

static int load_categorical(xgb_ld *L, int ti, long i, const void *cats, const void *segs,
                            const void *sizes, long j, uint32_t *nwords_out, uint32_t *off,
                            uint32_t **words)
{
    double seg, size;
    if (ap__xgb_int_at(L, segs, j, ti, "categories_segments", &seg) != AP_OK ||
        ap__xgb_int_at(L, sizes, j, ti, "categories_sizes", &size) != AP_OK)
        return L->err->code;
    size_t ncat = L->o->length(cats);
    if (size < 1 || seg < 0 || seg > (double)ncat || size > (double)ncat - seg)
        return ap__error_set(L->err, AP_EFORMAT,
                            "%s: tree %d node %ld: categories segment [%.17g, +%.17g) out of "
                            "range (%zu categories in the tree)",
                            L->name, ti, i, seg, size, ncat);
    long b = (long)seg, e = (long)seg + (long)size;
    double maxc = -1;
    for (long k = b; k < e; k++) {
        double c;
        int is_int;
        if (L->o->number_at(cats, (size_t)k, &c, &is_int) != 0 || !is_int)
            return ap__error_set(L->err, AP_EFORMAT,
                                "%s: tree %d node %ld: categories[%ld] is not an integer",
                                L->name, ti, i, k);
        if (c < 0 || c >= XGB_MAX_CAT)
            return ap__error_set(L->err, AP_ERANGE,
                                "%s: tree %d node %ld: category %.17g out of range [0, %d)",
                                L->name, ti, i, c, XGB_MAX_CAT);
        if (c > maxc)
            maxc = c;
    }
    /* XGBoost sizes the bitset from the largest category: that size decides
       which values count as out of range. */
    uint32_t nw = (uint32_t)maxc / 32 + 1;
    if (L->ir->ncat_words + (uint64_t)nw > XGB_MAX_TOTAL_CAT_WORDS)
        return ap__error_set(L->err, AP_ERANGE,
                            "%s: tree %d node %ld: categorical bitsets exceed %u words in total",
                            L->name, ti, i, XGB_MAX_TOTAL_CAT_WORDS);
    uint32_t *w = realloc(*words, nw * sizeof *w);
    if (!w)
        return ap__error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
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
    if (ap__forest_ir_add_cat(L->ir, w, nw, off, L->err) != AP_OK)
        return ap__error_prefix(L->err, "%s: tree %d node %ld: ", L->name, ti, i);
    return AP_OK;
}

int ap__xgb_load_tree(xgb_ld *L, int ti, const void *t, int32_t group, double weight,
                     xgb_tree_scratch *sc)
{
    char where[48];
    snprintf(where, sizeof where, "tree %d", ti);
    if (L->o->kind(t) != XV_OBJ)
        return ap__error_set(L->err, AP_EFORMAT, "%s: tree %d: expected object, found %s", L->name,
                            ti, ap__xgb_kind_name(L->o->kind(t)));
    const void *tp;
    long n, slv;
    int rc;
    if ((rc = ap__xgb_need(L, t, "tree_param", XV_OBJ, where, &tp)) != AP_OK ||
        (rc = ap__xgb_int_field(L, tp, "num_nodes", where, 1, AP_IR_MAX_NODES, 0, 1, &n)) != AP_OK ||
        (rc = ap__xgb_int_field(L, tp, "size_leaf_vector", where, 0, INT32_MAX, 0, 0, &slv)) !=
            AP_OK)
        return rc;
    if (slv > 1)
        return ap__error_set(L->err, AP_EUNSUPPORTED,
                            "%s: tree %d: vector leaves (size_leaf_vector %ld, multi_strategy "
                            "multi_output_tree) are not supported",
                            L->name, ti, slv);
    char path[128];
    snprintf(path, sizeof path, "%s.trees[%d]", L->model_where, ti);
    if ((rc = ap__xgb_check_keys(L, t, path, XGB_KEYS_TREE)) != AP_OK)
        return rc;
    snprintf(path, sizeof path, "%s.trees[%d].tree_param", L->model_where, ti);
    if ((rc = ap__xgb_check_keys(L, tp, path, XGB_KEYS_TREE_PARAM)) != AP_OK)
        return rc;
    /* 1.x puts tree t at position id (so an id out of order reorders the
       trees against tree_info and weight_drop); 3.x refuses it */
    const void *idv = L->o->member(t, "id");
    if (idv) {
        double id;
        int is_int;
        if (L->o->number(idv, &id, &is_int) != 0 || !is_int || id != ti)
            return ap__error_set(L->err, AP_EFORMAT,
                                "%s: tree %d: id is not %d (trees must be listed in id order)",
                                L->name, ti, ti);
    }
    const void *lc, *rcx, *si, *cond, *dl, *st, *cats, *cnodes, *segs, *sizes;
    if ((rc = ap__xgb_node_array(L, t, "left_children", ti, n, 1, &lc)) != AP_OK ||
        (rc = ap__xgb_node_array(L, t, "right_children", ti, n, 1, &rcx)) != AP_OK ||
        (rc = ap__xgb_node_array(L, t, "split_indices", ti, n, 1, &si)) != AP_OK ||
        (rc = ap__xgb_node_array(L, t, "split_conditions", ti, n, 1, &cond)) != AP_OK ||
        (rc = ap__xgb_node_array(L, t, "default_left", ti, n, 1, &dl)) != AP_OK ||
        (rc = ap__xgb_node_array(L, t, "split_type", ti, n, 0, &st)) != AP_OK ||
        (rc = ap__xgb_node_array(L, t, "categories", ti, -1, 0, &cats)) != AP_OK ||
        (rc = ap__xgb_node_array(L, t, "categories_nodes", ti, -1, 0, &cnodes)) != AP_OK ||
        (rc = ap__xgb_node_array(L, t, "categories_segments", ti, -1, 0, &segs)) != AP_OK ||
        (rc = ap__xgb_node_array(L, t, "categories_sizes", ti, -1, 0, &sizes)) != AP_OK)
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
        return ap__error_set(L->err, AP_ENOMEM, "%s: tree %d: out of memory (%ld nodes)",
                            L->name, ti, n);
    for (long i = 0; i < n; i++)
        newidx[i] = cat_of[i] = -1;

    size_t ncn = cnodes ? L->o->length(cnodes) : 0;
    if (ncn && (!cats || !segs || !sizes || L->o->length(segs) != ncn ||
                L->o->length(sizes) != ncn))
        return ap__error_set(L->err, AP_EFORMAT,
                            "%s: tree %d: categories_nodes has %zu entries but "
                            "categories_segments / categories_sizes / categories disagree",
                            L->name, ti, ncn);
    for (size_t j = 0; j < ncn; j++) {
        double x;
        int is_int;
        if (L->o->number_at(cnodes, j, &x, &is_int) != 0 || !is_int || x < 0 || x >= (double)n)
            return ap__error_set(L->err, AP_EFORMAT,
                                "%s: tree %d: categories_nodes[%zu] is not a node index in "
                                "[0, %ld)",
                                L->name, ti, j, n);
        if (cat_of[(long)x] >= 0)
            return ap__error_set(L->err, AP_EFORMAT,
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
        if ((rc = ap__xgb_int_at(L, lc, i, ti, "left_children", &kid[0])) != AP_OK)
            return rc;
        if (kid[0] == -1)
            continue; /* XGBoost: a node is a leaf iff its left child is -1 */
        if ((rc = ap__xgb_int_at(L, rcx, i, ti, "right_children", &kid[1])) != AP_OK)
            return rc;
        for (int k = 0; k < 2; k++) {
            if (!(kid[k] >= 1 && kid[k] < (double)n))
                return ap__error_set(L->err, AP_EFORMAT,
                                    "%s: tree %d node %d: %s child %.17g out of range [1, %ld)",
                                    L->name, ti, i, k ? "right" : "left", kid[k], n);
            int32_t c = (int32_t)kid[k];
            if (newidx[c] >= 0)
                return ap__error_set(L->err, AP_EFORMAT,
                                    "%s: tree %d node %d: child %d is reached twice (cycle or "
                                    "shared child)",
                                    L->name, ti, i, c);
            newidx[c] = tail;
            order[tail++] = c;
        }
    }

    ap_ir_tree *tr = ap__forest_ir_add_tree(L->ir, tail, L->err);
    if (!tr)
        return ap__error_prefix(L->err, "%s: ", L->name);
    tr->group = group;
    tr->weight = weight;
    for (int32_t k = 0; k < tail; k++) {
        int32_t i = order[k];
        ap_ir_node *nd = &tr->nodes[k];
        double x, l, r;
        int is_int;
        float f = 0;
        ap__xgb_int_at(L, lc, i, ti, "left_children", &l); /* checked in the walk */
        double stype = 0;
        if (l != -1 && st && (rc = ap__xgb_int_at(L, st, i, ti, "split_type", &stype)) != AP_OK)
            return rc;
        /* categorical splits carry NaN here (written as a bare NaN in JSON) */
        if (stype != 1 &&
            (L->o->number_at(cond, (size_t)i, &x, &is_int) != 0 || ap__xgb_to_float(x, &f) != 0))
            return ap__error_set(L->err, AP_EFORMAT,
                                "%s: tree %d node %d: split_conditions is not a finite float",
                                L->name, ti, i);
        if (l == -1) {
            nd->kind = AP_SPLIT_LEAF;
            nd->value = f;
            continue;
        }
        ap__xgb_int_at(L, rcx, i, ti, "right_children", &r);
        double feat;
        if ((rc = ap__xgb_int_at(L, si, i, ti, "split_indices", &feat)) != AP_OK)
            return rc;
        if (!(feat >= 0 && feat < L->ir->num_features))
            return ap__error_set(L->err, AP_EFORMAT,
                                "%s: tree %d node %d: split feature %.17g out of range [0, %d) "
                                "(num_feature)",
                                L->name, ti, i, feat, L->ir->num_features);
        int dleft;
        const void *dle = L->o->element(dl, (size_t)i);
        if (L->o->number_at(dl, (size_t)i, &x, &is_int) == 0 && is_int && (x == 0 || x == 1))
            dleft = x == 1;
        else if (!dle || L->o->boolean(dle, &dleft) != 0)
            return ap__error_set(L->err, AP_EFORMAT,
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
                return ap__error_set(L->err, AP_EFORMAT,
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
            return ap__error_set(L->err, AP_EFORMAT, "%s: tree %d node %d: unknown split_type %.17g",
                                L->name, ti, i, stype);
        }
    }
    return AP_OK;
}

void ap__xgb_tree_scratch_free(xgb_tree_scratch *sc)
{
    free(sc->order);
    free(sc->newidx);
    free(sc->cat_of);
    free(sc->words);
    sc->order = sc->newidx = sc->cat_of = NULL;
    sc->words = NULL;
}
