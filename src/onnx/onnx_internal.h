/*
 * Private: the ONNX importer's pieces, one section per file. Who calls whom
 * (no file calls back into one that calls it):
 *   api.c -> io.c, compile.c, run.c, precision.c, to_ort.c, pb.c
 *   precision.c -> run.c, trees.c (and dense/, forest/)
 *   compile.c -> compile_util.c, trees_import.c, trees.c, pb.c, post.c
 *   compile_util.c -> op_attrs.c, pb.c
 *   run.c -> trees.c, post.c          to_ort.c -> io.c, pb.c
 *   trees_import.c -> trees_forest.c, trees.c, pb.c, post.c
 *   trees.c -> post.c                 export.c -> export_walk.c
 * The plan (compile.c / run.c) is in plan.h, the tree ensemble's layout in
 * trees.h, the exporter's in export.h.
 */
#ifndef AP_ONNX_INTERNAL_H
#define AP_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "alphapulse/onnx.h"
#include "onnx.pb-c.h"   /* generated into build/gen by protoc-c (Makefile) */

/* ---- protobuf (pb.c) ---- */

/* Unpack a ModelProto with bounded nesting and bounded memory (protobuf-c
   itself recurses without limit and allocates what the counts say). */
int ap__onnx_pb_parse(const uint8_t *buf, size_t len, const char *name, Onnx__ModelProto **out,
                     ap_error *err);
void ap__onnx_pb_free(Onnx__ModelProto *m);

/* Attribute lookup: NULL when absent. */
const Onnx__AttributeProto *ap__onnx_attr(const Onnx__NodeProto *n, const char *name);
/* Typed getters: fill *v (or leave the default when absent); an attribute of
   the wrong type is an error naming node and attribute. */
int ap__onnx_attr_int(const Onnx__NodeProto *n, const char *attr, int64_t *v, const char *name,
                     ap_error *err);
int ap__onnx_attr_float(const Onnx__NodeProto *n, const char *attr, float *v, const char *name,
                       ap_error *err);
/* copied NUL-terminated into buf (shorter than size, else an error) */
int ap__onnx_attr_string(const Onnx__NodeProto *n, const char *attr, char *buf, size_t size,
                        const char *name, ap_error *err);
/* Float list: from `attr` (FLOATS) or `attr`_as_tensor (a float or double
   tensor), as doubles. *out is malloc'd (NULL and *n = 0 when absent). */
int ap__onnx_attr_reals(const Onnx__NodeProto *n, const char *attr, double **out, size_t *len,
                       int *is_double, const char *name, ap_error *err);
int ap__onnx_attr_ints(const Onnx__NodeProto *n, const char *attr, const int64_t **v, size_t *len,
                      const char *name, ap_error *err);
/* Strings of a STRINGS attribute: v[i] / vl[i] (not NUL-terminated). */
int ap__onnx_attr_strings(const Onnx__NodeProto *n, const char *attr, const ProtobufCBinaryData **v,
                         size_t *len, const char *name, ap_error *err);

/* A constant tensor (initializer) as doubles: *vals malloc'd, dims copied
   (at most 4). Only FLOAT, DOUBLE, INT64, INT32 element types. */
int ap__onnx_tensor_values(const Onnx__TensorProto *t, double **vals, size_t *count,
                          int64_t dims[4], int *ndims, const char *name, ap_error *err);

/* ---- post transforms as ONNX Runtime computes them (post.c) ---- */

enum { AP_POST_NONE = 0, AP_POST_LOGISTIC, AP_POST_SOFTMAX, AP_POST_SOFTMAX_ZERO, AP_POST_PROBIT };
int ap__onnx_post_parse(const char *s, int *post);
float ap__onnx_logistic(float x);
float ap__onnx_probit(float x);
void ap__onnx_softmax(float *v, int n);
void ap__onnx_softmax_zero(float *v, int n);
/* ONNX Softplus, log(1 + exp(x)), as ORT's kernel evaluates it */
float ap__onnx_softplus(float x);
/* double tensors: Sigmoid, Softplus, Softmax in double (ORT's double kernels) */
double ap__onnx_logistic_d(double x);
double ap__onnx_softplus_d(double x);
void ap__onnx_softmax_d(double *v, int n);

/* ---- the graph's input and chosen output (io.c) ---- */

typedef struct ap_onnx_io {
    const char *input, *output;     /* graph input and chosen output */
    int elem;                       /* input element type */
    int nf;
    const Onnx__NodeProto *zipmap;  /* ZipMap producing the output, if any */
} ap_onnx_io;
/* Check the graph's nodes are well formed, find its one [N, F] float or
   double input and the prediction output (the first float one). */
int ap__onnx_find_io(const Onnx__ModelProto *mp, const char *name, ap_onnx_io *r, ap_error *err);
/* element type of a tensor value, -1 if it is not a tensor */
int ap__onnx_tensor_elem(const Onnx__ValueInfoProto *v);

/* ---- the attributes each natively imported operator may carry (op_attrs.c) ---- */

/* AP_OK, or the error code with msg (size bytes) saying what is wrong with
   n's attributes; operators not in the table pass (they are refused later). */
int ap__onnx_check_attrs(const Onnx__NodeProto *n, int ml, char *msg, size_t size);

/* ---- a graph for ONNX Runtime (to_ort.c) ---- */

struct ap_ort;
/* Serialize mp without the output's ZipMap and open it in ONNX Runtime (mp
   is changed while it packs and put back). */
int ap__onnx_open_ort(Onnx__ModelProto *mp, const ap_onnx_io *r, const ap_onnx_options *o,
                     const char *name, struct ap_ort **out, ap_error *err);

/* ---- tree ensembles (trees_import.c builds, trees.c runs and frees) ---- */

typedef struct ap_onnx_trees ap_onnx_trees;
/* Build from a TreeEnsembleClassifier/Regressor node reading nf features;
   *nout: the width of its score output. */
int ap__onnx_trees_build(const Onnx__NodeProto *node, int nf, int input_double, const char *name,
                        ap_onnx_trees **out, int *nout, ap_error *err);
/* X: n rows of nf doubles; out: n * nout scores (never fails). */
void ap__onnx_trees_run(const ap_onnx_trees *t, const double *X, size_t n, double *out);
void ap__onnx_trees_free(ap_onnx_trees *t);
int ap__onnx_trees_count(const ap_onnx_trees *t);
/* 1 if the compiled forest engine runs it (else the generic evaluator) */
int ap__onnx_trees_native(const ap_onnx_trees *t);
/* the forest's precision (ap_forest_set_precision); REDUCED on the generic
   evaluator is AP_EUNSUPPORTED */
int ap__onnx_trees_set_precision(ap_onnx_trees *t, ap_precision p, ap_error *err);
/* ap_forest_model_bytes of its forest (0 for the generic evaluator) */
size_t ap__onnx_trees_bytes(const ap_onnx_trees *t, ap_precision p);

#endif
