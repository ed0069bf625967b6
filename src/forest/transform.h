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

#endif
