/* Shared internals of src/server: the server, model slots, requests, metrics. */
#ifndef AP_SERVER_INTERNAL_H
#define AP_SERVER_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "alphapulse.h"
#include "server/config.h"
#include "server/jbuf.h"
#include "server/server.h"
#include "series/bars_csv.h"

#define SRV_MAX_MODELS AP_REGISTRY_MAX_MODELS
#define SRV_NAME_MAX 65

void ap_srv_log(ap_server *s, const char *fmt, ...) AP_PRINTF(2, 3);

/* ---- endpoints and metrics ------------------------------------------------ */

typedef enum ap_srv_endpoint {
    EP_ROOT,
    EP_CANDLES,
    EP_PRED_PATTERN,
    EP_PRED_REGIME,
    EP_PRED_ENSEMBLE,
    EP_RESULT_GET,
    EP_RESULT_DELETE,
    EP_MODELS,
    EP_STATS,
    EP_V2_LIVE,
    EP_V2_READY,
    EP_V2_SERVER,
    EP_V2_MODEL,
    EP_V2_MODEL_READY,
    EP_V2_INFER,
    EP_V2_REPO_INDEX,
    EP_V2_LOAD,
    EP_V2_UNLOAD,
    EP_METRICS,
    EP_SERIES_DELETE,
    EP_UNKNOWN,
    EP_COUNT
} ap_srv_endpoint;

const char *ap_srv_endpoint_name(int ep);

/* HTTP statuses counted by value; anything else is counted as "other". */
#define SRV_NCODES 14
#define SRV_LAT_BUCKETS 16

typedef struct ap_srv_metrics {
    /* [model slot + 1 (0: none)][endpoint][status] */
    _Atomic uint64_t requests[SRV_MAX_MODELS + 1][EP_COUNT][SRV_NCODES];
    _Atomic uint64_t lat_bucket[EP_COUNT][SRV_LAT_BUCKETS]; /* non-cumulative */
    _Atomic uint64_t lat_sum_ns[EP_COUNT];
    _Atomic uint64_t lat_count[EP_COUNT];
    _Atomic uint64_t body_bytes;
    _Atomic uint64_t bars_ingested, bars_rejected;
    /* inference requests answered 504 because of their deadline: before any
       work (they waited too long to be read), or after (finished too late) */
    _Atomic uint64_t deadline_before, deadline_after;
} ap_srv_metrics;

void ap_srv_metrics_record(ap_srv_metrics *m, int model, int ep, int code, uint64_t latency_ns);
void ap_srv_metrics_render(ap_server *s, jbuf *out);

/* ---- models --------------------------------------------------------------- */

/* One loaded version as the server holds it: the batchers' model context. */
typedef struct ap_srv_version {
    atomic_long refs;
    ap_model *m;
    ap_model_info info; /* strings owned by m */
    int nout;           /* per row: prediction, confidence, outputs */
} ap_srv_version;

void ap_srv_version_ref(void *v);
/* The batch function: rows of out are [prediction, confidence, outputs...];
   raw: X rows are the model's inputs, else alphapulse-v1 vectors. */
int ap_srv_run_rows(void *ctx, const double *X, size_t nrows, size_t ncols, double *out,
                 size_t nout, ap_error *err, int raw);
void ap_srv_version_unref(void *v);

typedef struct ap_srv_model {
    char name[SRV_NAME_MAX];
    int index;
    /* read-held while a request picks the version and submits; write-held
       to swap versions and batchers (reload, unload) */
    pthread_rwlock_t lock;
    ap_srv_version *cur;  /* NULL: not served */
    ap_batcher *feat;  /* rows: the alphapulse-v1 vector (NULL for raw models) */
    ap_batcher *raw;   /* rows: the model's num_inputs inputs */
    _Atomic uint64_t last_used; /* the model cache's clock at its last use */
    atomic_int held_out;        /* unloaded by request: not loaded on demand again */
} ap_srv_model;

/* Slot by name, NULL when never seen. Lock-free (slots are append-only). */
ap_srv_model *ap_srv_model_find(ap_server *s, const char *name);
/*
 * The model cache (MODEL_CACHE_SIZE = model_cache_size): at most that many
 * models are resident; a request for a repository model that is not loads it
 * on demand (on the requesting thread), first unloading the least recently
 * used resident models that no resident ensemble needs. touch: a request
 * used resident model m (a hit). ensure: name is not resident; load it (a
 * miss; ensembles load their members too). catalog: the repository's
 * models with their kind and target (read at start, on index requests and
 * on loads), for requests that name a kind and target rather than a model.
 */
