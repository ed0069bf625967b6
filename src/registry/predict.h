/*
 * Private: the predict path of predict.c for the registry's own callers
 * (the warm-up of a version being built).
 */
#ifndef AP_REGISTRY_PREDICT_H
#define AP_REGISTRY_PREDICT_H

#include "registry/model.h"

/* Predict without recording statistics (warm-up, ensemble members).
   full: X holds alphapulse-v1 rows; else the model's own inputs. */
int ap__model_predict_impl(const ap_model *m, const double *X, size_t nrows, int full,
                          double *pred, double *conf, double *outputs, ap_error *err);

#endif
