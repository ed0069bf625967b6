/* Private: the ONNX importer's pieces (protobuf reading, tree ensembles, graph). */
#ifndef AP_ONNX_INTERNAL_H
#define AP_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "alphapulse/onnx.h"
#include "onnx.pb-c.h"   /* generated into build/gen by protoc-c (Makefile) */

/* ---- protobuf (pb.c) ---- */

/* Unpack a ModelProto with bounded nesting and bounded memory (protobuf-c
   itself recurses without limit and allocates what the counts say). */
int ap_onnx_pb_parse(const uint8_t *buf, size_t len, const char *name, Onnx__ModelProto **out,
                     ap_error *err);
void ap_onnx_pb_free(Onnx__ModelProto *m);

/* Attribute lookup: NULL when absent. */
const Onnx__AttributeProto *ap_onnx_attr(const Onnx__NodeProto *n, const char *name);
/* Typed getters: fill *v (or leave the default when absent); an attribute of
   the wrong type is an error naming node and attribute. */
int ap_onnx_attr_int(const Onnx__NodeProto *n, const char *attr, int64_t *v, const char *name,
                     ap_error *err);
int ap_onnx_attr_float(const Onnx__NodeProto *n, const char *attr, float *v, const char *name,
                       ap_error *err);
/* copied NUL-terminated into buf (shorter than size, else an error) */
int ap_onnx_attr_string(const Onnx__NodeProto *n, const char *attr, char *buf, size_t size,
                        const char *name, ap_error *err);
/* Float list: from `attr` (FLOATS) or `attr`_as_tensor (a float or double
   tensor), as doubles. *out is malloc'd (NULL and *n = 0 when absent). */
int ap_onnx_attr_reals(const Onnx__NodeProto *n, const char *attr, double **out, size_t *len,
                       int *is_double, const char *name, ap_error *err);
int ap_onnx_attr_ints(const Onnx__NodeProto *n, const char *attr, const int64_t **v, size_t *len,
                      const char *name, ap_error *err);
/* Strings of a STRINGS attribute: v[i] / vl[i] (not NUL-terminated). */
int ap_onnx_attr_strings(const Onnx__NodeProto *n, const char *attr, const ProtobufCBinaryData **v,
                         size_t *len, const char *name, ap_error *err);

/* A constant tensor (initializer) as doubles: *vals malloc'd, dims copied
   (at most 4). Only FLOAT, DOUBLE, INT64, INT32 element types. */
int ap_onnx_tensor_values(const Onnx__TensorProto *t, double **vals, size_t *count,
                          int64_t dims[4], int *ndims, const char *name, ap_error *err);

/* ---- post transforms as ONNX Runtime computes them (post.c) ---- */

enum { AP_POST_NONE = 0, AP_POST_LOGISTIC, AP_POST_SOFTMAX, AP_POST_SOFTMAX_ZERO, AP_POST_PROBIT };
int ap_onnx_post_parse(const char *s, int *post);
float ap_onnx_logistic(float x);
float ap_onnx_probit(float x);
void ap_onnx_softmax(float *v, int n);
void ap_onnx_softmax_zero(float *v, int n);
/* ONNX Softplus, log(1 + exp(x)), as ORT's kernel evaluates it */
float ap_onnx_softplus(float x);
/* double tensors: Sigmoid, Softplus, Softmax in double (ORT's double kernels) */
double ap_onnx_logistic_d(double x);
double ap_onnx_softplus_d(double x);
void ap_onnx_softmax_d(double *v, int n);

/* ---- tree ensembles (trees.c) ---- */

typedef struct ap_onnx_trees ap_onnx_trees;
/* Build from a TreeEnsembleClassifier/Regressor node reading nf features;
   *nout: the width of its score output. */
int ap_onnx_trees_build(const Onnx__NodeProto *node, int nf, int input_double, const char *name,
                        ap_onnx_trees **out, int *nout, ap_error *err);
/* X: n rows of nf doubles; out: n * nout scores (never fails). */
void ap_onnx_trees_run(const ap_onnx_trees *t, const double *X, size_t n, double *out);
void ap_onnx_trees_free(ap_onnx_trees *t);
int ap_onnx_trees_count(const ap_onnx_trees *t);
/* 1 if the compiled forest engine runs it (else the generic evaluator) */
int ap_onnx_trees_native(const ap_onnx_trees *t);

#endif
