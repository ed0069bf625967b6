/*
 * Private: the native plan, the contract between compile.c (graph -> plan)
 * and run.c (plan on rows), and the building blocks compile.c builds it
 * with (compile_util.c). api.c holds one per natively loaded model.
 *
 * Tabular ONNX graphs are short chains over [N, W] tensors. The part of the
 * graph the chosen output depends on becomes a list of stages over "slots":
 * each slot is a [rows, width] block of doubles, all slots of a block of
 * rows in one stack scratch, typed as its ONNX tensor: a float slot holds
 * float values (operators compute in float, as ORT), a double slot full
 * doubles (operators compute in double).
 */
#ifndef AP_ONNX_PLAN_H
#define AP_ONNX_PLAN_H

#include "onnx/onnx_internal.h"
#include "dense/dense.h"

#define AP_PLAN_MAX_WIDTH 16384  /* doubles of all slots of one row */
#define AP_PLAN_SCRATCH 32768    /* doubles of stack scratch per block */

enum { ST_TREES, ST_DENSE, ST_LINCLS, ST_SCALER, ST_NORM, ST_ACT, ST_CAST, ST_CONCAT, ST_BINC,
       ST_BIN2 };
enum { ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX, ACT_EXP, ACT_SOFTPLUS, ACT_ABS, ACT_NEG };
enum { NORM_MAX, NORM_L1, NORM_L2 };
enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

typedef struct stage {
    int kind;
    int in, in2, out;      /* slots (in2: second operand of ST_BIN2) */
    int *ins, nins;        /* ST_CONCAT */
    ap_onnx_trees *trees;
    ap_dense dense;
    int post, binary;      /* ST_LINCLS */
    int sub;               /* ACT_*, NORM_*, OP_* */
    int const_left;        /* ST_BINC: c OP x */
    float *c, *c2;         /* ST_SCALER constants (broadcast when nc == 1) */
    double *cd;            /* ST_BINC constant, in the operand's type (nc values) */
    int nc, nc2;
    char label[80];        /* "node 'name' (Op)", for errors after compile */
} stage;

typedef struct ap_onnx_plan {
    int nf, nout, f64;
    int nslots;
    int *width, *off;      /* per slot: width, column offset in a row of slots */
    unsigned char *dbl;    /* per slot: 1 = a double tensor, 0 = float values */
    int row_width;         /* sum of widths */
    int in_slot, out_slot;
    stage *st;
    int nst;
    int direct_trees;      /* plan is one tree stage on the input */
    int ntrees;
    char summary[256];     /* the compiled operators, "A+B+..." */
    ap_precision prec;     /* what run uses (precision.c): FULL or REDUCED */
    double reduced_dev;    /* the deviation measured when it was reduced */
} ap_onnx_plan;

/* compile.c: fill p (zeroed by the caller) from the graph of mp, whose
   input and output r names; on error p may be partly built: free it. */
int ap__onnx_plan_compile(ap_onnx_plan *p, const Onnx__ModelProto *mp, const ap_onnx_io *r,
                         const char *name, ap_error *err);
/* compile.c: what compile allocated (p itself is not freed). */
void ap__onnx_plan_free(ap_onnx_plan *p);

/* ---- building a plan (compile_util.c, for compile.c) ---- */

/* A graph value bound to a slot (later bindings of a name win). */
typedef struct ap_onnx_value {
    const char *name;
    int slot;
} ap_onnx_value;

/* The compile of one graph into p: model name for errors, values so far. */
typedef struct ap_onnx_ctx {
    const Onnx__GraphProto *g;
    const char *name;
    ap_onnx_plan *p;
    ap_onnx_value *vals;   /* malloc'd; the context's owner frees it */
    int nvals, capvals;
    int cap_st, cap_slots;
} ap_onnx_ctx;

/* A new slot of width values (dbl: a double tensor): its index, or the
   (negative) error code. */
