/*
 * Private to the exporter: the ONNX tree-ensemble node lists export_walk.c
 * fills from a forest's IR and export.c turns into protobuf attributes.
 */
#ifndef AP_ONNX_EXPORT_H
#define AP_ONNX_EXPORT_H

#include "onnx/onnx_internal.h"
#include "forest/forest_internal.h"

typedef struct pending {
    int32_t ir;       /* IR node to write */
    int64_t parent;   /* index of the ONNX node whose child it is (-1: root) */
    int side;         /* 1: the parent's true child, 0: false child */
} pending;

typedef struct exporter {
    const ap_forest_ir *ir;
    int f64;
    /* ONNX nodes, all trees, in order */
    int64_t *treeids, *nodeids, *featureids, *trueids, *falseids, *tracks;
    ProtobufCBinaryData *modes;
    double *values;
    size_t nn, cap;
    /* leaf weights */
    int64_t *w_tree, *w_node, *w_id;
    double *w_val;
    size_t nw, wcap;
    /* the tree being written */
    int64_t tree_id, next_id;
    pending *stack;
    size_t sp, stack_cap;
    double *leaf_mul;  /* per group: average_output and sigmoid scale folded in */
    ap_error *err;
} exporter;

/* export_walk.c: fill x's nodes and weights from x->ir (x zeroed but for
   ir, f64, err); errors name tree and node. */
int ap__onnx_export_walk(exporter *x);
/* export_walk.c: what the walk allocated */
void ap__onnx_exporter_free(exporter *x);

#endif
