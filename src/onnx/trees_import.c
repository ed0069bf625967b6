/*
 * trees_import.c: a TreeEnsembleClassifier / TreeEnsembleRegressor node ->
 * ap_onnx_trees (trees.h). Reads its attributes (each operator's own only:
 * op_attrs.c has refused any other), checks them as ORT would take them
 * (lengths, modes, ids, features in range, finite values, every tree a
 * tree: each node reached once from its root), lays the nodes out tree by
 * tree (trees in order of their first listed node, the first listed node
 * of a tree its root, as ORT) with their leaf weights, and picks the
 * evaluator: the compiled forest (trees_forest.c) or the generic walk.
 */
#include "onnx/trees.h"
#include "common/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int64_t tree, node;
    int32_t pos;
} entry;

/* nodes sorted by (tree id, node id), and the node index of each listed
   position: how weights find their leaf */
typedef struct node_index {
    entry *sorted;
    int32_t *pos_index;
} node_index;

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->tree != y->tree)
        return x->tree < y->tree ? -1 : 1;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    return x->pos - y->pos;
}

/* index of (tree, node) among the sorted entries, or -1 */
static int32_t find(const entry *e, size_t n, int64_t tree, int64_t node)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e[mid].tree < tree || (e[mid].tree == tree && e[mid].node < node))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && e[lo].tree == tree && e[lo].node == node ? (int32_t)lo : -1;
}

static int parse_mode(const ProtobufCBinaryData *s)
{
    static const char *names[] = {"LEAF", "BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE",
                                  "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"};
    for (int i = 0; i < 7; i++)
        if (s->len == strlen(names[i]) && !memcmp(s->data, names[i], s->len))
            return i;
    return -1;
}

typedef struct attrs {
    const int64_t *treeids, *nodeids, *featureids, *truenodeids, *falsenodeids, *tracks;
    size_t n, ntracks;
    const ProtobufCBinaryData *modes;
    size_t nmodes;
    double *values;
    size_t nvalues;
    const int64_t *w_tree, *w_node, *w_id;
    size_t nw;
    double *w_val;
    size_t nw_val;
} attrs;

static int fail(const Onnx__NodeProto *node, const char *name, ap_error *err, int code,
                const char *what)
{
    return ap__error_set(err, code, "%s: %s node '%s': %s", name, node->op_type,
                        node->name && node->name[0] ? node->name : "(unnamed)", what);
}

static int read_attrs(const Onnx__NodeProto *node, int classifier, attrs *a, const char *name,
                      ap_error *err)
{
    size_t n[6];
    const char *pre = classifier ? "class" : "target";
    char b1[32], b2[32], b3[32], b4[32];
    snprintf(b1, sizeof b1, "%s_treeids", pre);
    snprintf(b2, sizeof b2, "%s_nodeids", pre);
    snprintf(b3, sizeof b3, "%s_ids", pre);
    snprintf(b4, sizeof b4, "%s_weights", pre);
    size_t nw[3];
    int rc;
    if ((rc = ap__onnx_attr_ints(node, "nodes_treeids", &a->treeids, &n[0], name, err)) ||
        (rc = ap__onnx_attr_ints(node, "nodes_nodeids", &a->nodeids, &n[1], name, err)) ||
        (rc = ap__onnx_attr_ints(node, "nodes_featureids", &a->featureids, &n[2], name, err)) ||
        (rc = ap__onnx_attr_ints(node, "nodes_truenodeids", &a->truenodeids, &n[3], name, err)) ||
        (rc = ap__onnx_attr_ints(node, "nodes_falsenodeids", &a->falsenodeids, &n[4], name,
                                err)) ||
        (rc = ap__onnx_attr_ints(node, "nodes_missing_value_tracks_true", &a->tracks,
                                &a->ntracks, name, err)) ||
        (rc = ap__onnx_attr_strings(node, "nodes_modes", &a->modes, &a->nmodes, name, err)) ||
        (rc = ap__onnx_attr_reals(node, "nodes_values", &a->values, &a->nvalues, NULL, name,
                                 err)) ||
        (rc = ap__onnx_attr_ints(node, b1, &a->w_tree, &nw[0], name, err)) ||
        (rc = ap__onnx_attr_ints(node, b2, &a->w_node, &nw[1], name, err)) ||
        (rc = ap__onnx_attr_ints(node, b3, &a->w_id, &nw[2], name, err)) ||
        (rc = ap__onnx_attr_reals(node, b4, &a->w_val, &a->nw_val, NULL, name, err)))
        return rc;
    a->n = n[0];
    if (a->n == 0)
        return fail(node, name, err, AP_EFORMAT, "no nodes (nodes_treeids is empty)");
    if (a->n > MAX_TREE_NODES)
        return fail(node, name, err, AP_ERANGE, "too many nodes");
    for (int i = 1; i < 5; i++)
        if (n[i] != a->n)
            return fail(node, name, err, AP_EFORMAT,
                        "nodes_* attributes differ in length (treeids, nodeids, featureids, "
                        "truenodeids, falsenodeids)");
    if (a->nmodes != a->n || a->nvalues != a->n)
        return fail(node, name, err, AP_EFORMAT,
                    "nodes_modes / nodes_values length differs from nodes_treeids");
    if (a->ntracks != 0 && a->ntracks != a->n)
        return fail(node, name, err, AP_EFORMAT,
                    "nodes_missing_value_tracks_true length differs from nodes_treeids");
    a->nw = nw[0];
    if (nw[1] != a->nw || nw[2] != a->nw || a->nw_val != a->nw)
        return ap__error_set(err, AP_EFORMAT,
                            "%s: %s node: %s_treeids/_nodeids/_ids/_weights differ in length",
                            name, node->op_type, pre);
    return AP_OK;
}

