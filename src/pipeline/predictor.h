/*
 * Predictors: the last stage of a pipeline, one entry per model format.
 *
 * The registry and the CLI know formats only through this table: adding a
 * format is one more entry in predictor.c, nothing elsewhere. A loaded
 * predictor is immutable and safe to call from many threads at once.
 *
 * Errors: the hooks that can fail (load, predict, predict_raw) return AP_OK
 * or a negative ap_status with err filled. free, describe and feature_name
 * cannot fail: they only read or release what load built.
 */
#ifndef AP_PIPELINE_PREDICTOR_H
#define AP_PIPELINE_PREDICTOR_H

#include <stddef.h>
#include "alphapulse/registry.h"

typedef struct ap_predictor_desc {
    int num_features;     /* row width predict reads */
    int num_outputs;      /* values predict writes per row */
    int num_raw_outputs;  /* values predict_raw writes per row; 0 without predict_raw */
    int num_trees;        /* 0 where the notion does not apply */
    int float32;          /* 1: computed in float32, 9 significant digits say it all */
    const char *detail;   /* e.g. the objective, "binary:logistic" */
} ap_predictor_desc;

typedef struct ap_predictor_ops {
    const char *format;   /* the manifest's "format" value ("tree" for a file
                             ap__predictor_for_file reads as a tree file) */
    const char *title;    /* for messages: "XGBoost", "ONNX", ... */
    int uses_onnx_options; /* 1: load reads opt->onnx (the CLI parses ONNX_ENABLED then) */
    /* opt: the registry's options (the ONNX backend, ...) */
    int (*load)(const char *path, const ap_registry_options *opt, void **out, ap_error *err);
    /* X: nrows * num_features; out: nrows * num_outputs. Returns AP_OK, or
       an error with err filled (ONNX Runtime failing at run time; forests
       cannot fail); out then holds no prediction. */
    int (*predict)(const void *impl, const double *X, size_t nrows, double *out, ap_error *err);
    /* Margins before the objective's transform, nrows * num_raw_outputs;
       NULL where the format has none (ONNX). Errors as predict. */
    int (*predict_raw)(const void *impl, const double *X, size_t nrows, double *out,
                       ap_error *err);
    void (*free)(void *impl);
    /* Cannot fail: copies what load computed. */
    void (*describe)(const void *impl, ap_predictor_desc *d);
    /* Input column i's name as stored in the model file, or NULL (no names:
       not an error). Cannot fail. */
    const char *(*feature_name)(const void *impl, int i);
    /* Precision (common.h), before the predictor is shared (not
       thread-safe). REDUCED builds the reduced engine and makes predict use
       it; X (nrows rows of num_features, what predict will be given) is
       where an approximate engine (FP16 dense layers) measures its largest
       absolute output difference, *max_dev, against tolerance. On refusal
       the predictor stays FULL and err says why. NULL where the format has
       no reduced engine. */
    int (*set_precision)(void *impl, ap_precision p, double tolerance, const double *X,
                         size_t nrows, double *max_dev, ap_error *err);
    /* What predict uses (FULL where set_precision is NULL). Cannot fail. */
    ap_precision (*precision)(const void *impl);
    /* Bytes of the compiled model in precision p (0: not built), and of one
       tree node in it (0: not a tree model). Cannot fail. */
    size_t (*model_bytes)(const void *impl, ap_precision p);
    int (*node_bytes)(const void *impl, ap_precision p);
    /* Device (common.h, docs/GPU.md), before the predictor is shared:
       ap_forest_set_device. AUTO never fails for want of a device; GPU
       does, err saying why. NULL where the format has no GPU path. */
    int (*set_device)(void *impl, ap_device d, size_t min_rows, ap_error *err);
    /* Where large batches run (CPU, GPU), from how many rows, and why. */
    ap_device (*device)(const void *impl, size_t *min_rows, const char **note);
} ap_predictor_ops;

/* The entry for a format name, or NULL. */
const ap_predictor_ops *ap__predictor_find(const char *format);
/* The entry for a model file given without a manifest (the CLI), by its
   name and first bytes: ".onnx" or an ONNX header is "onnx"; anything else
   is a tree file whose load tells XGBoost JSON/UBJSON from LightGBM text by
   content. Never NULL: a file that is neither fails in load, saying why. */
const ap_predictor_ops *ap__predictor_for_file(const char *path);
/* Comma-separated list of the known formats, for messages. */
const char *ap__predictor_formats(void);

#endif
