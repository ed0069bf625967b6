/*
 * alphapulse: tree ensembles (XGBoost, LightGBM) — load once, predict fast.
 *
 *   ap_forest *f;
 *   ap_error err;
 *   if (ap_forest_load("model.json", AP_FORMAT_AUTO, &f, &err) != AP_OK) ...
 *   ap_forest_predict(f, X, nrows, out, 0);   // out: nrows * ap_forest_num_outputs(f, 0)
 *   ap_forest_free(f);
 *
 * A loaded forest is immutable: any number of threads may call
 * ap_forest_predict on it at once. The CPU predict path allocates nothing,
 * takes no lock and parses nothing; a forest placed on a GPU
 * (ap_forest_set_device) takes its device mutex for batches that go there.
 */
#ifndef ALPHAPULSE_FOREST_H
#define ALPHAPULSE_FOREST_H

#include "alphapulse/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_forest ap_forest;

typedef enum ap_forest_format {
    AP_FORMAT_AUTO = 0,       /* by content: '{' + JSON / UBJSON, else LightGBM text */
    AP_FORMAT_XGBOOST_JSON,
    AP_FORMAT_XGBOOST_UBJ,
    AP_FORMAT_LIGHTGBM
} ap_forest_format;

/* Predict flags */
#define AP_PREDICT_RAW 1u     /* margins (before the objective's transform) */
#define AP_PREDICT_FULL 2u    /* the full-precision engine even when reduced is built */
#define AP_PREDICT_CPU 4u     /* the CPU engine even when the forest is on a GPU */

/* Largest model file we accept (bounds memory on hostile input). */
#define AP_FOREST_MAX_FILE ((size_t)1 << 31)

AP_API int ap_forest_load(const char *path, ap_forest_format format, ap_forest **out, ap_error *err);
/* `name` is used in error messages. The buffer is not kept. */
AP_API int ap_forest_load_mem(const void *buf, size_t len, ap_forest_format format, const char *name,
                       ap_forest **out, ap_error *err);
AP_API void ap_forest_free(ap_forest *f);

AP_API int ap_forest_num_features(const ap_forest *f);
/* Columns per row that ap_forest_predict writes for these flags. */
AP_API int ap_forest_num_outputs(const ap_forest *f, unsigned flags);
AP_API int ap_forest_num_trees(const ap_forest *f);
/* Feature name i, or NULL if the model file carries no names. */
AP_API const char *ap_forest_feature_name(const ap_forest *f, int i);
/* 1 if the training library computes in float32 (XGBoost): print with %.9g. */
AP_API int ap_forest_is_float32(const ap_forest *f);
/* "xgboost" or "lightgbm" */
AP_API const char *ap_forest_source(const ap_forest *f);
/* The library's objective name, e.g. "binary:logistic" or "multiclass". */
AP_API const char *ap_forest_objective(const ap_forest *f);

/*
 * Precision (common.h). REDUCED compiles the quantized engine next to the
 * full one and makes predict use it: outputs are bitwise identical to FULL
 * for every input (it is exact by construction, or refused). Returns
 * AP_EUNSUPPORTED (or AP_ERANGE for bound tables past the engine's limits)
 * with the reason when the forest cannot be quantized exactly; the forest
 * then stays FULL, unchanged. FULL drops the quantized engine; AUTO is FULL.
 * Not thread-safe: call before the forest is shared.
 */
AP_API int ap_forest_set_precision(ap_forest *f, ap_precision p, ap_error *err);
/* What predict uses: AP_PRECISION_FULL or AP_PRECISION_REDUCED. */
AP_API ap_precision ap_forest_precision(const ap_forest *f);
/* Bytes of the compiled engine of that precision (0: not built), and the
   bytes one split node takes in it. */
AP_API size_t ap_forest_model_bytes(const ap_forest *f, ap_precision p);
AP_API int ap_forest_node_bytes(const ap_forest *f, ap_precision p);

/*
 * Device (common.h, docs/GPU.md). min_rows: the smallest batch the GPU takes
 * (0: for GPU 1 row, for AUTO measured now by a short calibration of both
 * paths, well under a second). The forest's tree layout is uploaded once here
 * and freed by ap_forest_free or the next call. GPU without a usable device,
 * or for a model the kernel does not take (linear leaves), returns
 * AP_EUNSUPPORTED with the reason and the forest stays on the CPU; AUTO then
 * returns AP_OK and ap_forest_device_note says why. Results are bitwise the
 * CPU engine's either way. Not thread-safe: call before the forest is shared.
 * A forest on a GPU serves one batch at a time there (one set of pinned
 * buffers, one mutex: concurrent large batches queue for it); batches below
 * the threshold run on the CPU and never wait for it.
 */
AP_API int ap_forest_set_device(ap_forest *f, ap_device d, size_t min_rows, ap_error *err);
/* Where batches of at least ap_forest_gpu_min_rows rows run: CPU or GPU. */
AP_API ap_device ap_forest_device(const ap_forest *f);
/* The GPU's threshold in rows (0 on the CPU). */
AP_API size_t ap_forest_gpu_min_rows(const ap_forest *f);
/* Why the forest is where it is, e.g. "no CUDA device", "calibrated: GPU
   faster from 4096 rows"; "" when nothing was asked. */
AP_API const char *ap_forest_device_note(const ap_forest *f);

/*
 * Predict nrows rows. X is row-major, nrows * ap_forest_num_features(f)
 * doubles; NaN is a missing value. out receives nrows * num_outputs doubles.
 * Values are exactly what the training library's own predict returns
 * (float32 results widened to double for XGBoost).
 */
AP_API void ap_forest_predict(const ap_forest *f, const double *X, size_t nrows, double *out,
                       unsigned flags);

#ifdef __cplusplus
}
#endif
#endif
