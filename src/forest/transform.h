/*
 * Objective transforms: margins -> outputs, exactly as each library computes
 * them (transform.c). Called by the engine and by the IR's reference
 * predictor; the loaders only pick ir->transform and ir->sigmoid_scale.
 */
#ifndef AP_FOREST_TRANSFORM_H
#define AP_FOREST_TRANSFORM_H

#include "forest/ir.h"

/* m holds the ir->num_groups margins of one row (for XGBoost, float values
   widened to double; base score and averaging already applied); out
   receives ap__forest_ir_num_outputs(ir) values. out may alias m. */
void ap__transform_xgboost(const ap_forest_ir *ir, const double *m, double *out);
void ap__transform_lightgbm(const ap_forest_ir *ir, const double *m, double *out);

/* Outputs of nb rows from the engines' accumulators (both engines sum the
   same way): acc holds nb * num_groups tree sums, float for AP_PREC_F32
   (base score included), double for AP_PREC_F64 (LightGBM: averaged by
   count[g] trees for transformed output, then base score added). out:
   nb * nout values (raw: the margins). */
void ap__transform_rows(const ap_forest_ir *ir, const double *count, const void *acc, int nb,
                        int raw, double *out, int nout);

#endif
