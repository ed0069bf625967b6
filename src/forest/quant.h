/* Private: the reduced-precision (quantized) tree engine, quant.c. */
#ifndef AP_FOREST_QUANT_H
#define AP_FOREST_QUANT_H

#include "forest/ir.h"

typedef struct ap_qengine ap_qengine;

/* Compile a validated IR (it must outlive the engine). AP_EUNSUPPORTED /
   AP_ERANGE with the reason when it cannot be quantized exactly. */
int ap__qengine_compile(const ap_forest_ir *ir, ap_qengine **out, ap_error *err);
void ap__qengine_free(ap_qengine *q);
/* Exactly ap__engine_predict's outputs (flags: AP_PREDICT_RAW). */
void ap__qengine_predict(const ap_qengine *q, const double *X, size_t nrows, double *out,
                         unsigned flags);
size_t ap__qengine_bytes(const ap_qengine *q);
int ap__qengine_node_bytes(const ap_qengine *q);
/* 1: code width 16 bits (else 8). */
int ap__qengine_wide(const ap_qengine *q);
/* Tests: 1 forces the scalar binning even where AVX2 is there; returns the
   previous setting. Call before the engine is shared. */
int ap__qengine_force_scalar(ap_qengine *q, int on);
/* 1 if this engine bins with AVX2. */
int ap__qengine_uses_avx2(const ap_qengine *q);

/* The full engine's bound of a numeric split (engine.c): go left iff
   x < bound for non-NaN x. *all = 1 when every value goes left (a LightGBM
   +inf threshold): no bound then. */
double ap__engine_split_bound(int prec, double threshold, int *all);

#endif
