/*
 * The status sampler (status.c): a thread that, once a second, reads the
 * counters the server already keeps (registry statistics, batchers, ingest
 * metrics) and keeps the rates of the last STATUS_HISTORY seconds in a
 * bounded ring, for GET /v1/status (handlers_status.c) and the status page.
 */
#ifndef AP_SERVER_STATUS_H
#define AP_SERVER_STATUS_H

#include <stdint.h>

#include "alphapulse/common.h"
#include "server/jbuf.h"

#define STATUS_HISTORY 300   /* points kept: 5 minutes at one a second */
#define STATUS_MAX_MODELS 64 /* model slots sampled (later slots: no history) */

typedef struct ap_server ap_server;
typedef struct ap_srv_status ap_srv_status;

/* Make the sampler of s (s->svc and s->metrics exist); thread: start the
   sampling thread (0: none, the fuzz target; the history stays empty). */
int ap__srv_status_new(ap_server *s, int thread, ap_srv_status **out, ap_error *err);
/* Stop the thread (idempotent); free stops it first. NULL is fine. */
void ap__srv_status_stop(ap_srv_status *st);
void ap__srv_status_free(ap_srv_status *st);

/* The quantile q (0..1) of a latency histogram (non-cumulative buckets of
   common.h's scheme) in microseconds: linear within the bucket that holds
   it, the last finite bound for the +Inf bucket; NAN when it is empty. */
double ap__srv_latency_quantile_us(const uint64_t *bucket, double q);

/* The last point's ingestion rate (bars/s; 0 before the first point). */
double ap__srv_status_ingest_rate(ap_srv_status *st);
/* The last point of model slot i: predictions/s, p50 and p99 (us), mean
   rows per batch (NAN when no call that second), queue depth. Returns 0
   when there is no point yet. */
typedef struct ap_srv_status_now {
    double pred_s, p50_us, p99_us, batch_rows, queue_depth;
} ap_srv_status_now;
int ap__srv_status_model_now(ap_srv_status *st, int i, ap_srv_status_now *out);
/* "history": {...} (without the key): the ring, oldest first; names: the
   model slots' names (n of them). */
void ap__srv_status_history_json(ap_srv_status *st, jbuf *b, const char *const *names, int n);

#endif
