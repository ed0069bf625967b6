/*
 * A request's life, transport-neutral (request.c): libmicrohttpd (http.c)
 * or the fuzz target drive it through ap_srv_io; the handlers answer with
 * ap__srv_respond / ap__srv_error.
 */
#ifndef AP_SERVER_REQUEST_H
#define AP_SERVER_REQUEST_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdint.h>

#include "alphapulse.h"
#include "common/error.h"
#include "serve/service.h"
#include "server/jbuf.h"
#include "server/routes.h"

typedef struct ap_server ap_server;

/*
 * How a request talks to its connection: libmicrohttpd (http.c) or the fuzz
 * target (tests/fuzz/fuzz_http.c). conn is the transport's own handle.
 */
/* A response body produced as it goes (an event stream): read fills buf
   and returns the bytes (> 0), 0 when nothing is ready (it has suspended
   the connection: a resume calls it again), -1 at the end; done is called
   once, when the transport is finished with it. */
typedef struct ap_srv_body_source {
    long (*read)(void *ctx, char *buf, size_t max);
    void (*done)(void *ctx);
    void *ctx;
} ap_srv_body_source;

typedef struct ap_srv_io {
    /* value of request header name (case-insensitive), NULL when absent */
    const char *(*header)(void *conn, const char *name);
    /* how many times the request carries header name */
    unsigned (*header_count)(void *conn, const char *name);
    /* queue the response; body is consumed (a heap body is handed over);
       close: ask for the connection to be closed after it; headers: extra
       name, value pairs, NULL-terminated (or NULL) */
    enum MHD_Result (*respond)(void *conn, unsigned code, jbuf *body, const char *ctype,
                               int close, const char *const *headers);
    void (*suspend)(void *conn);
    void (*resume)(void *conn); /* from any thread */
    /* value of URL query argument name, NULL when absent; how many the URL has */
    const char *(*query)(void *conn, const char *name);
    unsigned (*query_count)(void *conn);
    /* queue a streamed response (src->done is called on every path) */
    enum MHD_Result (*stream)(void *conn, unsigned code, const char *ctype,
                              const ap_srv_body_source *src);
} ap_srv_io;

enum { PH_NEW, PH_BODY, PH_WAIT, PH_DONE };

/* ap_srv_req.wait: who answers a batched inference (see ap__srv_start_inference) */
enum { W_SUBMITTING, W_SUSPENDED, W_COMPLETED };

#define SRV_SMALL_BODY 1024
#define SRV_SMALL_OUT 32

typedef struct ap_srv_req {
    ap_server *srv;
    const ap_srv_io *io;
    void *conn;
    ap_service_pass *pass; /* NULL: no event loop, batches are not deferred */
    const char *method, *url;
    int ep, model; /* model: slot index or -1 */
    const ap_srv_route *route; /* NULL: no such path */
    int phase;
    int reserve;      /* arrived on a reserve connection */
    int close;        /* close the connection after the response */
    int parked;       /* deferred without a suspend: the transport asks again */
    int auth;         /* AP_AUTH_* of the request's token (auth.h), answered at complete */
    int retry_s;      /* AP_AUTH_LIMITED: Retry-After */
    char token_name[64]; /* the token's NAME (the access log), "" when none */
    const char *hdr[5]; /* extra response headers: name, value, ..., NULL */
    char hdr_val[64];
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
    ap_model *held;     /* the version that answers, held until the request ends */
    ap_model_info info; /* of held */
    uint32_t version;
    int kind, out_mask, num_outputs;
    int out_binary; /* v2: AP_V2_OUT_* answered as binary tensor data */
    int has_id;     /* v2: the request had an 'id' (echoed, even empty) */
    char symbol[AP_SYMBOL_MAX], timeframe[16], client_id[128];
    int64_t bar_time;
    int undefined;  /* v1: features the model reads that are NaN (0: warm) */
    uint64_t bars;  /* v1: bars in the series when its row was read */
    struct ap_srv_batch *batch; /* /v1/predict/batch: its items (handlers_batch.c), owned */

    double out_small[SRV_SMALL_OUT];
    char body_small[SRV_SMALL_BODY];
} ap_srv_req;

/* Queue a streamed response (an event stream): counted as answered now. */
enum MHD_Result ap__srv_respond_stream(ap_srv_req *r, int code, const char *ctype,
                                       const ap_srv_body_source *src);