void ap_srv_model_touch(ap_server *s, ap_srv_model *m);
int ap_srv_model_ensure(ap_server *s, const char *name, ap_error *err);
/* 1 when the repository has a model name (per the catalog). */
int ap_srv_catalog_has(ap_server *s, const char *name);
/* A repository model of this kind (and target, when not NULL) that is not
   resident: 1 and its name in out, else 0. */
int ap_srv_catalog_match(ap_server *s, int kind, const char *target, char *out, size_t size);
/* Under s->admin: read the repository's model list again. */
void ap_srv_catalog_refresh(ap_server *s);
/* Resident models now (served by a slot). */
int ap_srv_models_resident(ap_server *s);
int ap_srv_model_load(ap_server *s, const char *name, uint32_t version, ap_error *err);
int ap_srv_model_unload(ap_server *s, const char *name, ap_error *err);
/* Start-up: load the whole repository and serve what loaded. */
int ap_srv_models_load_all(ap_server *s, ap_error *err);
/* Shutdown: stop serving (batchers freed, versions released), keep the slots. */
void ap_srv_models_stop(ap_server *s);
void ap_srv_models_free(ap_server *s);

/* ---- async results -------------------------------------------------------- */

enum { RES_FREE, RES_PENDING, RES_DONE, RES_CANCELLED };

#define SRV_RESULT_OUTS 64

typedef struct ap_srv_result {
    uint64_t id;       /* public: random (results.c) */
    uint64_t batch_id; /* the batcher's id of the request */
    int32_t next;      /* hash chain by id */
    int32_t bnext;     /* hash chain by batch_id */
    int state;
    int ep, model;
    uint32_t version;
    char symbol[AP_SYMBOL_MAX], timeframe[16];
    int64_t bar_time;
    int undefined;    /* features the model reads that are NaN in the row */
    uint64_t bars;    /* bars in the series when the row was read */
    uint64_t t_submit_ns, t_done_ns;
    ap_batcher *batcher;
    ap_srv_version *ver; /* held while the entry lives (names for the response) */
    int status;
    char msg[200];
    double pred, conf;
    int nouts;
    double outs[SRV_RESULT_OUTS];
    uint64_t queue_us, compute_us;
} ap_srv_result;

typedef struct ap_srv_results {
    pthread_mutex_t mu;
    ap_srv_result *e; /* ring of capacity entries, oldest overwritten */
    size_t cap, head;
    int32_t *buckets, *bbuckets; /* by id, by batch_id */
    size_t nbuckets;
    uint64_t ttl_ns;
    uint64_t evicted;
} ap_srv_results;

/* ---- replay --------------------------------------------------------------- */

typedef struct ap_srv_replay_src {
    const ap_replay_source *cfg;
    ap_series *series;
    ap_bars_csv csv;
    int open, done;
    int64_t offset_us, first_t, last_t, last_fed_t;
    uint64_t fed, rejected, loops;
    char error[AP_ERROR_MSG_MAX];
} ap_srv_replay_src;

typedef struct ap_srv_replay {
    pthread_t thread;
    int started;
    atomic_int stop;
    pthread_mutex_t mu; /* guards every source's progress fields */
    pthread_cond_t cv;
    int n;
    ap_srv_replay_src src[AP_REPLAY_MAX_SOURCES];
} ap_srv_replay;

int ap_srv_replay_start(ap_server *s, ap_error *err);
void ap_srv_replay_stop(ap_server *s);
void ap_srv_replay_json(ap_server *s, jbuf *b);

/* Append a bar to a base series (the store serialises appends) and count it
   in the ingest metrics. */
int ap_srv_ingest(ap_server *s, ap_series *series, const ap_bar *bar, ap_error *err);

/* ---- transport ------------------------------------------------------------ */

/*
 * How a request talks to its connection: libmicrohttpd (http.c) or the fuzz
 * target (tests/fuzz/fuzz_http.c). conn is the transport's own handle.
 */
