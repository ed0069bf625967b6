/*
 * The serving module: everything a front end (the HTTP server today; the
 * stream and worker front ends next) needs to turn rows into predictions.
 *
 *   ap_service = the registry (models, versions, reload)
 *              + one worker pool
 *              + per served model: a batcher for alphapulse-v1 feature rows
 *                and one for raw input rows, switched to each new version
 *              + the batch function (rows -> [prediction, confidence, outputs])
 *              + the model cache (MODEL_CACHE_SIZE models resident, LRU)
 *              + the one async result store
 *
 * A request's walk: ap__service_pick (a model by name, or kind + target;
 * loaded on first use) -> the front end builds its rows -> ap__service_submit
 * (deadline, event-loop deferral, inline or batched) -> the completion
 * callback. Front ends never see a batcher or a registry entry.
 *
 * References: a lease holds the picked model (ap_model_retain) and keeps its
 * slot read-locked until submit or release, so a reload cannot swap the
 * batcher under a submit; every queued request holds its own reference (the
 * batcher's acquire/release hooks), so a version lives until its last
 * request completed. The registry's refcount is the only one.
 *
 * Threads: every call may come from any thread, except _free (last call).
 */
#ifndef AP_SERVE_SERVICE_H
#define AP_SERVE_SERVICE_H

#include <stdint.h>

#include "alphapulse.h"

typedef struct ap_service ap_service;
typedef struct ap_slot ap_slot;
typedef void (*ap_service_log_fn)(void *ctx, const char *msg);

typedef struct ap_service_config {
    const char *repository;
    ap_registry_options registry; /* copied by the registry */
    int workers;                  /* 0: one per core */
    int batch_size;               /* cap on rows per batch (a manifest may ask for fewer) */
    int64_t max_queue_delay_us;   /* -1: each model's manifest value */
    int64_t adaptive_target_us;   /* 0: off */
    int max_queue_rows;
    double inference_timeout;     /* seconds: the longest deadline */
    int caller_runs;
    int inline_inference;         /* run on the submitting thread, no batcher */
    int model_cache_size;         /* models resident at once */
    int max_async_results;
    double result_ttl;            /* seconds */
} ap_service_config;

int ap__service_create(const ap_service_config *cfg, ap_service_log_fn log, void *log_ctx,
                      ap_service **out, ap_error *err);
/* Stop serving: batchers freed (queued requests complete as cancelled,
   their callbacks run on this thread), versions released. Idempotent. */
void ap__service_stop(ap_service *svc);
void ap__service_free(ap_service *svc);
ap_registry *ap__service_registry(ap_service *svc);

/* ---- picking a model ------------------------------------------------------ */

#define AP_KIND_ANY (-1)

typedef struct ap_selector {
    const char *name;   /* a model by name; NULL: the first of kind (and target) */
    int kind;           /* AP_MODEL_*, or AP_KIND_ANY (with a name) */
    const char *target; /* NULL: any target */
    int raw;            /* rows are the model's own inputs, else alphapulse-v1 vectors */
    uint32_t version;   /* 0: the one served; else it must be this one */
    int on_demand;      /* 1: a repository model that is not resident loads now */
} ap_selector;

typedef struct ap_lease {
    ap_model *model;    /* held (ap_model_retain) until the lease ends */
    ap_model_info info; /* of model; strings owned by it */
    int index;          /* the model's slot: a stable small number (metrics); -1 none */
    int raw;            /* the selector's raw */
    ap_slot *slot;      /* read-locked while the lease is open */
} ap_lease;

/*
 * Pick the model for a request. AP_OK: *l is open (end it with submit or
 * ap__service_release). Else the status says why, with err naming it:
 * AP_ENOTFOUND (no such model, not loaded, not that version, or the named
 * model is of another kind or target), AP_EFULL (the model cache cannot
 * take it), AP_EIO (a model loading on first use failed: a server-side
 * fault, the request was fine). l->index is the named model's slot if it
 * has one (for metrics), else -1.
 */
int ap__service_pick(ap_service *svc, const ap_selector *sel, ap_lease *l, ap_error *err);
/* Unlock the slot early (the lease can no longer submit); l->model stays
   held until ap__service_release. */
void ap__service_unlock(ap_lease *l);
/* End a lease without submitting. */
void ap__service_release(ap_lease *l);

/* ---- running rows ---------------------------------------------------------- */

/* What a completion is told: the batcher's completion (pointers valid
   during the call only; out: nrows rows of nout doubles, [prediction,
   confidence, outputs...]), handed through unchanged. */
typedef ap_batch_completion ap_service_result;
typedef ap_batch_done_fn ap_service_done_fn;

/* The batchers one event-loop pass deferred requests to: the loop calls
   ap__service_pass_end when its pass ends, and they run as one batch each. */
#define AP_SERVICE_PASS_MAX 32
typedef struct ap_service_pass {
    ap_batcher *b[AP_SERVICE_PASS_MAX];
    size_t n;
    /* 1 until the pass's first prediction: that one runs at once (no
       deferral), so a lone request pays nothing for the batching */
    int immediate;
} ap_service_pass;

void ap__service_pass_end(ap_service *svc, ap_service_pass *p);

