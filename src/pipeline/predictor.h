/*
 * Predictors: the last stage of a pipeline, one entry per model format.
 *
 * The registry knows formats only through this table: adding a format (ONNX
 * next) is one more entry in predictor.c, nothing elsewhere. A loaded
 * predictor is immutable and safe to call from many threads at once.
 */
#ifndef AP_PIPELINE_PREDICTOR_H
#define AP_PIPELINE_PREDICTOR_H

#include <stddef.h>
#include "alphapulse/registry.h"

typedef struct ap_predictor_desc {
    int num_features;     /* row width predict reads */
    int num_outputs;      /* values predict writes per row */
    int num_trees;        /* 0 where the notion does not apply */
    const char *detail;   /* e.g. the objective, "binary:logistic" */
} ap_predictor_desc;

typedef struct ap_predictor_ops {
    const char *format;   /* the manifest's "format" value */
    /* opt: the registry's options (the ONNX backend, ...) */
    int (*load)(const char *path, const ap_registry_options *opt, void **out, ap_error *err);
    /* X: nrows * num_features; out: nrows * num_outputs. Returns AP_OK, or
       an error with err filled (ONNX Runtime failing at run time; forests
       cannot fail); out then holds no prediction. */
    int (*predict)(const void *impl, const double *X, size_t nrows, double *out, ap_error *err);
    void (*free)(void *impl);
    void (*describe)(const void *impl, ap_predictor_desc *d);
    /* Input column i's name as stored in the model file, or NULL. */
    const char *(*feature_name)(const void *impl, int i);
} ap_predictor_ops;

/* The entry for a format name, or NULL. */
const ap_predictor_ops *ap_predictor_find(const char *format);
/* Comma-separated list of the known formats, for messages. */
const char *ap_predictor_formats(void);

#endif
