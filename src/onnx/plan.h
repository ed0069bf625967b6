/*
 * Private: the native plan, the contract between compile.c (graph -> plan)
 * and run.c (plan on rows). api.c holds one per natively loaded model.
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
} ap_onnx_plan;

/* compile.c: fill p (zeroed by the caller) from the graph of mp, whose
   input and output r names; on error p may be partly built: free it. */
int ap_onnx_plan_compile(ap_onnx_plan *p, const Onnx__ModelProto *mp, const ap_onnx_io *r,
                         const char *name, ap_error *err);
/* compile.c: what compile allocated (p itself is not freed). */
void ap_onnx_plan_free(ap_onnx_plan *p);

/* run.c: X is nrows * p->nf doubles, out nrows * p->nout (never fails). */
void ap_onnx_plan_run(const ap_onnx_plan *p, const double *X, size_t nrows, double *out);

#endif