/* Queue a response; body is JSON unless ctype says otherwise. */
enum MHD_Result ap__srv_respond(ap_srv_req *r, int code, jbuf *body, const char *ctype);
enum MHD_Result ap__srv_error(ap_srv_req *r, int code, const char *fmt, ...) AP_PRINTF(3, 4);
/* The one map from library status to HTTP status (request.c has the table). */
int ap__srv_http_status(int ap_code);
/* An inference that failed after the request was accepted: the queue's
   refusals (timeout, overload, cancel, not found) keep their status from
   the map; anything else is the model failing on input it declared it
   takes, a server-side failure (500). */
int ap__srv_compute_status(int ap_code);
/* Remove the repository's own location (as configured and resolved) from a
   message a client will read: "/srv/repo/m/1/model.json: ..." becomes
   "m/1/model.json: ...". */
void ap__srv_scrub_paths(const ap_server *s, char *msg);
/* Answer with the HTTP status of err->code and its message (scrubbed). */
enum MHD_Result ap__srv_fail(ap_srv_req *r, const ap_error *err);
/* Completion callback of inferences answered on their connection. */
void ap__srv_on_done(void *user, const ap_batch_completion *c);
/*
 * The handshake of a suspended inference (infer.c), for handlers that submit
 * themselves (ap__srv_start_inference is built on it): ap__srv_submitting
 * before the first submit; ap__srv_wake from the completion that finishes
 * the request (any thread; r may be gone once it returns); ap__srv_await
 * after the last submit: 1 when the completion already came (answer now),
 * else 0 with the connection parked (parked: every submit was deferred to
 * this loop's pass) or suspended until the wake resumes it.
 */
void ap__srv_submitting(ap_srv_req *r);
void ap__srv_wake(ap_srv_req *r);
int ap__srv_await(ap_srv_req *r, int parked);
/*
 * Start the inference of r (n rows of X) on the lease's model through the
 * service (ap__service_submit; the lease ends), within r->deadline_ns. The
 * request keeps the model (r->held, r->info) for its answer. Returns 1 when the result (or the failure) is
 * already in r — inline inference, a batch the batcher ran on this thread
 * (caller_runs), a completion that beat the suspend, a refused submit, a
 * deadline already passed (status AP_ETIMEDOUT) — and the caller answers at
 * once (ap__srv_v1_finish / ap__srv_v2_finish); 0 when the connection is
 * suspended and ap__srv_on_done resumes it. Under an event loop (r->pass)
 * the submit is deferred to the end of the pass.
 */
int ap__srv_start_inference(ap_srv_req *r, ap_lease *l, const double *X, size_t n);

/*
 * A request's life, driven by the transport: begin (headers parsed; routes
 * it), headers (may answer at once: limits, malformed framing), body (any
 * number of chunks), complete (body done: answers, or suspends for an
 * inference), resumed (the inference completed), free. t_arrival: when the
 * request reached the socket (monotonic ns). reserve: it came on a reserve
 * connection (only health and metrics are served there).
 */
ap_srv_req *ap__srv_req_begin(ap_server *s, const ap_srv_io *io, void *conn, ap_service_pass *pass,
                             const char *method, const char *url, uint64_t t_arrival,
                             int reserve);
enum MHD_Result ap__srv_req_headers(ap_srv_req *r);
void ap__srv_req_body(ap_srv_req *r, const char *data, size_t n);
enum MHD_Result ap__srv_req_complete(ap_srv_req *r);
int ap__srv_req_waiting(const ap_srv_req *r);
enum MHD_Result ap__srv_req_resumed(ap_srv_req *r);
void ap__srv_req_free(ap_srv_req *r);
/* Answer now with an error and close the connection (transport limits). */
enum MHD_Result ap__srv_req_refuse(ap_srv_req *r, int code, const char *fmt, ...) AP_PRINTF(3, 4);
/* 1 when the endpoint may be served on a reserve connection. */
int ap__srv_req_reserve_ok(const ap_srv_req *r);
/* Keep what the answer needs from the lease's model (r->held, r->info). */
void ap__srv_req_hold(ap_srv_req *r, const ap_lease *l);
/*
 * Deadlines: the request is past its deadline (r->deadline_ns) now. Inference
 * handlers refuse such a request with 504 before doing the work, and
 * ap__srv_v1_finish / ap__srv_v2_finish answer 504 instead of a late 200.
 */
int ap__srv_past_deadline(const ap_srv_req *r, uint64_t now);
/* r->deadline_ns: arrival + the smaller of inference_timeout and asked_us
   (the request's timeout_ms; 0: none asked). */
void ap__srv_set_deadline(ap_srv_req *r, uint64_t asked_us);
enum MHD_Result ap__srv_deadline_error(ap_srv_req *r, const char *when);


#endif