typedef struct ap_srv_io {
    /* value of request header name (case-insensitive), NULL when absent */
    const char *(*header)(void *conn, const char *name);
    /* how many times the request carries header name */
    unsigned (*header_count)(void *conn, const char *name);
    /* queue the response; body is consumed (a heap body is handed over);
       close: ask for the connection to be closed after it */
    enum MHD_Result (*respond)(void *conn, unsigned code, jbuf *body, const char *ctype,
                               int close);
    void (*suspend)(void *conn);
    void (*resume)(void *conn); /* from any thread */
} ap_srv_io;

/* The batchers that requests of one event-loop pass were deferred to
   (ap_batch_submit_opts.defer): run together when the pass ends. */
#define SRV_PASS_MAX 32
typedef struct ap_srv_pass {
    ap_batcher *b[SRV_PASS_MAX];
    size_t n;
    /* 1 until the pass's first prediction: that one runs at once (caller
       runs, no suspend), so a lone request pays nothing for the batching */
    int immediate;
} ap_srv_pass;

/* ---- the server ----------------------------------------------------------- */

struct ap_server {
    ap_server_config cfg;
    ap_server_log_fn log;
    void *log_ctx;
    uint64_t start_ns;

    ap_registry *reg;
    ap_series_store *store;
    ap_workers *workers;

    pthread_mutex_t admin; /* model load / unload, slot creation */
    ap_srv_model *models[SRV_MAX_MODELS];
    atomic_int nmodels;
    /* the model cache (models.c) */
    _Atomic uint64_t use_tick;
    _Atomic uint64_t cache_hits, cache_misses, cache_evictions, cache_load_failures;
    pthread_mutex_t catalog_mu; /* guards catalog (written under admin too) */
    ap_repo_model *catalog;
    int ncatalog;

    ap_srv_results results;
    ap_srv_metrics *metrics;
    ap_srv_replay replay;

    struct ap_srv_http *http; /* NULL: no HTTP front (the fuzz target) */
    atomic_int draining;
    int shut_down;
    atomic_long inflight;
    _Atomic uint64_t inline_ids; /* request ids of inline inferences */
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;
};

/* ap_server_create, with or without the HTTP front (http = 0: the fuzz
   target drives requests through ap_srv_req_* itself). */
int ap_srv_create(const ap_server_config *cfg, ap_server_log_fn log, void *log_ctx, int http,
                  ap_server **out, ap_error *err);

/* ---- requests -------------------------------------------------------------- */

enum { PH_NEW, PH_BODY, PH_WAIT, PH_DONE };

/* ap_srv_req.wait: who answers a batched inference (see ap_srv_start_inference) */
enum { W_SUBMITTING, W_SUSPENDED, W_COMPLETED };

#define SRV_SMALL_BODY 1024
#define SRV_SMALL_OUT 32

typedef struct ap_srv_req {
    ap_server *srv;
    const ap_srv_io *io;
    void *conn;
    ap_srv_pass *pass; /* NULL: no event loop, batches are not deferred */
    const char *method, *url;
    int ep, model; /* model: slot index or -1 */
    int phase;
    int reserve;      /* arrived on a reserve connection */
    int close;        /* close the connection after the response */
    int parked;       /* deferred without a suspend: the transport asks again */
    char arg[128];    /* path argument: model name or result id */
    char arg2[32];    /* second path argument (a timeframe) */
    uint32_t want_version;
    uint64_t t0_ns;       /* arrival: the request's last byte reached the socket */
    uint64_t deadline_ns; /* inference: t0 + its timeout (0: none) */

    char *body;
    size_t len, cap;
    int too_big;

    /* an inference in flight (filled by the completion callback) */
    _Atomic int wait; /* W_*: handshake of the completion and the suspend */
    int status;
    char msg[AP_ERROR_MSG_MAX];
    uint64_t id, queue_us, compute_us;
    double *out;
    size_t nrows, nout;
    /* what the response needs */
    ap_srv_version *ver; /* held until the request completes */
    uint32_t version;
    int kind, fp32, out_mask, num_outputs;
    char symbol[AP_SYMBOL_MAX], timeframe[16], client_id[128];
    int64_t bar_time;
    int undefined;  /* v1: features the model reads that are NaN (0: warm) */
    uint64_t bars;  /* v1: bars in the series when its row was read */

    double out_small[SRV_SMALL_OUT];
    char body_small[SRV_SMALL_BODY];
} ap_srv_req;

