/* Private: registry entries, loaded versions and their statistics. */
#ifndef AP_REGISTRY_INTERNAL_H
#define AP_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "alphapulse/registry.h"
#include "pipeline/predictor.h"
#include "registry/manifest.h"

/* Counters of one model name, updated lock-free from any thread. */
typedef struct ap_stats {
    _Atomic uint32_t version;
    _Atomic uint64_t loads, load_errors, load_time_ns;
    _Atomic uint64_t predictions, errors;
    _Atomic uint64_t lat_count, lat_sum_ns, lat_min_ns, lat_max_ns;
    _Atomic uint64_t lat_buckets[AP_LATENCY_BUCKETS];
} ap_stats;

/* One model name. Entries are created once and live as long as the
   registry, so versions and ensembles may point at them. */
typedef struct ap_entry {
    char name[AP_MODEL_NAME_MAX + 1];
    pthread_mutex_t mu;   /* held only to read or swap `current` (never across a predict) */
    ap_model *current;    /* the version served; NULL when not loaded */
    ap_stats stats;
} ap_entry;

/* Why a repository folder's model is not loaded (its last failed load). */
typedef struct ap_failure {
    char name[AP_MODEL_NAME_MAX + 1];
    char msg[AP_ERROR_MSG_MAX];
} ap_failure;

struct ap_registry {
    ap_registry_options opt; /* onnx.ort_library points to ort_library */
    char *ort_library;
    char *root;
    char *real_root;        /* realpath(root): files must resolve inside it */
    pthread_mutex_t admin;  /* serialises load, unload, load_all; never taken by readers */
    ap_entry *entries[AP_REGISTRY_MAX_MODELS];
    _Atomic int count;      /* entries[0..count) are published (successful loads only) */
    pthread_mutex_t fail_mu; /* guards failures (read from request threads) */
    ap_failure failures[AP_REGISTRY_MAX_MODELS];
    int nfailures;
};

struct ap_model {
    atomic_uint refs;             /* the registry's reference + one per holder */
    ap_entry *entry;              /* its name and statistics */
    ap_manifest man;
    ap_version_spec spec;
    uint32_t version;
    const ap_predictor_ops *ops;  /* NULL for ensembles */
    void *impl;
    ap_predictor_desc desc;
    ap_entry **members;           /* ensembles: spec.num_inputs member entries */
    int num_outputs;
    int scratch_per_row;          /* doubles of scratch one row needs */
    char describe[256];           /* pipeline summary, or the combiner's */
};

void ap_model_free_now(ap_model *m);
/* Hold the version an entry serves now (NULL if none). */
ap_model *ap_entry_acquire(ap_entry *e);

/* Predict without recording statistics (warm-up, ensemble members). */
int ap_model_predict_impl(const ap_model *m, const double *X, size_t nrows, int full,
                          double *pred, double *conf, double *outputs, ap_error *err);
void ap_stats_record_predict(ap_stats *s, uint64_t ns, size_t rows, int ok);

#endif
