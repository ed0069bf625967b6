/* Internal to src/serve: the service's structs, shared by service.c (life
   cycle, picking, submitting), slots.c (served models, the model cache) and
   results.c (the async result store). */
#ifndef AP_SERVE_INTERNAL_H
#define AP_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "serve/service.h"
#include "common/error.h"

#define SLOT_NAME_MAX 65

/* One served model: the version served now and its two batchers. */
struct ap_slot {
    char name[SLOT_NAME_MAX];
    int index;
    /* read-held by a lease (pick .. submit); write-held to swap versions and
       batchers (reload, unload) */
    pthread_rwlock_t lock;
    ap_model *cur;     /* NULL: not served; the slot holds one reference */
    ap_model_info info; /* of cur (strings owned by cur) */
    ap_batcher *feat;  /* rows: alphapulse-v1 vectors (NULL for raw models) */
    ap_batcher *raw;   /* rows: the model's num_inputs inputs */
    _Atomic uint64_t last_used; /* the cache's clock at its last use */
    atomic_int held_out;        /* unloaded by request: not loaded on demand */
};

/* ---- the async result store (results.c) ---- */

typedef struct ap_async_entry {
    ap_async_result r; /* r.id: public, random; r.state 0: free */
    uint64_t batch_id; /* the batcher's id of the request */
    int32_t next, bnext; /* hash chains by public id, by batch id (0: in no chain) */
    ap_batcher *batcher;
    char *text; /* a front end's finished answer (ap__service_result_open), owned */
    size_t text_len;
} ap_async_entry;

typedef struct ap_results {
    pthread_mutex_t mu;
    ap_async_entry *e; /* ring of cap entries, the oldest overwritten */
    size_t cap, head;
    int32_t *buckets, *bbuckets;
    size_t nbuckets;
    uint64_t ttl_ns;
    uint64_t evicted;
} ap_results;

int ap__results_init(ap_results *rs, size_t cap, uint64_t ttl_ns, ap_error *err);
void ap__results_free(ap_results *rs);
/* The batchers' completion callback of async requests (user: the store). */
void ap__results_on_done(void *user, const ap_batch_completion *c);
/* With rs->mu held: a new pending entry for batch_id, its public id set. */
ap_async_entry *ap__results_insert_locked(ap_results *rs, uint64_t batch_id);
void ap__results_remove_locked(ap_results *rs, ap_async_entry *e);
ap_async_entry *ap__results_find_locked(ap_results *rs, uint64_t id, uint64_t now_ns);

/* ---- the service ---- */

struct ap_service {
    ap_service_config cfg;
    char *repository;
    ap_service_log_fn log;
    void *log_ctx;
    ap_registry *reg;
    ap_workers *workers;

    pthread_mutex_t admin; /* load / unload, slot creation */
    ap_slot *slots[AP_REGISTRY_MAX_MODELS];
    atomic_int nslots;     /* slots are append-only: readers need no lock */
    _Atomic uint64_t use_tick;
    _Atomic uint64_t cache_hits, cache_misses, cache_evictions, cache_load_failures;
    pthread_mutex_t catalog_mu; /* guards catalog */
    ap_repo_model *catalog;
    int ncatalog;

    ap_results results;
    _Atomic uint64_t inline_ids;
    int stopped;
};

void ap__service_logf(ap_service *svc, const char *fmt, ...) AP_PRINTF(2, 3);

/* slots.c */
ap_slot *ap__slot_find(ap_service *svc, const char *name);
void ap__slot_touch(ap_service *svc, ap_slot *m);
/* Load name on first use (a cache miss); AP_OK when it is resident after. */
int ap__slot_ensure(ap_service *svc, const char *name, ap_error *err);
int ap__catalog_has(ap_service *svc, const char *name);
int ap__catalog_match(ap_service *svc, int kind, const char *target, char *out, size_t size);
void ap__catalog_refresh(ap_service *svc);
int ap__slots_load_all(ap_service *svc, ap_error *err);
void ap__slots_stop(ap_service *svc);
void ap__slots_free(ap_service *svc);
/* The batch function: each row of out is [prediction, confidence, outputs]. */
int ap__slot_run_rows(const ap_model *m, const double *X, size_t nrows, size_t ncols,
                     double *out, size_t nout, ap_error *err, int raw);

#endif
