/* Private: what a loaded ap_forest is made of, and the loader/engine seams. */
#ifndef AP_FOREST_INTERNAL_H
#define AP_FOREST_INTERNAL_H

#include "alphapulse/forest.h"
#include "forest/ir.h"

typedef struct ap_engine ap_engine;

struct ap_forest {
    ap_forest_ir ir;     /* kept for metadata, validation and the reference predictor */
    ap_engine *engine;   /* compiled, read-only predict layout */
    struct ap_qengine *quant; /* reduced precision (quant.c), or NULL: predict uses it when set */
    struct ap_gforest *gpu;   /* on a device (src/gpu, device.c), or NULL */
    size_t gpu_min_rows;      /* batches of at least this many rows go to gpu */
    char device_note[AP_ERROR_MSG_MAX];
};

/* The CPU engines (reduced when built, unless AP_PREDICT_FULL). */
void ap__forest_predict_cpu(const ap_forest *f, const double *X, size_t nrows, double *out,
                            unsigned flags);
/* ap_forest_set_device with a given device backend (tests: a fake one). */
struct ap_gpu_backend;
int ap__forest_set_device_with(ap_forest *f, ap_device d, size_t min_rows,
                               const struct ap_gpu_backend *be, ap_error *err);
void ap__forest_drop_device(ap_forest *f);

/* Loaders: fill ir from a buffer (NUL-terminated at buf[len] for text formats).
   `name` prefixes every error message. They validate what they read; the
   caller runs ap__forest_ir_validate afterwards as well. */
int ap__xgboost_load_json(const char *buf, size_t len, const char *name, ap_forest_ir *ir,
                         ap_error *err);
int ap__xgboost_load_ubj(const unsigned char *buf, size_t len, const char *name, ap_forest_ir *ir,
                        ap_error *err);
int ap__lightgbm_load(const char *buf, size_t len, const char *name, ap_forest_ir *ir,
                     ap_error *err);

/* Build a forest from an IR another importer filled (ONNX): takes ownership
   of ir's arrays (ir is left empty, also on error), validates, compiles. */
int ap__forest_from_ir(ap_forest_ir *ir, const char *name, ap_forest **out, ap_error *err);

/* Engine: compile a validated IR into the fast layout; predict from it. */
int ap__engine_compile(const ap_forest_ir *ir, ap_engine **out, ap_error *err);
void ap__engine_free(ap_engine *e);
/* Bytes the compiled layout takes (hot arrays and the rest), and per node. */
size_t ap__engine_bytes(const ap_engine *e);
int ap__engine_node_bytes(const ap_engine *e);
void ap__engine_predict(const ap_engine *e, const double *X, size_t nrows, double *out,
                       unsigned flags);

#endif
