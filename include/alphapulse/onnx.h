/*
 * alphapulse: ONNX models — tabular ONNX-ML graphs (tree ensembles, linear
 * models, scalers, small MLPs) imported natively into the forest engine and
 * the dense kernel, with an optional ONNX Runtime backend for the rest.
 *
 *   ap_onnx *m;
 *   ap_onnx_options o;
 *   ap_onnx_options_default(&o);           // backend from nothing: AUTO
 *   if (ap_onnx_load("model.onnx", &o, &m, &err) != AP_OK) ...
 *   ap_onnx_predict(m, X, nrows, out, &err);   // out: nrows * ap_onnx_num_outputs(m)
 *   ap_onnx_free(m);
 *
 * The graph must take one tensor input [N, F] (float or double) and the
 * prediction is its first float/double tensor output (or the ZipMap output,
 * unwrapped: classifiers give one probability per class, in class order).
 * A loaded model is immutable and may be shared by threads. See docs/ONNX.md.
 */
#ifndef ALPHAPULSE_ONNX_H
#define ALPHAPULSE_ONNX_H

#include <stddef.h>
#include "alphapulse/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_onnx ap_onnx;

typedef enum ap_onnx_backend {
    AP_ONNX_NATIVE = 0,  /* native import only; an unsupported operator is an error */
    AP_ONNX_AUTO,        /* native when every operator is supported, else ONNX Runtime */
    AP_ONNX_ORT          /* always ONNX Runtime */
} ap_onnx_backend;

typedef struct ap_onnx_options {
    ap_onnx_backend backend;
    const char *ort_library;  /* libonnxruntime path; NULL: "libonnxruntime.so.1" */
    int ort_threads;          /* ONNX Runtime intra-op threads (default 1) */
} ap_onnx_options;

/* Largest .onnx file we accept (bounds memory on hostile input). */
#define AP_ONNX_MAX_FILE ((size_t)1 << 29)

/* backend AUTO, library NULL, 1 thread */
AP_API void ap_onnx_options_default(ap_onnx_options *o);
/* Options from text, as the ONNX_ENABLED setting spells them: backend
   "0"/"off"/"false"/"native", "1"/"on"/"true"/"auto" (also NULL or ""), or
   "ort"; ort_library NULL or "" for the default. Any other backend value is
   an error naming it. The library never reads the environment: a program
   passes what it read (the CLI: ONNX_ENABLED, ONNXRUNTIME_LIB). o keeps
   the ort_library pointer. */
AP_API int ap_onnx_options_parse(ap_onnx_options *o, const char *backend, const char *ort_library,
                                 ap_error *err);

AP_API int ap_onnx_load(const char *path, const ap_onnx_options *opt, ap_onnx **out, ap_error *err);
/* `name` is used in error messages; the buffer is not kept. */
AP_API int ap_onnx_load_mem(const void *buf, size_t len, const char *name, const ap_onnx_options *opt,
                     ap_onnx **out, ap_error *err);
AP_API void ap_onnx_free(ap_onnx *m);

AP_API int ap_onnx_num_features(const ap_onnx *m);
AP_API int ap_onnx_num_outputs(const ap_onnx *m);
/* 1 if the graph computes in float32 (print with %.9g) */
AP_API int ap_onnx_is_float32(const ap_onnx *m);
/* "native" or "onnxruntime <version>" */
AP_API const char *ap_onnx_backend_name(const ap_onnx *m);
/* The operators of the computed path, e.g. "Scaler+TreeEnsembleClassifier". */
AP_API const char *ap_onnx_summary(const ap_onnx *m);
/* Number of trees, 0 if the graph has none. */
AP_API int ap_onnx_num_trees(const ap_onnx *m);

/*
 * Predict nrows rows: X is row-major nrows * num_features doubles (NaN is a
 * missing value; a float graph sees them rounded to float, as a float tensor
 * would hold them). out receives nrows * num_outputs doubles. The native
 * backend never fails; ONNX Runtime may: then out is all NaN and err says why.
 */
AP_API int ap_onnx_predict(const ap_onnx *m, const double *X, size_t nrows, double *out, ap_error *err);

/*
 * Precision (common.h) of a natively imported graph. REDUCED stores its
 * dense layers' weights (Gemm, MatMul, Linear*) in IEEE half (round to
 * nearest even; biases stay float; sums in float) and quantizes its tree
 * ensembles (exact: ap_forest_set_precision), then runs the graph on rows
 * X (nrows raw input rows of num_features doubles, as for predict;
 * NULL/0: one zero row) in both precisions. When the largest absolute
 * output difference exceeds tolerance (<= 0 or NaN: the default 1e-3) the
 * graph stays FULL (its FP32 weights, outputs bit for bit as before) and
 * the call returns AP_ERANGE giving the deviation and the tolerance.
 * *max_dev (may be NULL) receives that difference (0 when nothing ran).
 * The check covers those rows only: pass representative ones.
 *
 * Refused, the graph staying FULL: the ONNX Runtime backend, a tree
 * ensemble on the generic evaluator, a graph with no dense layer and no
 * tree ensemble ("nothing to reduce"): AP_EUNSUPPORTED; a weight beyond
 * the half range (|w| >= 65520 would become inf), naming node and weight:
 * AP_ERANGE; a forest that cannot be quantized: the forest's status and
 * message, prefixed by the node.
 *
 * On success the FP32 weights are freed (that is the memory saving), so:
 * REDUCED again is a no-op (*max_dev: the deviation measured then); FULL
 * (and AUTO, which is FULL here) after REDUCED is refused with
 * AP_ECONFLICT when the graph has dense layers (load the model again); a
 * graph of tree ensembles only goes back to FULL. FULL on a FULL graph is
 * a no-op. Not thread-safe: call before the model is shared.
 */
AP_API int ap_onnx_set_precision(ap_onnx *m, ap_precision p, double tolerance, const double *X,
                                 size_t nrows, double *max_dev, ap_error *err);
/* What predict uses: AP_PRECISION_FULL or AP_PRECISION_REDUCED. */
AP_API ap_precision ap_onnx_precision(const ap_onnx *m);
/* Bytes of the graph's weights in that precision: dense layers' weights
   (float 4 bytes, half 2) and biases (4), plus ap_forest_model_bytes of
   each forest. 0 when that precision is not built (REDUCED before a
   successful reduce, FULL after one on a graph with dense layers) and for
   ONNX Runtime. AUTO: the precision predict uses. */
AP_API size_t ap_onnx_model_bytes(const ap_onnx *m, ap_precision p);

/*
 * Export a loaded XGBoost / LightGBM forest (ap_forest_load) as an ONNX-ML
 * graph: input `input` [N, F] (float for XGBoost, double for LightGBM),
 * TreeEnsembleRegressor, the objective's transform as standard operators,
 * output `output` [N, outputs] = what ap_forest_predict returns (transformed).
 * Categorical splits, linear leaves and argmax objectives are refused
 * (AP_EUNSUPPORTED, naming tree and node). See docs/ONNX.md, "Export".
 * _mem: *buf is malloc'd (the caller frees it).
 */
struct ap_forest;
AP_API int ap_onnx_export_forest(const struct ap_forest *f, const char *path, ap_error *err);
AP_API int ap_onnx_export_forest_mem(const struct ap_forest *f, unsigned char **buf, size_t *len,
                              ap_error *err);

/* 1 if the file starts like a serialized ONNX ModelProto (for format sniffing
   by callers that also take other model files). */
AP_API int ap_onnx_sniff(const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
