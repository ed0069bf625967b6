/*
 * Dense kernel: y = x W^T + b in float, for linear models and MLP layers
 * imported from ONNX (Gemm, MatMul, LinearClassifier/Regressor).
 *
 * W is stored output-major (row o holds the weights of output o), so each
 * output is one dot product over a contiguous row, accumulated in 8
 * independent float lanes that the compiler turns into SIMD without
 * -ffast-math. ONNX Runtime's MLAS sums in another order: results agree to
 * float rounding (a few ulp), not bit for bit.
 */
#ifndef AP_DENSE_DENSE_H
#define AP_DENSE_DENSE_H

#include <stddef.h>
#include "alphapulse/common.h"

typedef struct ap_dense {
    int in, out;
    float *w;     /* out * in */
    float *b;     /* out (zeros when the layer has no bias) */
} ap_dense;

/* Allocate a zeroed layer. */
int ap__dense_init(ap_dense *d, int in, int out, ap_error *err);
void ap__dense_free(ap_dense *d);

/* n rows: x is n * in doubles holding float values, y n * out (float values
   widened). xf: scratch of `in` floats. */
void ap__dense_forward(const ap_dense *d, const double *x, size_t n, double *y, float *xf);

#endif
