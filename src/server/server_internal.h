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
#define SRV_INGEST_LOCKS 64

uint64_t ap_srv_now_ns(void);
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
} ap_srv_model;

/* Slot by name, NULL when never seen. Lock-free (slots are append-only). */
ap_srv_model *ap_srv_model_find(ap_server *s, const char *name);
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
    uint64_t id;
    int32_t next; /* hash chain */
    int state;
    int ep, model;
    uint32_t version;
    char symbol[AP_SYMBOL_MAX], timeframe[16];
    int64_t bar_time;
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
    int32_t *buckets;
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

/* Append a bar to a base series, serialised per series (single writer rule). */
int ap_srv_ingest(ap_server *s, ap_series *series, const ap_bar *bar, ap_error *err);

/* ---- the server ----------------------------------------------------------- */

struct ap_server {
    ap_server_config cfg;
    ap_server_log_fn log;
    void *log_ctx;
    uint64_t start_ns;

    ap_registry *reg;
    ap_series_store *store;
    pthread_mutex_t ingest[SRV_INGEST_LOCKS];
    ap_workers *workers;

    pthread_mutex_t admin; /* model load / unload, slot creation */
    ap_srv_model *models[SRV_MAX_MODELS];
    atomic_int nmodels;

    ap_srv_results results;
    ap_srv_metrics *metrics;
    ap_srv_replay replay;

    struct MHD_Daemon *mhd;
    int listen_fd, port;
    atomic_int draining;
    int shut_down;
    atomic_long inflight;
    _Atomic uint64_t inline_ids; /* request ids of inline inferences */
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;
};

/* ---- requests -------------------------------------------------------------- */

enum { PH_NEW, PH_BODY, PH_WAIT, PH_DONE };

/* ap_srv_req.wait: who answers a batched inference (see ap_srv_start_inference) */
enum { W_SUBMITTING, W_SUSPENDED, W_COMPLETED };

#define SRV_SMALL_BODY 1024
#define SRV_SMALL_OUT 32

typedef struct ap_srv_req {
    ap_server *srv;
    struct MHD_Connection *conn;
    const char *method, *url;
    int ep, model; /* model: slot index or -1 */
    int phase;
    char arg[128];    /* path argument: model name or result id */
    uint32_t want_version;
    uint64_t t0_ns;

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

    double out_small[SRV_SMALL_OUT];
    char body_small[SRV_SMALL_BODY];
} ap_srv_req;

/* Queue a response; body is JSON unless ctype says otherwise. */
enum MHD_Result ap_srv_respond(ap_srv_req *r, int code, jbuf *body, const char *ctype);
enum MHD_Result ap_srv_error(ap_srv_req *r, int code, const char *fmt, ...) AP_PRINTF(3, 4);
/* HTTP status for a library status code. */
int ap_srv_http_status(int ap_code);
/* Completion callback of inferences answered on their connection. */
void ap_srv_on_done(void *user, const ap_batch_completion *c);
/*
 * Start the inference of r (n rows of X) on version v through batcher b.
 * Returns 1 when the result (or the failure) is already in r — inline
 * inference, a batch the batcher ran on this thread (caller_runs), a
 * completion that beat the suspend, a refused submit — and the caller answers
 * at once (ap_srv_v1_finish / ap_srv_v2_finish); 0 when the connection is
 * suspended and ap_srv_on_done resumes it. Called with the model slot
 * read-locked.
 */
int ap_srv_start_inference(ap_srv_req *r, ap_batcher *b, ap_srv_version *v, const double *X, size_t n,
                        uint64_t timeout_us, int raw);

/* handlers (the final call of a request, body complete) */
enum MHD_Result ap_srv_v1_dispatch(ap_srv_req *r);
enum MHD_Result ap_srv_v1_finish(ap_srv_req *r); /* after an inference completed */
enum MHD_Result ap_srv_v2_dispatch(ap_srv_req *r);
enum MHD_Result ap_srv_v2_finish(ap_srv_req *r);

int ap_srv_results_init(ap_srv_results *rs, size_t cap, uint64_t ttl_ns, ap_error *err);
void ap_srv_results_free(ap_srv_results *rs);
/* With rs->mu held. insert evicts the oldest entry when the ring is full. */
ap_srv_result *ap_srv_results_insert_locked(ap_srv_results *rs, uint64_t id);
ap_srv_result *ap_srv_results_find_locked(ap_srv_results *rs, uint64_t id, uint64_t now_ns);
void ap_srv_results_remove_locked(ap_srv_results *rs, ap_srv_result *e);
size_t ap_srv_results_count(ap_srv_results *rs);

/* v1 async path (handlers_v1.c) */
void ap_srv_results_on_done(void *user, const ap_batch_completion *c);

#endif