typedef struct group {
    int32_t minpos, start, len;
} group;

static int cmp_group(const void *a, const void *b)
{
    const group *x = a, *y = b;
    return x->minpos - y->minpos;
}

/* Trees in order of their first listed node; within a tree, nodes in listing
   order (so the first listed node, index 0, is the root, as ORT takes it). */
static int place_nodes(ap_onnx_trees *t, const Onnx__NodeProto *node, const attrs *a, int nf,
                       node_index *ix, const char *name, ap_error *err)
{
    size_t n = a->n;
    int rc = AP_OK;
    entry *e = malloc(n * sizeof *e);
    int32_t *tree_of = malloc(n * sizeof *tree_of);
    int32_t *local = malloc(n * sizeof *local);
    group *g = malloc(n * sizeof *g);
    t->nodes = calloc(n, sizeof *t->nodes);
    if (!e || !tree_of || !local || !g || !t->nodes) {
        rc = ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        e[i] = (entry){a->treeids[i], a->nodeids[i], (int32_t)i};
    qsort(e, n, sizeof *e, cmp_entry);
    size_t ng = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int32_t minpos = e[i].pos;
        for (; j < n && e[j].tree == e[i].tree; j++) {
            if (j > i && e[j].node == e[j - 1].node) {
                rc = ap__error_set(err, AP_EFORMAT, "%s: %s: tree %lld node %lld is defined twice",
                                  name, node->op_type, (long long)e[j].tree,
                                  (long long)e[j].node);
                goto out;
            }
            if (e[j].pos < minpos)
                minpos = e[j].pos;
        }
        g[ng++] = (group){minpos, (int32_t)i, (int32_t)(j - i)};
        i = j;
    }
    if (ng > AP_IR_MAX_TREES) {
        rc = fail(node, name, err, AP_ERANGE, "too many trees");
        goto out;
    }
    qsort(g, ng, sizeof *g, cmp_group);
    t->ntrees = (int)ng;
    t->tree_off = malloc(ng * sizeof *t->tree_off);
    t->tree_len = malloc(ng * sizeof *t->tree_len);
    if (!t->tree_off || !t->tree_len) {
        rc = ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    int32_t off = 0;
    for (size_t k = 0; k < ng; k++) {
        t->tree_off[k] = off;
        t->tree_len[k] = g[k].len;
        off += g[k].len;
        for (int32_t m = g[k].start; m < g[k].start + g[k].len; m++)
            tree_of[e[m].pos] = (int32_t)k;
        g[k].len = 0;  /* reused as fill counter */
    }
    for (size_t p = 0; p < n; p++)
        local[p] = g[tree_of[p]].len++;
    for (size_t p = 0; p < n; p++) {
        int mode = parse_mode(&a->modes[p]);
        long long tid = (long long)a->treeids[p], nid = (long long)a->nodeids[p];
        if (mode < 0) {
            rc = ap__error_set(err, AP_EFORMAT, "%s: %s: tree %lld node %lld: unknown mode", name,
                              node->op_type, tid, nid);
            goto out;
        }
        tnode *nd = &t->nodes[t->tree_off[tree_of[p]] + local[p]];
        nd->mode = (uint8_t)mode;
        nd->tracks_true = a->ntracks ? a->tracks[p] != 0 : 0;
        if (mode == M_LEAF)
            continue;
        int32_t ti = find(e, n, a->treeids[p], a->truenodeids[p]);
        int32_t fi = find(e, n, a->treeids[p], a->falsenodeids[p]);
        if (ti < 0 || fi < 0) {
            rc = ap__error_set(err, AP_EFORMAT,
                              "%s: %s: tree %lld node %lld: child node %lld is not in the tree",
                              name, node->op_type, tid, nid,
                              (long long)(ti < 0 ? a->truenodeids[p] : a->falsenodeids[p]));
            goto out;
        }
        if (a->featureids[p] < 0 || a->featureids[p] >= nf) {
            rc = ap__error_set(err, AP_EFORMAT,
                              "%s: %s: tree %lld node %lld: feature %lld out of range (the "
                              "input has %d)",
                              name, node->op_type, tid, nid, (long long)a->featureids[p], nf);
            goto out;
        }
        double thr = t->f64 ? a->values[p] : ap__ir_round_f32(a->values[p]);
        if (isnan(thr)) {
            rc = ap__error_set(err, AP_EFORMAT, "%s: %s: tree %lld node %lld: NaN threshold",
                              name, node->op_type, tid, nid);
            goto out;
        }
        nd->feature = (int32_t)a->featureids[p];
        nd->thr = thr;
        nd->t = local[e[ti].pos];
        nd->f = local[e[fi].pos];
    }
    /* weights need the (tree, node) -> node index map: keep it in the attrs
       order, as a global index per listed position */
    for (size_t p = 0; p < n; p++)
        tree_of[p] = t->tree_off[tree_of[p]] + local[p];
    ix->pos_index = tree_of;
    tree_of = NULL;
    ix->sorted = e;
    e = NULL;
out:
    free(e);
    free(tree_of);
    free(local);
    free(g);
    return rc;
}

static int place_weights(ap_onnx_trees *t, const Onnx__NodeProto *node, const attrs *a,
                         const node_index *ix, const char *name, ap_error *err)
{
    size_t n = a->n, nw = a->nw;
    int32_t *at = malloc((nw ? nw : 1) * sizeof *at);
    t->w_target = malloc((nw ? nw : 1) * sizeof *t->w_target);
    t->w_value = malloc((nw ? nw : 1) * sizeof *t->w_value);
    if (!at || !t->w_target || !t->w_value) {
        free(at);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    }
    int used_class = -1, classes_used = 0;
    t->all_positive = 1;
    for (size_t i = 0; i < nw; i++) {
        int32_t s = find(ix->sorted, n, a->w_tree[i], a->w_node[i]);
        long long tid = (long long)a->w_tree[i], nid = (long long)a->w_node[i];
        if (s < 0) {
            free(at);
            return ap__error_set(err, AP_EFORMAT, "%s: %s: weight %zu names tree %lld node %lld, "
                                "which does not exist", name, node->op_type, i, tid, nid);
        }
        at[i] = ix->pos_index[ix->sorted[s].pos];
        if (t->nodes[at[i]].mode != M_LEAF) {
            free(at);
            return ap__error_set(err, AP_EFORMAT, "%s: %s: weight %zu on tree %lld node %lld, "
                                "which is not a leaf", name, node->op_type, i, tid, nid);
        }
        if (a->w_id[i] < 0 || a->w_id[i] >= t->G) {
            free(at);
            return ap__error_set(err, AP_EFORMAT, "%s: %s: weight %zu: %s id %lld out of range "
                                "(%d outputs)", name, node->op_type, i,
                                t->classifier ? "class" : "target", (long long)a->w_id[i], t->G);
        }
        if (!isfinite(a->w_val[i])) {
            free(at);
            return ap__error_set(err, AP_EFORMAT, "%s: %s: weight %zu is not finite", name,
                                node->op_type, i);
        }
        if (a->w_val[i] < 0)
            t->all_positive = 0;
        if (used_class < 0) {
            used_class = (int)a->w_id[i];
            classes_used = 1;
        } else if (a->w_id[i] != used_class) {
            classes_used = 2;
        }
        t->nodes[at[i]].w_len++;
    }
    uint32_t off = 0;
    for (size_t i = 0; i < n; i++) {
        t->nodes[i].w_off = off;
        off += t->nodes[i].w_len;
        t->nodes[i].w_len = 0;
    }
    for (size_t i = 0; i < nw; i++) {
        tnode *nd = &t->nodes[at[i]];
        uint32_t w = nd->w_off + nd->w_len++;
        t->w_target[w] = (int32_t)a->w_id[i];
        t->w_value[w] = t->f64 ? a->w_val[i] : ap__ir_round_f32(a->w_val[i]);
    }
    free(at);
    t->nout = t->G;
    /* ORT's binary case needs the weights on class 0 (checked against ORT:
       with class 1 only, class 0 simply scores 0 and the post transform
       runs on both) */
    if (t->classifier && t->G == 2 && classes_used == 1 && used_class == 0) {
        t->binary_single = 1;
        t->single_class = used_class;
        if (t->post == AP_POST_PROBIT)
            return fail(node, name, err, AP_EFORMAT,
                        "PROBIT on a binary classifier with weights for one class is not "
                        "supported natively");
    }
    return AP_OK;
}

/* Every tree: each node reached exactly once from its root. */
static int check_trees(ap_onnx_trees *t, const Onnx__NodeProto *node, const char *name,
                       ap_error *err)
{
    int32_t maxlen = 0;
    for (int k = 0; k < t->ntrees; k++)
        if (t->tree_len[k] > maxlen)
            maxlen = t->tree_len[k];
    int32_t *stack = malloc((size_t)maxlen * sizeof *stack);
    unsigned char *seen = malloc((size_t)maxlen);
    if (!stack || !seen) {
        free(stack);
        free(seen);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    }
    int rc = AP_OK;
    for (int k = 0; k < t->ntrees && rc == AP_OK; k++) {
        const tnode *nodes = t->nodes + t->tree_off[k];
        int32_t nn = t->tree_len[k], sp = 0, visited = 0;
        memset(seen, 0, (size_t)nn);
        stack[sp++] = 0;
        seen[0] = 1;
        while (sp > 0 && rc == AP_OK) {
            const tnode *nd = &nodes[stack[--sp]];
            visited++;
            if (nd->mode == M_LEAF)
                continue;
            int32_t ch[2] = {nd->t, nd->f};
            for (int c = 0; c < 2; c++) {
                if (seen[ch[c]]) {
                    rc = ap__error_set(err, AP_EFORMAT, "%s: %s: tree %d: node %d is reached "
                                      "twice (a cycle or a shared subtree)",
                                      name, node->op_type, k, ch[c]);
                    break;
                }
                seen[ch[c]] = 1;
                stack[sp++] = ch[c];
            }
        }
        if (rc == AP_OK && visited != nn)
            rc = ap__error_set(err, AP_EFORMAT,
                              "%s: %s: tree %d: %d of its %d nodes are not reachable from its "
                              "first node", name, node->op_type, k, nn - visited, nn);
    }
    free(stack);
    free(seen);
    return rc;
}

int ap__onnx_trees_build(const Onnx__NodeProto *node, int nf, int input_double, const char *name,
                        ap_onnx_trees **out, int *nout, ap_error *err)
{
    *out = NULL;
    int classifier = !strcmp(node->op_type, "TreeEnsembleClassifier");
    ap_onnx_trees *t = calloc(1, sizeof *t);
    if (!t)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    t->classifier = classifier;
    t->f64 = input_double;
    t->nf = nf;
    attrs a;
    memset(&a, 0, sizeof a);
    node_index ix = {NULL, NULL};
    int rc = read_attrs(node, classifier, &a, name, err);
    if (rc != AP_OK)
        goto done;

    /* outputs, post transform, aggregation, base values */
    char post[32] = "NONE", agg[32] = "SUM";
    int64_t n_targets = 1;
    size_t nlab_i = 0, nlab_s = 0;
    const int64_t *lab_i;
    const ProtobufCBinaryData *lab_s;
    /* each operator's own attributes only (op_attrs.c has refused
       any other): the classifier has no aggregate_function (ORT sums) */
    if ((rc = ap__onnx_attr_string(node, "post_transform", post, sizeof post, name, err)))
        goto done;
    if (!classifier &&
        ((rc = ap__onnx_attr_string(node, "aggregate_function", agg, sizeof agg, name, err)) ||
         (rc = ap__onnx_attr_int(node, "n_targets", &n_targets, name, err))))
        goto done;
    if (classifier &&
        ((rc = ap__onnx_attr_ints(node, "classlabels_int64s", &lab_i, &nlab_i, name, err)) ||
         (rc = ap__onnx_attr_strings(node, "classlabels_strings", &lab_s, &nlab_s, name, err))))
        goto done;
    if (ap__onnx_post_parse(post, &t->post)) {
        rc = fail(node, name, err, AP_EFORMAT, "unknown post_transform");
        goto done;
    }
    if (!strcmp(agg, "SUM"))
        t->agg = AGG_SUM;
    else if (!strcmp(agg, "AVERAGE"))
        t->agg = AGG_AVERAGE;
    else if (!strcmp(agg, "MIN"))
        t->agg = AGG_MIN;
    else if (!strcmp(agg, "MAX"))
        t->agg = AGG_MAX;
    else {
        rc = fail(node, name, err, AP_EFORMAT, "unknown aggregate_function");
        goto done;
    }
    int64_t G = classifier ? (int64_t)(nlab_i + nlab_s) : n_targets;
    if (G < 1 || G > MAX_OUTPUTS) {
        rc = fail(node, name, err, AP_EFORMAT,
                  classifier ? "needs 1..1024 class labels (classlabels_int64s or _strings)"
                             : "n_targets must be 1..1024");
        goto done;
    }
    if (classifier && G == 1) {
        rc = fail(node, name, err, AP_EFORMAT, "a classifier needs at least 2 class labels");
        goto done;
    }
    t->G = (int)G;
    size_t nbase;
    if ((rc = ap__onnx_attr_reals(node, "base_values", &t->base, &nbase, NULL, name, err)))
        goto done;
    t->nbase = (int)nbase;
    if (nbase != 0 && nbase != (size_t)G && !(classifier && G == 2 && nbase == 1)) {
        rc = fail(node, name, err, AP_EFORMAT,
                  "base_values must have one value per class/target");
        goto done;
    }
    for (size_t i = 0; i < nbase; i++)
        if (!isfinite(t->base[i])) {
            rc = fail(node, name, err, AP_EFORMAT, "base_values must be finite");
            goto done;
        }

    rc = place_nodes(t, node, &a, nf, &ix, name, err);
    if (rc == AP_OK)
        rc = place_weights(t, node, &a, &ix, name, err);
    if (rc == AP_OK)
        rc = check_trees(t, node, name, err);
    if (rc != AP_OK)
        goto done;
    int generic = t->agg == AGG_MIN || t->agg == AGG_MAX;
    for (size_t i = 0; i < a.n; i++)
        if (t->nodes[i].mode == M_EQ || t->nodes[i].mode == M_NEQ)
            generic = 1;
    for (size_t i = 0; i < a.n && !generic; i++)
        for (uint32_t w = t->nodes[i].w_off + 1; w < t->nodes[i].w_off + t->nodes[i].w_len; w++)
            for (uint32_t v = t->nodes[i].w_off; v < w; v++)
                if (t->w_target[v] == t->w_target[w])
                    generic = 1;  /* ORT adds them one by one: not one leaf value */
    free(ix.sorted);
    free(ix.pos_index);
    ix.sorted = NULL;
    ix.pos_index = NULL;
    if (!generic)
        rc = ap__onnx_trees_to_forest(t, name, err);
done:
    free(ix.sorted);
    free(ix.pos_index);
    free(a.values);
    free(a.w_val);
    if (rc != AP_OK) {
        ap__onnx_trees_free(t);
        return rc;
    }
    *out = t;
    *nout = t->nout;
    return AP_OK;
}
