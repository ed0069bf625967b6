/*
 * Private: one loaded version of one model (ap_model), the entry of a model
 * name that serves it (ap_entry) and the entry's counters (ap_stats), with
 * the refcount that keeps a version alive while anyone holds it (model.c).
 * Everything below the registry catalog depends on these structs only.
 */
#ifndef AP_REGISTRY_MODEL_H
#define AP_REGISTRY_MODEL_H

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

struct ap_model {
    atomic_uint refs;             /* the registry's reference + one per holder */
    ap_entry *entry;              /* its name and statistics */
    ap_manifest man;
    ap_version_spec spec;
    uint32_t version;
    const ap_predictor_ops *ops;  /* NULL for ensembles */
    void *impl;                   /* owned: freed with ops->free */
    ap_predictor_desc desc;
    ap_entry **members;           /* ensembles: spec.num_inputs member entries (not owned) */
    int num_outputs;
    int scratch_per_row;          /* doubles of scratch one row needs */
    char describe[256];           /* pipeline summary, or the combiner's */
    /* precision, settled at load before warm-up (load.c) */
    ap_precision precision;       /* what the predictor runs: FULL or REDUCED */
    int node_bytes;               /* of the engine in use; 0: not a tree model */
    size_t bytes_full, bytes_reduced;
    double precision_deviation;   /* largest |reduced - full| measured at load */
    char precision_note[AP_ERROR_MSG_MAX]; /* why reduced was asked and not taken; "" */
    /* device, settled at load after precision (load.c) */
    size_t gpu_min_rows;          /* batches of at least this many rows on the GPU; 0: CPU */
    char device[AP_ERROR_MSG_MAX + 8]; /* "cpu (why)" / "gpu (threshold)" */
};

/* Free a version nobody else holds (a failed build, the last release). */
void ap__model_free_now(ap_model *m);

/* Hold the version an entry serves now (NULL if none); ap_model_release
   drops it. Inline: ensembles take it per member on every predict. */
static inline ap_model *ap__entry_acquire(ap_entry *e)
{
    pthread_mutex_lock(&e->mu);
    ap_model *m = e->current;
    if (m)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&e->mu);
    return m;
}

#endif
