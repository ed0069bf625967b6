/*
 * Dense kernel: y = x W^T + b in float, for linear models and MLP layers
 * imported from ONNX (Gemm, MatMul, LinearClassifier/Regressor).
 *
 * W is stored output-major (row o holds the weights of output o), so each
 * output is one dot product over a contiguous row. The order of the sum is
 * fixed, whatever the kernel: 8 lanes (lane l sums the products of inputs
 * i = l mod 8 of the first in - in % 8), folded as
 * ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)), then the remaining
 * inputs one by one, then the bias; every product and sum rounded to float
 * (no FMA). The AVX kernel (runtime dispatch: the CPU must have AVX and
 * F16C; compiled with a target attribute, not global -m flags) and the
 * portable C one therefore give the same bits. ONNX Runtime's MLAS sums in
 * another order: results agree to float rounding (a few ulp), not bit for
 * bit.
 *
 * Half weights (issue 12, mixed precision): ap__dense_to_half adds an IEEE
 * half copy of W (round to nearest even; a weight beyond the half range is
 * refused, never made inf); forward then reads it, widening each weight
 * exactly to float (F16C's VCVTPH2PS, or the exact C conversion of half.h)
 * and summing in float in the order above. Biases stay float. The caller
 * then drops one copy: ap__dense_drop_full (keep only the halves) or
 * ap__dense_drop_half (back to float).
 */
#ifndef AP_DENSE_DENSE_H
#define AP_DENSE_DENSE_H

#include <stddef.h>
#include <stdint.h>
#include "alphapulse/common.h"

typedef struct ap_dense {
    int in, out;
    float *w;       /* out * in, or NULL once only the half copy is kept */
    uint16_t *w16;  /* out * in IEEE halves (forward reads them when set), or NULL */
    float *b;       /* out (zeros when the layer has no bias) */
    int simd;       /* 1: the AVX/F16C kernel, 0: portable C (chosen at init) */
} ap_dense;

/* Allocate a zeroed layer; the kernel is chosen from the CPU. */
int ap__dense_init(ap_dense *d, int in, int out, ap_error *err);
void ap__dense_free(ap_dense *d);

/* n rows: x is n * in doubles holding float values, y n * out (float values
   widened). xf: scratch of `in` floats. */
void ap__dense_forward(const ap_dense *d, const double *x, size_t n, double *y, float *xf);

/* Add the half copy of w (w stays). AP_ERANGE naming the weight when a
   finite weight rounds beyond the half range (|w| >= 65520). No-op when
   the copy exists. */
int ap__dense_to_half(ap_dense *d, ap_error *err);
/* Keep one copy: free w (needs w16), or free w16 (needs w). */
void ap__dense_drop_full(ap_dense *d);
void ap__dense_drop_half(ap_dense *d);
/* Bytes of the weights and biases held in that form (half: 1, float: 0);
   0 when that copy is not there. */
size_t ap__dense_bytes(const ap_dense *d, int half);

/* 1 if this CPU runs the AVX/F16C kernel. */
int ap__dense_cpu_simd(void);
/* Tests: choose the kernel (on = 0 forces the portable one; on = 1 asks for
   the SIMD one, granted only when the CPU has it). Returns d->simd. */
int ap__dense_set_simd(ap_dense *d, int on);

#endif