typedef struct ap_submit_opts {
    uint64_t deadline_ns;  /* ap__clock_ns() time; 0: the service's inference_timeout */
    ap_service_pass *pass; /* NULL: not under an event loop */
    ap_service_done_fn on_done;
    void *user;
} ap_submit_opts;

/*
 * Run n rows on the lease's model; ends the lease (the slot unlocked; the
 * model reference moves to the request). AP_OK: on_done is called exactly
 * once, possibly before this returns (inline inference, a batch this thread
 * ran); *parked = 1 when the request was deferred to the pass and this
 * thread's pass end will run it (the caller need not suspend). Else a
 * refusal (queue full, deadline passed: AP_ETIMEDOUT) with err, and no
 * callback.
 */
int ap__service_submit(ap_service *svc, ap_lease *l, const double *rows, size_t n,
                      const ap_submit_opts *o, int *parked, ap_error *err);

/* ---- async results ----------------------------------------------------------- */

/* What a front end attaches to an async request for its answer. */
typedef struct ap_async_meta {
    int ep;
    char symbol[AP_SYMBOL_MAX], timeframe[16];
    int64_t bar_time;
    int undefined;
    uint64_t bars;
    uint64_t t_submit_ns;
} ap_async_meta;

enum { AP_ASYNC_PENDING = 1, AP_ASYNC_DONE, AP_ASYNC_CANCELLED };

#define AP_ASYNC_OUTS 64

/* A copy of a stored result. */
typedef struct ap_async_result {
    uint64_t id;
    int state;         /* AP_ASYNC_* */
    int status;        /* when done */
    char msg[200];
    ap_model *model;   /* held: ap_model_release it */
    int index;         /* slot */
    ap_async_meta meta;
    double pred, conf;
    int nouts;
    double outs[AP_ASYNC_OUTS];
    uint64_t t_done_ns, queue_us, compute_us;
    /* an entry of ap__service_result_open, done: the front end's answer (a
       copy, NUL-terminated: free it); NULL for a single-row result */
    char *text;
    size_t text_len;
} ap_async_result;

/* Submit one feature row and keep the result under a new unguessable id
   (*id). Ends the lease like ap__service_submit. */
int ap__service_submit_async(ap_service *svc, ap_lease *l, const double *row,
                            uint64_t deadline_ns, const ap_async_meta *meta, uint64_t *id,
                            ap_error *err);
/*
 * A result a front end completes itself (a batch of several submits, each
 * with its own callback): a new pending entry, its public id in *id, with
 * no model and no batcher request. ap__service_result_close completes it
 * with the answer's text (malloc'd, len bytes + NUL; the store owns it then,
 * or frees it at once when the entry was deleted or evicted meanwhile). The
 * entry counts, is evicted and expires like any other; deleting it while
 * pending drops the answer (the front end's submits are not cancelled).
 */
int ap__service_result_open(ap_service *svc, uint64_t *id, ap_error *err);
void ap__service_result_close(ap_service *svc, uint64_t id, char *text, size_t len);
/* AP_OK and a copy in *out (release out->model, free out->text), or
   AP_ENOTFOUND (never issued, deleted, expired or evicted), AP_ENOMEM. */
int ap__service_result_get(ap_service *svc, uint64_t id, ap_async_result *out, ap_error *err);
/* Cancel a pending result and delete it (or delete a finished one).
   *was_pending says which; *index is its slot. AP_OK or AP_ENOTFOUND. */
int ap__service_result_delete(ap_service *svc, uint64_t id, int *was_pending, int *index,
                             ap_error *err);
void ap__service_result_counts(ap_service *svc, size_t *held, uint64_t *evicted);

/* ---- administration and views --------------------------------------------------- */

/* Load (version 0: by policy) or unload a model; an unloaded model is held
   out of on-demand loading until loaded again. */
int ap__service_load(ap_service *svc, const char *name, uint32_t version, ap_error *err);
int ap__service_unload(ap_service *svc, const char *name, ap_error *err);
/* Models served now. */
int ap__service_resident(ap_service *svc);

/* Slots (every model ever served, in order of first load; never removed). */
int ap__service_slots(ap_service *svc);
const char *ap__service_slot_name(ap_service *svc, int i);
/* The slot of name, or -1. */
int ap__service_slot_find(ap_service *svc, const char *name);
/* The version served in slot i, held (release it), or NULL when not loaded. */
ap_model *ap__service_slot_model(ap_service *svc, int i);
/* 1 when slot i was unloaded by request (not loaded on demand again). */
int ap__service_slot_held_out(ap_service *svc, int i);
/* Batcher statistics of slot i (raw: the raw-row batcher). AP_ENOTFOUND when
   it has no such batcher now. */
int ap__service_batch_stats(ap_service *svc, int i, int raw, ap_batch_stats *out);

/* The worker pool's statistics (every batcher together). */
int ap__service_pool_stats(ap_service *svc, ap_batch_stats *out);

typedef struct ap_cache_stats {
    int capacity, resident;
    uint64_t hits, misses, evictions, load_failures;
} ap_cache_stats;
void ap__service_cache_stats(ap_service *svc, ap_cache_stats *out);

/* The repository's models as last read (names, kinds, whether they load):
   a copy (free with ap_registry_listing_free). refresh: read it again. */
int ap__service_catalog(ap_service *svc, int refresh, ap_repo_model **out, int *n, ap_error *err);

#endif