int ap__onnx_add_slot(ap_onnx_ctx *c, int width, int dbl, ap_error *err);
/* name now reads slot (name is not copied: it is the graph's). */
int ap__onnx_bind_value(ap_onnx_ctx *c, const char *name, int slot, ap_error *err);
/* the slot name is bound to, -1 if none */
int ap__onnx_lookup_value(const ap_onnx_ctx *c, const char *name);
/* a zeroed stage of kind appended to the plan (slots -1), NULL when out of
   memory (err set) */
stage *ap__onnx_new_stage(ap_onnx_ctx *c, int kind, ap_error *err);
/* an initializer or a Constant node's tensor of that name, NULL if none */
const Onnx__TensorProto *ap__onnx_find_const(const ap_onnx_ctx *c, const char *name);
/* a node as errors name it: its name, else its first output */
const char *ap__onnx_node_label(const Onnx__NodeProto *n);
/* "<model>: node '<label>' (<op>): <what>" with code */
int ap__onnx_node_err(const ap_onnx_ctx *c, const Onnx__NodeProto *n, int code, const char *what,
                     ap_error *err);
/* input i of n as a slot, or an error if it is not a computed value */
int ap__onnx_input_slot(const ap_onnx_ctx *c, const Onnx__NodeProto *n, size_t i, ap_error *err);
/* a new slot bound to output i of n: its index or the error code */
int ap__onnx_output_slot(ap_onnx_ctx *c, const Onnx__NodeProto *n, size_t i, int width, int dbl,
                        ap_error *err);
/* constant operand name of n as floats (*v malloc'd, dims copied, at most 4) */
int ap__onnx_const_floats(const ap_onnx_ctx *c, const Onnx__NodeProto *n, const char *name,
                         float **v, int *nv, int64_t dims[4], int *nd, ap_error *err);
/* constant operand name of n as doubles, rounded to float unless dbl (*v
   malloc'd) */
int ap__onnx_const_reals(const ap_onnx_ctx *c, const Onnx__NodeProto *n, const char *name, int dbl,
                        double **v, int *nv, ap_error *err);
/* float-list attribute attr of n as floats (*v malloc'd) */
int ap__onnx_reals_as_floats(const ap_onnx_ctx *c, const Onnx__NodeProto *n, const char *attr,
                            float **v, int *nv, ap_error *err);
/* AP_EUNSUPPORTED if slot x is a double tensor (n's kernel is float-only) */
int ap__onnx_float_only(const ap_onnx_ctx *c, const Onnx__NodeProto *n, int x, ap_error *err);
/* n's attributes against its operator's list (op_attrs.c), as a node error */
int ap__onnx_node_check_attrs(const ap_onnx_ctx *c, const Onnx__NodeProto *n, int ml,
                             ap_error *err);

/* run.c: X is nrows * p->nf doubles, out nrows * p->nout (never fails). */
void ap__onnx_plan_run(const ap_onnx_plan *p, const double *X, size_t nrows, double *out);

/* ---- precision (precision.c; semantics in onnx.h, ap_onnx_set_precision) ---- */

/* REDUCED: dense weights to half, forests quantized, checked on rows X (NULL
   or 0 rows: one zero row) against FULL; AP_ERANGE (and FULL again) when the
   largest output difference exceeds tol (<= 0: AP_PRECISION_DEFAULT_TOL). */
int ap__onnx_plan_reduce(ap_onnx_plan *p, double tol, const double *X, size_t nrows,
                        double *max_dev, ap_error *err);
/* FULL again: AP_ECONFLICT when dense layers kept only their half weights. */
int ap__onnx_plan_full(ap_onnx_plan *p, ap_error *err);
/* bytes of dense weights and forests in precision q (0: not built) */
size_t ap__onnx_plan_bytes(const ap_onnx_plan *p, ap_precision q);

#define AP_PRECISION_DEFAULT_TOL 1e-3

#endif
