/*
 * alphapulse: the model repository — pre-loaded models with their pipelines,
 * versions, statistics and hot reload. The layout and the manifest format are
 * in docs/MODEL_REPOSITORY.md:
 *
 *   <root>/<name>/manifest.json        what the model is: kind, target, version policy, batching
 *   <root>/<name>/<N>/version.json     one trained version: format, file, features, pipeline,
 *   <root>/<name>/<N>/<model file>     output, confidence (ensembles: members + combiner)
 *
 *   ap_registry *reg;
 *   ap_registry_open("examples/models", NULL, &reg, &err);  // NULL: default options
 *   ap_registry_load_all(reg, NULL, NULL);            // load + validate + warm up everything
 *   ap_model *m;
 *   if (ap_registry_acquire(reg, "reversal", &m, &err) == AP_OK) {
 *       ap_model_predict(m, features, 1, &p, &conf, NULL, &err);   // features: alphapulse-v1
 *       ap_model_release(m);
 *   }
 *   ap_registry_load(reg, "reversal", 0, &err);       // hot reload: new version swapped in
 *   ap_registry_free(reg);
 *
 * Threads: acquire / predict / release / stats may run on any number of
 * threads while one thread loads, reloads or unloads models (load, unload and
 * load_all are serialised among themselves). A loaded version (ap_model) is
 * immutable and refcounted: a reload swaps the pointer atomically and the old
 * version is freed when its last holder releases it. No lock is held while a
 * model is evaluated; acquire takes one short per-model mutex.
 */
#ifndef ALPHAPULSE_REGISTRY_H
#define ALPHAPULSE_REGISTRY_H

#include "alphapulse/common.h"
#include "alphapulse/onnx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_registry ap_registry;
typedef struct ap_model ap_model;   /* one loaded version of one model */

typedef enum ap_model_kind {
    AP_MODEL_PATTERN = 0,  /* reads named alphapulse-v1 features */
    AP_MODEL_REGIME,       /* reads named alphapulse-v1 features */
    AP_MODEL_ENSEMBLE,     /* combines the predictions of other models */
    AP_MODEL_RAW           /* takes a feature tensor of a fixed width directly */
} ap_model_kind;

/* Most models a registry holds (a name gets its entry at its first
   successful load, and keeps it; a failed load takes no room). */
#define AP_REGISTRY_MAX_MODELS 256


/* A snapshot of one model's counters (read from atomics, not a consistent
   cut: counters may be a few calls apart from each other). */
typedef struct ap_model_stats {
    uint32_t version;          /* version now served, 0 if none */
    uint64_t loads;            /* successful loads (first load and reloads) */
    uint64_t load_errors;      /* refused loads */
    uint64_t load_time_ns;     /* duration of the last successful load (read, validate, warm up) */
    uint64_t predictions;      /* rows predicted */
    uint64_t errors;           /* predict calls that failed */
    uint64_t latency_count;    /* predict calls timed (one per call, any number of rows) */
    uint64_t latency_sum_ns;
    uint64_t latency_min_ns;   /* 0 when latency_count is 0 */
    uint64_t latency_max_ns;
    uint64_t latency_buckets[AP_LATENCY_BUCKETS]; /* per bucket, not cumulative
                                                     (common.h's scheme) */
} ap_model_stats;

/* What a loaded version is. Strings belong to the version (valid while held).
   python/alphapulse/_lib.py mirrors this struct (ModelInfo): change both. */
