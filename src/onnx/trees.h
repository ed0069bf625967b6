/*
 * Private to the tree-ensemble files: the layout of ap_onnx_trees, shared by
 * trees_import.c (reads and checks the ONNX attributes, fills it),
 * trees_forest.c (the fast path: the same trees as a compiled forest) and
 * trees.c (runs it, frees it). Semantics are in trees.c's header.
 */
#ifndef AP_ONNX_TREES_H
#define AP_ONNX_TREES_H

#include "onnx/onnx_internal.h"
#include "forest/forest_internal.h"

enum { M_LEAF, M_LEQ, M_LT, M_GTE, M_GT, M_EQ, M_NEQ };
enum { AGG_SUM, AGG_AVERAGE, AGG_MIN, AGG_MAX };

#define MAX_TREE_NODES (1 << 26)   /* all trees together */
#define MAX_OUTPUTS 1024           /* classes or targets (the engine's bound) */

typedef struct tnode {
    int32_t feature;
    uint8_t mode, tracks_true;
    int32_t t, f;         /* true / false child, index within the tree */
    double thr;           /* rounded to float for float graphs */
    uint32_t w_off, w_len;
} tnode;

struct ap_onnx_trees {
    int classifier, f64, nf, G, nout;
    int binary_single;    /* 2 classes, weights for one class only */
    int single_class;     /* that class */
    int all_positive;     /* every class weight >= 0 */
    int post, agg;
    double *base;         /* nbase values */
    int nbase;
    int ntrees;
    ap_forest *forest;    /* fast path, or NULL: generic evaluator */
    tnode *nodes;         /* all trees' nodes; tree i at tree_off[i] */
    int32_t *tree_off, *tree_len;
    int32_t *w_target;
    double *w_value;
};

/* trees_forest.c: t's trees as t->forest (called when every branch is
   LEQ/LT/GTE/GT, aggregation SUM or AVERAGE, one weight per output per leaf). */
int ap__onnx_trees_to_forest(ap_onnx_trees *t, const char *name, ap_error *err);

#endif