/* Queue a response; body is JSON unless ctype says otherwise. */
enum MHD_Result ap_srv_respond(ap_srv_req *r, int code, jbuf *body, const char *ctype);
enum MHD_Result ap_srv_error(ap_srv_req *r, int code, const char *fmt, ...) AP_PRINTF(3, 4);
/* HTTP status for a library status code. */
int ap_srv_http_status(int ap_code);
/* HTTP status for an inference that failed after the request was accepted. */
int ap_srv_compute_status(int ap_code);
/* Completion callback of inferences answered on their connection. */
void ap_srv_on_done(void *user, const ap_batch_completion *c);
/*
 * Start the inference of r (n rows of X) on version v through batcher b,
 * within r->deadline_ns. Returns 1 when the result (or the failure) is
 * already in r — inline inference, a batch the batcher ran on this thread
 * (caller_runs), a completion that beat the suspend, a refused submit, a
 * deadline already passed (status AP_ETIMEDOUT) — and the caller answers at
 * once (ap_srv_v1_finish / ap_srv_v2_finish); 0 when the connection is
 * suspended and ap_srv_on_done resumes it. Under an event loop (r->pass)
 * the submit is deferred to the end of the pass. Called with the model slot
 * read-locked.
 */
int ap_srv_start_inference(ap_srv_req *r, ap_batcher *b, ap_srv_version *v, const double *X,
                           size_t n, int raw);

/*
 * A request's life, driven by the transport: begin (headers parsed; routes
 * it), headers (may answer at once: limits, malformed framing), body (any
 * number of chunks), complete (body done: answers, or suspends for an
 * inference), resumed (the inference completed), free. t_arrival: when the
 * request reached the socket (monotonic ns). reserve: it came on a reserve
 * connection (only health and metrics are served there).
 */
ap_srv_req *ap_srv_req_begin(ap_server *s, const ap_srv_io *io, void *conn, ap_srv_pass *pass,
                             const char *method, const char *url, uint64_t t_arrival,
                             int reserve);
enum MHD_Result ap_srv_req_headers(ap_srv_req *r);
void ap_srv_req_body(ap_srv_req *r, const char *data, size_t n);
enum MHD_Result ap_srv_req_complete(ap_srv_req *r);
int ap_srv_req_waiting(const ap_srv_req *r);
enum MHD_Result ap_srv_req_resumed(ap_srv_req *r);
void ap_srv_req_free(ap_srv_req *r);
/* Answer now with an error and close the connection (transport limits). */
enum MHD_Result ap_srv_req_refuse(ap_srv_req *r, int code, const char *fmt, ...) AP_PRINTF(3, 4);
/* 1 when the endpoint may be served on a reserve connection. */
int ap_srv_req_reserve_ok(const ap_srv_req *r);
/*
 * Deadlines: the request is past its deadline (r->deadline_ns) now. Inference
 * handlers refuse such a request with 504 before doing the work, and
 * ap_srv_v1_finish / ap_srv_v2_finish answer 504 instead of a late 200.
 */
int ap_srv_past_deadline(const ap_srv_req *r, uint64_t now);
enum MHD_Result ap_srv_deadline_error(ap_srv_req *r, const char *when);

/* handlers (the final call of a request, body complete) */
enum MHD_Result ap_srv_v1_dispatch(ap_srv_req *r);
enum MHD_Result ap_srv_v1_finish(ap_srv_req *r); /* after an inference completed */
enum MHD_Result ap_srv_v2_dispatch(ap_srv_req *r);
enum MHD_Result ap_srv_v2_finish(ap_srv_req *r);

int ap_srv_results_init(ap_srv_results *rs, size_t cap, uint64_t ttl_ns, ap_error *err);
void ap_srv_results_free(ap_srv_results *rs);
/* With rs->mu held. insert evicts the oldest entry when the ring is full
   and gives the entry a new random public id (e->id). */
ap_srv_result *ap_srv_results_insert_locked(ap_srv_results *rs, uint64_t batch_id);
ap_srv_result *ap_srv_results_find_locked(ap_srv_results *rs, uint64_t id, uint64_t now_ns);
ap_srv_result *ap_srv_results_find_batch_locked(ap_srv_results *rs, uint64_t batch_id);
void ap_srv_results_remove_locked(ap_srv_results *rs, ap_srv_result *e);
size_t ap_srv_results_count(ap_srv_results *rs);

/* v1 async path (handlers_v1.c) */
void ap_srv_results_on_done(void *user, const ap_batch_completion *c);

#endif