typedef struct ap_model_info {
    const char *name;
    ap_model_kind kind;
    const char *kind_name;     /* "pattern", "regime", "ensemble", "raw" */
    const char *target;        /* e.g. "reversal", "bull" */
    const char *format;        /* "xgboost", "lightgbm"; "ensemble" for ensembles */
    const char *file;          /* model file inside the version folder ("" for ensembles) */
    uint32_t version;
    int num_inputs;            /* row width of ap_model_predict_raw: features, input width,
                                  or for ensembles the number of members */
    int num_outputs;           /* predictor outputs; for ensembles, one per member */
    int num_trees;             /* 0 for ensembles */
    int pipeline_steps;
    const char *pipeline;      /* e.g. "fillna(0) -> standard_scaler(12) -> pca(12->5)" */
    const char *confidence;    /* "max_probability", "margin" or "member_std" */
    int output_index;          /* which output is the prediction (-1 for ensembles) */
    int max_batch_size;        /* batching settings, for the batcher */
    uint32_t max_queue_delay_us;
    uint32_t min_bars;         /* manifest min_bars: fewer bars in a series, no prediction */
    /* Precision (docs/MODEL_REPOSITORY.md): what the manifest asked, what the
       predictor runs, and why it stayed full when reduced was asked. An
       ensemble's combiner is always full (its members carry their own). */
    const char *precision;           /* effective: "full" or "reduced" */
    const char *precision_requested; /* the manifest's: "auto", "full" or "reduced" */
    const char *precision_note;      /* why it stayed full though reduced was asked; "" */
    int node_bytes;                  /* bytes of one tree node in the engine in use
                                        (0: not a tree model, ensembles) */
    size_t model_bytes_full;         /* bytes of the compiled model at full precision */
    size_t model_bytes_reduced;      /* the same reduced (0: not built) */
    double precision_deviation;      /* largest |reduced - full| output measured at load
                                        (FP16 dense layers; 0 for exact engines) */
    const char *device;              /* where its large batches run and why, e.g.
                                        "cpu (no CUDA device)", "gpu (calibrated: GPU
                                        faster from 4096 rows)" (docs/GPU.md) */
    const char *device_requested;    /* the manifest's: "auto", "cpu" or "gpu" */
    size_t gpu_min_batch_rows;       /* batches of at least this many rows run on the
                                        GPU (0: on the CPU) */
} ap_model_info;

/* How a repository's models load. Everything a model load depends on is
   passed in here; the library reads no environment variable.
   python/alphapulse/_lib.py mirrors this struct (RegistryOptions): change both. */
typedef struct ap_registry_options {
    ap_onnx_options onnx; /* ONNX graphs: backend, ONNX Runtime library (copied at open) */
    int mixed_precision;  /* 1: a manifest's precision "auto" means reduced (the server's
                             mixed_precision_enabled); 0: auto means full */
    size_t gpu_min_batch_rows; /* a manifest's device "auto": batches of at least this many
                             rows go to the GPU (the server's gpu_min_batch_rows);
                             0: measured at load (docs/GPU.md) */
} ap_registry_options;

/* Defaults: ap_onnx_options_default, mixed_precision 0. */
AP_API void ap_registry_options_default(ap_registry_options *o);
/* Open a repository folder (opt NULL: defaults). Loads nothing yet. */
AP_API int ap_registry_open(const char *root, const ap_registry_options *opt, ap_registry **out,
                            ap_error *err);
/* Every version must have been released before. */
AP_API void ap_registry_free(ap_registry *reg);

/* Called once per model folder by ap_registry_load_all: m is the loaded
   version (borrowed for the call) or NULL, and then err says why not. */
typedef void (*ap_registry_report_fn)(void *ctx, const char *name, const ap_model *m,
                                      const ap_error *err);

/*
 * Load every model folder of the repository (ensembles after the models
 * they combine). A model that fails is refused and reported; the rest still
 * load. Returns the number of models refused (0 = all loaded), or a negative
 * ap_status, with err set, when the repository itself cannot be read.
 */
AP_API int ap_registry_load_all(ap_registry *reg, ap_registry_report_fn report, void *ctx,
                         ap_error *err);

/*
 * Load (or reload) one model: read its manifest, load version `version` (0:
 * the one the manifest's policy serves: its pinned version, else the highest
 * number), validate it, set its precision (the manifest's, "auto" by
 * opt->mixed_precision; a predictor that cannot be reduced stays full and
 * ap_model_info.precision_note says why: that is no load failure), warm it
 * up with a prediction on a NaN row and on a zero row, then swap it in
 * atomically. On failure the version served before (if any) stays.
 */
AP_API int ap_registry_load(ap_registry *reg, const char *name, uint32_t version, ap_error *err);

/* Stop serving a model. Refused while a loaded ensemble uses it. */
AP_API int ap_registry_unload(ap_registry *reg, const char *name, ap_error *err);

/* Names of the models ever loaded, loaded now or not: i < ap_registry_count(). */
AP_API int ap_registry_count(const ap_registry *reg);
AP_API const char *ap_registry_name(const ap_registry *reg, int i);

/*
 * The model folders of the repository now (sorted; folders whose name is not
 * a model name are left out), with what each manifest says (kind, target;
 * ok = 0 when the manifest cannot be read or parsed). Free with
 * ap_registry_listing_free. Reads the disk: for admin paths, not requests.
 */
typedef struct ap_repo_model {
    char name[65];
    int ok;
    ap_model_kind kind;
    char target[65];
} ap_repo_model;
AP_API int ap_registry_list(const ap_registry *reg, ap_repo_model **out, int *n, ap_error *err);
AP_API void ap_registry_listing_free(ap_repo_model *list);

/* The members an ensemble's version `version` (0: by its policy) names,
   read from its files (*n = 0 for a model that is not an ensemble). */
AP_API int ap_registry_members(ap_registry *reg, const char *name, uint32_t version,
                        char (*names)[65], int max, int *n, ap_error *err);

/* Why the repository model `name` is not loaded: the message of its last
   failed load (kept for folders of the repository until a load succeeds).
   Returns 1 and fills msg, or 0 when none is recorded. */
AP_API int ap_registry_failure(ap_registry *reg, const char *name, char *msg, size_t size);

/* The version now served, held: release it with ap_model_release. */
AP_API int ap_registry_acquire(ap_registry *reg, const char *name, ap_model **out, ap_error *err);
AP_API void ap_model_release(ap_model *m);
/* One more reference to a version the caller already holds (one atomic
   increment, no lock: for batchers' per-request hooks). NULL is ignored. */
AP_API void ap_model_retain(ap_model *m);

AP_API int ap_registry_stats(const ap_registry *reg, const char *name, ap_model_stats *out,
                      ap_error *err);

AP_API void ap_model_describe(const ap_model *m, ap_model_info *out);
/* Name of raw input column i (a feature name, a member name), or NULL. */
AP_API const char *ap_model_input_name(const ap_model *m, int i);
/*
 * Which alphapulse-v1 features the model reads: used (ap_feature_count()
 * entries) gets 1 for each (an ensemble reads what the versions of its
 * members served now read). Returns how many; 0 for raw models.
 */
AP_API int ap_model_features_used(const ap_model *m, unsigned char *used);

/*
 * Predict nrows rows from full alphapulse-v1 feature vectors (row-major,
 * nrows * ap_feature_count() doubles, spec order, NaN = missing): the
 * model's features are selected, the pipeline runs, then the predictor.
 * pred[r] and conf[r] receive the prediction and its confidence; outputs
 * (may be NULL) receives nrows * num_outputs values (ensembles: the member
 * predictions). Ensembles evaluate the versions of their members served now.
 * Not for raw models (AP_EUNSUPPORTED).
 */
AP_API int ap_model_predict(const ap_model *m, const double *features, size_t nrows, double *pred,
                     double *conf, double *outputs, ap_error *err);

/* The same from rows of num_inputs values: the model's features in manifest
   order (before the pipeline), a raw model's tensor, or for an ensemble the
   member predictions in member order (only the combiner runs). */
AP_API int ap_model_predict_raw(const ap_model *m, const double *X, size_t nrows, double *pred,
                         double *conf, double *outputs, ap_error *err);

/* What the predictor of a feature or raw model sees: the rows after feature
   selection and the pipeline. X as for ap_model_predict (full = 1) or
   ap_model_predict_raw (full = 0); out: nrows * ap_model_transform_width(m). */
AP_API int ap_model_transform_width(const ap_model *m);
AP_API int ap_model_transform(const ap_model *m, const double *X, size_t nrows, int full, double *out,
                       ap_error *err);

#ifdef __cplusplus
}
#endif
#endif
